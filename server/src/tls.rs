//! Client TLS on `https://` client URLs: the rustls server configuration built from
//! `--cert-file`, `--key-file`, `--trusted-ca-file` and `--client-cert-auth`, the certificate
//! re-read when its files change, and the verified client certificate's common name.
//!
//! As in etcd, a trusted CA file alone already makes the port require client certificates
//! signed by it; `--client-cert-auth` says so explicitly and refuses to start without the CA.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::Flags;

/// ALPN protocols, in the server's order of preference (rustls picks the first the client
/// offers too). gRPC clients offer `h2` alone and get it; HTTP clients that offer both (curl,
/// browsers) get HTTP/1.1, where `/health`, `/metrics` and the gateway are served: the
/// HTTP/2 side of the port answers gRPC only.
const ALPN: [&[u8]; 2] = [b"http/1.1", b"h2"];

const MAKE_CERTS: &str = "`cargo xtask certs` makes a CA and certificates for local use";

/// The acceptor for `https://` client URLs, or `None` when no client URL is https.
pub fn acceptor(flags: &Flags) -> anyhow::Result<Option<TlsAcceptor>> {
    let https =
        crate::config::split_urls(&flags.listen_client_urls).find(|u| u.starts_with("https://"));
    let Some(url) = https else {
        if flags.client_cert_auth {
            warn!("--client-cert-auth has no effect: no --listen-client-urls is https://");
        }
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&flags.cert_file, &flags.key_file) else {
        anyhow::bail!(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme ({MAKE_CERTS})"
        );
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = ReloadingCert::load(cert.clone(), key.clone(), provider.clone())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match (&flags.trusted_ca_file, flags.client_cert_auth) {
        (Some(ca), _) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider)
                .build()
                .with_context(|| format!("--trusted-ca-file {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, true) => anyhow::bail!(
            "--client-cert-auth needs --trusted-ca-file: the CA whose client certificates are accepted ({MAKE_CERTS})"
        ),
        (None, false) => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    info!(
        cert = %cert.display(),
        client_cert_auth = flags.trusted_ca_file.is_some(),
        "client TLS on https:// client URLs"
    );
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn read(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| {
        format!(
            "cannot read {flag} {}; give the path of a PEM file ({MAKE_CERTS})",
            path.display()
        )
    })
}

fn certificates(path: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, flag)?;
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {}: not a PEM certificate", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "{flag} {}: no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" block)",
            path.display()
        );
    }
    Ok(certs)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read(path, "--key-file")?;
    rustls_pemfile::private_key(&mut &pem[..])
        .with_context(|| format!("--key-file {}: not a PEM private key", path.display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--key-file {}: no private key in it (expected a PEM \"BEGIN PRIVATE KEY\" block)",
                path.display()
            )
        })
}

fn roots(ca: &Path) -> anyhow::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in certificates(ca, "--trusted-ca-file")? {
        roots
            .add(c)
            .with_context(|| format!("--trusted-ca-file {}: not a usable CA", ca.display()))?;
    }
    Ok(Arc::new(roots))
}

fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = certificates(cert, "--cert-file")?;
    let key_der = private_key(key)?;
    let certified = CertifiedKey::from_der(chain, key_der, provider).with_context(|| {
        format!(
            "--cert-file {} and --key-file {} do not make a key pair",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Arc::new(certified))
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The member's certificate, re-read when either file's modification time changes, so that
/// a renewed certificate is served without a restart. A renewal that does not load (a
/// half-written file) keeps the previous certificate until the files change again.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamps: (Option<SystemTime>, Option<SystemTime>),
    key: Arc<CertifiedKey>,
}

impl ReloadingCert {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let stamps = (modified(&cert), modified(&key));
        let certified = certified_key(&cert, &key, &provider)?;
        Ok(ReloadingCert {
            current: Mutex::new(Loaded {
                stamps,
                key: certified,
            }),
            cert,
            key,
            provider,
        })
    }
}

