//! The raft loop: one thread that owns the `RawNode`, feeds it ticks, peer messages,
//! proposals and read requests, and carries out each `Ready` in the order raft-core's
//! persistence contract asks for:
//!
//! 1. send the messages that may leave at once (the leader's appends go out while it writes
//!    its own log: replication and the local fsync overlap);
//! 2. persist snapshot, entries and hard state with one fsync (group commit: everything
//!    proposed since the previous turn is in this one write);
//! 3. send the messages that speak for what was just persisted;
//! 4. hand committed entries to the apply thread, answer read states, advance.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft_core::{Message, MessageType, RawNode, Ready, SnapshotStatus, StateRole};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::apply::ApplyItem;
use super::durable_log::DurableLog;
use super::envelope::{Envelope, Payload};
use super::shared::Shared;
use super::snapshots::Snapshots;
use super::waiters::{Answer, Waiters};
use super::PeerTransport;
use crate::errors::EtcdError;
use crate::metrics::Metrics;

/// Inputs to the raft loop.
pub enum Input {
    /// A proposal whose waiter is registered under `id`.
    Propose { id: u64, data: Vec<u8> },
    /// A linearizable read: answered with the index to wait for.
    Read(oneshot::Sender<Result<u64, EtcdError>>),
    /// A message from a peer.
    Peer(Message),
    /// A snapshot received from a peer, already written to `file`.
    PeerSnapshot { msg: Message, file: PathBuf },
    /// How sending a snapshot to `to` ended.
    SnapshotSent { to: u64, ok: bool },
    /// A membership change whose waiter is registered under `id`.
    ConfChange { id: u64, cc: raft_core::ConfChange },
    /// Hand leadership to this member.
    TransferLeader(u64),
    /// On the leader: its last index and every member's match index.
    Progress(oneshot::Sender<Option<LeaderProgress>>),
    /// This member was removed from the cluster: stop taking part.
    Removed,
}

/// The leader's last index and each member's match index.
pub type LeaderProgress = (u64, Vec<(u64, u64)>);

/// Inputs handled per turn at most, so that ticks are never starved.
const MAX_INPUTS_PER_TURN: usize = 8192;

pub struct Driver {
    pub node: RawNode<raft_core::MemStorage>,
    pub log: DurableLog,
    pub inputs: Receiver<Input>,
    pub transport: PeerTransport,
    pub apply: Sender<ApplyItem>,
    pub shared: Arc<Shared>,
    pub waiters: Arc<Waiters>,
    pub snapshots: Snapshots,
    /// The store, flushed before the log forgets entries it may not hold durably yet.
    pub store: Arc<mvcc::Store>,
    pub metrics: Arc<Metrics>,
    pub tick: Duration,
    /// Take a raft snapshot (and compact the log) every this many applied entries.
    pub snapshot_count: u64,
    /// Entries kept behind a snapshot so that slightly lagging followers catch up from the log.
    pub catch_up_entries: u64,
    pub reads: ReadBatches,
    /// The data of the last snapshot message received, by the snapshot's index.
    pub received_snapshot: Option<(u64, PathBuf)>,
    /// The last index handed to the apply thread (or installed by a snapshot).
    pub handed_out: u64,
    /// Proposals handed to raft this turn, with their term, recorded in `waiters` in one go.
    pub sent: Vec<(u64, u64)>,
    /// The leader and term read requests in flight were sent under.
    pub reads_under: (u64, u64),
    /// A membership change this leader proposed, not yet answered.
    pub pending_change: Option<PendingChange>,
}

/// A membership change proposed on this leader: its entry, and who voted before it.
pub struct PendingChange {
    id: u64,
    index: u64,
    term: u64,
    old_voters: Vec<u64>,
}

/// Linearizable reads waiting for a read index: all reads that arrive in one turn share one
/// raft `read_index` request, so a burst of reads costs one heartbeat round.
#[derive(Default)]
pub struct ReadBatches {
    waiting: Vec<ReadReply>,
    /// Read index requests sent to raft, by context, with when they were sent.
    in_flight: HashMap<Vec<u8>, (Instant, Vec<ReadReply>)>,
    next_ctx: u64,
}

type ReadReply = oneshot::Sender<Result<u64, EtcdError>>;

