//! HPACK (RFC 7541): a decoder that tracks the client's dynamic table, and the few encoding
//! primitives a gRPC response needs.
//!
//! Written for this crate rather than taken from a crate because the
//! available ones (`hpack`, `loona-hpack`) rebuild a hash-map Huffman table
//! for every Huffman-coded string, which costs ~100 µs per string; grpc
//! clients send a fresh Huffman-coded `grpc-timeout` with every request.
//! `loona-hpack` is kept as an independent oracle in the tests.
//!
//! Responses are encoded without the dynamic table (literal fields, never indexed), so the
//! encoder keeps no state and the client's decoder table never changes.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HpackError {
    #[error("header block truncated")]
    Truncated,
    #[error("integer too large")]
    IntegerOverflow,
    #[error("index {0} is not in the header table")]
    BadIndex(usize),
    #[error("invalid Huffman-coded string")]
    Huffman,
    #[error("dynamic table size update to {0} exceeds the allowed maximum")]
    TableSizeTooLarge(usize),
}

/// Entry overhead counted by RFC 7541 §4.1.
const ENTRY_OVERHEAD: usize = 32;

/// SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2).
const INITIAL_TABLE_SIZE: usize = 4096;

/// The decoding half of one connection's HPACK context.
pub(crate) struct Decoder {
    table: DynamicTable,
    max_allowed_size: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder whose peer may grow the dynamic table to `max_allowed_size`.
    pub(crate) fn new(max_allowed_size: usize) -> Self {
        Decoder {
            table: DynamicTable {
                entries: VecDeque::new(),
                size: 0,
                max_size: INITIAL_TABLE_SIZE.min(max_allowed_size),
            },
            max_allowed_size,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Decodes a complete header block, calling `field` for each header
    /// field in order. On error the dynamic table may be partly updated; the
    /// connection is unusable then anyway.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut rest = block;
        while let Some(&first) = rest.first() {
            if first & 0x80 != 0 {
                // §6.1 Indexed Header Field.
                let index = take_integer(&mut rest, 7)?;
                let (name, value) = self.table.get(index)?;
                field(name, value);
            } else if first & 0xe0 == 0x20 {
                // §6.3 Dynamic Table Size Update.
                let size = take_integer(&mut rest, 5)?;
                if size > self.max_allowed_size {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.table.set_max_size(size);
            } else {
                // §6.2.1 with incremental indexing (01), §6.2.2 without
                // indexing (0000), §6.2.3 never indexed (0001).
                let indexing = first & 0x40 != 0;
                let name_index = take_integer(&mut rest, if indexing { 6 } else { 4 })?;
                self.name.clear();
                if name_index == 0 {
                    take_string(&mut rest, &mut self.name)?;
                } else {
                    self.name.extend_from_slice(self.table.get(name_index)?.0);
                }
                self.value.clear();
                take_string(&mut rest, &mut self.value)?;
                field(&self.name, &self.value);
                if indexing {
                    self.table.insert(&self.name, &self.value);
                }
            }
        }
        Ok(())
    }
}

struct DynamicTable {
    /// Newest first; each entry is name followed by value, with the split.
    entries: VecDeque<(Box<[u8]>, usize)>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        if let Some(&(name, value)) = index.checked_sub(1).and_then(|i| STATIC_TABLE.get(i)) {
            return Ok((name.as_bytes(), value.as_bytes()));
        }
        let (entry, name_len) = index
            .checked_sub(STATIC_TABLE.len() + 1)
            .and_then(|i| self.entries.get(i))
            .ok_or(HpackError::BadIndex(index))?;
        Ok(entry.split_at(*name_len))
    }

    /// §4.4: evicts as needed; an entry larger than the table empties it.
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let entry_size = name.len() + value.len() + ENTRY_OVERHEAD;
        if entry_size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - entry_size);
        self.entries
            .push_front(([name, value].concat().into_boxed_slice(), name.len()));
        self.size += entry_size;
    }

    fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some((entry, _)) = self.entries.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= entry.len() + ENTRY_OVERHEAD;
        }
    }
}