impl ReloadingCert {
    /// The certificate to present now: re-read first if the files changed.
    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let stamps = (modified(&self.cert), modified(&self.key));
        let mut current = self.current.lock().ok()?;
        if stamps != current.stamps {
            current.stamps = stamps;
            match certified_key(&self.cert, &self.key, &self.provider) {
                Ok(key) => {
                    info!(cert = %self.cert.display(), "reloaded the client TLS certificate");
                    current.key = key;
                }
                Err(e) => warn!("keeping the previous client TLS certificate: {e:#}"),
            }
        }
        Some(current.key.clone())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// The subject common name of the client's verified certificate, if it sent one.
pub fn client_common_name(conn: &rustls::ServerConnection) -> Option<String> {
    let cert = conn.peer_certificates()?.first()?;
    common_name(cert.as_ref())
}

/// DER: one element's tag, contents and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The last CN of a certificate's subject (Go's `Subject.CommonName`), read from its DER.
fn common_name(cert: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    let (_, certificate, _) = element(cert).filter(|e| e.0 == SEQUENCE)?;
    let (_, tbs, _) = element(certificate).filter(|e| e.0 == SEQUENCE)?;
    let mut rest = tbs;
    // version [0] (optional), serial, signature algorithm, issuer, validity, then subject.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (_, subject, _) = element(rest).filter(|e| e.0 == SEQUENCE)?;
    let mut names = subject;
    let mut found = None;
    while !names.is_empty() {
        let (_, set, next) = element(names)?;
        names = next;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (_, attr, next) = element(attrs)?;
            attrs = next;
            let (oid_tag, oid, value) = element(attr)?;
            if oid_tag == 0x06 && oid == CN_OID {
                let (_, text, _) = element(value)?;
                found = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert, rcgen::Issuer::new(params, key))
    }

    /// Signs a certificate for `cn` and writes it and its key as `<name>.pem`, `<name>-key.pem`.
    fn write_signed(
        dir: &Path,
        name: &str,
        cn: &str,
        issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    ) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        fs::write(&c, cert.pem()).unwrap();
        fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn flags(args: &[&str]) -> Flags {
        use clap::Parser;
        let mut all = vec!["etcr", "--listen-client-urls", "https://127.0.0.1:2379"];
        all.extend_from_slice(args);
        Flags::parse_from(all)
    }

    #[test]
    fn the_verified_client_certificate_names_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_cert, issuer) = ca();
        let ca_path = dir.path().join("ca.pem");
        fs::write(&ca_path, ca_cert.pem()).unwrap();
        let (cert, key) = write_signed(dir.path(), "server", "m1", &issuer);
        let (client_cert, client_key) = write_signed(dir.path(), "client", "root", &issuer);
        let path = |p: &Path| p.display().to_string();
        let acceptor = acceptor(&flags(&[
            "--cert-file",
            &path(&cert),
            "--key-file",
            &path(&key),
            "--trusted-ca-file",
            &path(&ca_path),
            "--client-cert-auth",
        ]))
        .unwrap()
        .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                certificates(&client_cert, "cert").unwrap(),
                private_key(&client_key).unwrap(),
            )
            .unwrap();
        let mut client = rustls::ClientConnection::new(
            Arc::new(client_config),
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut server = rustls::ServerConnection::new(acceptor.config().clone()).unwrap();
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut &wire[..]).unwrap();
            server.process_new_packets().unwrap();
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut &wire[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        assert_eq!(client_common_name(&server), Some("root".to_string()));
    }

    #[test]
    fn a_renewed_certificate_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (_, issuer) = ca();
        let (cert, key) = write_signed(dir.path(), "m1", "first", &issuer);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let reloading = ReloadingCert::load(cert.clone(), key.clone(), provider).unwrap();
        let served = |r: &ReloadingCert| common_name(r.current().unwrap().cert[0].as_ref());
        assert_eq!(served(&reloading), Some("first".into()));
        // Rewrite both files with a later modification time, as a renewal does.
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        let renew = |cn: &str, at: SystemTime| {
            let (c, k) = write_signed(dir.path(), "new", cn, &issuer);
            fs::rename(&c, &cert).unwrap();
            fs::rename(&k, &key).unwrap();
            for p in [&cert, &key] {
                fs::File::options()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_modified(at)
                    .unwrap();
            }
        };
        renew("second", later);
        assert_eq!(served(&reloading), Some("second".into()));
        fs::write(&cert, "half written").unwrap();
        assert_eq!(served(&reloading), Some("second".into()));
    }

    #[test]
    fn the_common_name_is_read_from_the_subject_not_the_issuer() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "the CA");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "etcr");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        assert_eq!(common_name(cert.der()), Some("alice".to_string()));
        let mut anonymous = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        anonymous.distinguished_name = rcgen::DistinguishedName::new();
        let cert = anonymous.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), None);
        assert_eq!(common_name(b"\x30\x85garbage"), None);
        assert_eq!(common_name(b""), None);
    }
}
