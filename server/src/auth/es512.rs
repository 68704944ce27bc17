//! ES512 tokens (ECDSA on P-521 with SHA-512), which etcd accepts and the `jsonwebtoken`
//! crate does not: the compact JWS form (`header.claims.signature`, base64url, the signature
//! as r‖s) is assembled here around RustCrypto's `p521`, which does the cryptography.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p521::ecdsa::signature::{Signer, Verifier};
use p521::ecdsa::{Signature, SigningKey, VerifyingKey};
use p521::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The header every ES512 token carries, in the field order etcd's library writes.
const HEADER: &str = r#"{"alg":"ES512","typ":"JWT"}"#;

/// A signing key from a PEM private key, PKCS#8 or SEC1 (`openssl ecparam -genkey`), as etcd
/// reads them.
pub fn signing_key(pem: &[u8], path: &str) -> Result<SigningKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| format!("{path}: not a PEM file"))?;
    let secret = p521::SecretKey::from_pkcs8_pem(text)
        .or_else(|_| p521::SecretKey::from_sec1_pem(text))
        .map_err(|_| format!("{path}: not a P-521 private key (PKCS#8 or SEC1 PEM)"))?;
    SigningKey::from_bytes(&secret.to_bytes()).map_err(|e| format!("{path}: {e}"))
}

/// A verifying key from a PEM public key (SubjectPublicKeyInfo).
pub fn verifying_key(pem: &[u8], path: &str) -> Result<VerifyingKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| format!("{path}: not a PEM file"))?;
    let public = p521::PublicKey::from_public_key_pem(text)
        .map_err(|_| format!("{path}: not a P-521 public key PEM"))?;
    VerifyingKey::from_affine(*public.as_affine()).map_err(|e| format!("{path}: {e}"))
}

pub fn sign<C: Serialize>(key: &SigningKey, claims: &C) -> Result<String, String> {
    let claims = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature: Signature = key.try_sign(input.as_bytes()).map_err(|e| e.to_string())?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

/// The claims of a token whose header names ES512 and whose signature `key` verifies;
/// `None` for anything else. Expiry is the caller's to check.
pub fn verify<C: DeserializeOwned>(key: &VerifyingKey, token: &str) -> Option<C> {
    let (input, signature) = token.rsplit_once('.')?;
    let (header, claims) = input.split_once('.')?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "ES512" {
        return None;
    }
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
    key.verify(input.as_bytes(), &signature).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}
