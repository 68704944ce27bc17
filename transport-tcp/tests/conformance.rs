//! The transport conformance suite over TCP, in plaintext and with mutual TLS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use transport::conformance::{Harness, Node, TestMsg};
use transport::engine::PeerIo;
use transport::{TlsConfig, TransportConfig};
use transport_tcp::{TcpConnector, TcpTransport};

struct Tcp {
    tls: bool,
}

#[async_trait]
impl Harness for Tcp {
    fn uses_tls(&self) -> bool {
        self.tls
    }

    async fn start(&self, cfg: TransportConfig) -> transport::Result<Node> {
        let (t, incoming) = TcpTransport::<TestMsg>::start(cfg)
            .await
            .map_err(|e| transport::Error::Io(e.to_string()))?;
        Ok(Node {
            transport: Arc::new(t),
            incoming,
        })
    }

    async fn dial_raw(
        &self,
        addr: SocketAddr,
        tls: Option<&TlsConfig>,
    ) -> io::Result<Box<dyn PeerIo>> {
        TcpConnector::new(tls)
            .map_err(io::Error::other)?
            .dial(addr)
            .await
    }
}

mod plaintext {
    transport::conformance_tests!(super::Tcp { tls: false });
}

mod mutual_tls {
    transport::conformance_tests!(super::Tcp { tls: true });
}
