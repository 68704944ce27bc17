//! The client side of unary calls over h2, for load generators and tests: a [`Client`] is a
//! cheap handle (clone it per concurrent call), and the [`Connection`] future it comes with
//! must be polled, ideally by the same task that runs the calls.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::header::{CONTENT_TYPE, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Uri};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cork::{Cork, Corked};
use crate::message::{frame, PREFIX_LEN};
use crate::status::{percent_decode, Status, GRPC_MESSAGE, GRPC_STATUS};

/// Receive windows granted to the server: large enough that answers never wait for us.
const RECV_STREAM_WINDOW: u32 = 4 << 20;
const RECV_CONN_WINDOW: u32 = 16 << 20;

/// gRPC's code for a transport failure.
const UNAVAILABLE: i32 = 14;

/// Sends unary calls on one HTTP/2 connection.
#[derive(Clone)]
pub struct Client {
    send: SendRequest<Bytes>,
    authority: Authority,
}

/// Drives one HTTP/2 connection: sends what the calls queued and hands them their answers.
/// Everything queued when it is polled leaves in one write (see `cork.rs`).
pub struct Connection<IO> {
    h2: h2::client::Connection<Corked<IO>, Bytes>,
    cork: Cork,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for Connection<IO> {
    type Output = Result<(), crate::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cork.close();
        if let Poll::Ready(r) = Pin::new(&mut self.h2).poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        // Writes what the first pass queued.
        self.cork.open();
        Pin::new(&mut self.h2).poll(cx).map_err(Into::into)
    }
}

/// Opens HTTP/2 on `io` to `authority` (`host:port`). Poll the returned connection until it
/// ends; the calls make progress only while it is polled.
pub async fn connect<IO>(io: IO, authority: &str) -> Result<(Client, Connection<IO>), crate::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let authority =
        Authority::try_from(authority).map_err(|e| crate::Error::Authority(e.to_string()))?;
    let (io, cork) = Corked::new(io);
    let (send, h2) = h2::client::Builder::new()
        .initial_window_size(RECV_STREAM_WINDOW)
        .initial_connection_window_size(RECV_CONN_WINDOW)
        .handshake(io)
        .await?;
    let client = Client { send, authority };
    Ok((client, Connection { h2, cork }))
}

fn unavailable(e: h2::Error) -> Status {
    Status::new(UNAVAILABLE, e.to_string())
}

/// The status in `grpc-status` / `grpc-message`, if the headers carry one.
fn status_of(headers: &HeaderMap) -> Option<Status> {
    let code = headers.get(GRPC_STATUS)?;
    let code = std::str::from_utf8(code.as_bytes()).ok()?.parse().ok()?;
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Status::new(code, message))
}

impl Client {
    /// Calls `path` with the encoded `message`; resolves to the encoded response.
    pub async fn unary(&mut self, path: &'static str, message: &[u8]) -> Result<Bytes, Status> {
        self.unary_with(path, HeaderMap::new(), message).await
    }

    /// [`Client::unary`] with request metadata (`token`, `grpc-timeout`...).
    pub async fn unary_with(
        &mut self,
        path: &'static str,
        mut metadata: HeaderMap,
        message: &[u8],
    ) -> Result<Bytes, Status> {
        // Built from parts parsed once: a load generator sends this many times a second.
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(PathAndQuery::from_static(path));
        let uri = Uri::from_parts(uri).map_err(|e| Status::new(Status::INTERNAL, e.to_string()))?;
        metadata.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        metadata.insert(TE, HeaderValue::from_static("trailers"));
        let mut request = http::Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = metadata;
        std::future::poll_fn(|cx| self.send.poll_ready(cx))
            .await
            .map_err(unavailable)?;
        let (response, mut body) = self
            .send
            .send_request(request, false)
            .map_err(unavailable)?;
        body.send_data(frame(message), true).map_err(unavailable)?;
        let response = response.await.map_err(unavailable)?;
        if let Some(status) = status_of(response.headers()) {
            return Err(status);
        }
        let mut body = response.into_body();
        // A small response comes in one DATA frame: keep it as it is, without a copy.
        let mut first: Option<Bytes> = None;
        let mut more = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(unavailable)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            match &first {
                None => first = Some(chunk),
                Some(f) => {
                    if more.is_empty() {
                        more.extend_from_slice(f);
                    }
                    more.extend_from_slice(&chunk);
                }
            }
        }
        let data = if more.is_empty() {
            first.unwrap_or_default()
        } else {
            more.freeze()
        };
        let trailers = body.trailers().await.map_err(unavailable)?;
        match trailers.as_ref().and_then(status_of) {
            Some(status) if status.code != 0 => return Err(status),
            Some(_) => {}
            None => {
                return Err(Status::new(
                    Status::INTERNAL,
                    "the server sent no grpc-status",
                ))
            }
        }
        if data.len() < PREFIX_LEN {
            return Err(Status::new(
                Status::INTERNAL,
                "the response carries no message",
            ));
        }
        Ok(data.slice(PREFIX_LEN..))
    }
}
