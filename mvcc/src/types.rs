//! Plain request, response and event types of the store.
//!
//! They mirror etcd's v3 KV messages field for field where it matters, without protobuf:
//! the server maps the wire messages to and from these. Every type is `serde`-serialisable
//! because the server writes [`Command`]s into the raft log.

use serde::{Deserialize, Serialize};

/// A key's state at one revision, as etcd's `mvccpb.KeyValue`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The user key (never empty).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Main revision at which the key's current generation was created.
    pub create_revision: i64,
    /// Main revision of the key's last modification.
    pub mod_revision: i64,
    /// Number of modifications since creation; 1 right after creation, 0 for a deletion.
    pub version: i64,
    /// The value (empty for `keys_only` reads and deletion events).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease attached to the key, 0 for none.
    pub lease: i64,
}

/// Header of every response: the store revision the response was produced at.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ResponseHeader {
    /// Store revision when the request was served (for writes: the revision they produced).
    pub revision: i64,
}

/// Order in which a range returns its keys.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Key order, unless `sort_target` is not [`SortTarget::Key`]: then ascending.
    #[default]
    None,
    /// Ascending by the sort target.
    Ascend,
    /// Descending by the sort target.
    Descend,
}

/// Field a range sorts on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortTarget {
    /// The key bytes.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value bytes.
    Value,
}

/// Read keys in `[key, range_end)` at a revision, as etcd's `RangeRequest`.
///
/// `range_end` empty reads only `key`; `range_end == [0]` reads every key `>= key`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeRequest {
    /// First key of the range, or the single key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Exclusive end of the range; see the type's documentation.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Maximum number of keys returned; 0 for no limit.
    pub limit: i64,
    /// Revision to read at; 0 (or negative) for the current one.
    pub revision: i64,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort field.
    pub sort_target: SortTarget,
    /// Return keys and metadata without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Drop keys whose mod revision is lower; 0 disables.
    pub min_mod_revision: i64,
    /// Drop keys whose mod revision is higher; 0 disables.
    pub max_mod_revision: i64,
    /// Drop keys whose create revision is lower; 0 disables.
    pub min_create_revision: i64,
    /// Drop keys whose create revision is higher; 0 disables.
    pub max_create_revision: i64,
}

/// Answer to a [`RangeRequest`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResponse {
    /// Current store revision at read time.
    pub header: ResponseHeader,
    /// Matching keys after filters, sort and limit (empty for `count_only`).
    pub kvs: Vec<KeyValue>,
    /// True when more keys than `limit` were left after filtering.
    pub more: bool,
    /// Number of keys in the range at the revision, before filters and limit.
    pub count: i64,
}

/// Write one key, as etcd's `PutRequest`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct PutRequest {
    /// Key to write (must not be empty).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// New value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease to attach, 0 for none.
    pub lease: i64,
    /// Return the previous key-value pair.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// Answer to a [`PutRequest`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct PutResponse {
    /// The revision of the write.
    pub header: ResponseHeader,
    /// Previous pair when asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// Delete keys in `[key, range_end)`, as etcd's `DeleteRangeRequest` (same range rules as
/// [`RangeRequest`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteRangeRequest {
    /// First key, or the single key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Exclusive end of the range.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Return the deleted pairs.
    pub prev_kv: bool,
}

/// Answer to a [`DeleteRangeRequest`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteRangeResponse {
    /// Revision of the delete (unchanged store revision when nothing was deleted).
    pub header: ResponseHeader,
    /// Number of keys deleted.
    pub deleted: i64,
    /// Deleted pairs when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a [`Compare`] relates the stored field to its operand.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CompareResult {
    /// Stored == operand.
    #[default]
    Equal,
    /// Stored > operand.
    Greater,
    /// Stored < operand.
    Less,
    /// Stored != operand.
    NotEqual,
}

/// The field a [`Compare`] checks, with its operand.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's version.
    Version(i64),
    /// The key's create revision.
    CreateRevision(i64),
    /// The key's mod revision.
    ModRevision(i64),
    /// The key's value; never true for a missing key.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The key's lease.
    Lease(i64),
}

impl Default for CompareTarget {
    fn default() -> Self {
        CompareTarget::Version(0)
    }
}

/// One guard of a transaction, as etcd's `Compare`.
///
/// With a `range_end` (same rules as [`RangeRequest`]) the compare must hold for every key in
/// the range; an empty range compares against a key with all-zero fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Compare {
    /// Relation that must hold.
    pub result: CompareResult,
    /// Field and operand.
    pub target: CompareTarget,
    /// Key compared.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Optional end of a key range.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
}

