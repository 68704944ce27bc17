//! # transport-quic: etcr's peer transport over QUIC
//!
//! Implements [`transport::Transport`] with quinn. QUIC always runs mutual TLS: both sides present
//! certificates signed by the cluster CA ([`TransportConfig::tls`] is required), with the ring
//! crypto provider chosen explicitly. Each member keeps one QUIC connection per peer it dials; the
//! raft messages travel on one long-lived bidirectional stream of it, and every snapshot on a
//! stream of its own, so heartbeats never wait behind a snapshot (QUIC streams do not block each
//! other). Framing, identity, batching, backoff and the snapshot protocol come from
//! [`transport::engine`], exactly as over TCP.
//!
//! ## Example: two members over loopback
//! ```
//! use transport::{Incoming, Transport, TransportConfig};
//! use transport::conformance::{Pki, TestMsg};
//! use transport_quic::QuicTransport;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), transport_quic::Error> {
//! let pki = Pki::new("cluster CA"); // `cargo xtask certs` writes the same kind of files
//! let any_port = "127.0.0.1:0".parse().unwrap();
//! let cfg = |id| TransportConfig::new(id, 7, any_port).with_tls(pki.member(&format!("m{id}")));
//! let (a, _a_in) = QuicTransport::<TestMsg>::start(cfg(1)).await?;
//! let (b, mut b_in) = QuicTransport::<TestMsg>::start(cfg(2)).await?;
//! a.add_peer(2, b.local_addr());
//! b.add_peer(1, a.local_addr());
//!
//! a.send(2, TestMsg::new(1, 100));
//! match b_in.recv().await {
//!     Some(Incoming::Message { from, msg }) => assert_eq!((from, msg.seq), (1, 1)),
//!     _ => panic!("expected a message"),
//! }
//! a.shutdown().await;
//! b.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod socket;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::{debug, info_span, warn, Instrument};
use transport::engine::{
    Connector, Engine, Inbound, PeerRead, PeerStream, PeerWrite, HANDSHAKE_TIMEOUT,
};
use transport::frame::StreamKind;
use transport::{
    IncomingReceiver, MemberId, Message, PeerStats, SnapshotSource, TlsConfig, Transport,
    TransportConfig,
};

/// What can go wrong starting a QUIC transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// QUIC needs TLS material; the configuration had none.
    #[error("QUIC requires mutual TLS: TransportConfig::tls is not set")]
    TlsRequired,
    /// The TLS material does not suit QUIC.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Tls(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The transport layer refused the configuration or TLS material.
    #[error(transparent)]
    Transport(#[from] transport::Error),
}

/// The server name put in the QUIC/TLS handshake (names are not checked, see [`transport::tls`]).
const SERVER_NAME: &str = "etcr-member";
/// The largest UDP payload path MTU discovery tries, QUIC's maximum: per-packet costs (headers,
/// AEAD setup, syscalls, acknowledgements) shrink with the packet count, so paths with large MTUs
/// (loopback's 64 KiB, jumbo frames) carry far more per CPU second, as they do for TCP. Paths with
/// a smaller MTU settle lower through discovery; its failed probes cost only the probes.
const MTU_UPPER_BOUND: u16 = 65527;
/// What one stream may have sent and not yet read by the application. Kept within the socket's
/// receive buffer: when it overflows, the dropped datagrams look like congestion, and a few lost
/// large ones like an MTU black hole, which sends the connection back to 1200-byte packets for a
/// minute.
const STREAM_WINDOW_BYTES: u32 = 4 << 20;
/// Kernel buffer size asked for the UDP socket (Linux doubles it, capped by `net.core.rmem_max`
/// and `wmem_max`): the default (about 200 KiB) overflows during bursts; a stream's window leaves
/// room for the others.
const SOCKET_BUFFER_BYTES: usize = STREAM_WINDOW_BYTES as usize;
/// How long shutdown waits for closed connections to drain.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

fn quic_transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(2)))
        .max_idle_timeout(Some(VarInt::from_u32(10_000).into()))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(32 << 20))
        .send_window(32 << 20)
        .max_concurrent_bidi_streams(VarInt::from_u32(1024))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MTU_UPPER_BOUND);
    t.mtu_discovery_config(Some(mtu));
    Arc::new(t)
}

/// A quinn endpoint on `addr`, accepting connections if `server` is given.
fn bind_endpoint(addr: SocketAddr, server: Option<quinn::ServerConfig>) -> io::Result<Endpoint> {
    let mut cfg = quinn::EndpointConfig::default();
    // Peers may only probe up to the payload size this endpoint advertises (quinn's default is
    // 1472), so without this the discovery upper bound would never be reached.
    cfg.max_udp_payload_size(MTU_UPPER_BOUND)
        .map_err(io::Error::other)?;
    let socket = socket::bind(addr, SOCKET_BUFFER_BYTES)?;
    Endpoint::new_with_abstract_socket(cfg, server, socket, Arc::new(quinn::TokioRuntime))
}

