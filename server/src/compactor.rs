//! Finishes compactions when writes are few. The apply thread drops a bounded number of
//! history rows after each batch it applies, so a compaction followed by no writes kept its
//! rows, and the space they hold, until the next defragmentation; and `etcdctl compaction
//! --physical` returned before anything was dropped. This task drops them in the
//! background, a bounded step at a time (each step holds the store's write lock briefly),
//! and a `Compact` with `physical` returns once the walk is done, as etcd's does.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::errors::EtcdError;

/// History rows one background step drops at most.
const ROWS_PER_STEP: usize = 4096;

/// How often the task looks for a pending compaction.
const CHECK_EVERY: Duration = Duration::from_millis(100);

pub fn spawn(store: Arc<mvcc::Store>) {
    tokio::spawn(run(store));
}

async fn run(store: Arc<mvcc::Store>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A failing walk (a full disk, say) is logged once until one succeeds again.
    let mut failing = false;
    loop {
        tick.tick().await;
        // A read transaction: no write lock while nothing is pending.
        if !store.compaction_pending().unwrap_or(false) {
            continue;
        }
        match walk(&store).await {
            Ok(()) => failing = false,
            Err(e) => {
                if !failing {
                    warn!("dropping compacted history failed: {e}; retrying every 100 ms");
                }
                failing = true;
            }
        }
    }
}

/// A `Compact` with `physical` returns once the compaction walk is done. The caller walks
/// itself, beside the background task, so that a step that fails (a full disk) fails the
/// call with its reason instead of leaving it to wait for a walk that cannot end.
pub async fn physically_done(store: &Arc<mvcc::Store>) -> Result<(), EtcdError> {
    walk(store).await
}

/// Drops compacted history a bounded step at a time until none is left.
async fn walk(store: &Arc<mvcc::Store>) -> Result<(), EtcdError> {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.run_compaction(ROWS_PER_STEP)).await {
            Ok(Ok(true)) => return Ok(()),
            // Let the writes waiting for the lock go first.
            Ok(Ok(false)) => tokio::task::yield_now().await,
            Ok(Err(e)) => return Err(EtcdError::from(e)),
            Err(_) => return Err(EtcdError::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvcc::{Command, CompactRequest, PutRequest, StoreOptions};

    #[tokio::test]
    async fn a_physical_compaction_finishes_the_walk_without_the_background_task() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            map_size: 16 << 20,
            compaction_rows_per_batch: 1,
            ..Default::default()
        };
        let store = Arc::new(mvcc::Store::open(dir.path(), opts).unwrap());
        let put = |k: &str| {
            Command::Put(PutRequest {
                key: k.as_bytes().to_vec(),
                ..Default::default()
            })
        };
        let mut batch: Vec<(u64, Command)> = (1..=50).map(|i| (i, put("a"))).collect();
        batch.push((
            51,
            Command::Compact(CompactRequest {
                revision: 50,
                physical: true,
            }),
        ));
        store.apply(&batch).unwrap();
        assert!(
            store.compaction_pending().unwrap(),
            "one row per batch: walk left"
        );
        // No background task runs here: the call must walk to the end itself.
        tokio::time::timeout(Duration::from_secs(10), physically_done(&store))
            .await
            .expect("the walk finishes")
            .unwrap();
        assert!(!store.compaction_pending().unwrap());
    }
}
