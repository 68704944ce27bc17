//! Frame building, parsing and reader helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use h2_authority_fix::AuthorityFix;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes etcdctl 3.4.23 sent for `etcdctl --endpoints=http://127.0.0.1:38479
/// endpoint status` to a listener that answered with an empty SETTINGS
/// frame: preface, SETTINGS, SETTINGS ack, HEADERS (Huffman strings,
/// incremental indexing, `:authority: http://127.0.0.1:38479`), DATA.
pub const ETCDCTL_CAPTURE: &[u8] = include_bytes!("../../testdata/etcdctl-3.4-endpoint-status.bin");

/// Two requests encoded by an independent HPACK encoder (Python `hpack`
/// 4.2, as grpc-go does: Huffman strings, incremental indexing); the second
/// names `:authority` only by its dynamic-table index.
pub const HUFFMAN_INDEXED_REQUESTS: [&str; 2] = [
    "8386449060a924882d9dcb6571af9b8b1b4754c5418f9d29aee30c044eae05c0b86e09975f5f8b1d75d0620d263d4c\
     4d65647a8a9acac8b4c7602b89c5c14082497f864d833505b11f40899acac8b24d494f6a7f8669f7df7c41b7",
    "8386c3c2c1c0bf7e8669f7df79d66d",
];

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// One frame on the wire.
pub fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
    pub payload: Vec<u8>,
}

/// Splits a byte string into frames; panics on a truncated frame.
pub fn parse_frames(mut wire: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        assert!(wire.len() >= 9, "truncated frame header");
        let len = usize::from(wire[0]) << 16 | usize::from(wire[1]) << 8 | usize::from(wire[2]);
        let f = Frame {
            kind: wire[3],
            flags: wire[4],
            stream_id: u32::from_be_bytes(wire[5..9].try_into().unwrap()) & 0x7fff_ffff,
            payload: wire[9..9 + len].to_vec(),
        };
        wire = &wire[9 + len..];
        frames.push(f);
    }
    frames
}

pub fn from_hex(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

pub type HeaderList = Vec<(String, String)>;

/// Decodes a block that must not depend on any previous block (what the
/// wrapper promises for its output).
pub fn decode_fresh(block: &[u8]) -> HeaderList {
    to_strings(
        loona_hpack::Decoder::new()
            .decode(block)
            .expect("fresh decode"),
    )
}

pub fn to_strings(list: Vec<(Vec<u8>, Vec<u8>)>) -> HeaderList {
    list.into_iter()
        .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

pub fn headers(list: &[(&str, &str)]) -> HeaderList {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Encodes every field as "literal with incremental indexing, new name"
/// (raw strings), so each one enters the client's dynamic table.
pub fn encode_indexing(list: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in list {
        out.push(0x40);
        for s in [name, value] {
            encode_int7(&mut out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Refers to every field of a block produced by [`encode_indexing`] by its
/// dynamic-table index (the newest entry is 62).
pub fn encode_indexed_repeat(field_count: usize) -> Vec<u8> {
    (0..field_count)
        .map(|i| 0x80 | u8::try_from(62 + field_count - 1 - i).unwrap())
        .collect()
}

fn encode_int7(out: &mut Vec<u8>, mut value: usize) {
    if value < 127 {
        out.push(value as u8);
        return;
    }
    out.push(127);
    value -= 127;
    while value >= 128 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Encodes with loona's encoder (incremental indexing only for names in no
/// table, no Huffman).
pub fn encode(encoder: &mut loona_hpack::Encoder<'_>, list: &[(&str, &str)]) -> Vec<u8> {
    encoder.encode(list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

/// A reader that hands out its input in the given chunks, returning
/// `Pending` (after waking) before each chunk.
pub struct ChunkedReader {
    chunks: VecDeque<Vec<u8>>,
    ready: bool,
}

impl ChunkedReader {
    pub fn new(chunks: impl IntoIterator<Item = Vec<u8>>) -> Self {
        ChunkedReader {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            ready: false,
        }
    }

    pub fn split_at(input: &[u8], at: usize) -> Self {
        Self::new([input[..at].to_vec(), input[at..].to_vec()])
    }

    pub fn bytewise(input: &[u8]) -> Self {
        Self::new(input.iter().map(|&b| vec![b]))
    }
}

impl AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        if let Some(chunk) = self.chunks.front_mut() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.chunks.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads the wrapper to EOF through a caller buffer of `read_size` bytes.
pub async fn read_all<R: AsyncRead + Unpin>(reader: R, read_size: usize) -> io::Result<Vec<u8>> {
    let mut fixed = AuthorityFix::new(reader);
    let mut out = Vec::new();
    let mut buf = vec![0; read_size];
    loop {
        let n = fixed.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

pub fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs the wrapper over `input` delivered in one piece.
pub fn rewrite(input: &[u8]) -> io::Result<Vec<u8>> {
    run(read_all(input, 64 * 1024))
}

/// The `h2_authority_fix::Error` inside an I/O error from the wrapper.
pub fn fix_error(e: &io::Error) -> h2_authority_fix::Error {
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<h2_authority_fix::Error>())
        .cloned()
        .unwrap_or_else(|| panic!("not an h2_authority_fix::Error: {e:?}"))
}
