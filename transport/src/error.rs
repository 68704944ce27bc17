//! The one error type of the `transport` crate.

use crate::MemberId;

/// What can go wrong in a transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The destination is not a member this transport knows.
    #[error("unknown peer {0}")]
    UnknownPeer(MemberId),
    /// The transport has been shut down.
    #[error("transport is shut down")]
    Shutdown,
    /// A socket or stream failed.
    #[error("i/o error: {0}")]
    Io(String),
    /// The peer sent a frame this side cannot accept (corrupt, truncated, oversized, wrong version).
    #[error("bad frame: {0}")]
    Frame(String),
    /// A message could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// The TLS material could not be loaded or the handshake failed.
    #[error("tls error: {0}")]
    Tls(String),
    /// The remote side refused the connection or the snapshot.
    #[error("rejected by peer: {0}")]
    Rejected(String),
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The fault injector dropped the operation (partition, cut or random drop).
    #[error("dropped by fault injection")]
    Injected,
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
