//! Raft state the request handlers read without asking the raft loop: leader, term, indexes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::watch;

use crate::errors::EtcdError;

pub struct Shared {
    leader: AtomicU64,
    is_leader: AtomicBool,
    term: AtomicU64,
    commit: AtomicU64,
    last_index: AtomicU64,
    applied: watch::Sender<u64>,
    answered: AtomicU64,
}

impl Shared {
    pub fn new(applied: u64, term: u64, commit: u64) -> Shared {
        Shared {
            leader: AtomicU64::new(0),
            is_leader: AtomicBool::new(false),
            term: AtomicU64::new(term),
            commit: AtomicU64::new(commit),
            last_index: AtomicU64::new(commit),
            applied: watch::Sender::new(applied),
            answered: AtomicU64::new(applied),
        }
    }

    pub fn set_soft_state(&self, leader: u64, is_leader: bool) {
        self.leader.store(leader, Relaxed);
        self.is_leader.store(is_leader, Relaxed);
    }

    pub fn set_hard_state(&self, term: u64, commit: u64) {
        self.term.store(term, Relaxed);
        self.commit.store(commit, Relaxed);
    }

    pub fn set_last_index(&self, index: u64) {
        self.last_index.store(index, Relaxed);
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

    /// The known leader, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader.load(Relaxed)).filter(|l| *l != 0)
    }

    pub fn term(&self) -> u64 {
        self.term.load(Relaxed)
    }

    pub fn last_index(&self) -> u64 {
        self.last_index.load(Relaxed)
    }

    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until everything up to `index` has been applied to the store.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), EtcdError> {
        if self.applied() >= index {
            return Ok(());
        }
        let mut rx = self.applied.subscribe();
        let reached = async move { rx.wait_for(|a| *a >= index).await.map(|_| ()) };
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => Err(EtcdError::Timeout),
        }
    }
}