/// §5.1: decodes an integer with an `n`-bit prefix and advances `buf`.
fn take_integer(buf: &mut &[u8], n: u8) -> Result<usize, HpackError> {
    let (&first, mut rest) = buf.split_first().ok_or(HpackError::Truncated)?;
    let mask = (1u16 << n) as usize - 1;
    let mut value = usize::from(first) & mask;
    if value == mask {
        let mut shift = 0;
        loop {
            let (&byte, tail) = rest.split_first().ok_or(HpackError::Truncated)?;
            rest = tail;
            // Four continuation octets carry 28 bits: far beyond any sane
            // index, length or table size.
            if shift > 21 {
                return Err(HpackError::IntegerOverflow);
            }
            value += usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    *buf = rest;
    Ok(value)
}

/// §5.2: decodes a string literal into `out` and advances `buf`.
fn take_string(buf: &mut &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let huffman = buf.first().is_some_and(|b| b & 0x80 != 0);
    let len = take_integer(buf, 7)?;
    if len > buf.len() {
        return Err(HpackError::Truncated);
    }
    let (raw, rest) = buf.split_at(len);
    *buf = rest;
    if huffman {
        huffman_decode(raw, out)
    } else {
        out.extend_from_slice(raw);
        Ok(())
    }
}

/// §5.1: appends `value` as an integer with an `n`-bit prefix; `flags` fills the bits above it.
pub(crate) fn put_integer(out: &mut Vec<u8>, flags: u8, n: u8, value: usize) {
    let mask = (1usize << n) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// §5.2: appends a raw (not Huffman-coded) string literal.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// §6.2.2: a literal field without indexing whose name is entry `name_index` of the static table.
pub(crate) fn put_field_indexed_name(out: &mut Vec<u8>, name_index: usize, value: &[u8]) {
    put_integer(out, 0, 4, name_index);
    put_string(out, value);
}

/// §6.2.2: a literal field without indexing, with a literal name.
pub(crate) fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    put_string(out, name);
    put_string(out, value);
}

/// Static-table entries the encoder refers to.
pub(crate) const STATUS_200: usize = 8;
pub(crate) const STATUS_NAME: usize = 8;
pub(crate) const CONTENT_TYPE_NAME: usize = 31;
pub(crate) const AUTHORITY_NAME: usize = 1;
pub(crate) const METHOD_POST: usize = 3;
pub(crate) const PATH_NAME: usize = 4;
pub(crate) const SCHEME_HTTP: usize = 6;

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Code length in bits of each symbol (0..=255, then EOS) of the RFC 7541
/// Appendix B Huffman code. The code is canonical: codes are assigned in
/// order of (length, symbol), so the lengths determine it.
const HUFFMAN_CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const EOS: u16 = 256;

/// The Huffman codes, `(code, length)` per symbol, derived from the lengths.
pub(crate) fn huffman_codes() -> &'static [(u32, u8); 257] {
    static CODES: OnceLock<[(u32, u8); 257]> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut order: Vec<u16> = (0..=EOS).collect();
        order.sort_by_key(|&s| (HUFFMAN_CODE_LENGTHS[usize::from(s)], s));
        let mut codes = [(0, 0); 257];
        let mut code = 0u32;
        let mut len = HUFFMAN_CODE_LENGTHS[usize::from(order[0])];
        for (i, &symbol) in order.iter().enumerate() {
            let symbol_len = HUFFMAN_CODE_LENGTHS[usize::from(symbol)];
            if i > 0 {
                code = (code + 1) << (symbol_len - len);
                len = symbol_len;
            }
            codes[usize::from(symbol)] = (code, symbol_len);
        }
        codes
    })
}

/// A child slot in the decoding tree: an internal node index, a leaf, or
/// nothing.
const LEAF: u16 = 0x8000;
const NONE: u16 = u16::MAX;