/// A quinn client configuration presenting `tls` and trusting only the cluster CA.
pub fn client_config(tls: &TlsConfig) -> Result<quinn::ClientConfig, Error> {
    let rustls = transport::tls::client_config(tls)?;
    let crypto = QuicClientConfig::try_from(rustls).map_err(|e| Error::Tls(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(quic_transport_config());
    Ok(cfg)
}

/// A quinn server configuration presenting `tls` and requiring client certificates from the CA.
pub fn server_config(tls: &TlsConfig) -> Result<quinn::ServerConfig, Error> {
    let rustls = transport::tls::server_config(tls)?;
    let crypto = QuicServerConfig::try_from(rustls).map_err(|e| Error::Tls(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(quic_transport_config());
    Ok(cfg)
}

/// One QUIC bidirectional stream as a byte stream, dialled by [`dial_stream`]. Holds its
/// connection and private endpoint open while it lives.
pub struct QuicStream {
    send: SendStream,
    recv: RecvStream,
    _conn: Connection,
    _endpoint: Endpoint,
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.send)
            .poll_write(cx, buf)
            .map_err(io::Error::from)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}

/// The receiving half of a stream as the engine reads it: quinn's reassembled buffers as they
/// are, without copying them out. Holds the connection open while it lives.
struct QuicRead {
    recv: RecvStream,
    _conn: Connection,
}

#[async_trait]
impl PeerRead for QuicRead {
    async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        Ok(self.recv.read_chunk(max, true).await?.map(|c| c.bytes))
    }

    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        match self.recv.read_chunk(max, true).await? {
            Some(c) => {
                buf.extend_from_slice(&c.bytes);
                Ok(c.bytes.len())
            }
            None => Ok(0),
        }
    }
}

/// The sending half of a stream as the engine writes it: quinn keeps the buffers it is handed
/// until they are acknowledged, instead of copying them into its own.
struct QuicWrite {
    send: SendStream,
}

#[async_trait]
impl PeerWrite for QuicWrite {
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> io::Result<()> {
        Ok(self.send.write_all_chunks(chunks).await?)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.send.finish().map_err(io::Error::other)
    }
}

fn peer_stream(send: SendStream, recv: RecvStream, conn: Connection) -> PeerStream {
    PeerStream::new(QuicRead { recv, _conn: conn }, QuicWrite { send })
}

/// Opens a stream to `addr` from a private client endpoint presenting `tls` (tests, tools).
pub async fn dial_stream(addr: SocketAddr, tls: &TlsConfig) -> io::Result<QuicStream> {
    let mut endpoint = bind_endpoint(SocketAddr::new(addr.ip(), 0), None)?;
    endpoint.set_default_client_config(client_config(tls).map_err(io::Error::other)?);
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .map_err(io::Error::other)?
        .await
        .map_err(io::Error::other)?;
    let (send, recv) = conn.open_bi().await.map_err(io::Error::other)?;
    Ok(QuicStream {
        send,
        recv,
        _conn: conn,
        _endpoint: endpoint,
    })
}

/// Dials peers over the transport's endpoint, one cached connection per peer.
pub struct QuicConnector {
    endpoint: Mutex<Option<Endpoint>>,
    conns: Mutex<HashMap<MemberId, Connection>>,
}

impl QuicConnector {
    fn endpoint(&self) -> io::Result<Endpoint> {
        self.endpoint
            .lock()
            .expect("endpoint poisoned")
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "transport shut down"))
    }

    async fn connection(&self, peer: MemberId, addr: SocketAddr) -> io::Result<Connection> {
        let cached = {
            let conns = self.conns.lock().expect("conns poisoned");
            conns
                .get(&peer)
                .filter(|c| c.close_reason().is_none() && c.remote_address() == addr)
                .cloned()
        };
        if let Some(c) = cached {
            return Ok(c);
        }
        let conn = self
            .endpoint()?
            .connect(addr, SERVER_NAME)
            .map_err(io::Error::other)?
            .await
            .map_err(io::Error::other)?;
        self.conns
            .lock()
            .expect("conns poisoned")
            .insert(peer, conn.clone());
        Ok(conn)
    }
}

