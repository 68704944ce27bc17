//! gRPC's length-prefixed message framing (a compressed flag, a 4-byte big-endian length,
//! then the message), and the request messages of one stream.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::Stream;
use h2::{RecvStream, SendStream};

use crate::status::Status;

/// Bytes before each message.
pub(crate) const PREFIX_LEN: usize = 5;

/// Messages up to this size are copied behind their prefix; larger ones go out as they are,
/// after a DATA chunk of their own for the prefix.
pub(crate) const COPY_LIMIT: usize = 16 << 10;

/// Queues `message`, gRPC-framed, on `send`.
pub(crate) fn send_message(send: &mut SendStream<Bytes>, message: Bytes) -> Result<(), h2::Error> {
    if message.len() <= COPY_LIMIT {
        return send.send_data(frame(&message), false);
    }
    let mut prefix = BytesMut::with_capacity(PREFIX_LEN);
    put_prefix(&mut prefix, message.len());
    send.send_data(prefix.freeze(), false)?;
    send.send_data(message, false)
}

/// An uncompressed message with its prefix.
pub(crate) fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(PREFIX_LEN + message.len());
    frame_into(&mut framed, message);
    framed.freeze()
}

/// Appends `message`, uncompressed and with its prefix, to `buf`.
pub(crate) fn frame_into(buf: &mut BytesMut, message: &[u8]) {
    buf.reserve(PREFIX_LEN + message.len());
    put_prefix(buf, message.len());
    buf.extend_from_slice(message);
}

/// The prefix of an uncompressed message of `len` bytes.
fn put_prefix(buf: &mut BytesMut, len: usize) {
    buf.put_u8(0);
    buf.put_u32(len as u32);
}

/// Request bytes a connection holds in messages still arriving, shared by its streams. A
/// message that would take it over the budget fails with RESOURCE_EXHAUSTED. (Holding back
/// the connection window instead could deadlock a client that interleaves large requests.)
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    held: Arc<AtomicUsize>,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Self {
        Budget {
            held: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    fn take(&self, n: usize) -> bool {
        if self.held.fetch_add(n, Ordering::Relaxed) + n > self.max {
            self.held.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The request messages of one stream, as they complete. Flow-control window goes back to
/// the client as bytes arrive; they count against the connection's [`Budget`] until their
/// message is complete.
pub struct Messages {
    body: RecvStream,
    buf: BytesMut,
    max_message: usize,
    budget: Budget,
    failed: bool,
}

impl Messages {
    pub(crate) fn new(body: RecvStream, max_message: usize, budget: Budget) -> Self {
        Messages {
            body,
            buf: BytesMut::new(),
            max_message,
            budget,
            failed: false,
        }
    }

    /// Whether the client has sent everything (END_STREAM seen and no bytes left).
    pub(crate) fn is_end(&self) -> bool {
        self.buf.is_empty() && self.body.is_end_stream()
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Bytes, Status>>> {
        self.failed = true;
        self.budget.give_back(self.buf.len());
        self.buf = BytesMut::new();
        Poll::Ready(Some(Err(status)))
    }

    /// A complete message at the front of the buffer, or an error for one that may not be.
    fn complete(&mut self) -> Option<Result<Bytes, Status>> {
        if self.buf.len() < PREFIX_LEN {
            return None;
        }
        let declared =
            u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if declared > self.max_message {
            return Some(Err(Status::new(
                Status::RESOURCE_EXHAUSTED,
                format!(
                    "grpc: received message larger than max ({declared} vs. {})",
                    self.max_message
                ),
            )));
        }
        if self.buf[0] != 0 {
            return Some(Err(Status::new(
                Status::UNIMPLEMENTED,
                "grpc: compressed requests are not supported",
            )));
        }
        if self.buf.len() < PREFIX_LEN + declared {
            return None;
        }
        let mut message = self.buf.split_to(PREFIX_LEN + declared);
        message.advance(PREFIX_LEN);
        self.budget.give_back(PREFIX_LEN + declared);
        Some(Ok(message.freeze()))
    }
}

impl Stream for Messages {
    type Item = Result<Bytes, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            match this.complete() {
                Some(Ok(message)) => return Poll::Ready(Some(Ok(message))),
                Some(Err(status)) => return this.fail(status),
                None => {}
            }
            match futures::ready!(this.body.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    let _ = this.body.flow_control().release_capacity(chunk.len());
                    if !this.budget.take(chunk.len()) {
                        return this.fail(Status::new(
                            Status::RESOURCE_EXHAUSTED,
                            "grpc-h2: too many request bytes in flight on this connection; retry",
                        ));
                    }
                    this.buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => {
                    return this.fail(Status::new(Status::CANCELLED, e.to_string()));
                }
                None if this.buf.is_empty() => return Poll::Ready(None),
                None => {
                    return this.fail(Status::new(
                        Status::INTERNAL,
                        "grpc: the request ends inside a message",
                    ))
                }
            }
        }
    }
}

impl Drop for Messages {
    fn drop(&mut self) {
        self.budget.give_back(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn framing_prefixes_the_length() {
        let framed = super::frame(b"abc");
        assert_eq!(&framed[..], [0, 0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
