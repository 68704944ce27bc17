//! rustls configurations for mutual TLS against the cluster CA, shared by both transports.
//!
//! The crypto provider is chosen explicitly (ring) and passed to every builder, so nothing depends
//! on a process-wide default provider being installed. Only TLS 1.3 is offered (QUIC requires it).
//!
//! Trust model: a peer is accepted when its certificate chains to the cluster CA, on both sides of
//! the connection. The dialing side does not check the certificate's names against the address it
//! dialed (members are reached by address and named by the member id in the handshake), so member
//! certificates need not list every address a member might be reached at.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::{Error, Result, TlsConfig};

/// The ALPN protocol name of etcr peer connections.
pub const ALPN: &[u8] = b"etcr-peer/1";

/// The crypto provider used everywhere: ring, offering only TLS 1.3 suites, AES-128-GCM first.
///
/// ring's default order puts AES-256-GCM first; on bulk traffic (snapshots) its four extra AES
/// rounds per block cost about a quarter of the cipher's time, for no security margin that matters
/// here. Both ends prefer the same order, so AES-128-GCM is what peers negotiate.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{what}: {e}"))
}

/// Parses every certificate of a PEM bundle.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_err("reading certificate PEM", e))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// Parses the first private key of a PEM file.
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| tls_err("reading key PEM", e))?
        .ok_or_else(|| Error::Tls("no private key in PEM".into()))
}

fn roots(tls: &TlsConfig) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in parse_certs(&tls.ca_pem)? {
        roots
            .add(c)
            .map_err(|e| tls_err("adding CA certificate", e))?;
    }
    Ok(Arc::new(roots))
}

/// The accepting side: present our certificate, require a client certificate signed by the CA.
pub fn server_config(tls: &TlsConfig) -> Result<ServerConfig> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(tls)?, provider.clone())
        .build()
        .map_err(|e| tls_err("client verifier", e))?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(parse_certs(&tls.cert_pem)?, parse_key(&tls.key_pem)?)
        .map_err(|e| tls_err("server certificate", e))?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// The dialing side: present our certificate, require the server's to be signed by the CA.
pub fn client_config(tls: &TlsConfig) -> Result<ClientConfig> {
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(roots(tls)?, provider.clone())
        .build()
        .map_err(|e| tls_err("server verifier", e))?;
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("protocol versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ClusterCaVerifier { inner }))
        .with_client_auth_cert(parse_certs(&tls.cert_pem)?, parse_key(&tls.key_pem)?)
        .map_err(|e| tls_err("client certificate", e))?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// The server name the dialing side puts in its ClientHello (not checked, see the module docs).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("etcr-member").expect("static name is valid")
}

/// Verifies the chain against the cluster CA (validity, signatures, usage) but not the name.
#[derive(Debug)]
struct ClusterCaVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last: a name error means the chain is good.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_an_error_not_a_panic() {
        let bad = TlsConfig {
            ca_pem: b"not a pem".to_vec(),
            cert_pem: Vec::new(),
            key_pem: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
        };
        assert!(matches!(server_config(&bad), Err(Error::Tls(_))));
        assert!(matches!(client_config(&bad), Err(Error::Tls(_))));
        assert!(matches!(parse_key(b""), Err(Error::Tls(_))));
    }

    #[cfg(feature = "conformance")]
    #[test]
    fn peers_negotiate_aes_128_gcm() {
        use rustls::{ClientConnection, ServerConnection};

        let pki = crate::conformance::Pki::new("test CA");
        let client_cfg = Arc::new(client_config(&pki.member("m1")).unwrap());
        let server_cfg = Arc::new(server_config(&pki.member("m2")).unwrap());
        let mut client = ClientConnection::new(client_cfg, server_name()).unwrap();
        let mut server = ServerConnection::new(server_cfg).unwrap();
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut &wire[..]).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut &wire[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        let suite = |s: Option<rustls::SupportedCipherSuite>| s.map(|s| s.suite());
        let want = Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(suite(client.negotiated_cipher_suite()), want);
        assert_eq!(suite(server.negotiated_cipher_suite()), want);
    }
}
