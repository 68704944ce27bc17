//! Per-peer counters, cheap to update (relaxed atomics), read by the server for `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::MemberId;

/// A snapshot of one peer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer.
    pub id: MemberId,
    /// Raft messages written to the peer.
    pub msgs_sent: u64,
    /// Bytes written to the peer (frames, including snapshots).
    pub bytes_sent: u64,
    /// Raft messages received from the peer.
    pub msgs_received: u64,
    /// Bytes received from the peer (frames, including snapshots).
    pub bytes_received: u64,
    /// Messages dropped on the way to the peer: queue full, or lost with a broken connection.
    pub dropped: u64,
    /// Successful connections to the peer after the first one.
    pub reconnects: u64,
    /// Snapshots sent to the peer and acknowledged.
    pub snapshots_sent: u64,
    /// Snapshots received from the peer completely.
    pub snapshots_received: u64,
    /// Whether the raft stream to the peer is up now.
    pub connected: bool,
}

/// Live counters of one peer.
#[derive(Debug, Default)]
pub struct PeerCounters {
    pub(crate) msgs_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) msgs_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) snapshots_sent: AtomicU64,
    pub(crate) snapshots_received: AtomicU64,
    pub(crate) connected: AtomicBool,
    /// Set when the peer leaves the cluster: its streams stop delivering.
    pub(crate) removed: AtomicBool,
    /// Generation of the peer's newest accepted raft stream: older ones stop delivering, so a
    /// reconnect never interleaves the tail of the old stream with the head of the new one.
    pub(crate) raft_stream: AtomicU64,
}

impl PeerCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(&self, id: MemberId) -> PeerStats {
        PeerStats {
            id,
            msgs_sent: self.msgs_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            msgs_received: self.msgs_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            snapshots_sent: self.snapshots_sent.load(Relaxed),
            snapshots_received: self.snapshots_received.load(Relaxed),
            connected: self.connected.load(Relaxed),
        }
    }
}
