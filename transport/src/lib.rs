//! # transport: how etcr members talk to each other
//!
//! Members exchange raft messages and snapshots through the [`Transport`] trait. Two crates
//! implement it, `transport-tcp` (tokio, optional mutual TLS) and `transport-quic` (quinn, always
//! mutual TLS); the server picks one with `--peer-transport tcp|quic` and nothing else changes.
//!
//! The transport is generic over the message type `M` ([`Message`]: anything serde can move):
//! it knows nothing about raft.
//!
//! ## Sending
//! * [`Transport::send`] never blocks: it puts the message in the peer's bounded queue, or drops and
//!   counts it when the queue is full (raft retransmits). One long-lived ordered stream per direction
//!   of each peer pair carries raft messages; everything queued while a write is in flight goes out
//!   in the next write. A broken stream is re-dialled with exponential backoff ([`Backoff`]).
//! * [`Transport::send_snapshot`] streams a snapshot in chunks over its own stream, so heartbeats
//!   never wait behind it, with memory bounded by a few chunks on either side.
//!
//! ## Receiving
//! Starting a transport yields an [`IncomingReceiver`]: a bounded channel of [`Incoming`] items,
//! either a message (with the member it came from) or a snapshot whose bytes arrive through a
//! bounded [`SnapshotReader`].
//!
//! ## Wire format and safety
//! Length-prefixed bincode 2 frames with a format version byte ([`frame`]). A corrupt, truncated or
//! oversized frame closes that connection with a logged error; lengths are checked before any
//! allocation. Every stream starts with a handshake naming the cluster and the sending member;
//! streams from other clusters or from members not in the peer list are refused and logged.
//! With TLS ([`TlsConfig`], [`tls`]) both sides must present certificates signed by the cluster CA.
//!
//! ## Testing
//! [`fault::FaultyTransport`] wraps any transport with drops, delays, partitions and one-way cuts.
//! With the `conformance` feature, `transport::conformance` holds the suite every implementation runs.
//!
//! ## Wiring a server
//! The server builds a [`TransportConfig`] from its flags (member and cluster ids, the peer listen
//! address, the other members' peer addresses, TLS files), starts the implementation chosen by
//! `--peer-transport` and from then on sees only `Arc<dyn Transport<M>>` and the receiver:
//! ```text
//! let (transport, mut incoming): (Arc<dyn Transport<Msg>>, IncomingReceiver<Msg>) = match flag {
//!     PeerTransport::Tcp => { let (t, rx) = TcpTransport::start(cfg).await?; (Arc::new(t), rx) }
//!     PeerTransport::Quic => { let (t, rx) = QuicTransport::start(cfg).await?; (Arc::new(t), rx) }
//! };
//! // event loop: incoming.recv() → Incoming::Message { from, msg } → raft.step(msg)
//! //             incoming.recv() → Incoming::Snapshot(s) → install s.meta, reading s.data to EOF
//! // after persisting a Ready:   for m in ready.messages { transport.send(m.to, m) }
//! // snapshots (own task):       transport.send_snapshot(to, meta, Box::new(file)).await
//! // membership changes:         transport.add_peer(id, addr) / transport.remove_peer(id)
//! // /metrics:                   transport.stats()  (per peer: msgs/bytes sent+received, drops, reconnects)
//! // exit:                       transport.shutdown().await
//! ```
//! Chaos tests wrap the transport: `Arc::new(FaultyTransport::new(transport, rules.clone()))`.
//!
//! ## Example: fault rules and frames
//! ```
//! use std::time::Duration;
//! use transport::fault::{FaultRules, Fate};
//! use transport::frame::{decode_payload, encode_frame, FrameKind, FrameReader};
//!
//! // One rule set shared by every member of a test cluster.
//! let rules = FaultRules::new(1);
//! rules.partition([vec![1, 2], vec![3]]);
//! rules.cut(2, 1);
//! assert_eq!(rules.fate(1, 3), Fate::Drop);
//! assert_eq!(rules.fate(2, 1), Fate::Drop);
//! assert_eq!(rules.fate(1, 2), Fate::Deliver(Duration::ZERO));
//!
//! // What goes on the wire for one message.
//! let mut wire = bytes::BytesMut::new();
//! encode_frame(&mut wire, FrameKind::Message, &("append", 42u64), 1 << 20).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! rt.block_on(async {
//!     let mut reader = FrameReader::new(&wire[..], 1 << 20);
//!     let (kind, len) = reader.read_header().await.unwrap().unwrap();
//!     assert_eq!(kind, FrameKind::Message);
//!     let msg: (String, u64) = decode_payload(reader.read_payload(len).await.unwrap()).unwrap();
//!     assert_eq!(msg, ("append".to_string(), 42));
//! });
//! ```
#![deny(missing_docs)]

use std::net::SocketAddr;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncRead;

mod config;
pub mod engine;
mod error;
pub mod fault;
pub mod frame;
mod incoming;
mod stats;
mod stream;
pub mod tls;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use config::{Backoff, TlsConfig, TransportConfig};
pub use error::{Error, Result};
pub use incoming::{Incoming, IncomingReceiver, IncomingSnapshot, SnapshotReader};
pub use stats::PeerStats;

/// A cluster member's id.
pub type MemberId = u64;

/// What a transport can carry: any owned serde type that can cross threads.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// The bytes of an outgoing snapshot, read once from start to end.
pub type SnapshotSource = Box<dyn AsyncRead + Send + Unpin>;

/// Moves raft messages and snapshots between cluster members.
///
/// Implementations are started by their own constructors (which take a [`TransportConfig`] and
/// return the transport with its [`IncomingReceiver`]); after that the server only uses this trait,
/// typically as `Arc<dyn Transport<M>>`.
#[async_trait]
pub trait Transport<M: Message>: Send + Sync + 'static {
    /// This member.
    fn local_id(&self) -> MemberId;

    /// Where this transport listens (useful when configured with port 0).
    fn local_addr(&self) -> SocketAddr;

    /// Queues `msg` for `to`. Never blocks: when the peer's queue is full, or `to` is unknown, the
    /// message is dropped and counted. Messages to one peer are delivered in order, or not at all.
    fn send(&self, to: MemberId, msg: M);

    /// Streams a snapshot to `to` on a stream of its own: first `meta`, then `data` in chunks.
    /// Returns the number of data bytes once the receiver has taken all of them.
    async fn send_snapshot(&self, to: MemberId, meta: M, data: SnapshotSource) -> Result<u64>;

    /// Adds a member (or moves it to a new address).
    fn add_peer(&self, id: MemberId, addr: SocketAddr);

    /// Removes a member: its queue is discarded and its streams stop delivering.
    fn remove_peer(&self, id: MemberId);

    /// Per-peer counters, sorted by member id.
    fn stats(&self) -> Vec<PeerStats>;

    /// Stops every task and closes every connection and listener; the incoming channel then ends.
    async fn shutdown(&self);
}
