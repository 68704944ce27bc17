//! The data that crosses the boundary between the state machine and its caller:
//! log entries, persisted state, snapshots and the messages members exchange.
//!
//! Every type here derives `Serialize` and `Deserialize`; the transport encodes
//! [`Message`] with bincode.

use serde::{Deserialize, Serialize};

/// What an [`Entry`] carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EntryType {
    /// An application command (or the empty entry a new leader appends).
    #[default]
    Normal,
    /// A membership change, encoded by [`crate::ConfChange::encode`]; decode it
    /// with [`crate::decode_conf_change`].
    ConfChange,
}

/// One record of the replicated log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: u64,
    /// The position of the entry in the log, starting at 1.
    pub index: u64,
    /// Whether the entry is a command or a membership change.
    pub entry_type: EntryType,
    /// The opaque payload.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Entry {
    /// A normal entry with the given coordinates and payload.
    pub fn new(term: u64, index: u64, data: Vec<u8>) -> Entry {
        Entry {
            term,
            index,
            entry_type: EntryType::Normal,
            data,
        }
    }

    /// The approximate encoded size, used for flow control and size limits.
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// The state that must be durable before certain messages are sent
/// (see the persistence contract in the crate documentation).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HardState {
    /// The latest term this member has seen.
    pub term: u64,
    /// The candidate this member voted for in `term` (0: none).
    pub vote: u64,
    /// The highest log index known to be committed.
    pub commit: u64,
}

/// A membership: who votes and who only receives the log.
///
/// Both lists are kept sorted and free of duplicates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct ConfState {
    /// Voting members.
    pub voters: Vec<u64>,
    /// Non-voting members (learners).
    pub learners: Vec<u64>,
}

impl ConfState {
    /// A membership with the given voters and no learners.
    pub fn with_voters(mut voters: Vec<u64>) -> ConfState {
        voters.sort_unstable();
        voters.dedup();
        ConfState {
            voters,
            learners: Vec::new(),
        }
    }

    /// Whether `id` is a voter.
    pub fn is_voter(&self, id: u64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: u64) -> bool {
        self.learners.binary_search(&id).is_ok()
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: u64) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }
}

/// Describes the state a snapshot captures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SnapshotMetadata {
    /// The index of the last entry the snapshot includes.
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// The membership as of `index`.
    pub conf_state: ConfState,
}

/// A point-in-time image of the application state machine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The application's serialized state.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Where in the log the snapshot stands.
    pub metadata: SnapshotMetadata,
}

impl Snapshot {
    /// Whether this is the empty placeholder snapshot (index 0).
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

/// The kinds of [`Message`] members exchange.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MessageType {
    /// A proposal forwarded from a follower to the leader (`entries` hold it).
    #[default]
    Propose,
    /// Leader to follower: append `entries` after (`index`, `log_term`).
    Append,
    /// Follower to leader: the answer to [`MessageType::Append`] or
    /// [`MessageType::Snapshot`]. `index` is the last matching index, or on
    /// rejection the rejected index with `reject_hint`/`log_term` as a hint.
    AppendResponse,
    /// Candidate to voter: vote for me in `term`; my log ends at
    /// (`index`, `log_term`).
    RequestVote,
    /// Voter to candidate.
    RequestVoteResponse,
    /// Like [`MessageType::RequestVote`] but for a trial election that changes
    /// no state; `term` is the term the sender would campaign in.
    RequestPreVote,
    /// Answer to [`MessageType::RequestPreVote`].
    RequestPreVoteResponse,
    /// Leader to follower: install `snapshot`.
    Snapshot,
    /// Leader to follower: I am still leader; `commit` is safe for you;
    /// `context` tags a ReadIndex round.
    Heartbeat,
    /// Follower to leader: echoes the heartbeat's `context`.
    HeartbeatResponse,
    /// A request to the leader to hand leadership to the member whose id is in
    /// `index`.
    TransferLeader,
    /// Leader to transferee: campaign now, skipping pre-vote and the lease.
    TimeoutNow,
    /// Follower to leader: request a read index for `context`.
    ReadIndex,
    /// Leader to follower: the read index (`index`) for `context`.
    ReadIndexResponse,
}

/// A message between two members.
///
/// Which fields matter depends on [`MessageType`]; unused fields stay at their
/// defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    /// The kind of message.
    pub msg_type: MessageType,
    /// The recipient's id.
    pub to: u64,
    /// The sender's id.
    pub from: u64,
    /// The sender's term (0 for forwarded proposals and read requests).
    pub term: u64,
    /// A log term; its meaning depends on `msg_type`.
    pub log_term: u64,
    /// A log index; its meaning depends on `msg_type`.
    pub index: u64,
    /// Entries to append or proposals to forward.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub commit: u64,
    /// Whether a request was refused.
    pub reject: bool,
    /// On a rejected append: where the leader should probe next.
    pub reject_hint: u64,
    /// The snapshot of a [`MessageType::Snapshot`].
    pub snapshot: Option<Snapshot>,
    /// Opaque context (ReadIndex rounds, leadership-transfer campaigns).
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
}

/// The role a member plays.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asks for votes in a real election.
    Candidate,
    /// Leads the cluster.
    Leader,
    /// Asks whether it could win, before disturbing anyone (pre-vote).
    PreCandidate,
}

/// Volatile state worth reporting to the application; not persisted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SoftState {
    /// The known leader (0: none).
    pub leader_id: u64,
    /// This member's role.
    pub role: StateRole,
}

/// The answer to a [`crate::RawNode::read_index`] request: once the
/// application has applied up to `index`, a read that began before the request
/// may be served locally and is linearizable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ReadState {
    /// The commit index to wait for.
    pub index: u64,
    /// The context the request was made with.
    #[serde(with = "serde_bytes")]
    pub request_ctx: Vec<u8>,
}

/// The result of sending a snapshot, reported with
/// [`crate::RawNode::report_snapshot`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The snapshot reached the follower.
    Finish,
    /// The snapshot could not be delivered.
    Failure,
}
