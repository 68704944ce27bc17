//! The async driver: one task per connection reads, runs calls and writes.
//!
//! Calls run inside the connection's task (no task per request), so a response wakes nothing
//! but the task that writes it, and everything a read produced goes out in one write.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::conn::{Connection, Limits, Request};
use crate::status::Status;
use crate::Error;

/// Runs unary gRPC calls.
pub trait Handler: Send + Sync + 'static {
    /// Starts the call `path` (`/package.Service/Method`) on the protobuf-encoded `message`;
    /// resolves to the protobuf-encoded response.
    fn call(&self, path: &str, message: Bytes) -> BoxFuture<'static, Result<Bytes, Status>>;

    /// Whether `path` is a unary call this handler answers; the error is sent as soon as the
    /// request's headers arrive. Every path is accepted by default, and [`Handler::call`]
    /// answers the unknown ones once the request is complete.
    fn check(&self, path: &str) -> Result<(), Status> {
        let _ = path;
        Ok(())
    }
}

struct Call {
    stream_id: u32,
    future: BoxFuture<'static, Result<Bytes, Status>>,
}

impl Future for Call {
    type Output = (u32, Result<Bytes, Status>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.stream_id;
        self.future.as_mut().poll(cx).map(|r| (id, r))
    }
}

/// Serves one HTTP/2 connection until the client closes it, a protocol error ends it, or
/// `shutdown` resolves (then open calls are answered before it closes). `initial` holds bytes
/// already read from `io`, such as the preface consumed by [`crate::sniff`].
pub async fn serve_connection<IO, H>(
    mut io: IO,
    initial: BytesMut,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut conn = Connection::new(limits);
    let mut input = initial;
    let mut requests: Vec<Request> = Vec::new();
    let mut calls: FuturesUnordered<Call> = FuturesUnordered::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut shutting_down = false;
    let mut read_closed = false;
    let mut failed: Option<Error> = None;

    // Bytes that came with the preface are frames too.
    let known = |path: &str| handler.check(path);
    if let Err(e) = conn.recv(&mut input, &mut requests, &known) {
        failed = Some(e.into());
    }

    std::future::poll_fn(|cx| loop {
        let mut progress = false;

        for r in requests.drain(..) {
            calls.push(Call {
                stream_id: r.stream_id,
                future: handler.call(&r.path, r.message),
            });
        }

        if !shutting_down && failed.is_none() && shutdown.as_mut().poll(cx).is_ready() {
            shutting_down = true;
            conn.go_away();
            progress = true;
        }

        while let Poll::Ready(Some((id, result))) = calls.poll_next_unpin(cx) {
            conn.respond(id, result);
            progress = true;
        }

        if !read_closed && failed.is_none() && conn.wants_input() {
            input.reserve(16 << 10);
            match tokio_util::io::poll_read_buf(Pin::new(&mut io), cx, &mut input) {
                Poll::Ready(Ok(0)) => {
                    read_closed = true;
                    progress = true;
                }
                Poll::Ready(Ok(_)) => {
                    if let Err(e) = conn.recv(&mut input, &mut requests, &known) {
                        failed = Some(e.into());
                    }
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                Poll::Pending => {}
            }
        }

        while !conn.output().is_empty() {
            match Pin::new(&mut io).poll_write(cx, conn.output()) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Error::Io(std::io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    conn.written(n);
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                Poll::Pending => break,
            }
        }
        if conn.output().is_empty() {
            if let Poll::Ready(Err(e)) = Pin::new(&mut io).poll_flush(cx) {
                return Poll::Ready(Err(Error::Io(e)));
            }
            if let Some(e) = failed.take() {
                return Poll::Ready(Err(e));
            }
            if read_closed || conn.is_finished() {
                return Poll::Ready(Ok(()));
            }
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await
}
