//! The leader's expiry loop: leases whose time is up are revoked through the log, so every
//! member deletes their keys at the same revisions.
//!
//! etcd checks every 500 ms and revokes at most 1,000 leases a second, one log entry each,
//! so 10,000 leases expiring together take ten seconds to go. Here one entry
//! (`ExpireLeases`) carries up to [`LEASES_PER_ENTRY`] leases, each still revoked at its own
//! revision, at most [`ENTRIES_IN_FLIGHT`] such entries wait for the log at once, and no more
//! than [`REVOKES_PER_SECOND`] leases go per second. Entries are small so that a write
//! proposed meanwhile waits behind little of the expiry's deletes, and the rate spreads a
//! mass expiry over a few hundred milliseconds instead of one burst that the apply thread
//! spends wholly on it: 10,000 leases go within half a second, while other writes keep
//! their latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::debug;

use super::lessor::Lessor;
use crate::raft::RaftNode;

/// How often the leader looks for expired leases.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Leases revoked by one log entry at most.
pub const LEASES_PER_ENTRY: usize = 100;

/// Expiry entries proposed and not yet applied, at most.
pub const ENTRIES_IN_FLIGHT: usize = 2;

/// Leases revoked per second at most (etcd: 1,000).
pub const REVOKES_PER_SECOND: f64 = 25_000.0;

/// Revokes the rate allows now: it refills with time, up to one check interval's worth, so
/// a leader idle for a while does not spend a burst at once.
struct Budget {
    leases: f64,
    refilled: Instant,
}

impl Budget {
    fn new(now: Instant) -> Budget {
        Budget {
            leases: 0.0,
            refilled: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.duration_since(self.refilled).as_secs_f64() * REVOKES_PER_SECOND;
        let cap = CHECK_EVERY.as_secs_f64() * REVOKES_PER_SECOND;
        self.leases = (self.leases + earned).min(cap);
        self.refilled = now;
    }

    /// Whether a whole entry's worth may go now (entries are not split to fit the rate).
    fn has_entry(&self) -> bool {
        self.leases >= LEASES_PER_ENTRY as f64
    }

    fn spend(&mut self, leases: usize) {
        self.leases -= leases as f64;
    }
}

/// Runs the expiry loop for as long as the process runs; it does nothing on a follower.
pub fn spawn(lessor: Arc<Lessor>, raft: RaftNode) {
    tokio::spawn(run(lessor, raft));
}

async fn run(lessor: Arc<Lessor>, raft: RaftNode) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut in_flight = JoinSet::new();
    let mut budget = Budget::new(Instant::now());
    // Woken by the next tick, an applied entry, or (once a mass expiry has spent it) the
    // budget's refill of a whole entry.
    let refilled_in = Duration::from_secs_f64(LEASES_PER_ENTRY as f64 / REVOKES_PER_SECOND);
    loop {
        let spent = !budget.has_entry();
        tokio::select! {
            _ = tick.tick() => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = tokio::time::sleep(refilled_in), if spent => {}
        }
        let leading = raft.leader_term();
        lessor.follow(leading);
        let Some(term) = leading else { continue };
        let now = Instant::now();
        budget.refill(now);
        while in_flight.len() < ENTRIES_IN_FLIGHT && budget.has_entry() {
            let due = lessor.take_expired(now, LEASES_PER_ENTRY);
            if due.is_empty() {
                break;
            }
            budget.spend(due.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refills_with_time_up_to_one_interval() {
        let start = Instant::now();
        let mut b = Budget::new(start);
        assert!(!b.has_entry());
        b.refill(start + Duration::from_secs_f64(LEASES_PER_ENTRY as f64 / REVOKES_PER_SECOND));
        assert!(b.has_entry());
        b.spend(LEASES_PER_ENTRY);
        assert!(!b.has_entry());
        // Idle for a minute, then a mass expiry: one interval's worth, not a minute's.
        b.refill(start + Duration::from_secs(60));
        let cap = (CHECK_EVERY.as_secs_f64() * REVOKES_PER_SECOND) as usize;
        let mut entries = 0;
        while b.has_entry() {
            b.spend(LEASES_PER_ENTRY);
            entries += 1;
        }
        assert_eq!(entries, cap / LEASES_PER_ENTRY);
    }
}
