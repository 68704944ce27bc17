//! The transport conformance suite over QUIC (always mutual TLS).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use transport::conformance::{Harness, Node, TestMsg};
use transport::engine::PeerIo;
use transport::{TlsConfig, TransportConfig};
use transport_quic::QuicTransport;

struct Quic;

#[async_trait]
impl Harness for Quic {
    fn uses_tls(&self) -> bool {
        true
    }

    async fn start(&self, cfg: TransportConfig) -> transport::Result<Node> {
        let (t, incoming) = QuicTransport::<TestMsg>::start(cfg)
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
        let tls = tls.ok_or_else(|| io::Error::other("QUIC needs TLS"))?;
        Ok(Box::new(transport_quic::dial_stream(addr, tls).await?))
    }
}

transport::conformance_tests!(Quic);

#[tokio::test]
async fn refuses_to_start_without_tls() {
    let cfg = TransportConfig::new(1, 1, "127.0.0.1:0".parse().unwrap());
    assert_eq!(
        QuicTransport::<TestMsg>::start(cfg).await.err(),
        Some(transport_quic::Error::TlsRequired)
    );
}
