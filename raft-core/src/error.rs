//! Errors.

use thiserror::Error;

/// Errors a [`crate::Storage`] reports.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The requested index precedes the first available entry: it was
    /// compacted into a snapshot.
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// The requested index is beyond the last entry.
    #[error("requested entry is unavailable")]
    Unavailable,
    /// The snapshot is older than the one the storage already holds.
    #[error("snapshot is out of date")]
    SnapshotOutOfDate,
    /// A snapshot is being built; ask again later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Any other failure of the underlying store.
    #[error("storage failure: {0}")]
    Other(String),
}

/// Errors of the raft state machine.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StorageError),
    /// The proposal was refused: the leader is transferring leadership, is
    /// being removed, or a membership change is already in progress. Retry
    /// later.
    #[error("proposal dropped")]
    ProposalDropped,
    /// No leader is known, so the proposal or read could not be forwarded.
    /// Retry after an election.
    #[error("no leader is known")]
    NoLeader,
    /// The configuration is invalid.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
    /// The membership change is invalid against the current membership.
    #[error("invalid membership change: {0}")]
    ConfChangeInvalid(String),
    /// A membership change entry could not be decoded.
    #[error("cannot decode membership change: {0}")]
    Decode(String),
    /// A peer's message breaks the protocol (entries out of sequence, a rewrite of committed
    /// entries): it was ignored, and nothing of it reached the log.
    #[error("invalid message from member {from}: {reason}")]
    InvalidMessage {
        /// The sender.
        from: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
