//! # transport-tcp: etcr's peer transport over TCP
//!
//! Implements [`transport::Transport`] with tokio TCP sockets (`TCP_NODELAY`), with mutual TLS
//! through tokio-rustls when [`TransportConfig::tls`] is set, and plaintext only when it is not.
//! Raft messages to each peer travel on one long-lived connection; every snapshot gets a connection
//! of its own, so heartbeats never wait behind one. Framing, identity, batching, backoff and the
//! snapshot protocol come from [`transport::engine`].
//!
//! ## Example: two members over loopback
//! ```
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use transport::{Incoming, Transport, TransportConfig};
//! use transport_tcp::TcpTransport;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum Msg { Heartbeat { term: u64 } }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), transport_tcp::Error> {
//! let any_port = "127.0.0.1:0".parse().unwrap();
//! let (a, _a_in) = TcpTransport::<Msg>::start(TransportConfig::new(1, 7, any_port)).await?;
//! let (b, mut b_in) = TcpTransport::<Msg>::start(TransportConfig::new(2, 7, any_port)).await?;
//! a.add_peer(2, b.local_addr());
//! b.add_peer(1, a.local_addr());
//!
//! a.send(2, Msg::Heartbeat { term: 3 });
//! match b_in.recv().await {
//!     Some(Incoming::Message { from, msg }) => assert_eq!((from, msg), (1, Msg::Heartbeat { term: 3 })),
//!     _ => panic!("expected a message"),
//! }
//! assert_eq!(a.stats()[0].msgs_sent, 1);
//!
//! // The server usually holds the transport as a trait object.
//! let a: Arc<dyn Transport<Msg>> = Arc::new(a);
//! a.shutdown().await;
//! b.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, info_span, warn, Instrument};
use transport::engine::{
    Connector, Engine, Inbound, IoReader, IoWriter, PeerIo, PeerStream, HANDSHAKE_TIMEOUT,
};
use transport::frame::StreamKind;
use transport::{
    IncomingReceiver, MemberId, Message, PeerStats, SnapshotSource, TlsConfig, Transport,
    TransportConfig,
};

/// What can go wrong starting a TCP transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
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

/// Dials peers over TCP, with TLS when configured.
pub struct TcpConnector {
    tls: Option<TlsConnector>,
}

impl TcpConnector {
    /// A connector presenting `tls` (mutual TLS), or plaintext when `None`.
    pub fn new(tls: Option<&TlsConfig>) -> transport::Result<Self> {
        let tls = match tls {
            Some(t) => Some(TlsConnector::from(Arc::new(transport::tls::client_config(
                t,
            )?))),
            None => None,
        };
        Ok(Self { tls })
    }

    /// Opens a byte stream to `addr`, with TLS established if configured (tests, tools).
    pub async fn dial(&self, addr: SocketAddr) -> io::Result<Box<dyn PeerIo>> {
        Ok(match self.connect_stream(addr).await? {
            Conn::Tcp(tcp) => Box::new(tcp),
            Conn::Tls(tls) => tls,
        })
    }

    async fn connect_stream(&self, addr: SocketAddr) -> io::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok(match &self.tls {
            Some(tls) => Conn::Tls(Box::new(
                tls.connect(transport::tls::server_name(), tcp).await?,
            )),
            None => Conn::Tcp(tcp),
        })
    }
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Plain TCP splits into independent halves; TLS halves share the session.
fn tcp_stream(tcp: TcpStream) -> PeerStream {
    let (r, w) = tcp.into_split();
    PeerStream::new(IoReader::new(r), IoWriter::new(w))
}

#[async_trait]
impl Connector for TcpConnector {
    async fn connect(
        &self,
        _peer: MemberId,
        addr: SocketAddr,
        _kind: StreamKind,
    ) -> io::Result<PeerStream> {
        Ok(match self.connect_stream(addr).await? {
            Conn::Tcp(tcp) => tcp_stream(tcp),
            Conn::Tls(tls) => PeerStream::from_io(tls),
        })
    }
}

/// A [`Transport`] over TCP.
pub struct TcpTransport<M> {
    engine: Engine<M, TcpConnector>,
}

impl<M: Message> TcpTransport<M> {
    /// Binds `cfg.listen`, starts accepting peers and dialling the configured ones.
    pub async fn start(cfg: TransportConfig) -> Result<(Self, IncomingReceiver<M>), Error> {
        cfg.validate()?;
        let acceptor = match &cfg.tls {
            Some(t) => Some(TlsAcceptor::from(Arc::new(transport::tls::server_config(
                t,
            )?))),
            None => None,
        };
        let connector = TcpConnector::new(cfg.tls.as_ref())?;
        let bind_err = |e: io::Error| Error::Bind {
            addr: cfg.listen,
            reason: e.to_string(),
        };
        let listener = TcpListener::bind(cfg.listen).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let span = info_span!("tcp_accept", local = cfg.local_id, %local_addr);
        let (engine, incoming) = Engine::start(cfg, connector, local_addr)?;
        let inbound = engine.inbound();
        inbound.spawn(accept_loop(listener, acceptor, inbound.clone()).instrument(span));
        Ok((Self { engine }, incoming))
    }

    /// Number of transport tasks still running (0 after [`Transport::shutdown`]).
    pub fn live_tasks(&self) -> usize {
        self.engine.live_tasks()
    }
}

async fn accept_loop<M: Message>(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    inbound: Inbound<M>,
) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Typically out of file descriptors: wait a little rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let conn = inbound.clone();
        inbound.spawn(async move {
            match acceptor {
                None => conn.serve(tcp_stream(tcp), remote).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => conn.serve(PeerStream::from_io(tls), remote).await,
                        Ok(Err(e)) => warn!(%remote, error = %e, "TLS handshake refused"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

#[async_trait]
impl<M: Message> Transport<M> for TcpTransport<M> {
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
