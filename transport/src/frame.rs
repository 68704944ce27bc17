//! Wire format: every frame is `[len: u32 big-endian][version: u8][kind: u8][payload: len bytes]`.
//!
//! Payloads of messages, snapshot metadata and control frames are bincode 2 (`standard()` configuration,
//! serde). Snapshot chunks carry raw bytes. A frame whose length exceeds the configured maximum, whose
//! version is unknown, whose kind is unknown or whose payload does not decode is an error: the connection
//! carrying it is closed. The length is checked before anything is allocated, and decoding is bounded
//! by a bincode limit proportional to the frame size, so a hostile frame cannot make us allocate much.

use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Error, MemberId, Result};

/// The wire format version carried by every frame.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes before the payload: length, version, kind.
pub const HEADER_LEN: usize = 6;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// First frame of every stream, from the dialing side: a [`Hello`].
    Hello = 1,
    /// The accepting side's answer to a [`Hello`]: a [`Verdict`].
    HelloAck = 2,
    /// One raft message.
    Message = 3,
    /// Snapshot metadata (one message), opens a snapshot stream.
    SnapshotMeta = 4,
    /// Raw snapshot bytes.
    SnapshotChunk = 5,
    /// End of snapshot: the total byte count (u64).
    SnapshotEnd = 6,
    /// The receiver's answer to a complete snapshot: a [`Verdict`].
    SnapshotAck = 7,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Hello,
            2 => Self::HelloAck,
            3 => Self::Message,
            4 => Self::SnapshotMeta,
            5 => Self::SnapshotChunk,
            6 => Self::SnapshotEnd,
            7 => Self::SnapshotAck,
            _ => return None,
        })
    }
}

/// Which kind of stream a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamKind {
    /// The long-lived, ordered stream of raft messages from the dialer to the acceptor.
    Raft,
    /// One snapshot, streamed in chunks.
    Snapshot,
}

/// The first frame of every stream: who is speaking, to whom, in which cluster, for what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The cluster of the dialer.
    pub cluster_id: u64,
    /// The dialing member.
    pub from: MemberId,
    /// The member the dialer believes it reached.
    pub to: MemberId,
    /// What the stream carries.
    pub stream: StreamKind,
}

/// An accept/refuse answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Accepted?
    pub ok: bool,
    /// Why not.
    pub reason: String,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends one frame with a bincode payload to `buf`. Returns the frame's size in bytes.
pub fn encode_frame<T: Serialize + ?Sized>(
    buf: &mut BytesMut,
    kind: FrameKind,
    value: &T,
    max_frame_bytes: usize,
) -> Result<usize> {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, FORMAT_VERSION, kind as u8]);
    let encoded =
        bincode::serde::encode_into_std_write(value, &mut (&mut *buf).writer(), bincode_config());
    if let Err(e) = encoded {
        buf.truncate(start);
        return Err(Error::Codec(e.to_string()));
    }
    let len = buf.len() - start - HEADER_LEN;
    if len > max_frame_bytes {
        buf.truncate(start);
        return Err(Error::Frame(format!(
            "outgoing frame of {len} bytes exceeds the maximum of {max_frame_bytes}"
        )));
    }
    buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(len + HEADER_LEN)
}

/// The header of a frame carrying `len` raw payload bytes (snapshot chunks).
pub fn raw_header(kind: FrameKind, len: usize) -> [u8; HEADER_LEN] {
    let l = (len as u32).to_be_bytes();
    [l[0], l[1], l[2], l[3], FORMAT_VERSION, kind as u8]
}

/// Decodes a bincode payload, with allocation bounded to 16 × the payload size (at least 64 KiB).
///
/// Through serde, sequences preallocate cautiously (serde caps size hints) and grow as elements
/// actually decode; byte strings and strings are claimed against bincode's limit before they are
/// allocated. A valid payload never needs more than its own length for those, so the limit only
/// ever stops hostile length prefixes.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    macro_rules! try_limit {
        ($($lim:expr),*) => {{
            let want = payload.len().saturating_mul(16);
            $(
                if want <= $lim {
                    return finish(bincode::serde::decode_from_slice(
                        payload,
                        bincode_config().with_limit::<{ $lim }>(),
                    ));
                }
            )*
            Err(Error::Frame(format!("payload of {} bytes is too large to decode", payload.len())))
        }};
    }
    fn finish<T>(r: std::result::Result<(T, usize), bincode::error::DecodeError>) -> Result<T> {
        match r {
            Ok((v, _)) => Ok(v),
            Err(e) => Err(Error::Codec(e.to_string())),
        }
    }
    try_limit!(1 << 16, 1 << 20, 1 << 24, 1 << 28, 1 << 32)
}

/// Checks a frame header: its version, kind and length (against `max_frame_bytes`).
pub(crate) fn parse_header(
    header: &[u8; HEADER_LEN],
    max_frame_bytes: usize,
) -> Result<(FrameKind, usize)> {
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if header[4] != FORMAT_VERSION {
        return Err(Error::Frame(format!(
            "unknown format version {}",
            header[4]
        )));
    }
    let kind = FrameKind::from_u8(header[5])
        .ok_or_else(|| Error::Frame(format!("unknown frame kind {}", header[5])))?;
    if len > max_frame_bytes {
        return Err(Error::Frame(format!(
            "frame of {len} bytes exceeds the maximum of {max_frame_bytes}"
        )));
    }
    Ok((kind, len))
}

