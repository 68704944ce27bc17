//! [`AuthorityFix`]: the read-side frame rewriter around a byte stream.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::block::{HeaderRewriter, MAX_HEADER_BLOCK};
use crate::frame::{
    split_headers_payload, FrameHeader, FLAG_END_HEADERS, HEADER_LEN, PREFACE, TYPE_CONTINUATION,
    TYPE_HEADERS,
};
use crate::Error;

/// Initial and resting size of the input buffer.
const INPUT_CAPACITY: usize = 8 * 1024;

/// Output and header-block buffers above this size are released once drained.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// Wraps the server side of a connection and rewrites the client's HTTP/2
/// header blocks so that `:authority: http://host:port` reaches the server as
/// `:authority: host:port`.
///
/// Writes pass straight through. Reads pass through byte for byte unless the
/// connection starts with the HTTP/2 client preface; then every frame is
/// forwarded unchanged except HEADERS and CONTINUATION frames, whose header
/// blocks are decoded with the client's HPACK context and re-encoded as
/// literals without indexing (see the crate docs).
///
/// A protocol violation this wrapper must understand to do its job (an
/// undecodable header block, bad padding, a missing CONTINUATION, an
/// oversized header block) is returned from `poll_read` as an
/// [`io::ErrorKind::InvalidData`] error wrapping an [`Error`]; the server then
/// drops the connection.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from `inner` and not yet processed.
    input: InputBuf,
    /// Processed bytes waiting to be handed to the reader.
    output: Vec<u8>,
    output_pos: usize,
    /// Payload bytes of a pass-through frame not yet forwarded.
    body_remaining: usize,
    /// A header block whose END_HEADERS has not arrived yet.
    pending: Option<PendingBlock>,
    block: Vec<u8>,
    rewriter: HeaderRewriter,
    saw_preface: bool,
    eof: bool,
    /// Set once processing failed; every later read reports it again.
    failed: Option<Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Deciding whether the connection is HTTP/2.
    Preface,
    /// Parsing HTTP/2 frames.
    Http2,
    /// Not HTTP/2 (or input ended mid-frame): forward everything verbatim.
    Raw,
}

struct PendingBlock {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; crate::frame::PRIORITY_LEN]>,
}

/// What processing the buffered input achieved.
enum Step {
    /// Output was produced or the state changed; process again.
    Progress,
    /// At least this many buffered bytes are needed to go on.
    NeedInput(usize),
}

