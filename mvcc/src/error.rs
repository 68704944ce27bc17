//! The crate's single error type.

/// Everything that can go wrong in the store.
///
/// The first group are deterministic answers to a request: every replica gives the same one
/// for the same command, and [`crate::Store::apply`] reports them per command. The last group
/// are failures of the storage itself, which fail a whole call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The requested revision has been compacted (etcd's `ErrCompacted`).
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is above the current one (etcd's `ErrFutureRev`).
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// `ignore_value` or `ignore_lease` was given for a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// A put with an empty key.
    #[error("key is not provided")]
    EmptyKey,
    /// The same key is written twice in one transaction branch (etcd's `ErrDuplicateKey`).
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// A put attaches, or a revoke names, a lease that does not exist (etcd's
    /// `ErrLeaseNotFound`).
    #[error("lease not found")]
    LeaseNotFound,
    /// A grant names a lease id that exists (etcd's `ErrLeaseExists`).
    #[error("lease already exists")]
    LeaseExists,
    /// A grant asks for more than [`crate::MAX_LEASE_TTL`] (etcd's `ErrLeaseTTLTooLarge`).
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// [`crate::Store::txn_read_only`] was given a transaction that writes.
    #[error("transaction is not read-only")]
    NotReadOnly,
    /// A NOSPACE alarm is raised and the command needs space (etcd's `ErrNoSpace`).
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is raised: no write is applied (etcd's `ErrCorrupt`).
    #[error("corrupt cluster")]
    CorruptCluster,
    /// The database file reached [`crate::StoreOptions::map_size`]: the batch was not
    /// applied. Unlike [`Error::NoSpace`] this depends on the replica's page layout, not only
    /// on the commands, so it is a storage failure. Reopen with a larger map.
    #[error("storage: the LMDB map is full")]
    MapFull,
    /// The LMDB environment failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Data read from disk does not decode.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// File-system error outside LMDB.
    #[error("io: {0}")]
    Io(String),
}

impl Error {
    /// True for errors that are a deterministic answer to a command rather than a failure of
    /// the storage.
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            Error::MapFull | Error::Storage(_) | Error::Corrupt(_) | Error::Io(_)
        )
    }
}

impl From<heed::Error> for Error {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => Error::MapFull,
            e => Error::Storage(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
