//! Responses that complete together leave in one write, whatever their size: h2 alone flushes
//! before every DATA frame of 256 bytes or more.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::FutureExt;
use grpc_h2::{serve_connection, CallKind, Handler, Limits, Metadata, Request, Response, Status};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::watch;

const CALLS: usize = 50;
const DEADLINE: Duration = Duration::from_secs(10);

/// Answers every call with 300 bytes once `release` turns true.
struct Held {
    entered: Arc<AtomicUsize>,
    release: watch::Receiver<bool>,
}

impl Handler for Held {
    fn kind(&self, _path: &str) -> Result<CallKind, Status> {
        Ok(CallKind::Unary)
    }

    fn call(&self, _path: &str, _metadata: Metadata, _request: Request) -> Response {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut release = self.release.clone();
        Response::Unary(
            async move {
                let _ = release.wait_for(|r| *r).await;
                Ok(Bytes::from(vec![7; 300]))
            }
            .boxed(),
        )
    }
}

/// Counts the writes that reach the transport.
struct Counted {
    io: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One thread: every call wakes before the connection's task runs again, as calls answered
/// by one raft read index do.
#[tokio::test(flavor = "current_thread")]
async fn responses_completed_together_leave_in_one_write() {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let (release, released) = watch::channel(false);
    let handler = Arc::new(Held {
        entered: entered.clone(),
        release: released,
    });
    let server_io = Counted {
        io: server_io,
        writes: writes.clone(),
    };
    tokio::spawn(serve_connection(
        server_io,
        handler,
        Limits::default(),
        std::future::pending(),
    ));
    let (client, conn) = grpc_h2::client::connect(client_io, "127.0.0.1:1")
        .await
        .unwrap();
    tokio::spawn(conn);
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.unary("/t.T/Held", b"x").await })
        })
        .collect();
    tokio::time::timeout(DEADLINE, async {
        while entered.load(Ordering::SeqCst) < CALLS {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every call reaches the handler");
    let before = writes.load(Ordering::SeqCst);
    release.send(true).unwrap();
    for call in calls {
        let reply = tokio::time::timeout(DEADLINE, call)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply.len(), 300);
    }
    let responses = writes.load(Ordering::SeqCst) - before;
    assert!(responses <= 2, "{CALLS} responses took {responses} writes");
}
