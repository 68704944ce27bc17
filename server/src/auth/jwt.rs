//! JWT tokens (`--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`): signed
//! claims (`username`, `revision`, `exp`) that any member holding the key verifies, so no
//! member keeps them. As in etcd, a token is good until it expires or the auth state
//! changes after it was signed: its `revision` below the member's auth revision makes it
//! old (a password change, a user deleted, a role changed), and clients authenticate again.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::KeyPair;
use serde::{Deserialize, Serialize};

use super::es512;

/// A JWT option set with neither key.
const NO_KEY: &str = "JWT tokens need pub-key, priv-key or both";

/// etcd's default when `ttl` is not given.
const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// How this member makes and reads tokens.
pub enum TokenKind {
    Simple,
    Jwt(Box<Jwt>),
}

/// Reads `--auth-token` as etcd does: a type, then comma-separated `key=value` options.
pub fn token_kind(flag: &str) -> Result<TokenKind, String> {
    let mut parts = flag.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut options = HashMap::new();
    for part in parts {
        let Some((k, v)) = part.split_once('=').filter(|(_, v)| !v.contains('=')) else {
            return Err(format!("invalid auth token option {part:?} in {flag:?}"));
        };
        if options.insert(k, v).is_some() {
            return Err(format!("auth token option {k:?} given twice in {flag:?}"));
        }
    }
    match kind {
        "simple" if options.is_empty() => Ok(TokenKind::Simple),
        "jwt" => Jwt::new(&options).map(|j| TokenKind::Jwt(Box::new(j))),
        _ => Err(format!(
            "invalid auth token type {flag:?} (simple or jwt,...)"
        )),
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

pub struct Jwt {
    keys: Keys,
    ttl: Duration,
}

/// A signing key is `None` with only a public key: this member verifies, and refuses to sign.
enum Keys {
    /// Every method but ES512, through `jsonwebtoken`.
    Library {
        algorithm: Algorithm,
        signing: Option<EncodingKey>,
        verifying: DecodingKey,
    },
    /// ES512, which `jsonwebtoken` lacks.
    Es512 {
        signing: Option<Box<p521::ecdsa::SigningKey>>,
        verifying: Box<p521::ecdsa::VerifyingKey>,
    },
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading the JWT key {path}: {e}"))
}

/// The DER of the PKCS#8 private key in `pem`.
fn pkcs8_der(pem: &[u8], path: &str) -> Result<Vec<u8>, String> {
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k))) => Ok(k.secret_pkcs8_der().to_vec()),
        _ => Err(format!(
            "{path}: the JWT private key must be a PKCS#8 PEM key"
        )),
    }
}

