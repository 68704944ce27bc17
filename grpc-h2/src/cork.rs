//! Write coalescing under h2: everything a connection's task produces in one turn leaves in
//! one write.
//!
//! h2's encoder writes every DATA frame of 256 bytes or more straight from its payload, and
//! to do so flushes what it has buffered before it: with the IO below it, one `writev` per
//! such frame, so a turn that completes fifty 300-byte responses made fifty system calls
//! (measured: 1.16 `writev` per linearizable range). A [`Corked`] IO copies writes into its
//! own buffer and, while its [`Cork`] is closed, answers flushes without writing; the task
//! opens the cork for its last pass over the connection, whose flush writes the lot.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write goes to the IO whether the cork is closed or not, which also
/// bounds what one connection holds here. Writes at least this large bypass the buffer.
const MAX_HELD: usize = 64 << 10;

/// Whether flushes of a [`Corked`] IO are deferred; shared by the IO and the task driving it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cork(Arc<AtomicBool>);

impl Cork {
    /// Flushes wait until [`Cork::open`].
    pub(crate) fn close(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Flushes write what is held.
    pub(crate) fn open(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// An IO whose writes are held until a flush with the cork open (or until [`MAX_HELD`]
/// bytes are held). Shutting down writes what is held first, cork or not.
pub(crate) struct Corked<IO> {
    io: IO,
    held: Vec<u8>,
    /// Bytes at the front of `held` already written.
    written: usize,
    cork: Cork,
}

impl<IO> Corked<IO> {
    /// Starts with the cork open: writes go out on every flush until the task closes it.
    pub(crate) fn new(io: IO) -> (Self, Cork) {
        let cork = Cork::default();
        let corked = Corked {
            io,
            held: Vec::new(),
            written: 0,
            cork: cork.clone(),
        };
        (corked, cork)
    }
}

impl<IO: AsyncWrite + Unpin> Corked<IO> {
    /// Writes everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let n =
                futures::ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.held.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn unwritten(&self) -> usize {
        self.held.len() - self.written
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Corked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Corked<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if this.unwritten() + len > MAX_HELD {
            futures::ready!(this.poll_drain(cx))?;
        }
        if len >= MAX_HELD {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.held.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cork.is_closed() {
            return Poll::Ready(Ok(()));
        }
        futures::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Counts the writes that reach it.
    #[derive(Default)]
    struct Sink {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.bytes.extend_from_slice(buf);
            self.writes += 1;
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn flushes_with_the_cork_closed_write_nothing_and_one_open_flush_writes_all() {
        let (mut io, cork) = Corked::new(Sink::default());
        cork.close();
        for i in 0..50u8 {
            io.write_all(&[i; 300]).await.unwrap();
            io.flush().await.unwrap();
        }
        assert_eq!(io.io.writes, 0);
        cork.open();
        io.flush().await.unwrap();
        assert_eq!(io.io.writes, 1);
        assert_eq!(io.io.bytes.len(), 50 * 300);
        assert!(io.io.bytes[..300].iter().all(|&b| b == 0));
        assert!(io.io.bytes[49 * 300..].iter().all(|&b| b == 49));
    }

    #[tokio::test]
    async fn what_is_held_stays_bounded_and_shutdown_writes_it() {
        let (mut io, cork) = Corked::new(Sink::default());
        cork.close();
        for _ in 0..10 {
            io.write_all(&[7; 16 << 10]).await.unwrap();
        }
        assert!(io.unwritten() <= MAX_HELD);
        assert!(io.io.writes > 0, "past the bound writes go out");
        io.write_all(&[8; MAX_HELD]).await.unwrap();
        io.shutdown().await.unwrap();
        assert_eq!(io.unwritten(), 0);
        assert_eq!(io.io.bytes.len(), 10 * (16 << 10) + MAX_HELD);
        assert_eq!(io.io.bytes.last(), Some(&8));
    }
}
