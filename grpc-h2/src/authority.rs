//! etcdctl 3.4 sends some calls with a URL as the HTTP/2 `:authority`
//! (`http://127.0.0.1:2379`, grpc-go 1.26 dialing the endpoint string as the target).
//! grpc-go servers accept it; h2 resets such streams with PROTOCOL_ERROR and has no switch
//! to allow it (hyperium/h2#525). [`AuthorityFix`] sits between the socket and h2 and repairs
//! it before h2 parses the headers.
//!
//! A grpc-go client uses one authority for every call of a connection, so the first header
//! block decides: if its authority is fine, the connection passes through untouched from
//! then on, and all the fix ever cost was decoding that block. If it is URL-shaped, every
//! header block of the connection is decoded (with the client's HPACK table) and encoded
//! again with `scheme://` stripped, by an encoder whose table mirrors h2's decoder.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sniff::PREFACE;

const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// Largest header block (compressed, or decoded) the fix handles. A first block beyond it is
/// passed on untouched for h2 to judge; on a connection being rewritten it ends the
/// connection.
const MAX_BLOCK: usize = 64 << 10;

/// HPACK table size h2 announces (its default), so the client's table is no larger.
const HEADER_TABLE_SIZE: usize = 4096;

/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which the server keeps.
const MAX_FRAME: usize = 16 << 10;

enum State {
    /// Looking for the first header block.
    Inspecting,
    /// Every byte passes straight through.
    Passthrough,
    /// Every header block is decoded and encoded again.
    Rewriting {
        decoder: Box<loona_hpack::Decoder<'static>>,
        encoder: Box<loona_hpack::Encoder<'static>>,
    },
}

/// A connection whose HTTP/2 request headers get a plain `host:port` authority.
pub struct AuthorityFix<IO> {
    io: IO,
    state: State,
    /// Bytes read from `io` and not yet looked at.
    input: BytesMut,
    /// Bytes ready for the reader (h2).
    output: BytesMut,
    preface_seen: bool,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> Self {
        AuthorityFix {
            io,
            state: State::Inspecting,
            input: BytesMut::new(),
            output: BytesMut::new(),
            preface_seen: false,
        }
    }

    /// Moves every complete frame (header blocks whole) from `input` to `output`.
    fn process(&mut self) -> io::Result<()> {
        if !self.preface_seen {
            if self.input.len() < PREFACE.len() {
                return Ok(());
            }
            self.output
                .extend_from_slice(&self.input.split_to(PREFACE.len()));
            self.preface_seen = true;
        }
        loop {
            if matches!(self.state, State::Passthrough) {
                self.output.extend_from_slice(&self.input.split());
                return Ok(());
            }
            let Some(head) = FrameHead::parse(&self.input) else {
                return Ok(());
            };
            if head.kind != TYPE_HEADERS {
                if self.input.len() < FRAME_HEADER_LEN + head.len {
                    return Ok(());
                }
                let frame = self.input.split_to(FRAME_HEADER_LEN + head.len);
                self.output.extend_from_slice(&frame);
                continue;
            }
            let Some(block) = HeaderBlock::collect(&self.input) else {
                if self.input.len() > MAX_BLOCK + 4 * FRAME_HEADER_LEN {
                    return self.too_large();
                }
                return Ok(());
            };
            self.rewrite(block)?;
        }
    }

    fn too_large(&mut self) -> io::Result<()> {
        match self.state {
            State::Rewriting { .. } => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a header block larger than 64 KiB",
            )),
            _ => {
                self.state = State::Passthrough;
                self.process()
            }
        }
    }

    fn rewrite(&mut self, block: HeaderBlock) -> io::Result<()> {
        let raw = self.input.split_to(block.wire_len);
        if let State::Inspecting = self.state {
            let mut decoder = Box::new(loona_hpack::Decoder::new());
            decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
            let fields = decode(&mut decoder, &block.fragment);
            match fields {
                Some(fields) if needs_fix(&fields) => {
                    self.state = State::Rewriting {
                        decoder,
                        encoder: Box::new(loona_hpack::Encoder::new()),
                    };
                    return self.emit(block, fields);
                }
                // Well-formed or not, h2 judges the original bytes.
                _ => {
                    self.output.extend_from_slice(&raw);
                    self.state = State::Passthrough;
                    return Ok(());
                }
            }
        }
        let State::Rewriting { decoder, .. } = &mut self.state else {
            return Ok(());
        };
        let fields = decode(decoder, &block.fragment).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "an undecodable header block")
        })?;
        self.emit(block, fields)
    }

    /// Writes `fields` (authority fixed) as a header block on the block's stream.
    fn emit(&mut self, block: HeaderBlock, fields: Vec<(Vec<u8>, Vec<u8>)>) -> io::Result<()> {
        let State::Rewriting { encoder, .. } = &mut self.state else {
            return Ok(());
        };
        let fields: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| {
                let v = if is_authority(n) { strip_scheme(v) } else { v };
                (&n[..], v)
            })
            .collect();
        let encoded = encoder.encode(fields);
        let mut chunks = encoded.chunks(MAX_FRAME).peekable();
        let mut kind = TYPE_HEADERS;
        let mut flags = block.flags & FLAG_END_STREAM;
        if chunks.peek().is_none() {
            write_frame(
                &mut self.output,
                kind,
                flags | FLAG_END_HEADERS,
                block.stream,
                &[],
            );
        }
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_none() {
                flags |= FLAG_END_HEADERS;
            }
            write_frame(&mut self.output, kind, flags, block.stream, chunk);
            kind = TYPE_CONTINUATION;
            flags = 0;
        }
        Ok(())
    }
}

