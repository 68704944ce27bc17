//! `cargo xtask certs`: a cluster CA and per-member certificates for local clusters (rcgen).
//!
//! Writes into `dir`: `ca.pem`, `ca-key.pem`, and for each member `<name>.pem` / `<name>-key.pem`.
//! Member certificates are valid for `127.0.0.1`, `localhost` and the member name, for both server
//! and client authentication (peers authenticate each other with mutual TLS). Existing files are
//! kept: running it again only adds what is missing, signing new members with the existing CA.
//! [`generate_client`] adds `client.pem` / `client-key.pem`, a client-only certificate whose
//! common name is the etcd user it stands for (`root`).

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

const CA_NAME: &str = "etcr cluster CA";

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn member_params(name: &str) -> Result<CertificateParams> {
    let mut sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    if !sans.iter().any(|s| s == name) {
        sans.push(name.to_string());
    }
    let mut params =
        CertificateParams::new(sans).with_context(|| format!("member name {name:?}"))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

fn client_params(user: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

fn write_new(path: &Path, contents: &str, secret: bool) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// The CA's issuer: loaded from `dir` when both files exist, created (and written) otherwise.
fn load_or_create_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let key_pem = fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            let key = KeyPair::from_pem(&key_pem).context("parsing ca-key.pem")?;
            // Same subject and key as the certificate on disk, so what we sign chains to it.
            Ok(Issuer::new(ca_params()?, key))
        }
        (false, false) => {
            let key = KeyPair::generate()?;
            let params = ca_params()?;
            let cert = params.self_signed(&key)?;
            write_new(&key_path, &key.serialize_pem(), true)?;
            write_new(&cert_path, &cert.pem(), false)?;
            println!("wrote {} and {}", cert_path.display(), key_path.display());
            Ok(Issuer::new(params, key))
        }
        _ => bail!(
            "{} and {} must both exist or both be absent",
            cert_path.display(),
            key_path.display()
        ),
    }
}

/// Creates the CA (unless present) and a certificate and key for each member (unless present).
pub fn generate(dir: &Path, members: &[String]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let issuer = load_or_create_ca(dir)?;
    for name in members {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            bail!("invalid member name {name:?}");
        }
        sign_unless_present(dir, name, member_params(name)?, &issuer)?;
    }
    Ok(())
}

/// Creates the CA (unless present) and `client.pem` / `client-key.pem` for `user` (unless
/// present): what etcrctl and etcdctl pass as `--cert` / `--key` to a `--client-cert-auth` port.
pub fn generate_client(dir: &Path, user: &str) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let issuer = load_or_create_ca(dir)?;
    sign_unless_present(dir, "client", client_params(user)?, &issuer)
}

/// Writes `<file>.pem` and `<file>-key.pem` signed by `issuer`, unless both exist.
fn sign_unless_present(
    dir: &Path,
    file: &str,
    params: CertificateParams,
    issuer: &Issuer<'static, KeyPair>,
) -> Result<()> {
    let cert_path = dir.join(format!("{file}.pem"));
    let key_path = dir.join(format!("{file}-key.pem"));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            println!("kept {}", cert_path.display());
            return Ok(());
        }
        (false, false) => {}
        _ => bail!(
            "{} and {} must both exist or both be absent",
            cert_path.display(),
            key_path.display()
        ),
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    write_new(&key_path, &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)?;
    println!("wrote {} and {}", cert_path.display(), key_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_ca_and_members_then_keeps_them() {
        let dir = std::env::temp_dir().join(format!("etcr-certs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        generate(&dir, &["m1".into(), "m2".into()]).unwrap();
        for f in [
            "ca.pem",
            "ca-key.pem",
            "m1.pem",
            "m1-key.pem",
            "m2.pem",
            "m2-key.pem",
        ] {
            assert!(dir.join(f).exists(), "{f} missing");
        }
        let before = fs::read(dir.join("m1.pem")).unwrap();
        let ca_before = fs::read(dir.join("ca.pem")).unwrap();
        generate(&dir, &["m1".into(), "m3".into()]).unwrap();
        assert_eq!(
            fs::read(dir.join("m1.pem")).unwrap(),
            before,
            "existing cert rewritten"
        );
        assert_eq!(
            fs::read(dir.join("ca.pem")).unwrap(),
            ca_before,
            "existing CA rewritten"
        );
        assert!(dir.join("m3.pem").exists());
        assert!(generate(&dir, &["../evil".into()]).is_err());
        generate_client(&dir, "root").unwrap();
        assert!(dir.join("client.pem").exists() && dir.join("client-key.pem").exists());
        assert_eq!(fs::read(dir.join("ca.pem")).unwrap(), ca_before);
        fs::remove_dir_all(&dir).unwrap();
    }
}
