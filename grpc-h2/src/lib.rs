//! A lean HTTP/2 server for unary gRPC calls.
//!
//! A general HTTP/2 stack (hyper, h2, tonic) spawns a task per request and passes each
//! request and response through several layers of bodies, channels and locks. For small
//! unary calls over many connections that machinery costs more than the call. This crate
//! serves each connection from one task: it parses frames, runs the calls it finds as futures
//! inside that task, and writes every response that is ready in one go.
//!
//! What it does: the HTTP/2 connection protocol (RFC 9113) as a server, including HPACK
//! decoding with the dynamic table and Huffman codes, flow control in both directions,
//! SETTINGS, PING, RST_STREAM and GOAWAY (graceful shutdown); gRPC's unary framing, status
//! trailers (`grpc-status`, percent-encoded `grpc-message`) and grpc-go's message size error.
//! [`ClientConnection`] is the client side of the same, without IO, for load generators
//! that keep many calls open on few connections.
//! What it leaves out: streaming calls, compression, TLS (wrap the IO yourself) and server
//! push. A connection that does not start with the HTTP/2 preface can be handed to another
//! server with [`sniff`] and [`Prefixed`].
//!
//! ```
//! use std::sync::Arc;
//! use bytes::{Bytes, BytesMut};
//! use futures::future::{BoxFuture, FutureExt};
//! use grpc_h2::{serve_connection, Handler, Limits, Status};
//!
//! /// Answers `/echo.Echo/Say` with the request itself.
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn call(&self, path: &str, message: Bytes) -> BoxFuture<'static, Result<Bytes, Status>> {
//!         let result = match path {
//!             "/echo.Echo/Say" => Ok(message),
//!             _ => Err(Status::new(Status::UNIMPLEMENTED, format!("unknown method {path}"))),
//!         };
//!         async move { result }.boxed()
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((tcp, _)) = listener.accept().await {
//!         let limits = Limits { max_message: 4 << 20, max_streams: 1000 };
//!         tokio::spawn(serve_connection(tcp, BytesMut::new(), Arc::new(Echo), limits, std::future::pending()));
//!     }
//! });
//!
//! // Any gRPC client works; here tonic sends one unary call.
//! let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
//! let mut client = tonic::client::Grpc::new(channel);
//! client.ready().await?;
//! let path = tonic::codegen::http::uri::PathAndQuery::from_static("/echo.Echo/Say");
//! let codec = tonic_prost::ProstCodec::<String, String>::default();
//! let reply = client.unary(tonic::Request::new("hello".to_string()), path, codec).await?;
//! assert_eq!(reply.into_inner(), "hello");
//! # Ok(())
//! # }
//! ```

mod client;
mod conn;
mod frame;
mod hpack;
mod message;
mod serve;
mod sniff;
mod status;

pub use client::{Answer, ClientConnection};
pub use conn::{ConnError, Limits};
pub use frame::{Reason, PREFACE};
pub use serve::{serve_connection, Handler};
pub use sniff::{sniff, Prefixed};
pub use status::Status;

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection IO: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] ConnError),
}
