//! Raft state the request handlers read without asking the raft loop: leader, term, indexes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::errors::EtcdError;

pub struct Shared {
    leader: AtomicU64,
    is_leader: AtomicBool,
    term: AtomicU64,
    commit: AtomicU64,
    applied: watch::Sender<u64>,
    answered: AtomicU64,
    /// The highest index a local read waits for; the apply thread commits at once while it is
    /// beyond what the store has committed.
    read_wanted: AtomicU64,
    /// Wakes the apply thread when a read starts waiting.
    commit_now: crossbeam_channel::Sender<()>,
    /// Why this member stopped applying the log, once it has.
    halted: Mutex<Option<String>>,
    /// Whether `halted` holds a reason: every request asks, and this spares them the lock.
    is_halted: AtomicBool,
    /// Proposals handed to the raft loop that it has not taken yet.
    queued: AtomicU64,
}

/// etcd's `maxGapBetweenApplyAndCommitIndex`: a member this far behind with applying refuses
/// new proposals rather than queue more behind them.
pub const MAX_APPLY_GAP: u64 = 5_000;

/// Proposals waiting for the raft loop at most; more are refused (the loop takes up to 8,192
/// inputs a turn).
pub const MAX_QUEUED_PROPOSALS: u64 = 16_384;

impl Shared {
    /// Also returns the receiver the apply thread hears read waits on.
    pub fn new(applied: u64, term: u64, commit: u64) -> (Shared, crossbeam_channel::Receiver<()>) {
        let (commit_now, wake) = crossbeam_channel::bounded(1);
        let shared = Shared {
            leader: AtomicU64::new(0),
            is_leader: AtomicBool::new(false),
            term: AtomicU64::new(term),
            commit: AtomicU64::new(commit),
            applied: watch::Sender::new(applied),
            answered: AtomicU64::new(applied),
            read_wanted: AtomicU64::new(0),
            commit_now,
            halted: Mutex::new(None),
            is_halted: AtomicBool::new(false),
            queued: AtomicU64::new(0),
        };
        (shared, wake)
    }

    /// Admits a proposal to the raft loop's queue, or refuses it with etcd's `too many
    /// requests` when the member cannot keep up: committed entries not yet applied past
    /// `MAX_APPLY_GAP`, or the queue full. Entries applied in the open store transaction count
    /// as applied (their callers have their answers), so a commit that lingers refuses nothing.
    pub fn admit_proposal(&self) -> Result<(), EtcdError> {
        let applied = self.applied().max(self.answered());
        if self.committed() > applied + MAX_APPLY_GAP {
            return Err(EtcdError::TooManyRequests);
        }
        if self.queued.fetch_add(1, Relaxed) >= MAX_QUEUED_PROPOSALS {
            self.queued.fetch_sub(1, Relaxed);
            return Err(EtcdError::TooManyRequests);
        }
        Ok(())
    }

    /// The raft loop took an admitted proposal off its queue (or it never got there).
    pub fn proposal_taken(&self) {
        self.queued.fetch_sub(1, Relaxed);
    }

    pub fn set_soft_state(&self, leader: u64, is_leader: bool) {
        self.leader.store(leader, Relaxed);
        self.is_leader.store(is_leader, Relaxed);
    }

    pub fn set_hard_state(&self, term: u64, commit: u64) {
        self.term.store(term, Relaxed);
        self.commit.store(commit, Relaxed);
    }

    /// Callers of entries up to `index` are being answered, before the store commits them.
    pub fn set_answered(&self, index: u64) {
        self.answered.fetch_max(index, Relaxed);
    }

    /// The last entry whose callers may have their answer: a local read waits until the
    /// store has committed it, so that a member's answers and its reads agree.
    pub fn answered(&self) -> u64 {
        self.answered.load(Relaxed)
    }

    pub fn set_applied(&self, index: u64) {
        self.applied.send_if_modified(|a| {
            let moved = index > *a;
            if moved {
                *a = index;
            }
            moved
        });
    }

