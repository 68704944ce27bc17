//! Makes the server accept HTTP/2 requests whose `:authority` carries a URL
//! scheme, such as those sent by etcdctl 3.4.
//!
//! # Why this exists
//!
//! etcdctl 3.4 (grpc-go 1.26) dials some endpoints with the raw endpoint URL
//! as the gRPC target, so `etcdctl --endpoints=http://127.0.0.1:2379
//! endpoint status` sends `:authority: http://127.0.0.1:2379`. That is not a
//! valid authority; grpc-go servers (real etcd) accept it anyway, but the
//! `h2` crate under hyper and tonic resets the stream with PROTOCOL_ERROR and
//! offers no switch to relax the check (hyperium/h2#525). etcdctl then
//! prints `stream terminated by RST_STREAM with error code: PROTOCOL_ERROR`.
//!
//! [`AuthorityFix`] sits between an accepted connection and hyper and
//! repairs such requests before h2 parses them:
//!
//! - Writes (server to client) pass straight through.
//! - A connection that does not open with the HTTP/2 client preface (for
//!   example an HTTP/1.1 `GET /health` on the same port) is passed through
//!   byte for byte.
//! - On an HTTP/2 connection every frame is forwarded unchanged (DATA
//!   payloads are copied without inspection), except HEADERS and
//!   CONTINUATION frames: their header block is decoded with an HPACK decoder
//!   that tracks the client's dynamic table, an `:authority` or `host` value
//!   of the form `scheme://host:port[/...]` is replaced by `host:port`
//!   ([`strip_scheme`]), and the block is re-encoded for the server.
//!
//! Re-encoding uses only "literal without indexing" representations with raw
//! strings, so the server's HPACK dynamic table stays empty and can never
//! disagree with anything the proxy did. Every header block is re-encoded,
//! not only the ones that needed a fix: once the proxy's decoder has
//! consumed the client's compression context, the server must only see the
//! proxy's encoding. The cost is larger (uncompressed) header blocks on the
//! in-process hop, and HPACK decoding of each request's headers.
//!
//! # Example
//!
//! ```
//! use h2_authority_fix::AuthorityFix;
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // What a client like etcdctl sends: preface, then a HEADERS frame
//! // (stream 1, END_HEADERS) whose block holds `:authority` as a literal.
//! let mut block = vec![0x01]; // literal without indexing, name = static entry 1 (:authority)
//! block.push(21); // raw (non-Huffman) string of 21 bytes
//! block.extend_from_slice(b"http://127.0.0.1:2379");
//! let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
//! wire.extend_from_slice(&[0, 0, block.len() as u8, 0x1, 0x4, 0, 0, 0, 1]);
//! wire.extend_from_slice(&block);
//!
//! // Any AsyncRead works; the server wraps each accepted TcpStream.
//! let mut fixed = AuthorityFix::new(&wire[..]);
//! let mut seen_by_server = Vec::new();
//! fixed.read_to_end(&mut seen_by_server).await?;
//!
//! let frame = &seen_by_server[24..];
//! assert_eq!(frame[3], 0x1); // still a HEADERS frame on stream 1
//! let headers = loona_hpack::Decoder::new().decode(&frame[9..]).unwrap();
//! assert_eq!(
//!     headers,
//!     [(b":authority".to_vec(), b"127.0.0.1:2379".to_vec())]
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Wiring into tonic
//!
//! With the `tonic` feature, `AuthorityFix<S>` implements
//! `tonic::transport::server::Connected` by delegating to `S`, so
//! `Request::remote_addr()` keeps working:
//!
//! ```ignore
//! let listener = tokio::net::TcpListener::bind(addr).await?;
//! let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
//!     let conn = conn?;
//!     conn.set_nodelay(true)?;
//!     Ok::<_, std::io::Error>(AuthorityFix::new(conn))
//! });
//! tonic::transport::Server::builder()
//!     .add_service(kv_service)
//!     .serve_with_incoming(incoming)
//!     .await?;
//! ```
//!
//! # Cost
//!
//! Measured in release builds: about 1 µs to rewrite a typical steady-state
//! gRPC request header block (fields indexed in the client's dynamic table),
//! about 4 µs for a first request with six fresh Huffman-coded literals;
//! DATA frames move at memory-copy speed. The HPACK decoder is this crate's
//! own (see `hpack.rs` for why).
//!
//! # Limits
//!
//! - A header block (compressed, across CONTINUATION frames) or its
//!   re-encoded form larger than 1 MiB is refused with an I/O error; hyper's
//!   own header list limit is 16 KiB by default. Other frames are never
//!   buffered, whatever their size.
//! - The client may grow its HPACK dynamic table to at most 64 KiB.
//! - "Never indexed" fields are forwarded as "without indexing"; the server
//!   is the final hop, so no intermediary can be misled by this.
//! - Only the client-to-server direction is inspected; the server's own
//!   HPACK context (for responses) is untouched.
#![deny(missing_docs)]

