//! [`RawNode`]: the application's handle on a raft member, and [`Ready`]: the
//! batch of work it hands back.

use std::collections::BTreeMap;

use crate::confchange::{self, ConfChange};
use crate::config::Config;
use crate::error::Result;
use crate::message::{
    ConfState, Entry, EntryType, HardState, Message, ReadState, Snapshot, SnapshotStatus,
    SoftState, StateRole,
};
use crate::raft::Raft;
use crate::storage::Storage;
use crate::tracker::Progress;

/// Everything the application must do after a turn, in this order:
///
/// 1. Persist [`Ready::snapshot`], [`Ready::entries`] and
///    [`Ready::hard_state`] (with an fsync if [`Ready::must_sync`]).
///    [`Ready::messages`] may be sent **before or in parallel with** this
///    step.
/// 2. Send [`Ready::persisted_messages`] — only once step 1 is durable.
/// 3. Apply the snapshot (if any) and then [`Ready::committed_entries`] to the
///    state machine, and serve [`Ready::read_states`] once applied reaches
///    their index.
/// 4. Call [`RawNode::advance`] with this `Ready`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    /// Changed role or leader, if any (not persisted).
    pub soft_state: Option<SoftState>,
    /// The hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader, to persist and apply.
    pub snapshot: Option<Snapshot>,
    /// Entries to append to stable storage (replacing any existing entries
    /// from the first one's index on).
    pub entries: Vec<Entry>,
    /// Committed entries to apply, in order. They are already persisted.
    pub committed_entries: Vec<Entry>,
    /// Messages that may be sent at once, without waiting for persistence:
    /// the leader's appends, heartbeats and snapshots (the leader writes its
    /// own log in parallel and counts itself only after `advance`), pre-votes,
    /// forwarded proposals and read requests.
    pub messages: Vec<Message>,
    /// Messages to send only after this Ready's entries, snapshot and hard
    /// state are durable: append acknowledgements, vote requests (which
    /// carry the candidate's own vote) and vote answers.
    pub persisted_messages: Vec<Message>,
    /// Answers to [`RawNode::read_index`] requests.
    pub read_states: Vec<ReadState>,
    /// Whether the write of step 1 must be synced to disk (the term, the vote
    /// or the log changed). A commit-index-only change may be written lazily.
    pub must_sync: bool,
    /// The last entry (index, term) this Ready asks to persist, recorded so
    /// that `advance` works even if the application moved `entries` out.
    persist_to: Option<(u64, u64)>,
    /// The last committed entry's index, recorded for the same reason: the application may
    /// move `committed_entries` out to its applier instead of copying them.
    apply_to: Option<u64>,
}

/// A member's view of its own replication status, for monitoring.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// This member's id.
    pub id: u64,
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// Role and known leader.
    pub soft_state: SoftState,
    /// The index handed out for applying.
    pub applied: u64,
    /// The membership in force (the latest in the log).
    pub conf_state: ConfState,
    /// On the leader: every member's progress. Empty otherwise.
    pub progress: BTreeMap<u64, Progress>,
    /// On the leader: the member leadership is being transferred to (0: none).
    pub lead_transferee: u64,
}

/// The handle through which the application drives one raft member.
///
/// All inputs are method calls; all outputs come out of [`RawNode::ready`].
/// Between [`RawNode::ready`] and [`RawNode::advance`] no other method may be
/// called.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_ss: SoftState,
    prev_hs: HardState,
}

impl<S: Storage> RawNode<S> {
    /// Creates a member from its configuration and its persisted state.
    pub fn new(config: &Config, store: S) -> Result<RawNode<S>> {
        let raft = Raft::new(config, store)?;
        let prev_hs = raft.hard_state();
        let prev_ss = raft.soft_state();
        Ok(RawNode {
            raft,
            prev_ss,
            prev_hs,
        })
    }

    /// Advances the logical clock by one tick: drives election timeouts,
    /// heartbeats and check-quorum.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (with pre-vote if enabled).
    pub fn campaign(&mut self) {
        self.raft.hup(false);
    }

