//! The two halves of a peer stream as the engine uses them: owned buffers in both directions, so a
//! transport that keeps what it sends (QUIC retransmits from its send buffer) or hands out what it
//! received (QUIC's reassembled packets) does so without a copy, and frames over those buffers.

use std::collections::VecDeque;
use std::io;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{parse_header, FrameKind, HEADER_LEN};
use crate::{Error, Result};

/// The receiving half of a stream to a peer.
#[async_trait]
pub trait PeerRead: Send + 'static {
    /// The next bytes of the stream, at most `max` (at least 1); `Ok(None)` at its clean end.
    /// Must be cancel safe: the engine polls it in `select!`.
    async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>>;

    /// Appends at most `max` bytes to `buf`, returning how many; 0 at the end of the stream.
    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize>;
}

/// The sending half of a stream to a peer.
#[async_trait]
pub trait PeerWrite: Send + 'static {
    /// Writes every byte of `chunks`, in order. Implementations may keep the buffers.
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> io::Result<()>;

    /// Pushes out anything buffered.
    async fn flush(&mut self) -> io::Result<()>;

    /// Ends the sending direction once everything written has been sent.
    async fn shutdown(&mut self) -> io::Result<()>;
}

/// A stream to a peer, as its two halves.
pub struct PeerStream {
    pub(crate) reader: Box<dyn PeerRead>,
    pub(crate) writer: Box<dyn PeerWrite>,
}

impl PeerStream {
    /// A stream from its halves.
    pub fn new(reader: impl PeerRead, writer: impl PeerWrite) -> Self {
        Self {
            reader: Box::new(reader),
            writer: Box::new(writer),
        }
    }

    /// A stream over one byte stream whose halves cannot be separated (TLS): they share it
    /// through tokio's split.
    pub fn from_io<S: AsyncRead + AsyncWrite + Send + 'static>(io: S) -> Self {
        let (r, w) = tokio::io::split(io);
        Self::new(IoReader::new(r), IoWriter::new(w))
    }
}

/// The largest single read of an [`IoReader`]: a snapshot chunk, as the engine sends them.
const MAX_READ_BYTES: usize = 1 << 20;

/// [`PeerRead`] over an `AsyncRead`: reads into one buffer, reused once the chunks handed out
/// from it are dropped.
pub struct IoReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R> IoReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
        }
    }
}

#[async_trait]
impl<R: AsyncRead + Send + Unpin + 'static> PeerRead for IoReader<R> {
    async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        let max = max.clamp(1, MAX_READ_BYTES);
        self.buf.reserve(max);
        let n = self.inner.read_buf(&mut (&mut self.buf).limit(max)).await?;
        Ok((n > 0).then(|| self.buf.split().freeze()))
    }

    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        buf.reserve(max);
        self.inner.read_buf(&mut buf.limit(max)).await
    }
}

/// [`PeerWrite`] over an `AsyncWrite`.
pub struct IoWriter<W> {
    inner: W,
}

