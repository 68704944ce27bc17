//! What a transport needs to know at start: who it is, where it listens, who its peers are, its limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::MemberId;

/// PEM-encoded TLS material of one member: the cluster CA, this member's certificate chain and key.
///
/// Every connection is mutually authenticated: the peer's certificate must chain to `ca_pem`.
#[derive(Clone)]
pub struct TlsConfig {
    /// The cluster CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
    /// This member's certificate chain, PEM (leaf first).
    pub cert_pem: Vec<u8>,
    /// This member's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads `ca`, `cert` and `key` PEM files.
    pub fn from_files(
        ca: impl AsRef<std::path::Path>,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            ca_pem: std::fs::read(ca)?,
            cert_pem: std::fs::read(cert)?,
            key_pem: std::fs::read(key)?,
        })
    }
}

/// Reconnection delays: doubled after each failed attempt from `initial` up to `max`, reset on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay after a failed attempt.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

/// The configuration of one member's transport.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This member.
    pub local_id: MemberId,
    /// The cluster; connections announcing another cluster are refused.
    pub cluster_id: u64,
    /// Where to listen for peers (`127.0.0.1:0` picks a free port; see [`crate::Transport::local_addr`]).
    pub listen: SocketAddr,
    /// The other members and their peer addresses. Connections from anyone else are refused.
    pub peers: HashMap<MemberId, SocketAddr>,
    /// Messages queued per peer before [`crate::Transport::send`] drops (and counts) new ones.
    pub queue_capacity: usize,
    /// The largest frame accepted or sent, in bytes (payload, without the 6-byte header).
    pub max_frame_bytes: usize,
    /// Snapshot chunk size in bytes; must be at most `max_frame_bytes`.
    pub snapshot_chunk_bytes: usize,
    /// Snapshot chunks buffered on the receiving side before the stream waits for the reader.
    pub snapshot_buffered_chunks: usize,
    /// Capacity of the incoming channel handed to the server.
    pub incoming_capacity: usize,
    /// Mutual TLS; `None` means plaintext (TCP only; QUIC refuses to start without it).
    pub tls: Option<TlsConfig>,
    /// Reconnection delays.
    pub backoff: Backoff,
    /// Deadline for connecting plus the handshake, either way.
    pub connect_timeout: Duration,
    /// A raft stream whose write makes no progress for this long is dropped and re-dialled (a
    /// vanished host never answers; a fresh connection finds out sooner). Its batch is counted as dropped.
    pub write_timeout: Duration,
}

impl TransportConfig {
    /// A configuration with default limits: 4096 queued messages per peer, 16 MiB frames, 1 MiB snapshot chunks.
    pub fn new(local_id: MemberId, cluster_id: u64, listen: SocketAddr) -> Self {
        Self {
            local_id,
            cluster_id,
            listen,
            peers: HashMap::new(),
            queue_capacity: 4096,
            max_frame_bytes: 16 << 20,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_buffered_chunks: 4,
            incoming_capacity: 8192,
            tls: None,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }

    /// Adds a peer (builder style).
    pub fn with_peer(mut self, id: MemberId, addr: SocketAddr) -> Self {
        self.peers.insert(id, addr);
        self
    }

    /// Sets the TLS material (builder style).
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Checks the limits for consistency.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |s: &str| Err(crate::Error::Config(s.to_string()));
        if self.queue_capacity == 0
            || self.incoming_capacity == 0
            || self.snapshot_buffered_chunks == 0
        {
            return bad(
                "queue_capacity, incoming_capacity and snapshot_buffered_chunks must be > 0",
            );
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > u32::MAX as usize {
            return bad("max_frame_bytes must be within 1 KiB..4 GiB");
        }
        if self.snapshot_chunk_bytes == 0 || self.snapshot_chunk_bytes > self.max_frame_bytes {
            return bad("snapshot_chunk_bytes must be within 1..=max_frame_bytes");
        }
        if self.peers.contains_key(&self.local_id) {
            return bad("peers must not contain local_id");
        }
        Ok(())
    }
}