    /// Records that this member stopped applying the log (the first reason is kept) and
    /// fails every read waiting for entries it will not apply.
    pub fn halt(&self, reason: String) {
        self.halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
        self.is_halted
            .store(true, std::sync::atomic::Ordering::Release);
        self.applied.send_modify(|_| {});
    }

    /// Why this member stopped applying the log, if it has.
    pub fn halted(&self) -> Option<String> {
        if !self.is_halted.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn halted_error(&self) -> Option<EtcdError> {
        self.halted().map(EtcdError::Halted)
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Relaxed)
    }

    /// The known leader, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader.load(Relaxed)).filter(|l| *l != 0)
    }

    pub fn term(&self) -> u64 {
        self.term.load(Relaxed)
    }

    /// The last index known committed (etcd's `Status.raft_index`).
    pub fn committed(&self) -> u64 {
        self.commit.load(Relaxed)
    }

    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Whether a local read waits for entries the store has not committed yet.
    pub fn read_waiting(&self) -> bool {
        self.read_wanted.load(Relaxed) > self.applied()
    }

    /// Waits until everything up to `index` has been applied to the store (committed: the
    /// apply thread may hold applied entries in an open transaction, and commits at once
    /// when a read waits).
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), EtcdError> {
        if self.applied() >= index {
            return Ok(());
        }
        if let Some(e) = self.halted_error() {
            return Err(e);
        }
        self.read_wanted.fetch_max(index, Relaxed);
        let _ = self.commit_now.try_send(());
        let mut rx = self.applied.subscribe();
        let reached = async move {
            rx.wait_for(|a| *a >= index || self.halted_error().is_some())
                .await
                .map(|_| ())
        };
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(_)) if self.applied() >= index => Ok(()),
            Ok(_) => Err(self.halted_error().unwrap_or(EtcdError::Stopped)),
            Err(_) => Err(EtcdError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_read_asks_the_apply_thread_to_commit() {
        let (shared, wake) = Shared::new(3, 1, 3);
        assert!(shared
            .wait_applied(3, Duration::from_millis(1))
            .await
            .is_ok());
        assert!(wake.try_recv().is_err(), "nothing to wait for, no wake-up");
        assert!(!shared.read_waiting());
        let waited = shared.wait_applied(5, Duration::from_millis(20)).await;
        assert!(matches!(waited, Err(EtcdError::Timeout)));
        assert!(wake.try_recv().is_ok());
        assert!(shared.read_waiting());
        shared.set_applied(5);
        assert!(!shared.read_waiting());
    }

    #[test]
    fn proposals_are_refused_past_the_apply_gap_or_a_full_queue() {
        let (shared, _wake) = Shared::new(10, 1, 10 + MAX_APPLY_GAP);
        assert!(shared.admit_proposal().is_ok());
        shared.proposal_taken();
        shared.set_hard_state(1, 11 + MAX_APPLY_GAP);
        assert_eq!(shared.admit_proposal(), Err(EtcdError::TooManyRequests));
        // Applied in the open transaction: its callers are answered, so it counts.
        shared.set_answered(11);
        assert!(shared.admit_proposal().is_ok());
        for _ in 1..MAX_QUEUED_PROPOSALS {
            shared.admit_proposal().unwrap();
        }
        assert_eq!(shared.admit_proposal(), Err(EtcdError::TooManyRequests));
        shared.proposal_taken();
        assert!(shared.admit_proposal().is_ok());
    }

    #[tokio::test]
    async fn halting_fails_waiting_reads_but_not_satisfied_ones() {
        let (shared, _wake) = Shared::new(3, 1, 3);
        let shared = std::sync::Arc::new(shared);
        let waiting = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.wait_applied(5, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        shared.halt("entry 4 does not decode".into());
        shared.halt("a later reason".into());
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            Err(EtcdError::Halted("entry 4 does not decode".into()))
        );
        assert!(shared.wait_applied(3, Duration::from_secs(1)).await.is_ok());
    }
}
