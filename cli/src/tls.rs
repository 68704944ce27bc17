//! Client TLS as etcdctl 3.4 sets it up from `--cacert`, `--cert`, `--key`,
//! `--insecure-skip-tls-verify` and `--insecure-transport`, with its error messages for bad
//! files (Go's `crypto/tls` and `crypto/x509` words), on rustls.
//!
//! Which endpoints use it is clientv3's rule: `https://` ones always (with the system roots
//! when no TLS flag asked for anything), `http://` ones never, bare `host:port` ones when a
//! TLS flag asked for it.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{CliError, Result};

/// The TLS flags, as given.
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    pub cacert: String,
    pub cert: String,
    pub key: String,
    pub insecure_skip_verify: bool,
    pub insecure_transport: bool,
}

/// What each kind of endpoint is dialled with.
#[derive(Clone)]
pub struct Security {
    /// For bare `host:port` endpoints: `None` is plaintext.
    pub default: Option<Arc<ClientConfig>>,
    /// For `https://` endpoints.
    pub https: Arc<ClientConfig>,
}

/// Where Go looks for the system's CA bundle on Linux, in its order.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// etcdctl's `newClientCfg`: a bad file is `ExitBadArgs` with Go's message.
pub fn security(flags: &TlsFlags) -> Result<Security> {
    let asked = !flags.cert.is_empty() || !flags.key.is_empty() || !flags.cacert.is_empty();
    let configured = if asked {
        Some(config(flags)?)
    } else if !flags.insecure_transport {
        Some(system_config(flags.insecure_skip_verify)?)
    } else {
        None
    };
    let https = match &configured {
        Some(c) => c.clone(),
        None => system_config(false)?,
    };
    Ok(Security {
        default: configured,
        https,
    })
}

fn bad_args(message: impl Into<String>) -> CliError {
    CliError::bad_args(message)
}

/// Go's `os.Open` error text.
fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        bad_args(format!("open {path}: {why}"))
    })
}

fn config(flags: &TlsFlags) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let identity = if flags.cert.is_empty() && flags.key.is_empty() {
        None
    } else {
        if flags.cert.is_empty() || flags.key.is_empty() {
            return Err(bad_args(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                flags.key, flags.cert
            )));
        }
        Some(key_pair(&flags.cert, &flags.key, &provider)?)
    };
    let verifier: Arc<dyn ServerCertVerifier> = if flags.insecure_skip_verify {
        Arc::new(SkipVerify(provider.clone()))
    } else if flags.cacert.is_empty() {
        webpki(system_roots(), &provider)
    } else {
        webpki(ca_pool(&flags.cacert)?, &provider)
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad_args(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad_args(format!("tls: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Go's `tls.X509KeyPair` checks, in its order.
fn key_pair(
    cert: &str,
    key: &str,
    provider: &CryptoProvider,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .filter_map(std::result::Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(bad_args(
            "tls: failed to find any PEM data in certificate input",
        ));
    }
    let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| bad_args("tls: failed to find any PEM data in key input"))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|_| bad_args("tls: failed to parse private key"))?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok((chain, key_der))
        }
        Err(_) => Err(bad_args("tls: private key does not match public key")),
    }
}

/// `tlsutil.NewCertPool`: every PEM block must be a certificate; a file without any gives
/// an empty pool (which then trusts nobody).
fn ca_pool(path: &str) -> Result<RootCertStore> {
    let pem = read(path)?;
    let mut roots = RootCertStore::empty();
    for item in rustls_pemfile::read_all(&mut &pem[..]) {
        match item {
            Ok(rustls_pemfile::Item::X509Certificate(der)) => roots
                .add(der)
                .map_err(|_| bad_args("x509: malformed certificate"))?,
            Ok(_) => return Err(bad_args("x509: malformed tbs certificate")),
            Err(_) => break,
        }
    }
    Ok(roots)
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let env = std::env::var("SSL_CERT_FILE").ok();
    let bundle = env
        .iter()
        .map(String::as_str)
        .chain(SYSTEM_ROOTS.iter().copied())
        .find_map(|p| std::fs::read(Path::new(p)).ok());
    if let Some(pem) = bundle {
        for der in rustls_pemfile::certs(&mut &pem[..]).filter_map(std::result::Result::ok) {
            let _ = roots.add(der);
        }
    }
    roots
}

fn system_config(skip_verify: bool) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if skip_verify {
        Arc::new(SkipVerify(provider.clone()))
    } else {
        webpki(system_roots(), &provider)
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad_args(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The chain and name check against `roots`; with no roots at all every server is refused.
fn webpki(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Arc<dyn ServerCertVerifier> {
    match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build() {
        Ok(v) => v,
        Err(_) => Arc::new(TrustNobody(provider.clone())),
    }
}

/// The server name a TLS endpoint's certificate must carry: the endpoint's host.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

/// `--insecure-skip-tls-verify`: any certificate goes (Go's `InsecureSkipVerify`), but the
/// handshake's signatures are still checked against it.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

/// An empty CA file: nothing is trusted.
#[derive(Debug)]
struct TrustNobody(Arc<CryptoProvider>);

macro_rules! signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    signatures!();
}

impl ServerCertVerifier for TrustNobody {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(cacert: &str, cert: &str, key: &str) -> TlsFlags {
        TlsFlags {
            cacert: cacert.into(),
            cert: cert.into(),
            key: key.into(),
            insecure_skip_verify: false,
            insecure_transport: true,
        }
    }

    fn message(f: &TlsFlags) -> String {
        match security(f) {
            Err(CliError::Exit { code: 128, message }) => message,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn bad_files_get_etcdctls_messages() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let text = file("text", "not PEM\n");
        let key = file(
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n",
        );
        assert_eq!(
            message(&flags("", "c.pem", "")),
            "KeyFile and CertFile must both be present[key: , cert: c.pem]"
        );
        assert_eq!(
            message(&flags("", "/nonexistent", "/nonexistent2")),
            "open /nonexistent: no such file or directory"
        );
        assert_eq!(
            message(&flags("/nonexistent", "", "")),
            "open /nonexistent: no such file or directory"
        );
        assert_eq!(
            message(&flags("", &text, &key)),
            "tls: failed to find any PEM data in certificate input"
        );
        assert_eq!(
            message(&flags(&key, "", "")),
            "x509: malformed tbs certificate"
        );
        // A CA file without PEM trusts nobody rather than failing (as Go's cert pool does).
        assert!(security(&flags(&text, "", "")).is_ok());
    }

    #[test]
    fn plaintext_unless_a_flag_asks_for_tls() {
        assert!(security(&flags("", "", "")).unwrap().default.is_none());
        let mut secure = flags("", "", "");
        secure.insecure_transport = false;
        assert!(security(&secure).unwrap().default.is_some());
    }
}
