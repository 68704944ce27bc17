//! The consensus state machine. One step function per role
//! (`step_leader`, `step_candidate`, `step_follower`) after the term checks
//! common to all of them.

use std::cmp;

use crate::confchange::{self, MembershipLog};
use crate::config::Config;
use crate::error::{Error, Result, StorageError};
use crate::log::RaftLog;
use crate::message::{
    ConfState, Entry, EntryType, HardState, Message, MessageType, ReadState, Snapshot,
    SnapshotStatus, SoftState, StateRole,
};
use crate::quorum::{self, VoteResult};
use crate::read_only::{ReadOnly, ReadRequest};
use crate::rng::SplitMix64;
use crate::storage::Storage;
use crate::tracker::{ProgressState, ProgressTracker};

/// The context of a campaign started by leadership transfer: voters grant it
/// even while they believe a leader is alive.
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"transfer";

/// One raft member.
pub(crate) struct Raft<S: Storage> {
    pub(crate) id: u64,
    pub(crate) term: u64,
    pub(crate) vote: u64,
    pub(crate) raft_log: RaftLog<S>,
    pub(crate) role: StateRole,
    pub(crate) lead: u64,
    pub(crate) prs: ProgressTracker,
    pub(crate) membership: MembershipLog,
    /// Messages that may be sent at once.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may be sent only after the next Ready is persisted.
    pub(crate) msgs_after_persist: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) read_only: ReadOnly,
    pub(crate) lead_transferee: Option<u64>,
    /// The membership as of the last committed entry handed out to apply.
    pub(crate) applied_conf: ConfState,
    election_elapsed: usize,
    heartbeat_elapsed: usize,
    randomized_election_timeout: usize,
    election_timeout: usize,
    heartbeat_timeout: usize,
    check_quorum: bool,
    pre_vote: bool,
    max_msg_size: u64,
    pub(crate) max_committed_size_per_ready: u64,
    max_uncommitted_size: u64,
    /// Bytes of entry data this leader appended in its term and has not handed out committed.
    uncommitted_size: u64,
    rng: SplitMix64,
    /// New proposals wait for the end of the turn to go out in one append.
    pending_bcast: bool,
    /// Entry bytes in the last message of `msgs` when it is a proposal being forwarded.
    forwarded_bytes: u64,
}