/// Reads frames from a byte stream, refusing any larger than the maximum before allocating.
pub struct FrameReader<R> {
    inner: R,
    max_frame_bytes: usize,
    payload: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a (preferably buffered) reader.
    pub fn new(inner: R, max_frame_bytes: usize) -> Self {
        Self {
            inner,
            max_frame_bytes,
            payload: Vec::new(),
        }
    }

    /// Reads a header. `Ok(None)` on a clean end of stream before any header byte.
    pub async fn read_header(&mut self) -> Result<Option<(FrameKind, usize)>> {
        let mut header = [0u8; HEADER_LEN];
        let first = self.inner.read(&mut header[..]).await?;
        if first == 0 {
            return Ok(None);
        }
        if first < HEADER_LEN {
            self.inner
                .read_exact(&mut header[first..])
                .await
                .map_err(|e| Error::Frame(format!("truncated frame header: {e}")))?;
        }
        parse_header(&header, self.max_frame_bytes).map(Some)
    }

    /// Reads a payload of `len` bytes (as announced by [`Self::read_header`]) into the reused buffer.
    pub async fn read_payload(&mut self, len: usize) -> Result<&[u8]> {
        self.payload.clear();
        self.payload.resize(len, 0);
        self.inner
            .read_exact(&mut self.payload)
            .await
            .map_err(|e| Error::Frame(format!("truncated frame: {e}")))?;
        if self.payload.capacity() > (1 << 20) && len < (1 << 16) {
            self.payload.shrink_to(1 << 16);
        }
        Ok(&self.payload)
    }

    /// Reads one whole frame, which must be of kind `want`, and decodes it.
    pub async fn read_expected<T: DeserializeOwned>(&mut self, want: FrameKind) -> Result<T> {
        let len = expect_kind(self.read_header().await?, want)?;
        let payload = self.read_payload(len).await?;
        decode_payload(payload)
    }

    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// The payload length of a frame header read where a frame of kind `want` must come.
pub(crate) fn expect_kind(header: Option<(FrameKind, usize)>, want: FrameKind) -> Result<usize> {
    let (kind, len) =
        header.ok_or_else(|| Error::Frame(format!("stream ended before {want:?}")))?;
    if kind != want {
        return Err(Error::Frame(format!("expected {want:?}, got {kind:?}")));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, FrameKind::Message, &("hello", 7u64), 1024).unwrap();
        encode_frame(&mut buf, FrameKind::Message, &vec![1u32, 2, 3], 1024).unwrap();
        let mut r = FrameReader::new(&buf[..], 1024);
        let (k, len) = r.read_header().await.unwrap().unwrap();
        assert_eq!(k, FrameKind::Message);
        let v: (String, u64) = decode_payload(r.read_payload(len).await.unwrap()).unwrap();
        assert_eq!(v, ("hello".to_string(), 7));
        let v: Vec<u32> = r.read_expected(FrameKind::Message).await.unwrap();
        assert_eq!(v, vec![1, 2, 3]);
        assert!(r.read_header().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_and_bad_headers_are_refused() {
        let big = raw_header(FrameKind::Message, 2048);
        let mut r = FrameReader::new(&big[..], 1024);
        assert!(matches!(r.read_header().await, Err(Error::Frame(_))));
        let mut bad = raw_header(FrameKind::Message, 1);
        bad[4] = 99;
        let mut r = FrameReader::new(&bad[..], 1024);
        assert!(matches!(r.read_header().await, Err(Error::Frame(_))));
        let mut bad = raw_header(FrameKind::Message, 1);
        bad[5] = 200;
        let mut r = FrameReader::new(&bad[..], 1024);
        assert!(matches!(r.read_header().await, Err(Error::Frame(_))));
        let trunc = &raw_header(FrameKind::Message, 10)[..3];
        let mut r = FrameReader::new(trunc, 1024);
        assert!(matches!(r.read_header().await, Err(Error::Frame(_))));
    }

    #[test]
    fn compact_messages_with_large_in_memory_size_decode() {
        // 10 000 one-byte variants of a 264-byte enum: far more memory than 16 × the wire size.
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[allow(clippy::large_enum_variant)] // the point of the test
        enum Entry {
            Empty,
            Wide([u64; 32]),
        }
        let msg: Vec<Entry> = (0..10_000).map(|_| Entry::Empty).collect();
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, FrameKind::Message, &msg, 1 << 20).unwrap();
        let back: Vec<Entry> = decode_payload(&buf[HEADER_LEN..]).unwrap();
        assert_eq!(back, msg);
        assert_eq!(
            decode_payload::<Entry>(&[1; 33]).unwrap(),
            Entry::Wide([1; 32])
        );
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // A tiny payload claiming a 2^40-byte vector: refused by the limit, not allocated.
        let mut payload = vec![253u8];
        payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            decode_payload::<Vec<u8>>(&payload),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            decode_payload::<String>(&payload),
            Err(Error::Codec(_))
        ));
        assert!(decode_payload::<(u64, String)>(&[1, 2, 3]).is_err());
    }
}
