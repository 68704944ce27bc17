//! The leader's expiry loop: leases whose time is up are revoked through the log, so every
//! member deletes their keys at the same revisions.
//!
//! etcd checks every 500 ms and revokes at most 1,000 leases a second, one log entry each,
//! so 10,000 leases expiring together take ten seconds to go. Here one entry
//! (`ExpireLeases`) carries up to [`LEASES_PER_ENTRY`] leases, each still revoked at its own
//! revision, and at most [`ENTRIES_IN_FLIGHT`] such entries wait for the log at once: a mass
//! expiry costs a few entries, and the log never queues more than a bounded amount of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::debug;

use super::lessor::Lessor;
use crate::raft::RaftNode;

/// How often the leader looks for expired leases.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Leases revoked by one log entry at most.
pub const LEASES_PER_ENTRY: usize = 1000;

/// Expiry entries proposed and not yet applied, at most.
pub const ENTRIES_IN_FLIGHT: usize = 4;

/// Runs the expiry loop for as long as the process runs; it does nothing on a follower.
pub fn spawn(lessor: Arc<Lessor>, raft: RaftNode) {
    tokio::spawn(run(lessor, raft));
}

async fn run(lessor: Arc<Lessor>, raft: RaftNode) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
        let leading = raft.leader_term();
        lessor.follow(leading);
        let Some(term) = leading else { continue };
        while in_flight.len() < ENTRIES_IN_FLIGHT {
            let due = lessor.take_expired(Instant::now(), LEASES_PER_ENTRY);
            if due.is_empty() {
                break;
            }
            let (lessor, raft) = (lessor.clone(), raft.clone());
            in_flight.spawn(async move {
                // A member that lost leadership meanwhile must not revoke: its expiry times
                // no longer count, the new leader's do.
                if raft.leader_term() != Some(term) {
                    lessor.revoke_failed(&due);
                    return;
                }
                let count = due.len();
                match raft.propose(mvcc::Command::ExpireLeases(due.clone())).await {
                    // The apply thread has told the lessor which leases went.
                    Ok(_) => debug!(count, "expired leases revoked"),
                    Err(e) => {
                        debug!(count, "revoking expired leases failed: {e}; retrying");
                        lessor.revoke_failed(&due);
                    }
                }
            });
        }
    }
}