mod authority;
mod block;
mod frame;
mod hpack;
mod stream;

pub use stream::AuthorityFix;

/// Why a connection's input could not be rewritten.
///
/// `AuthorityFix::poll_read` reports these as an [`std::io::Error`] of kind
/// [`std::io::ErrorKind::InvalidData`] whose inner error is this type (use
/// `get_ref()` and `downcast_ref::<Error>()` to inspect it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client's header block could not be HPACK-decoded.
    #[error("HPACK decoding of the header block on stream {stream_id} failed: {reason}")]
    Hpack {
        /// Stream the header block belongs to.
        stream_id: u32,
        /// The decoder's description of the failure.
        reason: String,
    },
    /// A HEADERS frame's padding or priority fields exceed its payload.
    #[error("HEADERS frame on stream {stream_id} is shorter than its padding and priority fields")]
    BadPadding {
        /// Stream of the offending frame.
        stream_id: u32,
    },
    /// A header block was interrupted by a frame other than its CONTINUATION.
    #[error(
        "expected CONTINUATION on stream {stream_id}, got frame type {frame_type:#x} on stream {frame_stream_id}"
    )]
    ExpectedContinuation {
        /// Stream whose header block is open.
        stream_id: u32,
        /// Type of the frame that arrived instead.
        frame_type: u8,
        /// Stream of the frame that arrived instead.
        frame_stream_id: u32,
    },
    /// A compressed header block exceeds the buffering limit.
    #[error("header block on stream {stream_id} exceeds 1 MiB")]
    HeaderBlockTooLarge {
        /// Stream of the header block.
        stream_id: u32,
    },
    /// A decoded header list, re-encoded, exceeds the buffering limit.
    #[error("decoded header list on stream {stream_id} exceeds 1 MiB")]
    HeaderListTooLarge {
        /// Stream of the header block.
        stream_id: u32,
    },
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// Returns the `host[:port]` of an authority value that carries a URL
/// scheme, or `None` if the value has no scheme (and so needs no fix) or its
/// host part is empty.
///
/// Any path, query or fragment after the host is dropped, as is userinfo.
///
/// ```
/// use h2_authority_fix::strip_scheme;
///
/// assert_eq!(strip_scheme(b"http://127.0.0.1:2379").as_deref(), Some(&b"127.0.0.1:2379"[..]));
/// assert_eq!(strip_scheme(b"https://etcd-0:2379/").as_deref(), Some(&b"etcd-0:2379"[..]));
/// assert_eq!(strip_scheme(b"127.0.0.1:2379"), None);
/// ```
pub fn strip_scheme(authority: &[u8]) -> Option<Vec<u8>> {
    authority::host_of(authority).map(<[u8]>::to_vec)
}

#[cfg(feature = "tonic")]
impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for AuthorityFix<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrapper_can_cross_threads() {
        fn assert_send_sync_unpin<T: Send + Sync + Unpin + 'static>() {}
        assert_send_sync_unpin::<crate::AuthorityFix<tokio::io::DuplexStream>>();
        assert_send_sync_unpin::<crate::Error>();
    }
}

#[cfg(all(test, feature = "tonic"))]
mod tonic_tests {
    use tonic::transport::server::{Connected, TcpConnectInfo};

    fn connect_info<T: Connected>(_: &T) -> std::marker::PhantomData<T::ConnectInfo> {
        std::marker::PhantomData
    }

    #[test]
    fn wrapped_tcp_stream_is_connected() {
        let wrapped: Option<crate::AuthorityFix<tokio::net::TcpStream>> = None;
        if let Some(w) = &wrapped {
            let _: std::marker::PhantomData<TcpConnectInfo> = connect_info(w);
        }
    }
}