    /// Proposes a command. On a follower it is forwarded to the leader.
    ///
    /// Errors: [`crate::Error::NoLeader`] when no leader is known,
    /// [`crate::Error::ProposalDropped`] when the leader refuses it (during a
    /// leadership transfer or its own removal). Success means only that the
    /// proposal was accepted for replication; it may still be lost, so the
    /// application waits for it in committed entries, with a timeout.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<()> {
        self.raft.propose(data, EntryType::Normal)
    }

    /// Proposes a membership change. Only one change may be in progress at a
    /// time, and a new leader accepts one only after committing an entry of
    /// its term; otherwise [`crate::Error::ProposalDropped`]. Invalid changes
    /// fail with [`crate::Error::ConfChangeInvalid`] on the leader.
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<()> {
        self.raft.propose(cc.encode(), EntryType::ConfChange)
    }

    /// Delivers a message from another member.
    pub fn step(&mut self, m: Message) -> Result<()> {
        self.raft.step(m)
    }

    /// Requests a linearizable read index. The answer arrives as a
    /// [`ReadState`] carrying `ctx`; requests made in the same turn share one
    /// heartbeat round. Fails with [`crate::Error::NoLeader`] when no leader is
    /// known. A request can be lost (leader change, dropped messages): the
    /// application retries after a timeout.
    pub fn read_index(&mut self, ctx: Vec<u8>) -> Result<()> {
        self.raft.read_index(ctx)
    }

    /// Asks the leader to hand leadership to `to`. The leader refuses new
    /// proposals until the transfer completes or an election timeout passes.
    pub fn transfer_leader(&mut self, to: u64) -> Result<()> {
        self.raft.transfer_leader(to)
    }

    /// Tells the leader that the last message to `id` could not be sent.
    pub fn report_unreachable(&mut self, id: u64) {
        self.raft.report_unreachable(id);
    }

    /// Tells the leader how sending a snapshot to `id` ended.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        self.raft.report_snapshot(id, status);
    }

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_ss
            || r.hard_state() != self.prev_hs
            || r.raft_log.unstable.snapshot.is_some()
            || !r.raft_log.unstable.entries.is_empty()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || !r.read_states.is_empty()
            || r.raft_log.has_next_committed_entries()
            || r.has_pending_flush()
    }

    /// Collects the work of this turn. See [`Ready`] for what to do with it;
    /// then call [`RawNode::advance`].
    pub fn ready(&mut self) -> Ready {
        self.raft.flush();
        let r = &mut self.raft;
        let ss = r.soft_state();
        let hs = r.hard_state();
        let soft_state = (ss != self.prev_ss).then_some(ss);
        let hard_state = (hs != self.prev_hs).then_some(hs);
        let must_sync = hs.term != self.prev_hs.term
            || hs.vote != self.prev_hs.vote
            || !r.raft_log.unstable.entries.is_empty()
            || r.raft_log.unstable.snapshot.is_some();
        self.prev_ss = ss;
        self.prev_hs = hs;
        let snapshot = r.raft_log.unstable.snapshot.clone();
        if let Some(s) = &snapshot {
            r.applied_conf = s.metadata.conf_state.clone();
        }
        let committed_entries = r
            .raft_log
            .next_committed_entries(r.max_committed_size_per_ready);
        r.reduce_uncommitted_size(&committed_entries);
        for e in &committed_entries {
            if e.entry_type == EntryType::ConfChange {
                if let Ok((_, cs)) = confchange::decode_conf_change(&e.data) {
                    r.applied_conf = cs;
                }
            }
        }
        let entries = r.raft_log.unstable.entries.clone();
        let persist_to = entries.last().map(|e| (e.index, e.term));
        let apply_to = committed_entries.last().map(|e| e.index);
        Ready {
            soft_state,
            hard_state,
            snapshot,
            entries,
            persist_to,
            apply_to,
            committed_entries,
            messages: std::mem::take(&mut r.msgs),
            persisted_messages: std::mem::take(&mut r.msgs_after_persist),
            read_states: std::mem::take(&mut r.read_states),
            must_sync,
        }
    }

    /// Acknowledges that a [`Ready`] was handled: its entries, snapshot and
    /// hard state are durable and its committed entries applied (or handed
    /// to the applier). The application may have moved `entries` out of the
    /// `Ready` (for example into [`crate::MemStorage::append_owned`]), and
    /// `committed_entries` to its applier.
    pub fn advance(&mut self, rd: Ready) {
        let r = &mut self.raft;
        if let Some(s) = &rd.snapshot {
            r.raft_log.stable_snap_to(s.metadata.index);
            r.raft_log.applied_to(s.metadata.index);
        }
        if let Some((index, term)) = rd.persist_to {
            r.raft_log.stable_to(index, term);
            r.on_persisted();
        }
        if let Some(index) = rd.apply_to {
            r.raft_log.applied_to(index);
        }
        let committed = r.raft_log.committed;
        r.membership.compact_to(committed);
    }

    /// The membership as of the last committed entry handed out for applying
    /// (or the last snapshot): the one to record in a snapshot taken at
    /// [`Status::applied`].
    pub fn applied_conf_state(&self) -> &ConfState {
        &self.raft.applied_conf
    }

    /// The status of this member.
    pub fn status(&self) -> Status {
        let r = &self.raft;
        let progress = if r.role == StateRole::Leader {
            r.prs.progress.clone()
        } else {
            BTreeMap::new()
        };
        Status {
            id: r.id,
            hard_state: r.hard_state(),
            soft_state: r.soft_state(),
            applied: r.raft_log.applied,
            conf_state: r.prs.conf.clone(),
            progress,
            lead_transferee: r.lead_transferee.unwrap_or(0),
        }
    }

    /// The current role and known leader (cheap; see [`RawNode::status`]).
    pub fn soft_state(&self) -> SoftState {
        self.raft.soft_state()
    }

    /// The current term, vote and commit index (cheap).
    pub fn hard_state(&self) -> HardState {
        self.raft.hard_state()
    }

    /// The term of the entry at `index` in the log (persisted or not), for
    /// inspection and tests.
    pub fn log_term(&self, index: u64) -> Result<u64> {
        self.raft.raft_log.term(index)
    }

    /// The index of the last entry in the log (persisted or not).
    pub fn last_index(&self) -> u64 {
        self.raft.raft_log.last_index()
    }

    /// The storage.
    pub fn store(&self) -> &S {
        &self.raft.raft_log.store
    }

    /// The storage, for writing what a [`Ready`] asks to persist.
    pub fn mut_store(&mut self) -> &mut S {
        &mut self.raft.raft_log.store
    }
}
