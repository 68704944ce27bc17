//! # raft-core
//!
//! A complete Raft consensus state machine that does no IO, spawns no threads,
//! reads no clock and draws no randomness of its own. The application feeds it
//! inputs (ticks, messages, proposals, read requests) and collects outputs
//! (entries to persist, messages to send, entries to apply) from a
//! [`Ready`]. That makes it deterministic: the same inputs and seed produce
//! the same outputs, which is what the simulation tests rely on.
//!
//! Features: leader election with randomized timeouts from a caller-provided
//! seed, pre-vote and check-quorum (on by default), log replication with
//! pipelining bounded by an inflight window (count and bytes), fast
//! back-tracking of rejected appends, the current-term commit rule (§5.4.2),
//! ReadIndex reads batched per turn, proposal forwarding, leadership transfer,
//! learners, single-member membership changes (see [`confchange`] for the
//! safety argument), log compaction and snapshot shipping.
//!
//! ## The ready loop
//!
//! An application owns one [`RawNode`] per member and runs a loop:
//!
//! 1. feed inputs: [`RawNode::tick`] on a timer, [`RawNode::step`] for each
//!    message received, [`RawNode::propose`] / [`RawNode::read_index`] for
//!    client requests;
//! 2. if [`RawNode::has_ready`], take a [`RawNode::ready`] and
//!    * send [`Ready::messages`] (now, in parallel with the disk write),
//!    * persist [`Ready::snapshot`], [`Ready::entries`], [`Ready::hard_state`],
//!    * send [`Ready::persisted_messages`],
//!    * apply [`Ready::committed_entries`], answer [`Ready::read_states`],
//!    * call [`RawNode::advance`].
//!
//! ## Persistence contract
//!
//! 1. The snapshot, entries and hard state of a `Ready` must be durable
//!    (synced if [`Ready::must_sync`]) before any of its
//!    [`Ready::persisted_messages`] is sent and before [`RawNode::advance`].
//!    These are append acknowledgements, vote requests (they carry the
//!    candidate's own vote) and vote answers.
//! 2. [`Ready::messages`] may be sent before or while the write happens: the
//!    leader's appends, heartbeats and snapshots, pre-votes, forwarded
//!    proposals and reads. They never vouch for unpersisted state: the leader
//!    counts its own log towards a commit only after `advance` reports it
//!    persisted (the "leader writes in parallel" optimisation of §10.2.1 of
//!    the Raft thesis).
//! 3. Committed entries are handed out only once they are persisted locally.
//!    The application persists its applied index with its state and passes it
//!    back as [`Config::applied`] on restart.
//! 4. A restarted member must come back with exactly what it persisted, no
//!    less. Compaction may only discard entries covered by the storage's
//!    snapshot.
//! 5. The transport must call [`RawNode::report_snapshot`] for every snapshot
//!    message it sends or fails to send, and may call
//!    [`RawNode::report_unreachable`] when a peer is down.
//!
//! ## Membership
//!
//! Membership changes one member at a time, and a member uses the latest
//! membership in its **log** (appended, not necessarily committed), as in
//! chapter 4 of the Raft thesis. There is therefore no `apply_conf_change`
//! call: the change already took effect. [`RawNode::applied_conf_state`] gives
//! the membership as of the applied index, to store with a snapshot. See
//! [`confchange`] for the safety argument.
//!
//! ## Testing
//!
//! `src/paper_tests.rs` holds scenario tests named after the sections of the
//! Raft paper and thesis they check. `tests/simulation.rs` runs thousands of
//! seeded random schedules (reordering, loss, duplication, partitions,
//! crashes, membership changes, leadership transfers) and checks election
//! safety, log matching, leader completeness, state machine safety and
//! linearizable ReadIndex after every step, then liveness after healing.
//!
//! ## Example: a single-member cluster
//!
//! ```
//! use raft_core::{Config, ConfState, MemStorage, RawNode, StateRole};
//!
//! let storage = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1]));
//! let mut node = RawNode::new(&Config::new(1), storage).unwrap();
//! node.campaign();
//!
//! let mut applied = Vec::new();
//! let mut proposed = false;
//! for _ in 0..10 {
//!     if node.status().soft_state.role == StateRole::Leader && !proposed {
//!         node.propose(b"hello".to_vec()).unwrap();
//!         proposed = true;
//!     }
//!     if !node.has_ready() {
//!         continue;
//!     }
//!     let rd = node.ready();
//!     // A real member sends rd.messages to its peers here.
//!     if let Some(snap) = &rd.snapshot {
//!         node.mut_store().apply_snapshot(snap.clone()).unwrap();
//!     }
//!     node.mut_store().append(&rd.entries).unwrap();
//!     if let Some(hs) = rd.hard_state {
//!         node.mut_store().set_hard_state(hs);
//!     }
//!     // ...then sends rd.persisted_messages.
//!     for e in &rd.committed_entries {
//!         if !e.data.is_empty() {
//!             applied.push(e.data.clone());
//!         }
//!     }
//!     node.advance(rd);
//! }
//! assert_eq!(applied, vec![b"hello".to_vec()]);
//! ```
//!
//! ## Modules
//!
//! [`quorum`] counts majorities, [`tracker`] holds the leader's view of each
//! follower, [`storage`] defines what raft reads from disk, [`confchange`]
//! handles membership, [`message`] defines everything that is persisted or
//! sent. The state machine itself lives in the private `raft` module and is
//! driven through [`RawNode`].

#![deny(missing_docs)]

pub mod confchange;
mod config;
pub mod error;
mod log;
mod log_unstable;
pub mod message;
pub mod quorum;
mod raft;
mod raw_node;
mod read_only;
pub mod rng;
pub mod storage;
pub mod tracker;

pub use confchange::{decode_conf_change, ConfChange, ConfChangeType};
pub use config::Config;
pub use error::{Error, Result, StorageError};
pub use message::{
    ConfState, Entry, EntryType, HardState, Message, MessageType, ReadState, Snapshot,
    SnapshotMetadata, SnapshotStatus, SoftState, StateRole,
};
pub use raw_node::{RawNode, Ready, Status};
pub use storage::{MemStorage, Storage};
pub use tracker::{Inflights, Progress, ProgressState};

#[cfg(test)]
mod paper_tests;
