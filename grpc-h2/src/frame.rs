//! HTTP/2 framing (RFC 9113 §4 and §6): frame headers, types, flags, settings and error codes.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header.
pub(crate) const HEADER_LEN: usize = 9;

/// The initial and minimum SETTINGS_MAX_FRAME_SIZE. We never advertise more, so no frame we
/// accept is larger, and we send at most this much per frame unless the peer allows more.
pub(crate) const DEFAULT_MAX_FRAME: usize = 16_384;

/// The initial flow-control window of a connection and of each stream (RFC 9113 §6.9.2).
pub(crate) const DEFAULT_WINDOW: i64 = 65_535;

/// The largest flow-control window (RFC 9113 §6.9.1).
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;

pub(crate) const TYPE_DATA: u8 = 0x0;
pub(crate) const TYPE_HEADERS: u8 = 0x1;
pub(crate) const TYPE_PRIORITY: u8 = 0x2;
pub(crate) const TYPE_RST_STREAM: u8 = 0x3;
pub(crate) const TYPE_SETTINGS: u8 = 0x4;
pub(crate) const TYPE_PUSH_PROMISE: u8 = 0x5;
pub(crate) const TYPE_PING: u8 = 0x6;
pub(crate) const TYPE_GOAWAY: u8 = 0x7;
pub(crate) const TYPE_WINDOW_UPDATE: u8 = 0x8;
pub(crate) const TYPE_CONTINUATION: u8 = 0x9;

pub(crate) const FLAG_ACK: u8 = 0x1;
pub(crate) const FLAG_END_STREAM: u8 = 0x1;
pub(crate) const FLAG_END_HEADERS: u8 = 0x4;
pub(crate) const FLAG_PADDED: u8 = 0x8;
pub(crate) const FLAG_PRIORITY: u8 = 0x20;

/// Length of the PRIORITY fields of a HEADERS frame (exclusive bit, stream dependency, weight).
const PRIORITY_LEN: usize = 5;

pub(crate) const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub(crate) const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub(crate) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(crate) const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// Error codes of RST_STREAM and GOAWAY (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Reason {
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
}

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
}

/// Appends a frame header; `len` must fit in 24 bits.
pub(crate) fn write_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream_id: u32) {
    debug_assert!(len < 1 << 24);
    let l = (len as u32).to_be_bytes();
    out.extend_from_slice(&[l[1], l[2], l[3], kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

/// Appends a whole frame.
pub(crate) fn write_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
    write_header(out, payload.len(), kind, flags, stream_id);
    out.extend_from_slice(payload);
}

/// Appends a SETTINGS frame carrying `entries` (identifier, value).
pub(crate) fn write_settings(out: &mut Vec<u8>, entries: &[(u16, u32)]) {
    let mut payload = Vec::with_capacity(6 * entries.len());
    for (id, value) in entries {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    write_frame(out, TYPE_SETTINGS, 0, 0, &payload);
}

/// Appends a WINDOW_UPDATE granting `increment` bytes on `stream_id` (0: the connection).
pub(crate) fn write_window_update(out: &mut Vec<u8>, stream_id: u32, increment: u32) {
    write_frame(
        out,
        TYPE_WINDOW_UPDATE,
        0,
        stream_id,
        &increment.to_be_bytes(),
    );
}

/// Strips the padding of a DATA or HEADERS payload and, for HEADERS, the priority fields.
/// `None` if they do not fit in the payload.
pub(crate) fn unpad(flags: u8, payload: &[u8], headers: bool) -> Option<&[u8]> {
    let mut rest = payload;
    let pad = if flags & FLAG_PADDED != 0 {
        let (&pad, tail) = rest.split_first()?;
        rest = tail;
        usize::from(pad)
    } else {
        0
    };
    if headers && flags & FLAG_PRIORITY != 0 {
        rest = rest.get(PRIORITY_LEN..)?;
    }
    rest.get(..rest.len().checked_sub(pad)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_round_trips_and_ignores_reserved_bit() {
        let mut out = Vec::new();
        write_header(&mut out, 0x01_02_03, 7, 0x25, 0x7fff_fffe);
        assert_eq!(out, [1, 2, 3, 7, 0x25, 0x7f, 0xff, 0xff, 0xfe]);
        let mut wire: [u8; 9] = out.try_into().unwrap();
        wire[5] |= 0x80;
        let h = FrameHeader::parse(&wire);
        assert_eq!(
            (h.len, h.kind, h.flags, h.stream_id),
            (0x01_02_03, 7, 0x25, 0x7fff_fffe)
        );
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let payload = [2, 0x80, 0, 0, 3, 15, b'a', b'b', 0, 0];
        assert_eq!(
            unpad(FLAG_PADDED | FLAG_PRIORITY, &payload, true),
            Some(&b"ab"[..])
        );
        assert_eq!(unpad(0, b"xyz", true), Some(&b"xyz"[..]));
        // DATA frames have no priority fields, whatever the flag says.
        assert_eq!(unpad(FLAG_PRIORITY, b"xyz", false), Some(&b"xyz"[..]));
        assert_eq!(unpad(FLAG_PADDED, &[2, 0, 0], false), Some(&b""[..]));
    }

    #[test]
    fn overlong_padding_and_short_priority_are_refused() {
        assert!(unpad(FLAG_PADDED, &[], false).is_none());
        assert!(unpad(FLAG_PADDED, &[3, 1, 2], false).is_none());
        assert!(unpad(FLAG_PRIORITY, &[0, 0, 0, 1], true).is_none());
        assert!(unpad(FLAG_PADDED | FLAG_PRIORITY, &[1, 0, 0, 0, 0, 1], true).is_none());
    }
}
