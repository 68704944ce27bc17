//! The parts of HTTP/2 framing (RFC 9113 §4.1, §6.2, §6.10) this crate needs.

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header.
pub(crate) const HEADER_LEN: usize = 9;

/// Largest frame payload every HTTP/2 peer must accept (the initial and
/// minimum SETTINGS_MAX_FRAME_SIZE); re-encoded header blocks are split at it.
pub(crate) const MAX_OUT_PAYLOAD: usize = 16_384;

pub(crate) const TYPE_HEADERS: u8 = 0x1;
pub(crate) const TYPE_CONTINUATION: u8 = 0x9;

pub(crate) const FLAG_END_STREAM: u8 = 0x1;
pub(crate) const FLAG_END_HEADERS: u8 = 0x4;
pub(crate) const FLAG_PADDED: u8 = 0x8;
pub(crate) const FLAG_PRIORITY: u8 = 0x20;

/// Length of the PRIORITY fields of a HEADERS frame (exclusive bit, stream
/// dependency, weight).
pub(crate) const PRIORITY_LEN: usize = 5;

/// A decoded 9-byte frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
}

impl FrameHeader {
    pub(crate) fn parse(b: &[u8; HEADER_LEN]) -> Self {
        FrameHeader {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// Appends the wire form; `len` must fit in 24 bits.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        debug_assert!(self.len < 1 << 24);
        let len = (self.len as u32).to_be_bytes();
        out.extend_from_slice(&[len[1], len[2], len[3], self.kind, self.flags]);
        out.extend_from_slice(&self.stream_id.to_be_bytes());
    }
}

/// The header-block-relevant content of a HEADERS frame payload.
pub(crate) struct HeadersPayload<'a> {
    pub priority: Option<[u8; PRIORITY_LEN]>,
    pub fragment: &'a [u8],
}

/// Splits a HEADERS payload into PRIORITY fields and the header block
/// fragment, dropping padding. `None` if the padding or priority fields do
/// not fit in the payload.
pub(crate) fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<HeadersPayload<'_>> {
    let mut rest = payload;
    let pad = if flags & FLAG_PADDED != 0 {
        let (&pad, tail) = rest.split_first()?;
        rest = tail;
        usize::from(pad)
    } else {
        0
    };
    let priority = if flags & FLAG_PRIORITY != 0 {
        let fields: [u8; PRIORITY_LEN] = rest.get(..PRIORITY_LEN)?.try_into().ok()?;
        rest = &rest[PRIORITY_LEN..];
        Some(fields)
    } else {
        None
    };
    let fragment = rest.get(..rest.len().checked_sub(pad)?)?;
    Some(HeadersPayload { priority, fragment })
}

/// Appends `block` as one HEADERS frame with END_HEADERS, or a HEADERS frame
/// followed by CONTINUATION frames when it does not fit in
/// [`MAX_OUT_PAYLOAD`]. END_STREAM and PRIORITY are taken from `flags` /
/// `priority`; PADDED is never set.
pub(crate) fn write_header_block(
    out: &mut Vec<u8>,
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; PRIORITY_LEN]>,
    block: &[u8],
) {
    let prio_len = if priority.is_some() { PRIORITY_LEN } else { 0 };
    let (first, mut rest) = block.split_at(block.len().min(MAX_OUT_PAYLOAD - prio_len));
    let mut head_flags = flags & FLAG_END_STREAM;
    if priority.is_some() {
        head_flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        head_flags |= FLAG_END_HEADERS;
    }
    out.reserve(HEADER_LEN * (1 + block.len() / MAX_OUT_PAYLOAD) + prio_len + block.len());
    FrameHeader {
        len: prio_len + first.len(),
        kind: TYPE_HEADERS,
        flags: head_flags,
        stream_id,
    }
    .write(out);
    if let Some(fields) = priority {
        out.extend_from_slice(&fields);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_OUT_PAYLOAD));
        rest = tail;
        FrameHeader {
            len: chunk.len(),
            kind: TYPE_CONTINUATION,
            flags: if rest.is_empty() { FLAG_END_HEADERS } else { 0 },
            stream_id,
        }
        .write(out);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_round_trips_and_ignores_reserved_bit() {
        let h = FrameHeader {
            len: 0x01_02_03,
            kind: 7,
            flags: 0x25,
            stream_id: 0x7fff_fffe,
        };
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out, [1, 2, 3, 7, 0x25, 0x7f, 0xff, 0xff, 0xfe]);
        let mut wire: [u8; 9] = out.try_into().unwrap();
        wire[5] |= 0x80;
        assert_eq!(FrameHeader::parse(&wire), h);
    }

    #[test]
    fn headers_payload_strips_padding_and_keeps_priority() {
        let payload = [2, 0x80, 0, 0, 3, 15, b'a', b'b', 0, 0];
        let p = split_headers_payload(FLAG_PADDED | FLAG_PRIORITY, &payload).unwrap();
        assert_eq!(p.priority, Some([0x80, 0, 0, 3, 15]));
        assert_eq!(p.fragment, b"ab");
        let p = split_headers_payload(0, b"xyz").unwrap();
        assert_eq!((p.priority, p.fragment), (None, &b"xyz"[..]));
    }

    #[test]
    fn headers_payload_rejects_overlong_padding_and_short_priority() {
        assert!(split_headers_payload(FLAG_PADDED, &[]).is_none());
        assert!(split_headers_payload(FLAG_PADDED, &[3, 1, 2]).is_none());
        assert!(split_headers_payload(FLAG_PRIORITY, &[0, 0, 0, 1]).is_none());
        assert!(split_headers_payload(FLAG_PADDED | FLAG_PRIORITY, &[1, 0, 0, 0, 0, 1]).is_none());
        // Padding may consume the whole rest of the payload.
        let p = split_headers_payload(FLAG_PADDED, &[2, 0, 0]).unwrap();
        assert!(p.fragment.is_empty());
    }

    #[test]
    fn large_blocks_are_split_into_continuations() {
        let block = vec![0xaa; MAX_OUT_PAYLOAD * 2 + 10];
        let mut out = Vec::new();
        write_header_block(
            &mut out,
            3,
            FLAG_END_STREAM | FLAG_PADDED,
            Some([0; 5]),
            &block,
        );
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let h = FrameHeader::parse(rest[..HEADER_LEN].try_into().unwrap());
            frames.push(h);
            rest = &rest[HEADER_LEN + h.len..];
        }
        let kinds: Vec<(u8, u8, usize)> = frames.iter().map(|h| (h.kind, h.flags, h.len)).collect();
        assert_eq!(
            kinds,
            [
                (
                    TYPE_HEADERS,
                    FLAG_END_STREAM | FLAG_PRIORITY,
                    MAX_OUT_PAYLOAD
                ),
                (TYPE_CONTINUATION, 0, MAX_OUT_PAYLOAD),
                (TYPE_CONTINUATION, FLAG_END_HEADERS, 15),
            ]
        );
        assert!(frames.iter().all(|h| h.stream_id == 3));
    }
}
