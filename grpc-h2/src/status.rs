//! gRPC status: a code and a message, carried in the response trailers.

/// The outcome of a failed call, sent as `grpc-status` and `grpc-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// A gRPC status code (`google.rpc.Code`): 1 cancelled … 16 unauthenticated.
    pub code: i32,
    pub message: String,
}

impl Status {
    pub const INTERNAL: i32 = 13;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const RESOURCE_EXHAUSTED: i32 = 8;

    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }
}

/// The gRPC spec's percent-encoding for `grpc-message`: every byte outside printable ASCII,
/// and `%` itself, becomes `%XX`.
pub(crate) fn percent_encode(message: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded_like_grpc() {
        let mut out = Vec::new();
        percent_encode("100% done: é\n", &mut out);
        assert_eq!(out, b"100%25 done: %C3%A9%0A");
    }
}
