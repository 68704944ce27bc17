//! What a call's request headers say to the handler.

use std::time::{Duration, Instant};

use http::HeaderMap;

/// The request metadata of one call.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// `:authority` (or `host`), as the client sent it.
    pub authority: String,
    /// etcd's auth token (metadata key `token`).
    pub token: Option<String>,
    /// When the call's `grpc-timeout` runs out; the layer ends the call then.
    pub deadline: Option<Instant>,
    /// etcd's `hasleader` metadata: the client wants an error rather than an answer from a
    /// member without a leader.
    pub has_leader: bool,
    /// Every request header, pseudo-headers excluded.
    pub headers: HeaderMap,
    /// The subject common name of the client certificate the connection's TLS handshake
    /// verified. This layer does not see TLS and leaves it `None`; the server fills it per
    /// connection. etcd takes it as the user name when auth is on and no token is sent.
    pub client_common_name: Option<String>,
}

impl Metadata {
    pub(crate) fn new(authority: String, headers: HeaderMap, now: Instant) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Metadata {
            token: text("token").map(str::to_owned),
            deadline: text("grpc-timeout")
                .and_then(parse_timeout)
                .and_then(|t| now.checked_add(t)),
            has_leader: text("hasleader").is_some_and(|v| v == "true"),
            authority,
            headers,
            client_common_name: None,
        }
    }
}

/// gRPC's `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_timeout(value: &str) -> Option<Duration> {
    if !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_unit_and_refuse_the_malformed() {
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_timeout("123456789S"), None);
        assert_eq!(parse_timeout("S"), None);
        assert_eq!(parse_timeout("5x"), None);
        assert_eq!(parse_timeout(""), None);
    }

    #[test]
    fn etcd_metadata_is_read_from_the_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("token", "abc".parse().unwrap());
        headers.insert("hasleader", "true".parse().unwrap());
        headers.insert("grpc-timeout", "10S".parse().unwrap());
        let now = Instant::now();
        let m = Metadata::new("h:1".into(), headers, now);
        assert_eq!(m.token.as_deref(), Some("abc"));
        assert!(m.has_leader);
        assert_eq!(m.deadline, Some(now + Duration::from_secs(10)));
    }
}