impl<S> AuthorityFix<S> {
    /// Wraps a freshly accepted connection (nothing read from it yet).
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Preface,
            input: InputBuf::new(),
            output: Vec::new(),
            output_pos: 0,
            body_remaining: 0,
            pending: None,
            block: Vec::new(),
            rewriter: HeaderRewriter::new(),
            saw_preface: false,
            eof: false,
            failed: None,
        }
    }

    /// The wrapped stream, e.g. to read its peer address.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream. Reading from it directly desynchronises the
    /// wrapper; use it for socket options only.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the stream, discarding bytes already read but not yet
    /// returned.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Whether the connection was recognised as HTTP/2 (`None` while fewer
    /// bytes than needed to tell have arrived).
    pub fn is_http2(&self) -> Option<bool> {
        match self.mode {
            Mode::Preface => None,
            Mode::Http2 | Mode::Raw => Some(self.saw_preface),
        }
    }

    /// Processes buffered input as far as it goes.
    fn step(&mut self) -> Result<Step, Error> {
        match self.mode {
            Mode::Preface => Ok(self.step_preface()),
            Mode::Http2 => self.step_frame(),
            Mode::Raw => Ok(Step::Progress),
        }
    }

    fn step_preface(&mut self) -> Step {
        let data = self.input.data();
        let n = data.len().min(PREFACE.len());
        if data[..n] != PREFACE[..n] {
            self.mode = Mode::Raw;
            return Step::Progress;
        }
        if n < PREFACE.len() {
            return Step::NeedInput(PREFACE.len());
        }
        self.output.extend_from_slice(PREFACE);
        self.input.consume(PREFACE.len());
        self.mode = Mode::Http2;
        self.saw_preface = true;
        Step::Progress
    }

    fn step_frame(&mut self) -> Result<Step, Error> {
        let Some(raw_header) = self.input.data().first_chunk::<HEADER_LEN>() else {
            return Ok(Step::NeedInput(HEADER_LEN));
        };
        let raw_header = *raw_header;
        let header = FrameHeader::parse(&raw_header);
        if let Some(pending) = &self.pending {
            if header.kind != TYPE_CONTINUATION || header.stream_id != pending.stream_id {
                return Err(Error::ExpectedContinuation {
                    stream_id: pending.stream_id,
                    frame_type: header.kind,
                    frame_stream_id: header.stream_id,
                });
            }
        }
        let buffered = header.kind == TYPE_HEADERS
            || (header.kind == TYPE_CONTINUATION && self.pending.is_some());
        if !buffered {
            // Includes a CONTINUATION with no open block: the server rejects it.
            self.output.extend_from_slice(&raw_header);
            self.input.consume(HEADER_LEN);
            self.body_remaining = header.len;
            return Ok(Step::Progress);
        }
        if header.len > MAX_HEADER_BLOCK {
            return Err(Error::HeaderBlockTooLarge {
                stream_id: header.stream_id,
            });
        }
        let frame_len = HEADER_LEN + header.len;
        let Some(payload) = self.input.data().get(HEADER_LEN..frame_len) else {
            return Ok(Step::NeedInput(frame_len));
        };
        let fragment = if header.kind == TYPE_HEADERS {
            let parts = split_headers_payload(header.flags, payload).ok_or(Error::BadPadding {
                stream_id: header.stream_id,
            })?;
            self.pending = Some(PendingBlock {
                stream_id: header.stream_id,
                flags: header.flags,
                priority: parts.priority,
            });
            parts.fragment
        } else {
            payload
        };
        if self.block.len() + fragment.len() > MAX_HEADER_BLOCK {
            return Err(Error::HeaderBlockTooLarge {
                stream_id: header.stream_id,
            });
        }
        let complete = header.flags & FLAG_END_HEADERS != 0;
        if let (true, true) = (complete, self.block.is_empty()) {
            // Common case: the whole block is in one frame; skip the copy.
            let pending = self.pending.take().expect("a header block is open");
            self.rewriter.rewrite(
                fragment,
                pending.stream_id,
                pending.flags,
                pending.priority,
                &mut self.output,
            )?;
        } else {
            self.block.extend_from_slice(fragment);
            if complete {
                let pending = self.pending.take().expect("a header block is open");
                self.rewriter.rewrite(
                    &self.block,
                    pending.stream_id,
                    pending.flags,
                    pending.priority,
                    &mut self.output,
                )?;
                self.block.clear();
                if self.block.capacity() > RETAINED_CAPACITY {
                    self.block = Vec::new();
                }
            }
        }
        self.input.consume(frame_len);
        Ok(Step::Progress)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    /// Fills `buf` with as much processed input as is available without
    /// blocking, reading from the inner stream at most once after the first
    /// bytes are produced (so a frame header and its payload usually arrive
    /// in one call, without an extra would-block read).
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        let mut did_read = false;
        // Whether to return what `buf` holds instead of reading again.
        let settle = |buf: &ReadBuf<'_>, did_read: bool| did_read && buf.filled().len() > start;
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = &this.failed {
                return Poll::Ready(Err(e.clone().into()));
            }
            // 1. Hand out processed bytes.
            if this.output_pos < this.output.len() {
                let ready = &this.output[this.output_pos..];
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                this.output_pos += n;
                if this.output_pos == this.output.len() {
                    this.output.clear();
                    this.output_pos = 0;
                    if this.output.capacity() > RETAINED_CAPACITY {
                        this.output = Vec::new();
                    }
                }
                continue;
            }
            // 2. Forward frame payloads (and raw mode) without looking at them.
            if this.body_remaining > 0 || this.mode == Mode::Raw {
                let limit = if this.mode == Mode::Raw {
                    usize::MAX
                } else {
                    this.body_remaining
                };
                let n = if !this.input.is_empty() {
                    let data = this.input.data();
                    let n = data.len().min(limit).min(buf.remaining());
                    buf.put_slice(&data[..n]);
                    this.input.consume(n);
                    n
                } else if this.eof || settle(buf, did_read) {
                    return Poll::Ready(Ok(()));
                } else {
                    let before = buf.filled().len();
                    let polled = if limit >= buf.remaining() {
                        Pin::new(&mut this.inner).poll_read(cx, buf)
                    } else {
                        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit));
                        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
                        let n = limited.filled().len();
                        buf.advance(n);
                        polled
                    };
                    match polled {
                        Poll::Pending if buf.filled().len() > start => return Poll::Ready(Ok(())),
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(result) => result?,
                    }
                    did_read = true;
                    let n = buf.filled().len() - before;
                    if n == 0 {
                        this.eof = true;
                    }
                    n
                };
                if this.mode != Mode::Raw {
                    this.body_remaining -= n;
                }
                continue;
            }
            // 3. Parse what is buffered.
            let need = match this.step() {
                Ok(Step::Progress) => continue,
                Ok(Step::NeedInput(need)) => need,
                Err(e) => {
                    // Bytes already in `buf` are delivered; the error comes
                    // with the next read.
                    this.failed = Some(e);
                    if buf.filled().len() > start {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
            };
            // 4. Buffer more input.
            if this.eof {
                // Truncated preface or frame: forward the leftovers verbatim.
                this.mode = Mode::Raw;
                continue;
            }
            if settle(buf, did_read) {
                return Poll::Ready(Ok(()));
            }
            match this.input.poll_fill(&mut this.inner, cx, need) {
                Poll::Pending if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    did_read = true;
                    if result? == 0 {
                        this.eof = true;
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S> std::fmt::Debug for AuthorityFix<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("mode", &self.mode)
            .field("buffered_input", &self.input.data().len())
            .field("buffered_output", &(self.output.len() - self.output_pos))
            .field("body_remaining", &self.body_remaining)
            .finish_non_exhaustive()
    }
}

/// A reusable read buffer: `buf[start..end]` holds unprocessed bytes; the
/// whole of `buf` is always initialised so reads need no zeroing.
struct InputBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InputBuf {
    fn new() -> Self {
        InputBuf {
            buf: vec![0; INPUT_CAPACITY],
            start: 0,
            end: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > RETAINED_CAPACITY {
                self.buf = vec![0; INPUT_CAPACITY];
            }
        }
    }

    /// Reads once from `inner`, making room for at least `need` buffered
    /// bytes in total. Returns the number of bytes read (0 at EOF).
    fn poll_fill<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        need: usize,
    ) -> Poll<io::Result<usize>> {
        if self.buf.len() - self.start < need || self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        let mut read_buf = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(inner).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }
}
