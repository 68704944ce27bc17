//! Header block rewriting: decode with the client's HPACK context, fix the
//! authority, re-encode without touching the server's dynamic table.

use crate::authority::host_of;
use crate::frame::{write_header_block, PRIORITY_LEN};
use crate::hpack::Decoder;
use crate::Error;

/// Largest dynamic table the client may ask for with a size update. The
/// h2 server advertises the default 4096; this leaves room for a server
/// configured larger while bounding memory.
const MAX_DYNAMIC_TABLE: usize = 64 * 1024;

/// Largest re-encoded header block. hyper's default header list limit is
/// 16 KiB, so anything near this is refused by the server anyway; the bound
/// stops a small block of indexed references from expanding without limit.
pub(crate) const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Owns the decoding side of the client's HPACK context.
pub(crate) struct HeaderRewriter {
    decoder: Decoder,
    encoded: Vec<u8>,
}

impl HeaderRewriter {
    pub(crate) fn new() -> Self {
        HeaderRewriter {
            decoder: Decoder::new(MAX_DYNAMIC_TABLE),
            encoded: Vec::new(),
        }
    }

    /// Decodes `block`, replaces a scheme-prefixed `:authority` or `host`
    /// value by its `host[:port]`, and appends the re-encoded block to `out`
    /// as HEADERS (+ CONTINUATION) frames for `stream_id`.
    pub(crate) fn rewrite(
        &mut self,
        block: &[u8],
        stream_id: u32,
        flags: u8,
        priority: Option<[u8; PRIORITY_LEN]>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let encoded = &mut self.encoded;
        encoded.clear();
        let mut too_large = false;
        self.decoder
            .decode(block, |name, value| {
                if too_large {
                    return;
                }
                let value = match name {
                    b":authority" | b"host" => host_of(value).unwrap_or(value),
                    _ => value,
                };
                encode_literal(encoded, name, value);
                too_large = encoded.len() > MAX_HEADER_BLOCK;
            })
            .map_err(|e| Error::Hpack {
                stream_id,
                reason: e.to_string(),
            })?;
        if too_large {
            return Err(Error::HeaderListTooLarge { stream_id });
        }
        write_header_block(out, stream_id, flags, priority, encoded);
        if encoded.capacity() > 4 * crate::frame::MAX_OUT_PAYLOAD {
            *encoded = Vec::new();
        }
        Ok(())
    }
}

/// Appends a "Literal Header Field without Indexing — New Name"
/// representation (RFC 7541 §6.2.2) with raw (non-Huffman) strings.
pub(crate) fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    encode_string(out, name);
    encode_string(out, value);
}

/// RFC 7541 §5.2 string literal, H = 0.
fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// RFC 7541 §5.1 integer with an `n`-bit prefix; `high` holds the bits above
/// the prefix in the first octet.
fn encode_integer(out: &mut Vec<u8>, high: u8, n: u8, mut value: usize) {
    let max_prefix = (1usize << n) - 1;
    if value < max_prefix {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_match_rfc7541_appendix_c1() {
        let mut out = Vec::new();
        encode_integer(&mut out, 0, 5, 10);
        assert_eq!(out, [0b01010]);
        out.clear();
        encode_integer(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        encode_integer(&mut out, 0, 8, 42);
        assert_eq!(out, [42]);
        out.clear();
        encode_integer(&mut out, 0, 7, 127);
        assert_eq!(out, [127, 0]);
    }

    #[test]
    fn literal_matches_rfc7541_appendix_c2_2() {
        let mut out = Vec::new();
        encode_literal(&mut out, b":path", b"/sample/path");
        let mut expected = vec![0x00, 0x05];
        expected.extend_from_slice(b":path");
        expected.push(0x0c);
        expected.extend_from_slice(b"/sample/path");
        assert_eq!(out, expected);
        assert_eq!(
            loona_hpack::Decoder::new().decode(&out).unwrap(),
            [(b":path".to_vec(), b"/sample/path".to_vec())]
        );
    }

    #[test]
    fn long_strings_round_trip() {
        let value = vec![b'x'; 70_000];
        let mut out = Vec::new();
        encode_literal(&mut out, b"big", &value);
        assert_eq!(
            loona_hpack::Decoder::new().decode(&out).unwrap(),
            [(b"big".to_vec(), value)]
        );
    }

    #[test]
    fn indexed_reference_bomb_is_refused() {
        let mut block = Vec::new();
        // Literal with incremental indexing, new name: a 3 KiB entry ...
        block.push(0x40);
        encode_string(&mut block, b"x");
        encode_string(&mut block, &[b'v'; 3000]);
        // ... then referenced (index 62) far more often than the limit allows.
        block.extend(std::iter::repeat_n(0x80 | 62, 1000));
        let mut out = Vec::new();
        let err = HeaderRewriter::new()
            .rewrite(&block, 1, 0, None, &mut out)
            .unwrap_err();
        assert_eq!(err, Error::HeaderListTooLarge { stream_id: 1 });
        assert!(out.is_empty());
    }

    #[test]
    fn oversized_table_size_update_is_refused() {
        let mut block = Vec::new();
        encode_integer(&mut block, 0x20, 5, MAX_DYNAMIC_TABLE + 1);
        block.push(0x82);
        let err = HeaderRewriter::new()
            .rewrite(&block, 1, 0, None, &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, Error::Hpack { stream_id: 1, .. }), "{err:?}");
    }
}
