//! What a service implements: which calls it answers, and how.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::metadata::Metadata;
use crate::status::Status;

/// The shape of a call, which decides how the layer reads its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// One request message, one response message.
    Unary,
    /// One request message, a stream of responses.
    ServerStreaming,
    /// Streams both ways (client streaming is the case of one response).
    Bidirectional,
}

/// The request side of a call.
pub enum Request {
    /// The single message of a unary or server-streaming call.
    Message(Bytes),
    /// The messages of a bidirectional call, as they arrive; the stream ends when the client
    /// half-closes.
    Stream(BoxStream<'static, Result<Bytes, Status>>),
}

/// The response side of a call.
pub enum Response {
    /// One message, or the status the call failed with.
    Unary(BoxFuture<'static, Result<Bytes, Status>>),
    /// Messages until the stream ends (status OK) or yields an error (that status). The layer
    /// polls it only when the client's flow-control window has room, so a slow client holds
    /// the producer back.
    Stream(BoxStream<'static, Result<Bytes, Status>>),
}

/// Routes gRPC calls to the code that answers them.
///
/// Dropping what [`Handler::call`] returned cancels the call: the layer does so when the
/// client resets the stream, the connection ends or the call's deadline passes.
pub trait Handler: Send + Sync + 'static {
    /// The kind of call `path` (`/package.Service/Method`) is, or the status that refuses
    /// it; the refusal is sent as soon as the request's headers arrive.
    fn kind(&self, path: &str) -> Result<CallKind, Status>;

    /// Starts the call `path`, which [`Handler::kind`] accepted.
    fn call(&self, path: &str, metadata: Metadata, request: Request) -> Response;
}
