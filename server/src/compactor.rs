//! Finishes compactions when writes are few. The apply thread drops a bounded number of
//! history rows after each batch it applies, so a compaction followed by no writes kept its
//! rows, and the space they hold, until the next defragmentation; and `etcdctl compaction
//! --physical` returned before anything was dropped. This task drops them in the
//! background, a bounded step at a time (each step holds the store's write lock briefly),
//! and a `Compact` with `physical` waits for it, as etcd's does.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::errors::EtcdError;

/// History rows one background step drops at most.
const ROWS_PER_STEP: usize = 4096;

/// How often the task looks for a pending compaction.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// How often a `physical` compaction looks whether the walk has finished.
const PHYSICAL_POLL: Duration = Duration::from_millis(10);

pub fn spawn(store: Arc<mvcc::Store>) {
    tokio::spawn(run(store));
}

async fn run(store: Arc<mvcc::Store>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A failing step (a full disk, say) is logged once until a step succeeds again.
    let mut failing = false;
    loop {
        tick.tick().await;
        // A read transaction: no write lock while nothing is pending.
        if !store.compaction_pending().unwrap_or(false) {
            continue;
        }
        loop {
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.run_compaction(ROWS_PER_STEP)).await {
                Ok(Ok(done)) => {
                    failing = false;
                    if done {
                        break;
                    }
                    // Let the writes waiting for the lock go first.
                    tokio::task::yield_now().await;
                }
                Ok(Err(e)) => {
                    if !failing {
                        warn!("dropping compacted history failed: {e}; retrying every 100 ms");
                    }
                    failing = true;
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

/// Waits until the store's compaction walk has finished (`Compact` with `physical`).
pub async fn physically_done(store: &mvcc::Store) -> Result<(), EtcdError> {
    while store.compaction_pending().map_err(EtcdError::from)? {
        tokio::time::sleep(PHYSICAL_POLL).await;
    }
    Ok(())
}
