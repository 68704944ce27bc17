//! The errors a client can see, with the gRPC code and exact message etcd gives for each, so
//! that etcd clients (which match on these strings) behave the same against etcr.

use tonic::{Code, Status};

/// An error returned to a gRPC client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The leader changed while the request waited on it: its outcome is unknown (a write
    /// may still commit), and a retry goes to the new leader.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// The member is behind with applying, or holds too much not yet committed: the write is
    /// refused before it is proposed.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExists,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExists,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// etcd 3.4 leaves this one unmapped, so clients see it with code Unknown.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// This member stopped applying the log (see the reason); other members may serve.
    #[error("etcdserver: this member stopped applying the log: {0}")]
    Halted(String),
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl EtcdError {
    /// The gRPC status code etcd pairs with this error.
    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | InvalidSortOption | RequestTooLarge | UserEmpty | RoleEmpty | AuthFailed
            | InvalidAuthMgmt | AuthOldRevision => Code::InvalidArgument,
            UserAlreadyExists | UserNotFound | RoleAlreadyExists | RoleNotFound
            | RoleNotGranted | PermissionNotGranted | AuthNotEnabled | RootUserNotExist
            | RootRoleNotExist | LeaseExists => Code::FailedPrecondition,
            PermissionDenied => Code::PermissionDenied,
            NoPasswordUser => Code::Unknown,
            InvalidAuthToken => Code::Unauthenticated,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            NoSpace | TooManyRequests => Code::ResourceExhausted,
            Corrupt => Code::DataLoss,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            MemberBadUrls => Code::InvalidArgument,
            MemberExist
            | PeerUrlExist
            | NotEnoughStartedMembers
            | TooManyLearners
            | MemberNotLearner
            | LearnerNotReady
            | BadLeaderTransferee => Code::FailedPrecondition,
            Unhealthy | LeaderTransferTimeout => Code::Unavailable,
            NoLeader | NotLeader | Timeout | LeaderChanged | Stopped | Halted(_) => {
                Code::Unavailable
            }
            Internal(_) => Code::Internal,
        }
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<mvcc::AuthRefusal> for EtcdError {
    fn from(r: mvcc::AuthRefusal) -> EtcdError {
        use mvcc::AuthRefusal as R;
        match r {
            R::UserEmpty => EtcdError::UserEmpty,
            R::UserAlreadyExists => EtcdError::UserAlreadyExists,
            R::UserNotFound => EtcdError::UserNotFound,
            R::RoleEmpty => EtcdError::RoleEmpty,
            R::RoleAlreadyExists => EtcdError::RoleAlreadyExists,
            R::RoleNotFound => EtcdError::RoleNotFound,
            R::RoleNotGranted => EtcdError::RoleNotGranted,
            R::PermissionNotGranted => EtcdError::PermissionNotGranted,
            R::RootUserNotExist => EtcdError::RootUserNotExist,
            R::RootRoleNotExist => EtcdError::RootRoleNotExist,
            R::InvalidAuthMgmt => EtcdError::InvalidAuthMgmt,
            R::AuthNotEnabled => EtcdError::AuthNotEnabled,
            R::AuthFailed => EtcdError::AuthFailed,
            R::OldRevision => EtcdError::AuthOldRevision,
        }
    }
}

impl From<mvcc::Error> for EtcdError {
    fn from(e: mvcc::Error) -> EtcdError {
        match e {
            mvcc::Error::Compacted => EtcdError::Compacted,
            mvcc::Error::FutureRev => EtcdError::FutureRev,
            mvcc::Error::KeyNotFound => EtcdError::KeyNotFound,
            mvcc::Error::EmptyKey => EtcdError::EmptyKey,
            mvcc::Error::DuplicateKey => EtcdError::DuplicateKey,
            mvcc::Error::NoSpace => EtcdError::NoSpace,
            mvcc::Error::CorruptCluster => EtcdError::Corrupt,
            mvcc::Error::LeaseNotFound => EtcdError::LeaseNotFound,
            mvcc::Error::LeaseExists => EtcdError::LeaseExists,
            mvcc::Error::LeaseTtlTooLarge => EtcdError::LeaseTtlTooLarge,
            other => EtcdError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_etcd_codes_and_messages() {
        let s: Status = EtcdError::Compacted.into();
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s: Status = EtcdError::EmptyKey.into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "etcdserver: key is not provided");
        assert_eq!(Status::from(EtcdError::NoLeader).code(), Code::Unavailable);
    }
}
