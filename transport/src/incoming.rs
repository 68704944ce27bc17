//! The receiving side handed to the server: raft messages and snapshots, in one bounded channel.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::MemberId;

/// Something a peer sent.
pub enum Incoming<M> {
    /// A raft message. Messages from one peer arrive in the order that peer sent them.
    Message {
        /// The sending member (as it announced itself on a mutually authenticated connection).
        from: MemberId,
        /// The message.
        msg: M,
    },
    /// A snapshot whose bytes are still arriving: read [`IncomingSnapshot::data`] to the end.
    Snapshot(IncomingSnapshot<M>),
}

impl<M: std::fmt::Debug> std::fmt::Debug for Incoming<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incoming::Message { from, msg } => f
                .debug_struct("Message")
                .field("from", from)
                .field("msg", msg)
                .finish(),
            Incoming::Snapshot(s) => f
                .debug_struct("Snapshot")
                .field("from", &s.from)
                .field("meta", &s.meta)
                .finish_non_exhaustive(),
        }
    }
}

/// A snapshot being received: metadata first, then the bytes through a bounded reader.
pub struct IncomingSnapshot<M> {
    /// The sending member.
    pub from: MemberId,
    /// The snapshot's metadata message.
    pub meta: M,
    /// The snapshot bytes. Reading to a clean end of file means every byte arrived; a truncated
    /// transfer ends with an error instead. Dropping it refuses the rest of the snapshot.
    pub data: SnapshotReader,
}

/// One item of a snapshot's chunk channel.
#[derive(Debug)]
pub(crate) enum Chunk {
    Data(Bytes),
    End,
    Failed(String),
}

/// The bytes of an incoming snapshot. Memory is bounded: the sender waits while this reader lags.
pub struct SnapshotReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    state: ReaderState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReaderState {
    Open,
    Done,
    Failed(String),
}

impl SnapshotReader {
    pub(crate) fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
            state: ReaderState::Open,
        }
    }

    /// The next chunk as it arrived, `Ok(None)` at the clean end: an alternative to `AsyncRead`.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if !self.current.is_empty() {
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            match &self.state {
                ReaderState::Done => return Poll::Ready(Ok(None)),
                ReaderState::Failed(e) => return Poll::Ready(Err(io::Error::other(e.clone()))),
                ReaderState::Open => {}
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Chunk::Data(b)) if b.is_empty() => continue,
                Some(Chunk::Data(b)) => return Poll::Ready(Ok(Some(b))),
                Some(Chunk::End) => self.state = ReaderState::Done,
                Some(Chunk::Failed(e)) => self.state = ReaderState::Failed(e),
                None => {
                    self.state =
                        ReaderState::Failed("snapshot stream ended before its end marker".into())
                }
            }
        }
    }
}

impl AsyncRead for SnapshotReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.current.is_empty() {
            match ready!(this.poll_chunk(cx)) {
                Ok(Some(b)) => this.current = b,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let n = this.current.len().min(buf.remaining());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The receiving end of a transport. `recv` returns `None` once the transport is shut down.
pub struct IncomingReceiver<M> {
    rx: mpsc::Receiver<Incoming<M>>,
}

impl<M> IncomingReceiver<M> {
    pub(crate) fn new(rx: mpsc::Receiver<Incoming<M>>) -> Self {
        Self { rx }
    }

    /// The next incoming item.
    pub async fn recv(&mut self) -> Option<Incoming<M>> {
        self.rx.recv().await
    }

    /// Up to `limit` items at once (waits for at least one); 0 means the transport is shut down.
    pub async fn recv_many(&mut self, out: &mut Vec<Incoming<M>>, limit: usize) -> usize {
        self.rx.recv_many(out, limit).await
    }

    /// An item if one is ready.
    pub fn try_recv(&mut self) -> Option<Incoming<M>> {
        self.rx.try_recv().ok()
    }

    /// The underlying channel, e.g. to build a `Stream`.
    pub fn into_inner(self) -> mpsc::Receiver<Incoming<M>> {
        self.rx
    }
}
