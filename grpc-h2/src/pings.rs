//! Keeps a client's PINGs within grpc-go's server policy: a PING sooner than the minimum
//! interval after the previous one is a strike, more than two strikes end the connection
//! with GOAWAY ENHANCE_YOUR_CALM, and the server sending headers or data clears the strikes
//! (a client may ping after each response it gets, as grpc-go's BDP estimation does). h2
//! answers PINGs itself and shows none of them, so this watches the frames go by: it reads
//! the 9-byte frame headers in both directions and copies nothing.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sniff::PREFACE;

const FRAME_HEADER_LEN: usize = 9;
const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_PING: u8 = 0x6;
const FLAG_ACK: u8 = 0x1;

/// Strikes a client may collect before the connection ends (grpc-go's maxPingStrikes).
const MAX_STRIKES: u32 = 2;

/// Finds frame boundaries in a byte stream, whatever the chunks it arrives in.
#[derive(Default)]
struct Scanner {
    header: [u8; FRAME_HEADER_LEN],
    have: usize,
    /// Bytes of the current frame's payload (or of the preface) still to pass.
    skip: usize,
}

impl Scanner {
    /// Calls `on_frame(type, flags)` for each frame header completed within `bytes`.
    fn scan(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(u8, u8)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == FRAME_HEADER_LEN {
                let h = &self.header;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.have = 0;
                on_frame(h[3], h[4]);
            }
        }
    }
}

#[derive(Default)]
struct Strikes {
    last_ping: Option<Instant>,
    count: u32,
}

/// What the connection's task and its IO share about the client's PINGs.
pub(crate) struct PingPolicy {
    min_interval: Duration,
    strikes: Mutex<Strikes>,
    exceeded: AtomicBool,
}

impl PingPolicy {
    pub(crate) fn new(min_interval: Duration) -> Arc<Self> {
        Arc::new(PingPolicy {
            min_interval,
            strikes: Mutex::new(Strikes::default()),
            exceeded: AtomicBool::new(false),
        })
    }

    /// Whether the client has pinged too often.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    fn ping(&self) {
        let mut s = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if s.last_ping
            .is_some_and(|last| now < last + self.min_interval)
        {
            s.count += 1;
            if s.count > MAX_STRIKES {
                self.exceeded.store(true, Ordering::Relaxed);
            }
        }
        s.last_ping = Some(now);
    }

    fn served(&self) {
        let mut s = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        *s = Strikes::default();
    }
}

/// An IO that reports the client's PINGs and the server's answers to a [`PingPolicy`]; its
/// reads start at the HTTP/2 preface.
pub(crate) struct Watched<IO> {
    io: IO,
    policy: Arc<PingPolicy>,
    input: Scanner,
    output: Scanner,
}

impl<IO> Watched<IO> {
    pub(crate) fn new(io: IO, policy: Arc<PingPolicy>) -> Self {
        Watched {
            io,
            policy,
            input: Scanner {
                skip: PREFACE.len(),
                ..Scanner::default()
            },
            output: Scanner::default(),
        }
    }

    fn wrote(&mut self, bytes: &[u8]) {
        let policy = &self.policy;
        self.output.scan(bytes, |kind, _| {
            if kind == TYPE_DATA || kind == TYPE_HEADERS {
                policy.served();
            }
        });
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        futures::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let policy = &this.policy;
        this.input.scan(&buf.filled()[before..], |kind, flags| {
            if kind == TYPE_PING && flags & FLAG_ACK == 0 {
                policy.ping();
            }
        });
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = futures::ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        self.wrote(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = futures::ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            let take = left.min(b.len());
            self.wrote(&b[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
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

    fn ping(ack: bool) -> Vec<u8> {
        let mut f = vec![0, 0, 8, TYPE_PING, u8::from(ack), 0, 0, 0, 0];
        f.extend_from_slice(&[7; 8]);
        f
    }

    #[test]
    fn frames_are_found_across_any_chunking() {
        let mut wire = ping(false);
        wire.extend(ping(true));
        wire.extend([0, 0, 2, TYPE_DATA, 1, 0, 0, 0, 1, 9, 9]);
        for chunk in [1, 2, 5, 9, 100] {
            let mut scanner = Scanner::default();
            let mut seen = Vec::new();
            for piece in wire.chunks(chunk) {
                scanner.scan(piece, |kind, flags| seen.push((kind, flags)));
            }
            assert_eq!(seen, [(TYPE_PING, 0), (TYPE_PING, 1), (TYPE_DATA, 1)]);
        }
    }

    #[test]
    fn pings_too_close_together_strike_and_responses_forgive() {
        let policy = PingPolicy::new(Duration::from_secs(5));
        for _ in 0..=MAX_STRIKES {
            policy.ping();
        }
        assert!(!policy.exceeded(), "the first ping is no strike");
        policy.served();
        for _ in 0..=MAX_STRIKES {
            policy.ping();
        }
        assert!(!policy.exceeded());
        policy.ping();
        assert!(policy.exceeded());
    }
}