/// One operation inside a transaction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    /// A read.
    Range(RangeRequest),
    /// A write.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// Result of one [`RequestOp`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    /// Result of a read.
    Range(RangeResponse),
    /// Result of a write.
    Put(PutResponse),
    /// Result of a delete.
    DeleteRange(DeleteRangeResponse),
    /// Result of a nested transaction.
    Txn(TxnResponse),
}

/// If all `compare` hold run `success`, else `failure`, atomically at one revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnRequest {
    /// Guards, all evaluated before any operation runs.
    pub compare: Vec<Compare>,
    /// Operations run when every guard holds.
    pub success: Vec<RequestOp>,
    /// Operations run otherwise.
    pub failure: Vec<RequestOp>,
}

/// Answer to a [`TxnRequest`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnResponse {
    /// Revision after the transaction (unchanged if it wrote nothing).
    pub header: ResponseHeader,
    /// Whether the guards held.
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// Drop history below a revision, as etcd's `CompactionRequest`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactRequest {
    /// Reads below this revision fail with [`crate::Error::Compacted`] afterwards.
    pub revision: i64,
    /// etcd's "wait until physically compacted"; compaction here is always complete when
    /// the command has been applied, so this is informational.
    pub physical: bool,
}

/// Answer to a [`CompactRequest`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactResponse {
    /// Current store revision (compaction does not create one).
    pub header: ResponseHeader,
}

/// A state-changing command, one per raft log entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Write one key.
    Put(PutRequest),
    /// Delete a key range.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Compact history.
    Compact(CompactRequest),
    /// Delete exactly these keys at one revision (lease expiry or revocation); missing keys
    /// are ignored.
    DeleteKeys(Vec<Vec<u8>>),
    /// Revoke a lease: delete every key attached to it at one revision, then the lease
    /// ([`crate::Error::LeaseNotFound`] if it does not exist).
    RevokeLease(i64),
    /// Create a lease.
    LeaseGrant(crate::LeaseGrantRequest),
    /// Revoke every lease of the list that still exists, each at its own revision (the
    /// leader's expiries, many per log entry).
    ExpireLeases(Vec<i64>),
}

/// What a successfully applied [`Command`] answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CommandResponse {
    /// Answer to [`Command::Put`].
    Put(PutResponse),
    /// Answer to [`Command::DeleteRange`], [`Command::DeleteKeys`] and
    /// [`Command::RevokeLease`].
    DeleteRange(DeleteRangeResponse),
    /// Answer to [`Command::Txn`].
    Txn(TxnResponse),
    /// Answer to [`Command::Compact`].
    Compact(CompactResponse),
    /// Answer to [`Command::LeaseGrant`].
    LeaseGrant(crate::LeaseGrantResponse),
    /// Answer to [`Command::ExpireLeases`].
    LeasesExpired(crate::ExpireLeasesResponse),
}

impl CommandResponse {
    /// Revision in the response header.
    pub fn revision(&self) -> i64 {
        match self {
            CommandResponse::Put(r) => r.header.revision,
            CommandResponse::DeleteRange(r) => r.header.revision,
            CommandResponse::Txn(r) => r.header.revision,
            CommandResponse::Compact(r) => r.header.revision,
            CommandResponse::LeaseGrant(r) => r.header.revision,
            CommandResponse::LeasesExpired(r) => r.header.revision,
        }
    }
}

/// Kind of an [`Event`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change of one key, as etcd's `mvccpb.Event`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// New state; for a delete only `key` and `mod_revision` (the deleting revision) are set.
    pub kv: KeyValue,
    /// State just before the change, when it was live and is still in history.
    pub prev_kv: Option<KeyValue>,
}

/// What [`crate::Store::apply`] did with one command of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The command's log index was at or below the stored applied index: nothing was done.
    Skipped,
    /// The command ran; `events` are its changes in revision order (empty unless
    /// [`crate::StoreOptions::apply_events`]).
    Done {
        /// The answer for the client.
        response: CommandResponse,
        /// Changes to feed watchers.
        events: Vec<Event>,
    },
    /// The command failed deterministically and changed nothing (e.g. [`crate::Error::Compacted`]).
    Failed(crate::Error),
}

/// Result of one command of an applied batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// Raft log index of the command.
    pub index: u64,
    /// What happened.
    pub outcome: Outcome,
}