impl Driver {
    pub fn run(mut self) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inputs.recv_timeout(wait) {
                Ok(input) => {
                    let mut removed = self.handle(input);
                    for _ in 0..MAX_INPUTS_PER_TURN {
                        match self.inputs.try_recv() {
                            Ok(input) => removed |= self.handle(input),
                            Err(_) => break,
                        }
                    }
                    if removed {
                        // A removed member must not campaign and disturb the others.
                        info!("raft loop stopping: this member was removed from the cluster");
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    info!("raft loop stopping");
                    return;
                }
            }
            // Before this turn's ready can hand out the new leader's first entry, which fails
            // the proposals of earlier terms still waiting.
            if !self.sent.is_empty() {
                self.waiters.sent(&self.sent);
                self.sent.clear();
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                self.expire_reads(now);
                next_tick += self.tick;
                if next_tick < now {
                    // The loop fell behind (a long fsync): do not replay missed ticks in a burst.
                    next_tick = now + self.tick;
                }
            }
            self.start_reads();
            while self.node.has_ready() {
                let rd = self.node.ready();
                if let Err(e) = self.handle_ready(rd) {
                    // Raft's guarantees rest on the log: a member that cannot persist must stop
                    // taking part rather than acknowledge what it did not write. The process
                    // stays up (exiting would have a supervisor restart it into the same
                    // failure) and reports why on /health.
                    tracing::error!("cannot carry out a raft ready (persist, install): {e}; this member stops taking part in raft; fix the cause and restart it");
                    self.shared.halt(format!("raft loop stopped: {e}"));
                    return;
                }
            }
            self.maybe_compact();
            self.answer_change_held_by_old_quorum();
        }
    }

    /// etcd answers a membership change once the old membership has committed it; raft-core
    /// commits it under the new one (see `raft_core::confchange`), which may need the very
    /// member being added. Once a majority of the old voters holds the entry it can no longer
    /// be lost (a candidate without it cannot win a majority of either membership), so the
    /// caller gets its answer then, as from etcd.
    fn answer_change_held_by_old_quorum(&mut self) {
        let Some(p) = &self.pending_change else {
            return;
        };
        let st = self.node.status();
        if st.soft_state.role != StateRole::Leader
            || st.hard_state.term != p.term
            || st.hard_state.commit >= p.index
        {
            // Lost with the leadership, or committed: applying it answers, if anything does.
            self.pending_change = None;
            return;
        }
        let holding = p
            .old_voters
            .iter()
            .filter(|v| st.progress.get(v).is_some_and(|pr| pr.matched >= p.index))
            .count();
        if holding > p.old_voters.len() / 2 {
            self.waiters.answer(p.id, Ok(Answer::Members));
            self.pending_change = None;
        }
    }

    /// Returns whether this member was removed.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Removed => return true,
            Input::ConfChange { id, cc } => {
                let before = self.node.status();
                let last = self.node.last_index();
                match self.node.propose_conf_change(cc) {
                    // Another change is still pending: etcd's answer is a timeout.
                    Err(raft_core::Error::ProposalDropped) => {
                        self.waiters.answer(id, Err(EtcdError::Timeout))
                    }
                    Err(e) => self.waiters.answer(id, Err(raft_error(e))),
                    Ok(()) if before.soft_state.role == StateRole::Leader => {
                        self.pending_change =
                            (self.node.last_index() > last).then(|| PendingChange {
                                id,
                                index: self.node.last_index(),
                                term: before.hard_state.term,
                                old_voters: before.conf_state.voters,
                            });
                    }
                    Ok(()) => {}
                }
            }
            Input::TransferLeader(to) => {
                if let Err(e) = self.node.transfer_leader(to) {
                    debug!(to, "leadership transfer refused: {e}");
                }
            }
            Input::Progress(reply) => {
                let status = self.node.status();
                let answer = (status.soft_state.role == StateRole::Leader).then(|| {
                    let progress = status
                        .progress
                        .iter()
                        .map(|(id, p)| (*id, p.matched))
                        .collect();
                    (self.node.last_index(), progress)
                });
                let _ = reply.send(answer);
            }
            Input::Propose { id, data } => {
                self.shared.proposal_taken();
                match self.node.propose(data) {
                    Ok(()) => self.sent.push((id, self.node.hard_state().term)),
                    Err(e) => self.waiters.answer(id, Err(raft_error(e))),
                }
            }
            Input::Read(reply) => self.reads.waiting.push(reply),
            Input::Peer(msg) => self.step(msg),
            Input::PeerSnapshot { msg, file } => {
                let index = msg.snapshot.as_ref().map(|s| s.metadata.index).unwrap_or(0);
                if let Some((_, stale)) = self.received_snapshot.replace((index, file)) {
                    let _ = std::fs::remove_file(stale);
                }
                self.step(msg);
            }
            Input::SnapshotSent { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node.report_snapshot(to, status);
            }
        }
        false
    }

    fn step(&mut self, msg: Message) {
        let from = msg.from;
        if let Err(e) = self.node.step(msg) {
            debug!(from, "raft refused a message: {e}");
        }
    }

    fn start_reads(&mut self) {
        if self.reads.waiting.is_empty() {
            return;
        }
        // Reads already in flight under an older leader go first, so the new ones are not
        // taken for them.
        self.fail_reads_on_leader_change();
        let batch = std::mem::take(&mut self.reads.waiting);
        self.reads.next_ctx += 1;
        let ctx = self.reads.next_ctx.to_be_bytes().to_vec();
        match self.node.read_index(ctx.clone()) {
            Ok(()) => {
                self.reads.in_flight.insert(ctx, (Instant::now(), batch));
            }
            Err(e) => {
                let err = raft_error(e);
                for reply in batch {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// A read index request whose answer was lost (a dropped message) is failed after a while
    /// so that it does not linger; its callers have usually timed out by then.
    fn expire_reads(&mut self, now: Instant) {
        let limit = self.tick * 50;
        self.reads.in_flight.retain(|_, (started, replies)| {
            let keep = now.duration_since(*started) < limit;
            if !keep {
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(EtcdError::Timeout));
                }
            }
            keep
        });
    }

    /// Read index requests answer only to the leader and term they were sent under (raft
    /// forgets them on a change): once either changes, their callers learn at once, with
    /// etcd's `leader changed`, instead of waiting for a time-out.
    fn fail_reads_on_leader_change(&mut self) {
        let now = (
            self.node.soft_state().leader_id,
            self.node.hard_state().term,
        );
        if now == self.reads_under {
            return;
        }
        self.reads_under = now;
        for (_, (_, replies)) in self.reads.in_flight.drain() {
            for reply in replies {
                let _ = reply.send(Err(EtcdError::LeaderChanged));
            }
        }
    }

    fn handle_ready(&mut self, mut rd: Ready) -> Result<(), String> {
        if let Some(ss) = &rd.soft_state {
            self.shared
                .set_soft_state(ss.leader_id, ss.role == StateRole::Leader);
            if ss.leader_id == 0 {
                info!(term = self.node.hard_state().term, "no leader");
            } else {
                info!(leader = %format!("{:x}", ss.leader_id), term = self.node.hard_state().term, role = ?ss.role, "leader known");
            }
        }
        self.fail_reads_on_leader_change();
        self.send(std::mem::take(&mut rd.messages));

        if let Some(snap) = &rd.snapshot {
            // Installing raft's snapshot without the matching store would leave the store
            // behind the log for good: refuse rather than diverge.
            let index = snap.metadata.index;
            let file = match self.received_snapshot.take() {
                Some((received, file)) if received == index => file,
                _ => {
                    return Err(format!(
                        "no data received for the snapshot at index {index}"
                    ))
                }
            };
            // The store takes the snapshot before the log records it: a crash in between
            // leaves the old log, which still leads to the new state, rather than a log that
            // starts past what the store holds.
            let (done, restored) = crossbeam_channel::bounded(1);
            let _ = self.apply.send(ApplyItem::Restore {
                file,
                index,
                term: snap.metadata.term,
                done,
            });
            restored
                .recv()
                .map_err(|_| "the apply thread stopped while installing a snapshot".to_string())?;
            self.log
                .install_snapshot(&snap.metadata)
                .map_err(|e| e.to_string())?;
            self.node
                .mut_store()
                .apply_snapshot(snap.clone())
                .map_err(|e| e.to_string())?;
            self.handed_out = self.handed_out.max(index);
        }
        self.reach_added_members(&rd.entries);
        let started = Instant::now();
        self.log
            .append(&rd.entries, rd.hard_state.as_ref(), rd.must_sync)
            .map_err(|e| e.to_string())?;
        if rd.must_sync {
            self.metrics.wal_fsync.observe(started.elapsed());
        }
        // `advance` needs only `persist_to`: the entries move into the log mirror uncopied.
        self.node
            .mut_store()
            .append_owned(std::mem::take(&mut rd.entries))
            .map_err(|e| e.to_string())?;
        if let Some(hs) = &rd.hard_state {
            self.node.mut_store().set_hard_state(*hs);
            self.shared.set_hard_state(hs.term, hs.commit);
        }
        self.send(std::mem::take(&mut rd.persisted_messages));

        self.tell_removed(&rd.committed_entries);
        if let Some(last) = rd.committed_entries.last() {
            self.handed_out = last.index;
            let _ = self.apply.send(ApplyItem::Entries(std::mem::take(
                &mut rd.committed_entries,
            )));
        }
        for rs in std::mem::take(&mut rd.read_states) {
            if let Some((_, replies)) = self.reads.in_flight.remove(&rs.request_ctx) {
                for reply in replies {
                    let _ = reply.send(Ok(rs.index));
                }
            }
        }
        self.node.advance(rd);
        Ok(())
    }

    /// raft-core replicates under a membership from when it is in the log, so the transport
    /// must reach an added member from then on, not only once the change is applied (which,
    /// when the new member is needed for the quorum, waits for it).
    fn reach_added_members(&mut self, entries: &[raft_core::Entry]) {
        for e in entries {
            if e.entry_type != raft_core::EntryType::ConfChange {
                continue;
            }
            let Ok((cc, _)) = raft_core::decode_conf_change(&e.data) else {
                continue;
            };
            if cc.change_type == raft_core::ConfChangeType::RemoveNode {
                continue;
            }
            let Ok(Envelope {
                payload: Payload::Members(set),
                ..
            }) = Envelope::decode(&cc.context)
            else {
                continue;
            };
            let url = set
                .members
                .iter()
                .find(|m| m.id == cc.node_id)
                .and_then(|m| m.peer_urls.first());
            if let Some(Ok(addrs)) = url.map(|u| crate::config::listen_addrs(u)) {
                if let Some(addr) = addrs.first() {
                    let _runtime = self.snapshots.rt.enter();
                    self.transport.add_peer(cc.node_id, *addr);
                }
            }
        }
    }

    /// A member removed from the cluster no longer gets the log (the leader replicates under
    /// the new membership), so it would never apply its own removal. The leader sends it the
    /// committed removal entry once, as the append it would have sent, so that the member
    /// applies it and stops rather than campaigning in vain.
    fn tell_removed(&mut self, committed: &[raft_core::Entry]) {
        if self.node.soft_state().role != StateRole::Leader {
            return;
        }
        for e in committed {
            if e.entry_type != raft_core::EntryType::ConfChange {
                continue;
            }
            let Ok((cc, _)) = raft_core::decode_conf_change(&e.data) else {
                continue;
            };
            let local = self.node.status().id;
            if cc.change_type != raft_core::ConfChangeType::RemoveNode || cc.node_id == local {
                continue;
            }
            let Ok(log_term) = self.node.log_term(e.index - 1) else {
                continue;
            };
            let msg = Message {
                msg_type: MessageType::Append,
                to: cc.node_id,
                from: local,
                term: self.node.hard_state().term,
                log_term,
                index: e.index - 1,
                entries: vec![e.clone()],
                commit: e.index,
                ..Message::default()
            };
            self.transport.send(cc.node_id, msg);
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        for msg in msgs {
            if msg.msg_type == MessageType::Snapshot {
                self.snapshots.send(msg, self.transport.clone());
            } else {
                self.transport.send(msg.to, msg);
            }
        }
    }

    /// Every `snapshot_count` applied entries: record a raft snapshot at the applied index and
    /// drop log entries older than `catch_up_entries` behind it, in memory and on disk.
    fn maybe_compact(&mut self) {
        // `status()` would clone every follower's progress on each turn; the handed-out index
        // is all this needs.
        let applied = self.handed_out.min(self.shared.applied());
        let snap_index = raft_core::Storage::first_index(self.node.store()).unwrap_or(1) - 1;
        if applied < snap_index + self.snapshot_count {
            return;
        }
        // The store commits without waiting for the disk (the log is the durable copy): once
        // the log forgets entries up to `applied`, the store must hold them on disk.
        if let Err(e) = self.store.sync() {
            warn!("cannot flush the store before compacting the raft log: {e}");
            return;
        }
        let cs = self.node.applied_conf_state().clone();
        let store = self.node.mut_store();
        if let Err(e) = store.create_snapshot(applied, cs.clone(), Vec::new()) {
            warn!("cannot record a raft snapshot at {applied}: {e}");
            return;
        }
        let compact_to = applied.saturating_sub(self.catch_up_entries);
        if let Err(e) = store.compact(compact_to) {
            warn!("cannot compact the raft log to {compact_to}: {e}");
            return;
        }
        let term = self.node.log_term(applied).unwrap_or(0);
        if let Err(e) = self.log.compact(applied, term, &cs, compact_to) {
            warn!("cannot compact the durable raft log: {e}");
        }
        debug!(applied, compact_to, "raft log compacted");
    }
}

pub fn raft_error(e: raft_core::Error) -> EtcdError {
    match e {
        raft_core::Error::NoLeader => EtcdError::NoLeader,
        // The leader's uncommitted entries are at their limit (or it is handing over).
        raft_core::Error::ProposalDropped => EtcdError::TooManyRequests,
        raft_core::Error::ConfChangeInvalid(reason) => EtcdError::Internal(reason),
        other => EtcdError::Internal(other.to_string()),
    }
}