/// A verifying key derived from the private key, for a member given no public key.
fn public_of(algorithm: Algorithm, der: &[u8], path: &str) -> Result<DecodingKey, String> {
    let bad = |e: &dyn std::fmt::Display| format!("{path}: {e}");
    let rng = ring::rand::SystemRandom::new();
    match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => {
            let alg = if algorithm == Algorithm::ES256 {
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair =
                ring::signature::EcdsaKeyPair::from_pkcs8(alg, der, &rng).map_err(|e| bad(&e))?;
            Ok(DecodingKey::from_ec_der(pair.public_key().as_ref()))
        }
        _ => {
            let pair = ring::signature::RsaKeyPair::from_pkcs8(der).map_err(|e| bad(&e))?;
            Ok(DecodingKey::from_rsa_der(pair.public_key().as_ref()))
        }
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// ES512's keys; with only a private key, its public half verifies.
fn es512_keys(private: Option<&str>, public: Option<&str>) -> Result<Keys, String> {
    let signing = match private {
        Some(path) => Some(Box::new(es512::signing_key(&read(path)?, path)?)),
        None => None,
    };
    let verifying = match (public, &signing) {
        (Some(path), _) => es512::verifying_key(&read(path)?, path)?,
        (None, Some(key)) => p521::ecdsa::VerifyingKey::from(&**key),
        (None, None) => return Err(NO_KEY.into()),
    };
    Ok(Keys::Es512 {
        signing,
        verifying: Box::new(verifying),
    })
}

impl Jwt {
    fn new(options: &HashMap<&str, &str>) -> Result<Jwt, String> {
        if let Some(k) = options
            .keys()
            .find(|k| !["pub-key", "priv-key", "sign-method", "ttl"].contains(k))
        {
            return Err(format!("unknown JWT option {k:?}"));
        }
        let ttl = match options.get("ttl") {
            Some(t) => crate::config::parse_duration(t)?,
            None => DEFAULT_TTL,
        };
        let method = options.get("sign-method").copied().unwrap_or_default();
        let private = options.get("priv-key").copied();
        let public = options.get("pub-key").copied();
        if method == "ES512" {
            return Ok(Jwt {
                keys: es512_keys(private, public)?,
                ttl,
            });
        }
        let algorithm: Algorithm = method
            .parse()
            .ok()
            .filter(|a| *a != Algorithm::EdDSA)
            .ok_or_else(|| {
                format!("invalid JWT sign-method {method:?} (HS, RS, PS or ES; 256, 384 or 512)")
            })?;
        if matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            // An HMAC's secret is the private key file's bytes, as etcd takes it.
            let secret = read(private.ok_or("JWT sign-method HS* needs priv-key")?)?;
            return Ok(Jwt {
                keys: Keys::Library {
                    algorithm,
                    signing: Some(EncodingKey::from_secret(&secret)),
                    verifying: DecodingKey::from_secret(&secret),
                },
                ttl,
            });
        }
        let ec = matches!(algorithm, Algorithm::ES256 | Algorithm::ES384);
        let signing = match private {
            None => None,
            Some(path) => {
                let pem = read(path)?;
                let der = pkcs8_der(&pem, path)?;
                let key = if ec {
                    EncodingKey::from_ec_der(&der)
                } else {
                    EncodingKey::from_rsa_pem(&pem).map_err(|e| format!("{path}: {e}"))?
                };
                Some((key, der, path))
            }
        };
        let verifying = match (public, &signing) {
            (Some(path), _) => {
                let pem = read(path)?;
                let key = if ec {
                    DecodingKey::from_ec_pem(&pem)
                } else {
                    DecodingKey::from_rsa_pem(&pem)
                };
                key.map_err(|e| format!("{path}: {e}"))?
            }
            (None, Some((_, der, path))) => public_of(algorithm, der, path)?,
            (None, None) => return Err(NO_KEY.into()),
        };
        Ok(Jwt {
            keys: Keys::Library {
                algorithm,
                signing: signing.map(|(k, _, _)| k),
                verifying,
            },
            ttl,
        })
    }

    /// A token for `username` at auth revision `revision`.
    pub fn sign(&self, username: &str, revision: u64) -> Result<String, String> {
        const VERIFY_ONLY: &str = "auth: token signing attempted with verify-only key";
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp: (now() + self.ttl).as_secs(),
        };
        match &self.keys {
            Keys::Library {
                algorithm, signing, ..
            } => {
                let key = signing.as_ref().ok_or(VERIFY_ONLY)?;
                jsonwebtoken::encode(&Header::new(*algorithm), &claims, key)
                    .map_err(|e| e.to_string())
            }
            Keys::Es512 { signing, .. } => {
                es512::sign(signing.as_deref().ok_or(VERIFY_ONLY)?, &claims)
            }
        }
    }

    /// The user and auth revision of a token signed with our key and not expired.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let claims = match &self.keys {
            Keys::Library {
                algorithm,
                verifying,
                ..
            } => {
                let mut validation = Validation::new(*algorithm);
                // Go's jwt library allows no clock skew.
                validation.leeway = 0;
                jsonwebtoken::decode::<Claims>(token, verifying, &validation)
                    .ok()?
                    .claims
            }
            Keys::Es512 { verifying, .. } => {
                let claims: Claims = es512::verify(verifying, token)?;
                // Valid through its `exp` second, as Go's library and jsonwebtoken judge it.
                (claims.exp >= now().as_secs()).then_some(claims)?
            }
        };
        Some((claims.username, claims.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(ttl: &str) -> Jwt {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"a secret").unwrap();
        let flag = format!(
            "jwt,priv-key={},sign-method=HS256,ttl={ttl}",
            secret.display()
        );
        match token_kind(&flag).unwrap() {
            TokenKind::Jwt(j) => *j,
            TokenKind::Simple => panic!("simple"),
        }
    }

    #[test]
    fn options_are_read_as_etcd_reads_them() {
        assert!(matches!(token_kind("simple"), Ok(TokenKind::Simple)));
        for bad in [
            "simple,ttl=1s",
            "bogus",
            "jwt,sign-method=RS256",
            "jwt,sign-method=NONE,priv-key=/nonexistent",
            "jwt,sign-method=RS256,pub-key=/nonexistent",
            "jwt,sign-method=RS256,color=blue",
            "jwt,sign-method=RS256,ttl=1s,ttl=2s",
            "jwt,sign-method",
        ] {
            assert!(token_kind(bad).is_err(), "{bad}");
        }
        assert_eq!(hmac("5m").ttl, Duration::from_secs(300));
    }

    #[test]
    fn tokens_carry_user_and_revision_and_expire() {
        let j = hmac("5m");
        let token = j.sign("alice", 7).unwrap();
        assert_eq!(j.verify(&token), Some(("alice".to_string(), 7)));
        assert_eq!(j.verify("garbage"), None);
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(j.verify(&tampered), None);
        let expired = hmac("0s").sign("alice", 7).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(hmac("5m").verify(&expired), None);
    }
}