impl<W> IoWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin + 'static> PeerWrite for IoWriter<W> {
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> io::Result<()> {
        for chunk in chunks {
            self.inner.write_all_buf(chunk).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// Buffers lent to a [`PeerWrite`], taken back for reuse once it has let go of them. A stream that
/// keeps what it is handed (QUIC, until acknowledged) would otherwise cost a fresh allocation per
/// write, grown by copying while the write is assembled.
pub(crate) struct Recycler {
    lent: VecDeque<Bytes>,
    max_lent: usize,
}

impl Recycler {
    /// Remembers at most `max_lent` buffers.
    pub(crate) fn new(max_lent: usize) -> Self {
        Self {
            lent: VecDeque::with_capacity(max_lent),
            max_lent,
        }
    }

    /// An empty buffer of at least `capacity` bytes: a returned one if any.
    pub(crate) fn take(&mut self, capacity: usize) -> BytesMut {
        if let Some(i) = self.lent.iter().position(Bytes::is_unique) {
            if let Some(Ok(mut buf)) = self.lent.remove(i).map(Bytes::try_into_mut) {
                buf.clear();
                buf.reserve(capacity);
                return buf;
            }
        }
        BytesMut::with_capacity(capacity)
    }

    /// Freezes `buf` to be written, keeping an eye on it unless it is larger than `max_keep`.
    pub(crate) fn lend(&mut self, buf: BytesMut, max_keep: usize) -> Bytes {
        let buf = buf.freeze();
        if self.lent.len() == self.max_lent {
            self.lent.pop_front();
        }
        if buf.len() <= max_keep {
            self.lent.push_back(buf.clone());
        }
        buf
    }
}

/// How much [`FrameStream`] asks for when it needs more bytes and knows of no frame to finish.
const READ_AHEAD_BYTES: usize = 64 << 10;

/// Reads frames from a [`PeerRead`], refusing any larger than the maximum before allocating.
/// Payloads lying within one received chunk are handed out as slices of it, without a copy.
pub(crate) struct FrameStream {
    inner: Box<dyn PeerRead>,
    pending: Bytes,
    max_frame_bytes: usize,
}

fn truncated(what: &str) -> Error {
    Error::Frame(format!("truncated frame: stream ended in its {what}"))
}

impl FrameStream {
    pub(crate) fn new(inner: Box<dyn PeerRead>, max_frame_bytes: usize) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
            max_frame_bytes,
        }
    }

    /// Reads a header. `Ok(None)` on a clean end of stream before any header byte.
    pub(crate) async fn read_header(&mut self) -> Result<Option<(FrameKind, usize)>> {
        let mut header = [0u8; HEADER_LEN];
        if self.pending.len() >= HEADER_LEN {
            self.pending.copy_to_slice(&mut header);
        } else {
            let mut filled = 0;
            while filled < HEADER_LEN {
                if self.pending.is_empty() {
                    match self.inner.read_chunk(READ_AHEAD_BYTES).await? {
                        Some(chunk) => self.pending = chunk,
                        None if filled == 0 => return Ok(None),
                        None => return Err(truncated("header")),
                    }
                }
                let n = (HEADER_LEN - filled).min(self.pending.len());
                self.pending.copy_to_slice(&mut header[filled..filled + n]);
                filled += n;
            }
        }
        parse_header(&header, self.max_frame_bytes).map(Some)
    }

    /// Reads a payload of `len` bytes (as announced by [`Self::read_header`]).
    pub(crate) async fn read_payload(&mut self, len: usize) -> Result<Bytes> {
        if self.pending.len() >= len {
            return Ok(self.pending.split_to(len));
        }
        let mut out = BytesMut::with_capacity(len);
        out.put(std::mem::take(&mut self.pending));
        while out.len() < len {
            let want = len - out.len();
            if self.inner.read_into(&mut out, want).await? == 0 {
                return Err(truncated("payload"));
            }
        }
        Ok(out.freeze())
    }

    /// The next piece of a payload, at most `max` bytes (at least 1), as it arrived: forwarding
    /// snapshot data piece by piece needs no buffer the size of a frame.
    pub(crate) async fn read_piece(&mut self, max: usize) -> Result<Bytes> {
        if self.pending.is_empty() {
            self.pending = self
                .inner
                .read_chunk(max)
                .await?
                .ok_or_else(|| truncated("payload"))?;
        }
        let n = max.min(self.pending.len());
        Ok(self.pending.split_to(n))
    }

    /// Reads one whole frame, which must be of kind `want`, and decodes it.
    pub(crate) async fn read_expected<T: serde::de::DeserializeOwned>(
        &mut self,
        want: FrameKind,
    ) -> Result<T> {
        let len = crate::frame::expect_kind(self.read_header().await?, want)?;
        crate::frame::decode_payload(&self.read_payload(len).await?)
    }

    /// Waits for the peer to close the stream (`Ok`) or to send anything (an error): for streams
    /// on which the peer has nothing more to say. Cancel safe.
    pub(crate) async fn closed(&mut self) -> Result<()> {
        if self.pending.is_empty() && self.inner.read_chunk(1).await?.is_none() {
            return Ok(());
        }
        Err(Error::Frame("unexpected bytes from the peer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_frame, raw_header};

    /// Hands out a fixed byte string in pieces of `step` bytes.
    struct Pieces {
        data: Bytes,
        step: usize,
    }

    #[async_trait]
    impl PeerRead for Pieces {
        async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
            let n = self.step.min(max).min(self.data.len());
            Ok((n > 0).then(|| self.data.split_to(n)))
        }
        async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
            let chunk = self.read_chunk(max).await?.unwrap_or_default();
            buf.put_slice(&chunk);
            Ok(chunk.len())
        }
    }

    fn frames() -> Bytes {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, FrameKind::Message, &("hello", 7u64), 1024).unwrap();
        buf.put_slice(&raw_header(FrameKind::SnapshotChunk, 300));
        buf.put_slice(&[9u8; 300]);
        encode_frame(&mut buf, FrameKind::Message, &vec![1u32, 2, 3], 1024).unwrap();
        buf.freeze()
    }

    #[tokio::test]
    async fn frames_split_anywhere_read_back() {
        for step in [1, 2, 5, 7, 64, 1 << 20] {
            let data = frames();
            let mut r = FrameStream::new(Box::new(Pieces { data, step }), 1024);
            let v: (String, u64) = r.read_expected(FrameKind::Message).await.unwrap();
            assert_eq!(v, ("hello".to_string(), 7));
            let (k, mut left) = r.read_header().await.unwrap().unwrap();
            assert_eq!((k, left), (FrameKind::SnapshotChunk, 300));
            while left > 0 {
                let piece = r.read_piece(left).await.unwrap();
                assert!(!piece.is_empty() && piece.iter().all(|&b| b == 9));
                left -= piece.len();
            }
            let v: Vec<u32> = r.read_expected(FrameKind::Message).await.unwrap();
            assert_eq!(v, vec![1, 2, 3]);
            assert!(r.read_header().await.unwrap().is_none());
            assert!(r.closed().await.is_ok());
        }
    }

    #[test]
    fn recycler_reuses_buffers_once_released() {
        let mut pool = Recycler::new(2);
        let mut buf = pool.take(1000);
        buf.put_slice(&[1; 1000]);
        let ptr = buf.as_ptr();
        let held = pool.lend(buf, usize::MAX);
        // Still held by the stream: a new allocation.
        let other = pool.take(1000);
        assert_ne!(other.as_ptr(), ptr);
        drop(held);
        let again = pool.take(1000);
        assert_eq!((again.as_ptr(), again.len()), (ptr, 0));
        assert!(again.capacity() >= 1000);
        // Too large to keep.
        let big = pool.lend(BytesMut::from(&[0u8; 64][..]), 10);
        drop(big);
        assert!(pool.lent.is_empty());
    }

    #[tokio::test]
    async fn truncated_and_oversized_frames_are_errors() {
        let whole = frames();
        for cut in [1, 3, 10] {
            let data = whole.slice(..cut);
            let mut r = FrameStream::new(Box::new(Pieces { data, step: 4 }), 1024);
            assert!(matches!(
                r.read_expected::<(String, u64)>(FrameKind::Message).await,
                Err(Error::Frame(_))
            ));
        }
        let data = Bytes::copy_from_slice(&raw_header(FrameKind::Message, 2048));
        let mut r = FrameStream::new(Box::new(Pieces { data, step: 4 }), 1024);
        assert!(matches!(r.read_header().await, Err(Error::Frame(_))));
    }
}