impl<S: Storage> Raft<S> {
    pub(crate) fn new(c: &Config, store: S) -> Result<Raft<S>> {
        c.validate()?;
        let (hs, cs) = store.initial_state()?;
        let mut raft_log = RaftLog::new(store)?;
        let first = raft_log.first_index();
        let last = raft_log.last_index();
        let mut membership = MembershipLog::new(first - 1, cs);
        let mut lo = first;
        while lo <= last {
            let ents = raft_log.slice(lo, last + 1, 4 << 20)?;
            for e in &ents {
                if e.entry_type == EntryType::ConfChange {
                    let (_, cs) = confchange::decode_conf_change(&e.data)?;
                    membership.push(e.index, cs);
                }
            }
            lo = ents.last().map_or(last + 1, |e| e.index + 1);
        }
        if hs.commit > last {
            return Err(Error::ConfigInvalid(format!(
                "hard state commit {} beyond last index {last}",
                hs.commit
            )));
        }
        raft_log.commit_to(hs.commit);
        if c.applied > raft_log.committed {
            return Err(Error::ConfigInvalid(format!(
                "applied {} beyond commit {}",
                c.applied, raft_log.committed
            )));
        }
        raft_log.applied_to(c.applied);
        let applied_conf = membership.at(raft_log.applied).clone();
        membership.compact_to(raft_log.committed);
        let mut prs = ProgressTracker::new(c.max_inflight_msgs, c.max_inflight_bytes);
        prs.set_conf(membership.current().clone(), last + 1);
        let seed = c.seed ^ c.id.wrapping_mul(0xA076_1D64_78BD_642F);
        let mut r = Raft {
            id: c.id,
            term: hs.term,
            vote: hs.vote,
            raft_log,
            role: StateRole::Follower,
            lead: 0,
            prs,
            membership,
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            read_states: Vec::new(),
            read_only: ReadOnly::default(),
            lead_transferee: None,
            applied_conf,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: c.election_tick,
            election_timeout: c.election_tick,
            heartbeat_timeout: c.heartbeat_tick,
            check_quorum: c.check_quorum,
            pre_vote: c.pre_vote,
            max_msg_size: c.max_size_per_msg,
            max_committed_size_per_ready: c.max_committed_size_per_ready,
            max_uncommitted_size: c.max_uncommitted_entries_size,
            uncommitted_size: 0,
            rng: SplitMix64::new(seed),
            pending_bcast: false,
            forwarded_bytes: 0,
        };
        let term = r.term;
        r.become_follower(term, 0);
        Ok(r)
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            role: self.role,
        }
    }

    /// Whether this member may campaign: it is a voter in the latest
    /// membership in its log, or in the committed one. The second case lets a
    /// member whose own removal is still uncommitted finish the job: its log
    /// may be the only up-to-date one, and without it no one could be
    /// elected. Votes are always counted under the latest membership, so who
    /// campaigns does not affect safety.
    fn promotable(&self) -> bool {
        self.prs.conf.is_voter(self.id)
            || self
                .membership
                .at(self.raft_log.committed)
                .is_voter(self.id)
    }

    fn committed_in_current_term(&self) -> bool {
        self.raft_log.term(self.raft_log.committed).ok() == Some(self.term)
    }

    // ---- sending -------------------------------------------------------

    fn send(&mut self, mut m: Message) {
        m.from = self.id;
        if m.term == 0
            && !matches!(
                m.msg_type,
                MessageType::Propose | MessageType::ReadIndex | MessageType::TransferLeader
            )
        {
            m.term = self.term;
        }
        match m.msg_type {
            // These speak for persisted state (the log a follower
            // acknowledges, the vote a voter or candidate cast), so they wait
            // until the Ready that changed that state is durable.
            MessageType::AppendResponse
            | MessageType::RequestVote
            | MessageType::RequestVoteResponse => self.msgs_after_persist.push(m),
            _ => self.msgs.push(m),
        }
    }

    /// Sends an append (or a snapshot) to `to` if its progress allows.
    /// Returns whether a message was sent.
    fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        if to == self.id {
            return false;
        }
        let Some(pr) = self.prs.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let recent_active = pr.recent_active;
        let prev_term = self.raft_log.term(next - 1);
        let ents = self.raft_log.entries(next, self.max_msg_size);
        match (prev_term, ents) {
            (Ok(log_term), Ok(entries)) => {
                if entries.is_empty() && !send_if_empty {
                    return false;
                }
                let pr = self.prs.progress.get_mut(&to).expect("checked above");
                match pr.state {
                    ProgressState::Replicate => {
                        if let Some(last) = entries.last() {
                            let bytes = entries.iter().map(Entry::size).sum();
                            pr.next_idx = last.index + 1;
                            pr.ins.add(last.index, bytes);
                        }
                    }
                    ProgressState::Probe => pr.probe_sent = true,
                    ProgressState::Snapshot => unreachable!("paused in snapshot state"),
                }
                let commit = self.raft_log.committed;
                self.send(Message {
                    msg_type: MessageType::Append,
                    to,
                    index: next - 1,
                    log_term,
                    entries,
                    commit,
                    ..Message::default()
                });
                true
            }
            (Err(Error::Store(StorageError::Compacted)), _)
            | (_, Err(Error::Store(StorageError::Compacted))) => {
                if !recent_active {
                    return false;
                }
                let snap = match self.raft_log.snapshot(next - 1) {
                    Ok(s) if s.metadata.index + 1 >= self.raft_log.first_index() => s,
                    Ok(_) | Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable)) => {
                        return false
                    }
                    // A storage failure: send nothing now; the next heartbeat round retries.
                    Err(_) => return false,
                };
                let pr = self.prs.progress.get_mut(&to).expect("checked above");
                pr.become_snapshot(snap.metadata.index);
                self.send(Message {
                    msg_type: MessageType::Snapshot,
                    to,
                    snapshot: Some(snap),
                    ..Message::default()
                });
                true
            }
            // Past the log's end (`handle_append_response` refuses acknowledgements beyond
            // it) or a storage failure: send nothing now; the next heartbeat round retries.
            (Err(_), _) | (_, Err(_)) => false,
        }
    }

    fn send_append(&mut self, to: u64) {
        self.maybe_send_append(to, true);
    }

    fn peers(&self) -> Vec<u64> {
        self.prs
            .progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    fn bcast_append(&mut self) {
        for id in self.peers() {
            if self.maybe_send_append(id, true) {
                while self.maybe_send_append(id, false) {}
            }
        }
    }

    fn bcast_heartbeat(&mut self, ctx: Vec<u8>) {
        for id in self.peers() {
            let matched = self.prs.progress[&id].matched;
            let commit = cmp::min(matched, self.raft_log.committed);
            self.send(Message {
                msg_type: MessageType::Heartbeat,
                to: id,
                commit,
                context: ctx.clone(),
                ..Message::default()
            });
        }
    }

    /// Work deferred to the end of a turn: one append for the turn's
    /// proposals, one heartbeat round for the turn's read requests.
    pub(crate) fn flush(&mut self) {
        if self.role != StateRole::Leader {
            return;
        }
        if self.pending_bcast {
            self.pending_bcast = false;
            self.bcast_append();
        }
        if !self.read_only.batch.is_empty() && self.committed_in_current_term() {
            let index = self.raft_log.committed;
            let id = self.id;
            if quorum::has_quorum(&self.prs.conf.voters, |v| v == id) {
                for req in std::mem::take(&mut self.read_only.batch) {
                    self.respond_read(req, index);
                }
            } else {
                let tag = self.read_only.start_round(index, id);
                self.bcast_heartbeat(tag);
            }
        }
    }

    pub(crate) fn has_pending_flush(&self) -> bool {
        self.role == StateRole::Leader
            && (self.pending_bcast
                || (!self.read_only.batch.is_empty() && self.committed_in_current_term()))
    }

    // ---- role changes --------------------------------------------------

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
        }
        self.lead = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_timeout =
            self.election_timeout + self.rng.below(self.election_timeout as u64) as usize;
        self.lead_transferee = None;
        self.prs.votes.clear();
        self.prs.reset_all(self.raft_log.last_index() + 1);
        let persisted = self.raft_log.persisted();
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.matched = persisted;
        }
        self.read_only.reset();
        self.pending_bcast = false;
        self.uncommitted_size = 0;
    }

    pub(crate) fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.role = StateRole::Follower;
    }

    fn become_pre_candidate(&mut self) {
        assert_ne!(self.role, StateRole::Leader, "leader cannot pre-campaign");
        self.role = StateRole::PreCandidate;
        self.prs.votes.clear();
        self.lead = 0;
    }

    fn become_candidate(&mut self) {
        assert_ne!(self.role, StateRole::Leader, "leader cannot campaign");
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.role = StateRole::Candidate;
    }

    fn become_leader(&mut self) {
        assert_ne!(
            self.role,
            StateRole::Follower,
            "follower cannot become leader"
        );
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.role = StateRole::Leader;
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.become_replicate();
        }
        // An entry of the new term: committing it commits everything before
        // it (§5.4.2) and enables reads and membership changes.
        let e = Entry {
            term,
            index: self.raft_log.last_index() + 1,
            ..Entry::default()
        };
        self.raft_log.append(&[e]);
        self.bcast_append();
    }

    // ---- elections -----------------------------------------------------

    pub(crate) fn hup(&mut self, transfer: bool) {
        if self.role == StateRole::Leader || !self.promotable() {
            return;
        }
        if self.pre_vote && !transfer {
            self.campaign(true, false);
        } else {
            self.campaign(false, transfer);
        }
    }

    fn campaign(&mut self, pre: bool, transfer: bool) {
        let (msg_type, term) = if pre {
            self.become_pre_candidate();
            (MessageType::RequestPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::RequestVote, self.term)
        };
        let id = self.id;
        if self.poll(id, true) == VoteResult::Won {
            if pre {
                self.campaign(false, transfer);
            } else {
                self.become_leader();
            }
            return;
        }
        let index = self.raft_log.last_index();
        let log_term = self.raft_log.last_term();
        let context = if transfer {
            CAMPAIGN_TRANSFER.to_vec()
        } else {
            Vec::new()
        };
        for voter in self.prs.conf.voters.clone() {
            if voter == id {
                continue;
            }
            self.send(Message {
                msg_type,
                to: voter,
                term,
                index,
                log_term,
                context: context.clone(),
                ..Message::default()
            });
        }
    }

    fn poll(&mut self, from: u64, granted: bool) -> VoteResult {
        self.prs.record_vote(from, granted);
        self.prs.tally()
    }

    // ---- ticks ---------------------------------------------------------

    pub(crate) fn tick(&mut self) {
        if self.role == StateRole::Leader {
            self.tick_heartbeat();
        } else {
            self.election_elapsed += 1;
            if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
                self.election_elapsed = 0;
                self.hup(false);
            }
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                if !self.prs.quorum_active(self.id) {
                    let term = self.term;
                    self.become_follower(term, 0);
                    return;
                }
                let id = self.id;
                for (pid, pr) in self.prs.progress.iter_mut() {
                    if *pid != id {
                        pr.recent_active = false;
                    }
                }
            }
            // A transfer that did not finish within an election timeout is
            // abandoned so that proposals flow again.
            self.lead_transferee = None;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            let ctx = self
                .read_only
                .rounds
                .back()
                .map(|r| r.id.to_be_bytes().to_vec())
                .unwrap_or_default();
            self.bcast_heartbeat(ctx);
        }
    }

    // ---- the step function ---------------------------------------------

    pub(crate) fn step(&mut self, m: Message) -> Result<()> {
        if m.to != self.id || m.from == self.id {
            return Ok(());
        }
        if m.term > self.term {
            if matches!(
                m.msg_type,
                MessageType::RequestVote | MessageType::RequestPreVote
            ) {
                let force = m.context == CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && self.lead != 0
                    && self.election_elapsed < self.election_timeout;
                if !force && in_lease {
                    // We heard from a leader recently: the candidate is
                    // partitioned or rejoining and must not disrupt it.
                    return Ok(());
                }
            }
            match m.msg_type {
                MessageType::RequestPreVote => {}
                MessageType::RequestPreVoteResponse if !m.reject => {}
                MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot => {
                    self.become_follower(m.term, m.from)
                }
                _ => self.become_follower(m.term, 0),
            }
        } else if m.term != 0 && m.term < self.term {
            if (self.check_quorum || self.pre_vote)
                && matches!(m.msg_type, MessageType::Heartbeat | MessageType::Append)
            {
                // A stale leader learns our term and steps down.
                self.send(Message {
                    msg_type: MessageType::AppendResponse,
                    to: m.from,
                    ..Message::default()
                });
            } else if m.msg_type == MessageType::RequestPreVote {
                self.send(Message {
                    msg_type: MessageType::RequestPreVoteResponse,
                    to: m.from,
                    reject: true,
                    ..Message::default()
                });
            }
            return Ok(());
        }

        match m.msg_type {
            MessageType::RequestVote | MessageType::RequestPreVote => {
                let pre = m.msg_type == MessageType::RequestPreVote;
                let can_vote = self.vote == m.from
                    || (self.vote == 0 && self.lead == 0)
                    || (pre && m.term > self.term);
                let resp_type = if pre {
                    MessageType::RequestPreVoteResponse
                } else {
                    MessageType::RequestVoteResponse
                };
                if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term) {
                    self.send(Message {
                        msg_type: resp_type,
                        to: m.from,
                        term: m.term,
                        ..Message::default()
                    });
                    if !pre {
                        self.election_elapsed = 0;
                        self.vote = m.from;
                    }
                } else {
                    self.send(Message {
                        msg_type: resp_type,
                        to: m.from,
                        reject: true,
                        ..Message::default()
                    });
                }
                Ok(())
            }
            _ => match self.role {
                StateRole::Leader => self.step_leader(m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m),
                StateRole::Follower => self.step_follower(m),
            },
        }
    }

    fn step_leader(&mut self, m: Message) -> Result<()> {
        match m.msg_type {
            MessageType::Propose => {
                for e in m.entries {
                    // A forwarded proposal that cannot be accepted is dropped;
                    // the proposer learns of it by timing out.
                    let _ = self.append_proposal(e);
                }
                return Ok(());
            }
            MessageType::ReadIndex => {
                self.read_only.batch.push(ReadRequest {
                    from: m.from,
                    ctx: m.context,
                });
                return Ok(());
            }
            MessageType::TransferLeader => {
                self.transfer_to(m.index);
                return Ok(());
            }
            _ => {}
        }
        if !self.prs.progress.contains_key(&m.from) {
            return Ok(());
        }
        match m.msg_type {
            MessageType::AppendResponse => self.handle_append_response(&m)?,
            MessageType::HeartbeatResponse => self.handle_heartbeat_response(&m),
            _ => {}
        }
        Ok(())
    }

    fn handle_append_response(&mut self, m: &Message) -> Result<()> {
        let first_index = self.raft_log.first_index();
        let last_index = self.raft_log.last_index();
        if !m.reject && m.index > last_index {
            return Err(Error::InvalidMessage {
                from: m.from,
                reason: format!(
                    "acknowledges entry {} beyond the last entry {last_index}",
                    m.index
                ),
            });
        }
        let pr = self
            .prs
            .progress
            .get_mut(&m.from)
            .expect("checked by caller");
        pr.recent_active = true;
        if m.reject {
            let mut next_probe = m.reject_hint;
            if m.log_term > 0 {
                next_probe = self
                    .raft_log
                    .find_conflict_by_term(m.reject_hint, m.log_term)
                    .0;
            }
            let pr = self
                .prs
                .progress
                .get_mut(&m.from)
                .expect("checked by caller");
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(m.from);
            }
            return Ok(());
        }
        let updated = pr.maybe_update(m.index);
        // An acknowledgement of exactly what we know matches confirms only an
        // outstanding empty probe; otherwise it is a stale duplicate and must
        // not restart pipelining (under heavy reordering that feeds a storm
        // of appends that never drains).
        let probe_confirmed = pr.matched == m.index
            && pr.state == ProgressState::Probe
            && pr.probe_sent
            && pr.next_idx > last_index;
        if !(updated || probe_confirmed) {
            return Ok(());
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched + 1 >= first_index => {
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Snapshot if pr.matched >= pr.pending_snapshot => {
                // The snapshot is installed but the log moved past it: probe,
                // which sends a fresh snapshot.
                pr.become_probe();
            }
            ProgressState::Replicate => pr.ins.free_to(m.index),
            ProgressState::Snapshot => {}
        }
        let matched = pr.matched;
        if updated && self.maybe_commit() {
            self.on_commit_advanced();
            if self.role != StateRole::Leader {
                return Ok(());
            }
        }
        while self.maybe_send_append(m.from, false) {}
        if self.lead_transferee == Some(m.from) && matched == self.raft_log.last_index() {
            self.send_timeout_now(m.from);
        }
        Ok(())
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last = self.raft_log.last_index();
        let pr = self
            .prs
            .progress
            .get_mut(&m.from)
            .expect("checked by caller");
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.ins.full() {
            pr.ins.free_first_one();
        }
        if pr.matched < last {
            self.send_append(m.from);
        }
        if !m.context.is_empty() {
            self.read_ack(m.from, &m.context);
        }
    }

    fn read_ack(&mut self, from: u64, ctx: &[u8]) {
        let Some(round) = self.read_only.recv_ack(from, ctx) else {
            return;
        };
        if !quorum::has_quorum(&self.prs.conf.voters, |v| round.acks.contains(&v)) {
            return;
        }
        let id = round.id;
        for round in self.read_only.advance(id) {
            for req in round.requests {
                self.respond_read(req, round.index);
            }
        }
    }

    fn respond_read(&mut self, req: ReadRequest, index: u64) {
        if req.from == self.id {
            self.read_states.push(ReadState {
                index,
                request_ctx: req.ctx,
            });
        } else {
            self.send(Message {
                msg_type: MessageType::ReadIndexResponse,
                to: req.from,
                index,
                context: req.ctx,
                ..Message::default()
            });
        }
    }

    fn step_candidate(&mut self, m: Message) -> Result<()> {
        match m.msg_type {
            MessageType::Append => {
                self.become_follower(m.term, m.from);
                self.handle_append(m)?;
            }
            MessageType::Heartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            MessageType::RequestPreVoteResponse | MessageType::RequestVoteResponse => {
                let expected = if self.role == StateRole::PreCandidate {
                    MessageType::RequestPreVoteResponse
                } else {
                    MessageType::RequestVoteResponse
                };
                if m.msg_type != expected {
                    return Ok(());
                }
                match self.poll(m.from, !m.reject) {
                    VoteResult::Won => {
                        if self.role == StateRole::PreCandidate {
                            self.campaign(false, false);
                        } else {
                            self.become_leader();
                        }
                    }
                    VoteResult::Lost => {
                        let term = self.term;
                        self.become_follower(term, 0);
                    }
                    VoteResult::Pending => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, mut m: Message) -> Result<()> {
        match m.msg_type {
            MessageType::Propose | MessageType::TransferLeader if self.lead != 0 => {
                m.to = self.lead;
                self.send(m);
            }
            // A read request must be answered to the member that asked, so
            // it is not forwarded a second time (the sender's view of the
            // leader was stale; it retries after a timeout).
            MessageType::ReadIndex => {}
            MessageType::Append => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append(m)?;
            }
            MessageType::Heartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::TimeoutNow => self.hup(true),
            MessageType::ReadIndexResponse => self.read_states.push(ReadState {
                index: m.index,
                request_ctx: m.context,
            }),
            _ => {}
        }
        Ok(())
    }

    fn handle_append(&mut self, m: Message) -> Result<()> {
        if m.index < self.raft_log.committed {
            let index = self.raft_log.committed;
            self.send(Message {
                msg_type: MessageType::AppendResponse,
                to: m.from,
                index,
                ..Message::default()
            });
            return Ok(());
        }
        check_entries(&m)?;
        let from = m.from;
        let appended = self
            .raft_log
            .maybe_append(m.index, m.log_term, m.commit, m.entries)
            .map_err(|conflict| Error::InvalidMessage {
                from,
                reason: format!(
                    "entry {conflict} would overwrite a committed entry (committed {})",
                    self.raft_log.committed
                ),
            })?;
        match appended {
            Some((last_new, conflict)) => {
                if conflict != 0 {
                    self.update_membership(conflict, last_new);
                }
                self.send(Message {
                    msg_type: MessageType::AppendResponse,
                    to: m.from,
                    index: last_new,
                    ..Message::default()
                });
            }
            None => {
                let hint = cmp::min(m.index, self.raft_log.last_index());
                let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term);
                self.send(Message {
                    msg_type: MessageType::AppendResponse,
                    to: m.from,
                    index: m.index,
                    reject: true,
                    reject_hint: hint_index,
                    log_term: hint_term,
                    ..Message::default()
                });
            }
        }
        Ok(())
    }

    /// The log was rewritten from `from` to `to` (the entries are unstable):
    /// follow the membership changes it dropped and added.
    fn update_membership(&mut self, from: u64, to: u64) {
        let mut changed = self.membership.truncate_from(from);
        let added: Vec<(u64, ConfState)> = self
            .raft_log
            .unstable
            .slice(from, to + 1)
            .iter()
            .filter(|e| e.entry_type == EntryType::ConfChange)
            // Every membership change decodes: `check_entries` refused the message otherwise.
            .filter_map(|e| {
                let (_, cs) = confchange::decode_conf_change(&e.data).ok()?;
                Some((e.index, cs))
            })
            .collect();
        for (index, cs) in added {
            self.membership.push(index, cs);
            changed = true;
        }
        if changed {
            let cs = self.membership.current().clone();
            self.apply_membership(cs);
        }
    }

    fn apply_membership(&mut self, cs: ConfState) {
        let next = self.raft_log.last_index() + 1;
        self.prs.set_conf(cs, next);
        if let Some(t) = self.lead_transferee {
            if !self.prs.conf.is_voter(t) {
                self.lead_transferee = None;
            }
        }
        if self.role == StateRole::Leader {
            let persisted = self.raft_log.persisted();
            let id = self.id;
            if let Some(pr) = self.prs.progress.get_mut(&id) {
                pr.maybe_update(persisted);
            }
            self.pending_bcast = true;
        }
    }

    fn handle_heartbeat(&mut self, m: Message) {
        let commit = cmp::min(m.commit, self.raft_log.last_index());
        self.raft_log.commit_to(commit);
        self.send(Message {
            msg_type: MessageType::HeartbeatResponse,
            to: m.from,
            context: m.context,
            ..Message::default()
        });
    }

    fn handle_snapshot(&mut self, m: Message) {
        let snap = m.snapshot.unwrap_or_default();
        let index = if self.restore(snap) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(Message {
            msg_type: MessageType::AppendResponse,
            to: m.from,
            index,
            ..Message::default()
        });
    }

    /// Installs a snapshot unless the log already covers it.
    fn restore(&mut self, snap: Snapshot) -> bool {
        let (index, term) = (snap.metadata.index, snap.metadata.term);
        if index <= self.raft_log.committed {
            return false;
        }
        if self.raft_log.match_term(index, term) {
            // Our log already has the entry: just learn that it is committed.
            self.raft_log.commit_to(index);
            return false;
        }
        let cs = snap.metadata.conf_state.clone();
        self.raft_log.restore(snap);
        self.membership = MembershipLog::new(index, cs.clone());
        self.apply_membership(cs);
        true
    }

    // ---- leader duties -------------------------------------------------

    /// Committed entries handed out no longer count against the uncommitted limit.
    pub(crate) fn reduce_uncommitted_size(&mut self, committed: &[Entry]) {
        if self.role != StateRole::Leader {
            return;
        }
        let size: u64 = committed.iter().map(|e| e.data.len() as u64).sum();
        self.uncommitted_size = self.uncommitted_size.saturating_sub(size);
    }

    fn maybe_commit(&mut self) -> bool {
        let mci = self.prs.committed();
        if mci == u64::MAX {
            return false;
        }
        self.raft_log.maybe_commit(mci, self.term)
    }

    fn on_commit_advanced(&mut self) {
        let committed = self.raft_log.committed;
        if !self.prs.conf.is_voter(self.id) && self.membership.last_change_index() <= committed {
            // Our own removal is committed: hand over by stepping down.
            let term = self.term;
            self.become_follower(term, 0);
            return;
        }
        self.bcast_append();
    }

    /// Appends one proposal on the leader.
    fn append_proposal(&mut self, mut e: Entry) -> Result<()> {
        if self.lead_transferee.is_some() || !self.prs.progress.contains_key(&self.id) {
            return Err(Error::ProposalDropped);
        }
        let size = e.data.len() as u64;
        if self.uncommitted_size > 0
            && self.uncommitted_size.saturating_add(size) > self.max_uncommitted_size
        {
            return Err(Error::ProposalDropped);
        }
        e.term = self.term;
        e.index = self.raft_log.last_index() + 1;
        let mut new_conf = None;
        if e.entry_type == EntryType::ConfChange {
            let (cc, _) = confchange::decode_any(&e.data)?;
            if self.membership.last_change_index() > self.raft_log.committed
                || !self.committed_in_current_term()
            {
                return Err(Error::ProposalDropped);
            }
            let cs = cc.apply_to(self.membership.current())?;
            e.data = confchange::encode(&cc, Some(&cs));
            new_conf = Some(cs);
        }
        let index = e.index;
        self.raft_log.append(std::slice::from_ref(&e));
        self.uncommitted_size += size;
        if let Some(cs) = new_conf {
            self.membership.push(index, cs.clone());
            self.apply_membership(cs);
            if self.maybe_commit() {
                self.on_commit_advanced();
            }
        }
        self.pending_bcast = true;
        Ok(())
    }

    fn transfer_to(&mut self, to: u64) {
        if to == self.id || !self.prs.conf.is_voter(to) {
            return;
        }
        if self.lead_transferee == Some(to) {
            return;
        }
        self.election_elapsed = 0;
        self.lead_transferee = Some(to);
        if self.prs.progress[&to].matched == self.raft_log.last_index() {
            self.send_timeout_now(to);
        } else {
            self.send_append(to);
        }
    }

    fn send_timeout_now(&mut self, to: u64) {
        self.send(Message {
            msg_type: MessageType::TimeoutNow,
            to,
            ..Message::default()
        });
    }

    // ---- local requests ------------------------------------------------

    pub(crate) fn propose(&mut self, data: Vec<u8>, entry_type: EntryType) -> Result<()> {
        let e = Entry {
            entry_type,
            data,
            ..Entry::default()
        };
        match self.role {
            StateRole::Leader => self.append_proposal(e),
            StateRole::Follower if self.lead != 0 => {
                let to = self.lead;
                // Proposals of one turn travel to the leader together, up to the message size
                // limit: one message to encode, send and step instead of one per proposal.
                let size = e.data.len() as u64;
                let total = self.forwarded_bytes + size;
                let limit = self.max_msg_size;
                let open = self
                    .msgs
                    .last_mut()
                    .filter(|m| m.msg_type == MessageType::Propose && m.to == to && total <= limit);
                match open {
                    Some(m) => {
                        m.entries.push(e);
                        self.forwarded_bytes = total;
                    }
                    None => {
                        self.send(Message {
                            msg_type: MessageType::Propose,
                            to,
                            entries: vec![e],
                            ..Message::default()
                        });
                        self.forwarded_bytes = size;
                    }
                }
                Ok(())
            }
            _ => Err(Error::NoLeader),
        }
    }

    pub(crate) fn read_index(&mut self, ctx: Vec<u8>) -> Result<()> {
        match self.role {
            StateRole::Leader => {
                self.read_only
                    .batch
                    .push(ReadRequest { from: self.id, ctx });
                Ok(())
            }
            StateRole::Follower if self.lead != 0 => {
                let to = self.lead;
                self.send(Message {
                    msg_type: MessageType::ReadIndex,
                    to,
                    context: ctx,
                    ..Message::default()
                });
                Ok(())
            }
            _ => Err(Error::NoLeader),
        }
    }

    pub(crate) fn transfer_leader(&mut self, to: u64) -> Result<()> {
        match self.role {
            StateRole::Leader => {
                self.transfer_to(to);
                Ok(())
            }
            StateRole::Follower if self.lead != 0 => {
                let lead = self.lead;
                self.send(Message {
                    msg_type: MessageType::TransferLeader,
                    to: lead,
                    index: to,
                    ..Message::default()
                });
                Ok(())
            }
            _ => Err(Error::NoLeader),
        }
    }

    pub(crate) fn report_unreachable(&mut self, id: u64) {
        if self.role != StateRole::Leader {
            return;
        }
        if let Some(pr) = self.prs.progress.get_mut(&id) {
            if pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
        }
    }

    pub(crate) fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        if self.role != StateRole::Leader {
            return;
        }
        if let Some(pr) = self.prs.progress.get_mut(&id) {
            if pr.state != ProgressState::Snapshot {
                return;
            }
            if status == SnapshotStatus::Failure {
                pr.pending_snapshot = 0;
            }
            pr.become_probe();
            // Wait for a heartbeat response before probing again.
            pr.probe_sent = true;
        }
    }

    /// The application persisted everything up to the log's persisted index.
    pub(crate) fn on_persisted(&mut self) {
        if self.role != StateRole::Leader {
            return;
        }
        let persisted = self.raft_log.persisted();
        let id = self.id;
        let updated = self
            .prs
            .progress
            .get_mut(&id)
            .is_some_and(|pr| pr.maybe_update(persisted));
        if updated && self.maybe_commit() {
            self.on_commit_advanced();
        }
    }
}

/// Entries a leader sends follow the message's index one by one, and membership changes
/// among them decode: a message that breaks this is refused before any of it reaches the log,
/// whose invariants (and the membership that follows it) rest on it.
fn check_entries(m: &Message) -> Result<()> {
    for (i, e) in m.entries.iter().enumerate() {
        let expected = m.index.saturating_add(1 + i as u64);
        if e.index != expected {
            return Err(Error::InvalidMessage {
                from: m.from,
                reason: format!("entry {} where entry {expected} belongs", e.index),
            });
        }
        if e.entry_type == EntryType::ConfChange {
            confchange::decode_conf_change(&e.data).map_err(|err| Error::InvalidMessage {
                from: m.from,
                reason: format!("entry {}: {err}", e.index),
            })?;
        }
    }
    Ok(())
}
