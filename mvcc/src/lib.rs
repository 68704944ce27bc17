//! etcd's revisioned key-value store (v3 "mvcc") on LMDB.
//!
//! Every write request gets one new *main revision*; each key change inside it gets a *sub
//! revision*. Reads can look at any revision not yet compacted. A key's *generation* runs
//! from its creation (version 1) to its deletion; writing it again starts a new one.
//!
//! Writes come in as [`Command`]s tagged with their raft log index and go through
//! [`Store::apply`], which applies a batch in one durable LMDB transaction and remembers the
//! last index, so replaying after a crash is harmless. A [`Writer`] keeps one transaction open
//! across several batches, so that one commit covers them all. Reads ([`Store::range`],
//! [`Store::txn_read_only`], [`Store::events`], [`Store::history`]) use LMDB read transactions and never block the
//! writer.
//!
//! ```
//! use mvcc::{Command, Outcome, PutRequest, RangeRequest, Store, StoreOptions};
//!
//! # fn main() -> Result<(), mvcc::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default())?;
//! assert_eq!(store.current_revision(), 1); // an empty store is at revision 1
//!
//! let put = |key: &str, value: &str| {
//!     Command::Put(PutRequest {
//!         key: key.into(),
//!         value: value.into(),
//!         ..Default::default()
//!     })
//! };
//! // Raft log entries 1 and 2, applied in one transaction: revisions 2 and 3.
//! let applied = store.apply(&[(1, put("foo", "bar")), (2, put("foo", "baz"))])?;
//! assert!(matches!(&applied[1].outcome, Outcome::Done { response, .. } if response.revision() == 3));
//!
//! // Applying the same entries again does nothing.
//! let again = store.apply(&[(2, put("foo", "ignored"))])?;
//! assert_eq!(again[0].outcome, Outcome::Skipped);
//!
//! // The latest value, and the value as of revision 2.
//! let now = store.range(&RangeRequest { key: "foo".into(), ..Default::default() })?;
//! assert_eq!(now.kvs[0].value, b"baz");
//! assert_eq!(now.kvs[0].version, 2);
//! assert_eq!(now.kvs[0].create_revision, 2);
//! let then = store.range(&RangeRequest { key: "foo".into(), revision: 2, ..Default::default() })?;
//! assert_eq!(then.kvs[0].value, b"bar");
//!
//! // Every change is kept for watchers until compaction.
//! let (events, next) = store.events(1, b"foo", b"", 0)?;
//! assert_eq!(events.len(), 2);
//! assert_eq!(events[1].prev_kv.as_ref().unwrap().value, b"bar");
//! assert_eq!(next, 4);
//! # Ok(())
//! # }
//! ```
//!
//! # Storage layout
//!
//! One LMDB environment with four tables; integers big-endian so that byte order is numeric
//! order:
//!
//! - `meta`: `revision`, `compacted`, `applied_index`, `next_key_id`, `compact_cursor`,
//!   `compact_target`, `format`.
//! - `history`: main ‖ sub → key id, the change (key, value, create revision, version,
//!   lease, tombstone) and the key's previous revision. Values are stored only here. It
//!   feeds [`Store::events`], and the previous-revision pointers chain each key's changes:
//!   reading a key at a past revision walks its chain back from the latest change.
//! - `leases`: lease id ‖ key id → user key, for keys whose latest state has a lease.
//! - `lease_grants`: lease id → granted TTL, for every lease that exists. Puts (in
//!   transactions too) refuse a lease not in it with [`Error::LeaseNotFound`]; revoking a
//!   lease deletes its keys at one revision. Expiry times are not stored: see the `lease`
//!   module.
//! - `cluster`: replicated cluster state beside the keyspace: raised alarms and each
//!   member's published name and client URLs ([`ClusterCommand`]). While a NOSPACE alarm
//!   is raised, commands that take space ([`takes_space`]) fail with [`Error::NoSpace`],
//!   the same answer on every replica.
//!
//! The key index (user key → key id, revision of its latest change, and the live
//! generation's create revision, version and lease) lives in memory, as etcd's does, and is
//! rebuilt from `history` at open. A put that returns no previous value takes what it needs
//! from the index and reads no row (that read was half the cost of applying a put), and a
//! write only appends to `history`, whose key is the revision: the pages it dirties are the
//! last ones of the table, not a random page per key, and it uses LMDB's append, which
//! fills each page before the next (a plain put splits the last page in half, leaving
//! history pages half empty). The previous layout kept the index as an LMDB table; with
//! random keys each write rewrote a random page of it, and `etcdctl check perf` wrote about
//! 20 KB per write per member.
//!
//! The index is a persistent B-tree: a batch changes a private O(1) copy, published for
//! readers after the batch commits, so a read sees the index and history of one batch and
//! scanning it never blocks the writer.
//!
//! # Compaction
//!
//! [`Command::Compact`] follows etcd: afterwards reads below the revision fail with
//! [`Error::Compacted`], and for every key the latest revision at or below it survives
//! unless it is a deletion, so reads at or above it are unchanged. The physical work walks
//! the history rows up to the revision, dropping superseded `history` rows (a row's
//! previous change, and every row older than the key's newest change at or before the
//! revision) and the index entries of deleted keys. It runs in bounded steps
//! ([`StoreOptions::compaction_rows_per_batch`] rows after every applied batch, or
//! [`Store::run_compaction`] when idle), so a large compaction never stalls a batch;
//! leftover rows are invisible to reads. History rows at exactly the compaction revision are
//! kept until the next compaction so that a watch may start there. [`Store::hash_kv`] is
//! etcd's HashKV over the same bytes etcd hashes (the kept history rows as etcd stores them),
//! so it equals etcd's for the same history and moves with compaction. LMDB reuses freed pages but
//! keeps the file's size; [`Store::defragment`] swaps in a compacted copy while reads and
//! writes go on.
//!
//! # Transactions
//!
//! Like etcd, every compare of a transaction, nested ones included, is evaluated on the state
//! before it runs, and the requests of the chosen branches are checked first
//! ([`Error::KeyNotFound`], [`Error::Compacted`], [`Error::FutureRev`],
//! [`Error::DuplicateKey`]), so a failing transaction changes nothing. Ranges inside a
//! transaction see its earlier writes. A transaction that writes nothing, like a delete that
//! deletes nothing, does not create a revision.

#![deny(missing_docs)]

mod auth_state;
mod cluster_state;
mod codec;
mod defrag;
mod error;
mod hash;
mod history;
pub mod ids;
mod index;
mod lease;
mod read;
mod restore;
mod snapshot_file;
mod store;
mod tables;
mod types;
mod write;
mod writer;

pub use auth_state::{
    AuthCommand, AuthOutcome, AuthRefusal, AuthState, PermKind, Permission, Role, User, ROOT,
};
pub use cluster_state::{
    takes_space, Alarm, AlarmKind, ClusterCommand, ClusterOutcome, MemberInfo, MemberRecord,
    MemberSet,
};
pub use defrag::Defragmented;
pub use error::{Error, Result};
pub use hash::HashKv;
pub use history::{HistoryBatch, Wanted};
pub use lease::{
    ExpireLeasesResponse, Lease, LeaseGrantRequest, LeaseGrantResponse, MAX_LEASE_TTL,
};
pub use restore::{new_member_set, restore_store, NewMember};
pub use snapshot_file::{snapshot_status, SnapshotStatus};
pub use store::{is_read_only, Durability, Store, StoreOptions};
pub use types::*;
pub use write::check_txn;
pub use writer::Writer;
