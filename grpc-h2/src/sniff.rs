//! Telling HTTP/2 from HTTP/1 on a shared port, and handing HTTP/1 connections on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The bytes every HTTP/2 connection starts with (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the bytes either are the HTTP/2 preface or cannot become it. Returns whether
/// they are, and the bytes read, which the connection's protocol must see first.
pub async fn sniff<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<(bool, BytesMut)> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let n = buf.len().min(PREFACE.len());
        if buf[..n] != PREFACE[..n] {
            return Ok((false, buf));
        }
        if n == PREFACE.len() {
            return Ok((true, buf));
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Ok((false, buf));
        }
    }
}

/// An IO whose reads start with bytes already taken from it.
pub struct Prefixed<IO> {
    prefix: BytesMut,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub fn new(prefix: BytesMut, io: IO) -> Self {
        Prefixed { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
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

    #[tokio::test]
    async fn preface_and_http1_are_told_apart_and_replayed() {
        let mut h2 = &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest"[..];
        let (is_h2, seen) = sniff(&mut h2).await.unwrap();
        assert!(is_h2);
        assert!(seen.starts_with(PREFACE));

        let mut h1 = &b"GET /health HTTP/1.1\r\n\r\n"[..];
        let (is_h2, seen) = sniff(&mut h1).await.unwrap();
        assert!(!is_h2);
        let mut replay = Prefixed::new(seen, h1);
        let mut all = String::new();
        replay.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET /health HTTP/1.1\r\n\r\n");

        let mut short = &b"PRI *"[..];
        assert!(!sniff(&mut short).await.unwrap().0);
    }
}
