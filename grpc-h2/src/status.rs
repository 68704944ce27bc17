//! gRPC status: a code and a message, carried in the response trailers.

use http::HeaderValue;

/// The trailer names of a call's status, made once rather than parsed for every call.
pub(crate) const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
pub(crate) const GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");

/// The outcome of a failed call, sent as `grpc-status` and `grpc-message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gRPC status {code}: {message}")]
pub struct Status {
    /// A gRPC status code (`google.rpc.Code`): 1 cancelled … 16 unauthenticated.
    pub code: i32,
    pub message: String,
}

impl Status {
    pub const CANCELLED: i32 = 1;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;

    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    /// What grpc-go answers when the call's `grpc-timeout` passes.
    pub fn deadline_exceeded() -> Self {
        Status::new(Self::DEADLINE_EXCEEDED, "context deadline exceeded")
    }

    /// `grpc-message`: percent-encoded, and cut so the trailers stay far below any peer's
    /// header list limit (etcd's messages are much shorter).
    pub(crate) fn header_message(&self) -> HeaderValue {
        let text: String = self.message.chars().take(4096).collect();
        let mut encoded = Vec::with_capacity(text.len());
        percent_encode(&text, &mut encoded);
        // Only printable ASCII is left, which is always a valid header value.
        HeaderValue::from_bytes(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The gRPC spec's percent-encoding for `grpc-message`: every byte outside printable ASCII,
/// and `%` itself, becomes `%XX`.
fn percent_encode(message: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

/// Decodes a `grpc-message`: `%XX` back into bytes, then UTF-8 (lossily).
pub(crate) fn percent_decode(value: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' && i + 2 < value.len() {
            if let (Some(h), Some(l)) = (hex(value[i + 1]), hex(value[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(value[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded_like_grpc() {
        let mut out = Vec::new();
        percent_encode("100% done: é\n", &mut out);
        assert_eq!(out, b"100%25 done: %C3%A9%0A");
        assert_eq!(percent_decode(&out), "100% done: é\n");
        assert_eq!(percent_decode(b"50%"), "50%");
    }
}