fn decode(
    decoder: &mut loona_hpack::Decoder<'static>,
    fragment: &[u8],
) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut fields = Vec::new();
    let mut size = 0;
    decoder
        .decode_with_cb(fragment, |n: Cow<[u8]>, v: Cow<[u8]>| {
            // RFC 9113's size of a field: name, value and 32 bytes.
            size += n.len() + v.len() + 32;
            if size <= MAX_BLOCK {
                fields.push((n.into_owned(), v.into_owned()));
            }
        })
        .ok()?;
    (size <= MAX_BLOCK).then_some(fields)
}

fn is_authority(name: &[u8]) -> bool {
    name == b":authority" || name == b"host"
}

fn needs_fix(fields: &[(Vec<u8>, Vec<u8>)]) -> bool {
    fields
        .iter()
        .any(|(n, v)| is_authority(n) && strip_scheme(v).len() != v.len())
}

/// `scheme://host:port[/...]` → `host:port`; anything else stays as it is.
fn strip_scheme(value: &[u8]) -> &[u8] {
    let Some(at) = value.windows(3).position(|w| w == b"://") else {
        return value;
    };
    let scheme = &value[..at];
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
    {
        return value;
    }
    let rest = &value[at + 3..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    &rest[..end]
}

struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(input: &[u8]) -> Option<FrameHead> {
        let h = input.get(..FRAME_HEADER_LEN)?;
        Some(FrameHead {
            len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }
}

/// A HEADERS frame and its CONTINUATIONs, complete at the front of the input.
struct HeaderBlock {
    stream: u32,
    flags: u8,
    fragment: Vec<u8>,
    /// Bytes the frames take on the wire.
    wire_len: usize,
}

impl HeaderBlock {
    /// The whole block, or `None` while frames are missing. A malformed block (padding
    /// beyond the frame, a frame other than CONTINUATION inside it) is returned as it is
    /// with an empty fragment, so it passes on to h2, which refuses it.
    fn collect(input: &[u8]) -> Option<HeaderBlock> {
        let first = FrameHead::parse(input)?;
        let mut at = FRAME_HEADER_LEN + first.len;
        let payload = input.get(FRAME_HEADER_LEN..at)?;
        let mut fragment = headers_fragment(payload, first.flags)
            .unwrap_or_default()
            .to_vec();
        let mut flags = first.flags;
        while flags & FLAG_END_HEADERS == 0 {
            let next = FrameHead::parse(&input[at..])?;
            let end = at + FRAME_HEADER_LEN + next.len;
            let payload = input.get(at + FRAME_HEADER_LEN..end)?;
            if next.kind != TYPE_CONTINUATION || next.stream != first.stream {
                fragment.clear();
                break;
            }
            fragment.extend_from_slice(payload);
            flags |= next.flags & FLAG_END_HEADERS;
            at = end;
        }
        Some(HeaderBlock {
            stream: first.stream,
            flags: first.flags,
            fragment,
            wire_len: at,
        })
    }
}

/// The header block fragment of a HEADERS payload, without padding and priority fields.
fn headers_fragment(payload: &[u8], flags: u8) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0;
    if flags & FLAG_PADDED != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    if flags & FLAG_PRIORITY != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

fn write_frame(out: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
    out.extend_from_slice(payload);
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Passthrough) && this.input.is_empty() {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 16 << 10];
            let mut read = ReadBuf::new(&mut chunk);
            futures::ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client closed: what is left goes to h2 as it is.
                let rest = this.input.split();
                this.output.extend_from_slice(&rest);
                if this.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.input.extend_from_slice(read.filled());
            this.process()?;
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn only_url_shaped_authorities_lose_their_scheme() {
        assert_eq!(strip_scheme(b"http://127.0.0.1:2379"), b"127.0.0.1:2379");
        assert_eq!(strip_scheme(b"https://h:1/x/y"), b"h:1");
        assert_eq!(strip_scheme(b"127.0.0.1:2379"), b"127.0.0.1:2379");
        assert_eq!(strip_scheme(b"://x"), b"://x");
    }

    /// What etcdctl 3.4 sends for `endpoint status --cluster` (captured from a real run).
    #[tokio::test]
    async fn etcdctl_capture_gets_a_plain_authority() {
        let wire = include_bytes!("../testdata/etcdctl-3.4-endpoint-status.bin");
        let mut fixed = AuthorityFix::new(&wire[..]);
        let mut seen = Vec::new();
        fixed.read_to_end(&mut seen).await.unwrap();
        let mut decoder = loona_hpack::Decoder::new();
        let mut authorities = Vec::new();
        let mut rest = &seen[PREFACE.len()..];
        while let Some(head) = FrameHead::parse(rest) {
            let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + head.len];
            if head.kind == TYPE_HEADERS {
                for (n, v) in decoder.decode(payload).unwrap() {
                    if n == b":authority" {
                        authorities.push(String::from_utf8(v).unwrap());
                    }
                }
            }
            rest = &rest[FRAME_HEADER_LEN + head.len..];
        }
        assert!(!authorities.is_empty());
        assert!(
            authorities.iter().all(|a| !a.contains("://")),
            "{authorities:?}"
        );
    }

    #[tokio::test]
    async fn a_plain_authority_passes_through_byte_for_byte() {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.KV/Range"),
        ]);
        let mut wire = PREFACE.to_vec();
        let mut frames = BytesMut::new();
        write_frame(&mut frames, TYPE_HEADERS, FLAG_END_HEADERS, 1, &block);
        write_frame(&mut frames, 0x0, FLAG_END_STREAM, 1, b"data");
        wire.extend_from_slice(&frames);
        let mut fixed = AuthorityFix::new(&wire[..]);
        let mut seen = Vec::new();
        fixed.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, wire);
    }
}