#[async_trait]
impl Connector for QuicConnector {
    async fn connect(
        &self,
        peer: MemberId,
        addr: SocketAddr,
        kind: StreamKind,
    ) -> io::Result<PeerStream> {
        let conn = self.connection(peer, addr).await?;
        let (send, recv) = match conn.open_bi().await {
            Ok(s) => s,
            Err(e) => {
                self.conns.lock().expect("conns poisoned").remove(&peer);
                return Err(io::Error::other(e));
            }
        };
        // Raft messages (heartbeats) go before snapshot bytes when both wait to be sent.
        let priority = match kind {
            StreamKind::Raft => 1,
            StreamKind::Snapshot => 0,
        };
        send.set_priority(priority).map_err(io::Error::other)?;
        Ok(peer_stream(send, recv, conn))
    }

    async fn close(&self) {
        let endpoint = self.endpoint.lock().expect("endpoint poisoned").take();
        self.conns.lock().expect("conns poisoned").clear();
        if let Some(endpoint) = endpoint {
            endpoint.close(VarInt::from_u32(0), b"shutdown");
            // Peers learn of the close from the CONNECTION_CLOSE frames sent at once; draining
            // (3 PTOs) finishes in quinn's endpoint driver, which ends when it is done.
            if tokio::time::timeout(DRAIN_WAIT, endpoint.wait_idle())
                .await
                .is_err()
            {
                debug!("QUIC endpoint still draining at shutdown");
            }
        }
    }
}

/// A [`Transport`] over QUIC.
pub struct QuicTransport<M> {
    engine: Engine<M, QuicConnector>,
}

impl<M: Message> QuicTransport<M> {
    /// Binds a UDP endpoint on `cfg.listen`, starts accepting peers and dialling the configured ones.
    pub async fn start(cfg: TransportConfig) -> Result<(Self, IncomingReceiver<M>), Error> {
        cfg.validate()?;
        let tls = cfg.tls.as_ref().ok_or(Error::TlsRequired)?;
        let bind_err = |e: io::Error| Error::Bind {
            addr: cfg.listen,
            reason: e.to_string(),
        };
        let mut endpoint =
            bind_endpoint(cfg.listen, Some(server_config(tls)?)).map_err(bind_err)?;
        endpoint.set_default_client_config(client_config(tls)?);
        let local_addr = endpoint.local_addr().map_err(bind_err)?;
        let connector = QuicConnector {
            endpoint: Mutex::new(Some(endpoint.clone())),
            conns: Mutex::new(HashMap::new()),
        };
        let span = info_span!("quic_accept", local = cfg.local_id, %local_addr);
        let (engine, incoming) = Engine::start(cfg, connector, local_addr)?;
        let inbound = engine.inbound();
        inbound.spawn(accept_loop(endpoint, inbound.clone()).instrument(span));
        Ok((Self { engine }, incoming))
    }

    /// Number of transport tasks still running (0 after [`Transport::shutdown`]).
    pub fn live_tasks(&self) -> usize {
        self.engine.live_tasks()
    }
}

async fn accept_loop<M: Message>(endpoint: Endpoint, inbound: Inbound<M>) {
    while let Some(incoming) = endpoint.accept().await {
        let conn_inbound = inbound.clone();
        inbound.spawn(async move {
            let remote = incoming.remote_address();
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return warn!(%remote, error = %e, "QUIC handshake refused"),
                Err(_) => return debug!(%remote, "QUIC handshake timed out"),
            };
            loop {
                match conn.accept_bi().await {
                    Ok((send, recv)) => {
                        let stream = peer_stream(send, recv, conn.clone());
                        let serve = conn_inbound.clone();
                        conn_inbound.spawn(async move { serve.serve(stream, remote).await });
                    }
                    Err(e) => {
                        debug!(%remote, error = %e, "QUIC connection ended");
                        return;
                    }
                }
            }
        });
    }
}

#[async_trait]
impl<M: Message> Transport<M> for QuicTransport<M> {
    fn local_id(&self) -> MemberId {
        self.engine.local_id()
    }
    fn local_addr(&self) -> SocketAddr {
        self.engine.local_addr()
    }
    fn send(&self, to: MemberId, msg: M) {
        self.engine.send(to, msg)
    }
    async fn send_snapshot(
        &self,
        to: MemberId,
        meta: M,
        data: SnapshotSource,
    ) -> transport::Result<u64> {
        self.engine.send_snapshot(to, meta, data).await
    }
    fn add_peer(&self, id: MemberId, addr: SocketAddr) {
        self.engine.add_peer(id, addr)
    }
    fn remove_peer(&self, id: MemberId) {
        self.engine.remove_peer(id)
    }
    fn stats(&self) -> Vec<PeerStats> {
        self.engine.stats()
    }
    async fn shutdown(&self) {
        self.engine.shutdown().await
    }
}
