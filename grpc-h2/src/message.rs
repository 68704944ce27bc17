//! gRPC's length-prefixed message framing: a compressed flag, a 4-byte big-endian length,
//! then the message.

use bytes::Bytes;

/// Bytes before each message.
pub(crate) const PREFIX_LEN: usize = 5;

/// An uncompressed message with its prefix.
pub(crate) fn frame(message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(PREFIX_LEN + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    Bytes::from(framed)
}

/// The length a prefix declares; `prefix` holds at least [`PREFIX_LEN`] bytes.
pub(crate) fn declared_len(prefix: &[u8]) -> usize {
    u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn framing_round_trips() {
        let framed = super::frame(b"abc");
        assert_eq!(&framed[..], [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(super::declared_len(&framed), 3);
    }
}