/// Binary decoding tree; node 0 is the root, `[child for bit 0, for bit 1]`.
fn huffman_tree() -> &'static [[u16; 2]] {
    static TREE: OnceLock<Vec<[u16; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = vec![[NONE; 2]];
        for (symbol, &(code, len)) in huffman_codes().iter().enumerate() {
            let mut node = 0;
            for i in (0..len).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    tree[node][bit] = LEAF | symbol as u16;
                } else {
                    if tree[node][bit] == NONE {
                        tree.push([NONE; 2]);
                        tree[node][bit] = (tree.len() - 1) as u16;
                    }
                    node = usize::from(tree[node][bit]);
                }
            }
        }
        tree
    })
}

/// §5.2 / Appendix B: decodes a Huffman-coded string, checking that the
/// padding is at most 7 bits of the EOS prefix (all ones).
fn huffman_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let tree = huffman_tree();
    out.reserve(input.len() * 8 / 5);
    let mut node = 0usize;
    let mut pending_bits = 0u32;
    let mut all_ones = true;
    for &byte in input {
        for shift in (0..8).rev() {
            let bit = (byte >> shift) & 1;
            let next = tree[node][usize::from(bit)];
            all_ones &= bit == 1;
            pending_bits += 1;
            if next == NONE {
                return Err(HpackError::Huffman);
            }
            if next & LEAF != 0 {
                let symbol = next & !LEAF;
                if symbol == EOS {
                    return Err(HpackError::Huffman);
                }
                out.push(symbol as u8);
                node = 0;
                pending_bits = 0;
                all_ones = true;
            } else {
                node = usize::from(next);
            }
        }
    }
    if pending_bits > 7 || !all_ones {
        return Err(HpackError::Huffman);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Huffman-encodes `input` (test-side encoder, pads with EOS bits).
    pub(crate) fn huffman_encode(input: &[u8]) -> Vec<u8> {
        let codes = huffman_codes();
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &b in input {
            let (code, len) = codes[usize::from(b)];
            acc = acc << len | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits) | (0xff >> bits)) as u8);
        }
        out
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode_all(decoder: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
        let mut fields = Vec::new();
        decoder.decode(block, |n, v| fields.push((n.to_vec(), v.to_vec())))?;
        Ok(fields)
    }

    #[test]
    fn huffman_code_is_complete_and_prefix_free() {
        let kraft: f64 = huffman_codes()
            .iter()
            .map(|&(_, len)| 0.5f64.powi(i32::from(len)))
            .sum();
        assert_eq!(kraft, 1.0);
        assert_eq!(huffman_codes()[usize::from(EOS)], (0x3fff_ffff, 30));
        assert_eq!(huffman_tree().len(), 256);
    }

    #[test]
    fn huffman_matches_rfc7541_appendix_c4() {
        let encoded = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(huffman_encode(b"www.example.com"), encoded);
        let mut out = Vec::new();
        huffman_decode(&encoded, &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
    }

    #[test]
    fn huffman_agrees_with_loona_hpack_for_every_symbol() {
        let mut oracle = loona_hpack::huffman::HuffmanDecoder::new();
        for symbol in 0..=255u8 {
            let input = [b'a', symbol, symbol, b'z'];
            let encoded = huffman_encode(&input);
            assert_eq!(oracle.decode(&encoded).unwrap(), input, "symbol {symbol}");
            let mut out = Vec::new();
            huffman_decode(&encoded, &mut out).unwrap();
            assert_eq!(out, input);
        }
    }

    #[test]
    fn huffman_rejects_bad_padding_and_eos() {
        let mut out = Vec::new();
        // '0' is 00000: three padding bits must be ones.
        assert_eq!(
            huffman_decode(&[0b0000_0110], &mut out),
            Err(HpackError::Huffman)
        );
        assert_eq!(huffman_decode(&[0b0000_0111], &mut out), Ok(()));
        // A whole byte of padding is too long.
        assert_eq!(
            huffman_decode(&[0x07, 0xff], &mut out),
            Err(HpackError::Huffman)
        );
        // EOS itself (30 ones) must not appear.
        assert_eq!(
            huffman_decode(&[0xff; 4], &mut out),
            Err(HpackError::Huffman)
        );
    }

    #[test]
    fn static_table_agrees_with_loona_hpack() {
        let mut oracle = loona_hpack::Decoder::new();
        let mut ours = Decoder::new(4096);
        for index in 1..=61u8 {
            assert_eq!(
                decode_all(&mut ours, &[0x80 | index]).unwrap(),
                oracle.decode(&[0x80 | index]).unwrap(),
                "index {index}"
            );
        }
        assert_eq!(decode_all(&mut ours, &[0x80]), Err(HpackError::BadIndex(0)));
        assert_eq!(
            decode_all(&mut ours, &[0x80 | 62]),
            Err(HpackError::BadIndex(62))
        );
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman_and_dynamic_table() {
        // RFC 7541 Appendix C.4.1–C.4.3: three requests on one connection.
        let blocks: [&[u8]; 3] = [
            &[
                0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
                0x90, 0xf4, 0xff,
            ],
            &[
                0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
            ],
            &[
                0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
                0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
            ],
        ];
        let mut ours = Decoder::new(4096);
        let mut oracle = loona_hpack::Decoder::new();
        for block in blocks {
            assert_eq!(
                decode_all(&mut ours, block).unwrap(),
                oracle.decode(block).unwrap()
            );
        }
        assert_eq!(ours.table.size, 164);
        let first = decode_all(&mut Decoder::new(4096), blocks[0]).unwrap();
        assert_eq!(
            first[3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
    }

    #[test]
    fn eviction_and_size_updates() {
        let mut d = Decoder::new(4096);
        // Size update to 100, then two 51-byte entries: the first is evicted.
        let mut block = vec![0x3f, 100 - 31];
        for value in [b"abcdefghijklmnopqr", b"stuvwxyz0123456789"] {
            block.extend([0x40, 1, b'x', 18]);
            block.extend(value);
        }
        decode_all(&mut d, &block).unwrap();
        assert_eq!(d.table.entries.len(), 1);
        assert_eq!(
            decode_all(&mut d, &[0x80 | 62]).unwrap(),
            [(b"x".to_vec(), b"stuvwxyz0123456789".to_vec())]
        );
        // An entry larger than the table empties it.
        let mut block = vec![0x40, 1, b'y', 100];
        block.extend([b'v'; 100]);
        decode_all(&mut d, &block).unwrap();
        assert!(d.table.entries.is_empty());
        assert_eq!(d.table.size, 0);
        // Growing beyond the allowed maximum is refused.
        assert_eq!(
            decode_all(&mut Decoder::new(4096), &[0x3f, 0xe2, 0x1f]),
            Err(HpackError::TableSizeTooLarge(4097))
        );
    }

    #[test]
    fn truncated_and_overlong_input_is_refused() {
        let mut d = Decoder::new(4096);
        assert_eq!(decode_all(&mut d, &[0xff]), Err(HpackError::Truncated));
        assert_eq!(
            decode_all(&mut d, &[0x00, 0x05, b'a']),
            Err(HpackError::Truncated)
        );
        assert_eq!(decode_all(&mut d, &[0x00]), Err(HpackError::Truncated));
        assert_eq!(
            decode_all(&mut d, &[0xff, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(HpackError::IntegerOverflow)
        );
    }

    #[test]
    fn encoded_fields_decode_to_themselves() {
        let long = "m".repeat(300);
        let mut block = Vec::new();
        block.push(0x80 | STATUS_200 as u8);
        put_field_indexed_name(&mut block, CONTENT_TYPE_NAME, b"application/grpc");
        put_field(&mut block, b"grpc-status", b"13");
        put_field(&mut block, b"grpc-message", long.as_bytes());
        let mut decoder = Decoder::new(4096);
        let fields = decode_all(&mut decoder, &block).unwrap();
        let want: Fields = [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "13"),
            ("grpc-message", long.as_str()),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(fields, want);
        // An independent decoder agrees.
        let mut oracle = loona_hpack::Decoder::new();
        let theirs = oracle.decode(&block).unwrap();
        assert_eq!(theirs.len(), 4);
        assert_eq!(theirs[3].1, long.as_bytes());
    }
}
