//! What a leader knows about each member's log: [`Progress`] and the
//! [`Inflights`] window that bounds optimistic pipelining.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::message::ConfState;
use crate::quorum::{self, VoteResult};

/// How the leader currently replicates to a member.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressState {
    /// One append at a time until the matching index is found.
    #[default]
    Probe,
    /// Appends are pipelined optimistically within the inflight window.
    Replicate,
    /// A snapshot was sent; appends wait until it is installed or fails.
    Snapshot,
}

/// A sliding window of appends sent but not yet acknowledged, bounded by a
/// count and a byte total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    window: VecDeque<(u64, u64)>,
    bytes: u64,
    max_count: usize,
    max_bytes: u64,
}

impl Inflights {
    /// An empty window.
    pub fn new(max_count: usize, max_bytes: u64) -> Inflights {
        Inflights {
            window: VecDeque::new(),
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    /// Records an append whose last index is `last` carrying `bytes`.
    pub fn add(&mut self, last: u64, bytes: u64) {
        self.window.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Acknowledges every append ending at or below `to`.
    pub fn free_to(&mut self, to: u64) {
        while let Some(&(last, bytes)) = self.window.front() {
            if last > to {
                break;
            }
            self.bytes -= bytes;
            self.window.pop_front();
        }
    }

    /// Frees the oldest append (used on heartbeat responses so a full window
    /// that lost its acknowledgements does not stall forever).
    pub fn free_first_one(&mut self) {
        if let Some((_, bytes)) = self.window.pop_front() {
            self.bytes -= bytes;
        }
    }

    /// Whether no more appends may be sent.
    pub fn full(&self) -> bool {
        self.window.len() >= self.max_count || self.bytes >= self.max_bytes
    }

    /// The number of appends in flight.
    pub fn count(&self) -> usize {
        self.window.len()
    }

    fn reset(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }
}

/// The leader's view of one member's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub matched: u64,
    /// The next index to send.
    pub next_idx: u64,
    /// The replication mode.
    pub state: ProgressState,
    /// In [`ProgressState::Probe`]: an append is outstanding.
    pub probe_sent: bool,
    /// In [`ProgressState::Snapshot`]: the index of the snapshot sent.
    pub pending_snapshot: u64,
    /// Whether the member was heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Whether the member is a learner.
    pub is_learner: bool,
    /// Appends in flight.
    pub ins: Inflights,
}

impl Progress {
    pub(crate) fn new(next_idx: u64, ins: Inflights, is_learner: bool) -> Progress {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            recent_active: true,
            is_learner,
            ins,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.ins.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched + 1;
        }
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    pub(crate) fn become_snapshot(&mut self, index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = index;
    }

    /// Records an acknowledgement of `n`; returns whether `matched` grew.
    pub(crate) fn maybe_update(&mut self, n: u64) -> bool {
        let updated = self.matched < n;
        if updated {
            self.matched = n;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(n + 1);
        updated
    }

    /// Handles a rejection of the append at `rejected`; `match_hint` is where
    /// the follower's log may match. Returns false for stale rejections.
    pub(crate) fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = rejected.min(match_hint + 1).max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    /// Whether sending appends is paused.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.ins.full(),
            ProgressState::Snapshot => true,
        }
    }
}

/// The membership as the leader tracks it, with a [`Progress`] per member and
/// the votes of the current election.
#[derive(Clone, Debug)]
pub(crate) struct ProgressTracker {
    pub(crate) conf: ConfState,
    pub(crate) progress: BTreeMap<u64, Progress>,
    pub(crate) votes: BTreeMap<u64, bool>,
    max_inflight: usize,
    max_inflight_bytes: u64,
}

impl ProgressTracker {
    pub(crate) fn new(max_inflight: usize, max_inflight_bytes: u64) -> ProgressTracker {
        ProgressTracker {
            conf: ConfState::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
            max_inflight_bytes,
        }
    }

    /// Installs a membership; members that stay keep their progress, new ones
    /// start probing at `next_idx`.
    pub(crate) fn set_conf(&mut self, conf: ConfState, next_idx: u64) {
        self.progress.retain(|id, _| conf.contains(*id));
        for &id in conf.voters.iter().chain(conf.learners.iter()) {
            let learner = conf.is_learner(id);
            let ins = Inflights::new(self.max_inflight, self.max_inflight_bytes);
            self.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next_idx, ins, learner))
                .is_learner = learner;
        }
        self.conf = conf;
    }

    pub(crate) fn reset_all(&mut self, next_idx: u64) {
        for pr in self.progress.values_mut() {
            let learner = pr.is_learner;
            *pr = Progress::new(
                next_idx,
                Inflights::new(self.max_inflight, self.max_inflight_bytes),
                learner,
            );
        }
    }

    pub(crate) fn committed(&self) -> u64 {
        quorum::committed_index(&self.conf.voters, |id| {
            self.progress.get(&id).map_or(0, |p| p.matched)
        })
    }

    pub(crate) fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    pub(crate) fn tally(&self) -> VoteResult {
        quorum::vote_result(&self.conf.voters, &self.votes)
    }

    pub(crate) fn quorum_active(&self, self_id: u64) -> bool {
        quorum::has_quorum(&self.conf.voters, |id| {
            id == self_id || self.progress.get(&id).is_some_and(|p| p.recent_active)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_count_and_bytes() {
        let mut ins = Inflights::new(3, 100);
        ins.add(1, 10);
        ins.add(2, 10);
        assert!(!ins.full());
        ins.add(3, 10);
        assert!(ins.full());
        ins.free_to(2);
        assert_eq!(ins.count(), 1);
        assert!(!ins.full());
        ins.add(4, 95);
        assert!(ins.full(), "byte limit reached");
        ins.free_first_one();
        assert!(!ins.full());
    }

    #[test]
    fn probe_backs_off_using_hint() {
        let mut p = Progress::new(11, Inflights::new(4, u64::MAX), false);
        assert!(!p.maybe_decr_to(5, 3), "stale rejection ignored");
        assert!(p.maybe_decr_to(10, 3));
        assert_eq!(p.next_idx, 4);
        p.maybe_update(3);
        p.become_replicate();
        assert_eq!(p.next_idx, 4);
        assert!(!p.maybe_decr_to(2, 0));
        assert!(p.maybe_decr_to(7, 0));
        assert_eq!(p.next_idx, 4);
    }
}
