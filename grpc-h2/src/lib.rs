//! gRPC over hyperium's `h2`: a thin server layer that runs every call of a connection as
//! a future of that connection's task.
//!
//! h2 does the HTTP/2 protocol (HPACK, flow control, CONTINUATION, the rapid-reset and
//! header-size mitigations); this crate adds gRPC's framing, status trailers and call
//! shapes, and no more: one task per connection drives the `h2` connection and polls the
//! calls it accepted (a `FuturesUnordered`), so a unary call costs no task, channel or body
//! type of its own, and its response goes out with the connection's next write. Streaming
//! responses are produced only when the client's window has room, so a slow client holds
//! its producer back. A call ends (is dropped) when its stream is reset, its connection
//! ends or its `grpc-timeout` passes.
//!
//! [`sniff`] tells HTTP/2 from HTTP/1 on a shared port; [`AuthorityFix`] lets etcdctl 3.4's
//! URL-shaped authority through; [`client`] is a minimal unary client for load generators.
//!
//! ```
//! use std::sync::Arc;
//! use futures::future::FutureExt;
//! use grpc_h2::{serve_connection, CallKind, Handler, Limits, Metadata, Request, Response, Status};
//!
//! /// Answers `/echo.Echo/Say` with the request itself.
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn kind(&self, path: &str) -> Result<CallKind, Status> {
//!         match path {
//!             "/echo.Echo/Say" => Ok(CallKind::Unary),
//!             _ => Err(Status::new(Status::UNIMPLEMENTED, format!("unknown method {path}"))),
//!         }
//!     }
//!
//!     fn call(&self, _path: &str, _metadata: Metadata, request: Request) -> Response {
//!         let Request::Message(message) = request else { unreachable!("a unary call") };
//!         Response::Unary(async move { Ok(message) }.boxed())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((tcp, _)) = listener.accept().await {
//!         let serve = serve_connection(tcp, Arc::new(Echo), Limits::default(), std::future::pending());
//!         tokio::spawn(serve);
//!     }
//! });
//!
//! let tcp = tokio::net::TcpStream::connect(addr).await?;
//! let (mut client, conn) = grpc_h2::client::connect(tcp, &addr.to_string()).await?;
//! tokio::spawn(conn);
//! let reply = client.unary("/echo.Echo/Say", b"hello").await?;
//! assert_eq!(&reply[..], b"hello");
//! # Ok(())
//! # }
//! ```

mod authority;
pub mod client;
mod cork;
mod handler;
mod message;
mod metadata;
mod pings;
mod serve;
mod sniff;
mod status;
mod unsent;

pub use authority::AuthorityFix;
pub use handler::{CallKind, Handler, Request, Response};
pub use metadata::Metadata;
pub use serve::{serve_connection, Limits};
pub use sniff::{sniff, Prefixed, PREFACE};
pub use status::Status;

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HTTP/2: {0}")]
    H2(#[from] h2::Error),
    #[error("no HTTP/2 handshake within the handshake timeout")]
    HandshakeTimeout,
    #[error("the client did not answer a keepalive ping in time")]
    KeepaliveTimeout,
    #[error("not an HTTP/2 authority: {0}")]
    Authority(String),
}
