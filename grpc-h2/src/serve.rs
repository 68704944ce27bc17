//! One task per connection: it drives h2's connection and runs every call as a future
//! polled by that same task, so a unary call costs no task or channel and its response goes
//! out with the next write.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::{Ping, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use crate::cork::Corked;
use crate::handler::{CallKind, Handler, Request, Response};
use crate::message::{frame_into, send_message, Budget, Messages, COPY_LIMIT, PREFIX_LEN};
use crate::metadata::Metadata;
use crate::pings::{PingPolicy, Watched};
use crate::status::{Status, GRPC_MESSAGE, GRPC_STATUS};
use crate::unsent::Unsent;
use crate::Error;

/// Stream-level receive window we grant: a whole default-sized request fits without a
/// WINDOW_UPDATE round trip.
const RECV_STREAM_WINDOW: u32 = 4 << 20;

/// Connection-level receive window we grant; it also bounds what a connection's streams can
/// have sent that their handlers have not read yet.
const RECV_CONN_WINDOW: u32 = 16 << 20;

/// What the server allows each connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message, in bytes (grpc-go's MaxRecvMsgSize).
    pub max_message: usize,
    /// Calls a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest decoded request header list (SETTINGS_MAX_HEADER_LIST_SIZE); h2 refuses larger
    /// ones without keeping them.
    pub max_header_list_size: u32,
    /// Request bytes a connection holds in messages still arriving.
    pub max_buffered: usize,
    /// Response bytes a connection holds while the client's window has no room for them;
    /// beyond it new calls wait until the client reads (see `unsent.rs`).
    pub max_unsent: usize,
    /// How long a client has to send the HTTP/2 preface and its SETTINGS.
    pub handshake_timeout: Duration,
    /// A connection without calls for this long is closed with GOAWAY.
    pub idle_timeout: Option<Duration>,
    /// After this long the server pings the client ...
    pub keepalive_interval: Duration,
    /// ... and closes the connection if the answer takes longer than this.
    pub keepalive_timeout: Duration,
    /// A client PING sooner than this after the previous one is a strike (grpc-go's
    /// keepalive enforcement MinTime); more than two strikes in a row, with no response sent
    /// in between, end the connection with GOAWAY ENHANCE_YOUR_CALM.
    pub min_ping_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 4 << 20,
            max_concurrent_streams: 1000,
            max_header_list_size: 16 << 10,
            max_buffered: 64 << 20,
            max_unsent: 8 << 20,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
            keepalive_interval: Duration::from_secs(2 * 3600),
            keepalive_timeout: Duration::from_secs(20),
            min_ping_interval: Duration::from_secs(5),
        }
    }
}

/// A timer that is re-armed lazily: moving the deadline costs nothing until it fires.
struct Timer {
    sleep: Pin<Box<Sleep>>,
}

impl Timer {
    fn new(after: Duration) -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep(after)),
        }
    }

    /// Whether `deadline` has passed; otherwise the timer wakes the task at it.
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        if Instant::now() >= deadline {
            return true;
        }
        if self.sleep.deadline() != deadline.into() {
            self.sleep.as_mut().reset(deadline.into());
        }
        let _ = self.sleep.as_mut().poll(cx);
        false
    }
}

/// Serves one HTTP/2 connection until the client closes it, a protocol error or a timeout
/// ends it, or `shutdown` resolves (then open calls finish before it closes). Every call
/// still open when the connection ends is dropped, which cancels it.
pub async fn serve_connection<IO, H>(
    io: IO,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(RECV_STREAM_WINDOW)
        .initial_connection_window_size(RECV_CONN_WINDOW)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size);
    let pings = PingPolicy::new(limits.min_ping_interval);
    let (io, cork) = Corked::new(Watched::new(io, pings.clone()));
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = tokio::time::timeout(limits.handshake_timeout, handshake)
        .await
        .map_err(|_| Error::HandshakeTimeout)??;
    let mut ping = conn.ping_pong();
    let budget = Budget::new(limits.max_buffered);
    let unsent = Unsent::new(limits.max_unsent);
    let start = |request, respond| {
        let budgets = (budget.clone(), unsent.clone());
        serve_call(
            handler.clone(),
            request,
            respond,
            limits.max_message,
            budgets,
        )
    };
    let mut calls = FuturesUnordered::new();
    let mut shutdown = pin!(shutdown);
    let mut closing = false;
    let mut calmed = false;
    let mut idle_since = Some(Instant::now());
    let mut idle_timer = Timer::new(limits.idle_timeout.unwrap_or(Duration::MAX / 4));
    let mut ping_sent: Option<Instant> = None;
    let mut last_pong = Instant::now();
    let mut keepalive_timer = Timer::new(limits.keepalive_interval);

    std::future::poll_fn(|cx| loop {
        // What the turn sends waits for its last pass over the connection (below).
        cork.close();
        let mut progress = false;
        if !closing && shutdown.as_mut().poll(cx).is_ready() {
            conn.graceful_shutdown();
            closing = true;
        }
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    calls.push(start(request, respond));
                    progress = true;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => break,
            }
        }
        if pings.exceeded() && !calmed {
            conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            calmed = true;
            continue;
        }
        while let Poll::Ready(Some(())) = calls.poll_next_unpin(cx) {
            progress = true;
        }
        if progress {
            continue;
        }

        idle_since = match (calls.is_empty(), idle_since) {
            (false, _) => None,
            (true, None) => Some(Instant::now()),
            (true, since) => since,
        };
        if let (Some(since), Some(idle)) = (idle_since, limits.idle_timeout) {
            if !closing && idle_timer.expired(since + idle, cx) {
                conn.graceful_shutdown();
                closing = true;
                continue;
            }
        }
        if let Some(ping) = ping.as_mut() {
            match ping_sent {
                Some(sent) => match ping.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        ping_sent = None;
                        last_pong = Instant::now();
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending => {
                        if keepalive_timer.expired(sent + limits.keepalive_timeout, cx) {
                            return Poll::Ready(Err(Error::KeepaliveTimeout));
                        }
                    }
                },
                None => {
                    if keepalive_timer.expired(last_pong + limits.keepalive_interval, cx) {
                        ping.send_ping(Ping::opaque())?;
                        ping_sent = Some(Instant::now());
                        continue;
                    }
                }
            }
        }
        // The turn is over: this pass writes everything it queued, in one write.
        cork.open();
        match conn.poll_accept(cx) {
            Poll::Ready(Some(Ok((request, respond)))) => calls.push(start(request, respond)),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// What ended a call before it ran to completion.
enum Outcome<T> {
    Done(T),
    Reset,
    Expired,
}

/// A stream whose reset by the client (or whose connection's end) cancels the call.
trait Resettable {
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<h2::Reason, h2::Error>>;
}

impl Resettable for SendResponse<Bytes> {
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<h2::Reason, h2::Error>> {
        SendResponse::poll_reset(self, cx)
    }
}

/// The call's `grpc-timeout`, if it has one.
struct Deadline(Option<Pin<Box<Sleep>>>);

impl Deadline {
    fn new(at: Option<Instant>) -> Self {
        Deadline(at.map(|at| Box::pin(tokio::time::sleep_until(at.into()))))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// Runs `work` until it is done, the client resets the stream or the deadline passes.
async fn race<T>(
    work: impl Future<Output = T>,
    stream: &mut impl Resettable,
    deadline: &mut Deadline,
) -> Outcome<T> {
    let mut work = pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = work.as_mut().poll(cx) {
            return Poll::Ready(Outcome::Done(v));
        }
        if stream.poll_reset(cx).is_ready() {
            return Poll::Ready(Outcome::Reset);
        }
        if deadline.poll(cx).is_ready() {
            return Poll::Ready(Outcome::Expired);
        }
        Poll::Pending
    })
    .await
}

/// One call, from its request headers to its trailers.
async fn serve_call<H: Handler>(
    handler: Arc<H>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    max_message: usize,
    (budget, unsent): (Budget, Arc<Unsent>),
) {
    let (parts, body) = request.into_parts();
    if parts.method != http::Method::POST {
        return refuse(respond, StatusCode::METHOD_NOT_ALLOWED);
    }
    let is_grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        return refuse(respond, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let path = parts.uri.path();
    let kind = match handler.kind(path) {
        Ok(kind) => kind,
        Err(status) => return trailers_only(respond, &status),
    };
    let authority = match parts.uri.authority() {
        Some(a) => a.as_str().to_owned(),
        None => parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    let metadata = Metadata::new(authority, parts.headers, Instant::now());
    let mut deadline = Deadline::new(metadata.deadline);
    let mut messages = Messages::new(body, max_message, budget);
    let request = match kind {
        CallKind::Bidirectional => Request::Stream(messages.boxed()),
        CallKind::Unary | CallKind::ServerStreaming => {
            match race(read_one(&mut messages), &mut respond, &mut deadline).await {
                Outcome::Done(Ok(message)) => Request::Message(message),
                Outcome::Done(Err(status)) => return trailers_only(respond, &status),
                Outcome::Reset => return,
                Outcome::Expired => return trailers_only(respond, &Status::deadline_exceeded()),
            }
        }
    };
    match race(unsent.admit(), &mut respond, &mut deadline).await {
        Outcome::Done(Ok(())) => {}
        Outcome::Done(Err(status)) => return trailers_only(respond, &status),
        Outcome::Reset => return,
        Outcome::Expired => return trailers_only(respond, &Status::deadline_exceeded()),
    }
    match handler.call(path, metadata, request) {
        Response::Unary(reply) => match race(reply, &mut respond, &mut deadline).await {
            Outcome::Done(Ok(message)) => {
                if let Ok(send) = respond.send_response(grpc_response(), false) {
                    send_unary(send, message, &unsent).await;
                }
            }
            Outcome::Done(Err(status)) => trailers_only(respond, &status),
            Outcome::Reset => {}
            Outcome::Expired => trailers_only(respond, &Status::deadline_exceeded()),
        },
        Response::Stream(replies) => {
            if let Ok(send) = respond.send_response(grpc_response(), false) {
                stream_replies(send, replies, deadline).await;
            }
        }
    }
}

/// Sends a unary response and its trailers. One that the client's window cannot take at
/// once counts as unsent until the window has room for it.
async fn send_unary(mut send: SendStream<Bytes>, message: Bytes, unsent: &Arc<Unsent>) {
    let len = message.len() + PREFIX_LEN;
    send.reserve_capacity(len);
    if send.capacity() >= len {
        let _ = send_message(&mut send, message);
        let _ = send.send_trailers(trailers(None));
        return;
    }
    let _held = unsent.hold(len);
    if send_message(&mut send, message).is_err() {
        return;
    }
    // Capacity shows up again only once the window has room beyond everything buffered.
    send.reserve_capacity(1);
    let drained = std::future::poll_fn(|cx| {
        if send.poll_reset(cx).is_ready() {
            return Poll::Ready(false);
        }
        match send.poll_capacity(cx) {
            Poll::Ready(Some(Ok(_))) => Poll::Ready(true),
            Poll::Ready(_) => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    if drained {
        let _ = send.send_trailers(trailers(None));
    }
}

/// The single request message of a unary or server-streaming call.
async fn read_one(messages: &mut Messages) -> Result<Bytes, Status> {
    let message = messages.next().await.unwrap_or_else(|| {
        Err(Status::new(
            Status::INTERNAL,
            "grpc: the request carries no message",
        ))
    })?;
    if !messages.is_end() && messages.next().await.is_some() {
        return Err(Status::new(
            Status::INTERNAL,
            "grpc: a unary request must carry exactly one message",
        ));
    }
    Ok(message)
}

/// Sends the messages of a response stream, producing each only when the client's window
/// has room, then the trailers with the status it ended with.
async fn stream_replies(
    mut send: SendStream<Bytes>,
    mut replies: BoxStream<'static, Result<Bytes, Status>>,
    mut deadline: Deadline,
) {
    // Set after a message is handed to h2: the next one is produced only once the client's
    // window has room beyond it. The window is asked for only while a message waits, so a
    // stream with nothing to send (a watch between events) holds none of the connection's
    // window: grpc-go clients start with 64 KiB for the whole connection, and streams that
    // held window while idle would leave the next stream unable to answer.
    let mut draining = false;
    // How the replies ended, seen while gathering messages that went out before it.
    let mut ended: Option<Status> = None;
    let end = std::future::poll_fn(|cx| loop {
        if send.poll_reset(cx).is_ready() {
            return Poll::Ready(None);
        }
        if deadline.poll(cx).is_ready() {
            return Poll::Ready(Some(Status::deadline_exceeded()));
        }
        if draining {
            if send.capacity() == 0 {
                match send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
            draining = false;
            send.reserve_capacity(0);
        }
        if let Some(status) = ended.take() {
            return Poll::Ready(Some(status));
        }
        let first = match replies.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(message))) => message,
            Poll::Ready(Some(Err(status))) => return Poll::Ready(Some(status)),
            Poll::Ready(None) => return Poll::Ready(Some(Status::new(0, ""))),
            Poll::Pending => return Poll::Pending,
        };
        let (sent, end) = send_ready(&mut send, first, &mut replies, cx);
        if sent.is_err() {
            return Poll::Ready(None);
        }
        ended = end;
        send.reserve_capacity(1);
        draining = true;
    })
    .await;
    if let Some(status) = end {
        let status = (status.code != 0).then_some(status);
        let _ = send.send_trailers(trailers(status.as_ref()));
    }
}

/// Bytes of messages a response stream sends in one go before it waits for the client's
/// window again. The small ones among them go in one DATA chunk: a watch stream of a
/// thousand watchers of one prefix has a thousand small responses ready after each change,
/// and one chunk costs h2 (and the client) one frame instead of one per message.
const GATHER_BYTES: usize = 64 << 10;

/// Sends `first` and whatever else `replies` has ready at once, small messages framed
/// together; returns the send's result and how the replies ended, if they did meanwhile.
fn send_ready(
    send: &mut SendStream<Bytes>,
    first: Bytes,
    replies: &mut BoxStream<'static, Result<Bytes, Status>>,
    cx: &mut Context<'_>,
) -> (Result<(), h2::Error>, Option<Status>) {
    let mut gathered = Gathered::default();
    let mut next = Some(first);
    let mut end = None;
    // Large messages count too: a stream that always has one ready must still stop here,
    // and wait for the client's window, after one chunk's worth.
    let mut budget = GATHER_BYTES;
    while let Some(message) = next.take() {
        budget = budget.saturating_sub(message.len() + PREFIX_LEN);
        if let Some(large) = gathered.add(message) {
            if let Err(e) = gathered.send(send).and_then(|()| send_message(send, large)) {
                return (Err(e), None);
            }
        }
        if budget == 0 {
            break;
        }
        match replies.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(message))) => next = Some(message),
            Poll::Ready(Some(Err(status))) => end = Some(status),
            Poll::Ready(None) => end = Some(Status::new(0, "")),
            Poll::Pending => {}
        }
    }
    (gathered.send(send), end)
}

/// Small messages framed back to back.
#[derive(Default)]
struct Gathered(BytesMut);

impl Gathered {
    /// Frames `message` behind the others, or hands it back when it is too large to copy.
    fn add(&mut self, message: Bytes) -> Option<Bytes> {
        if message.len() > COPY_LIMIT {
            return Some(message);
        }
        frame_into(&mut self.0, &message);
        None
    }

    fn send(&mut self, send: &mut SendStream<Bytes>) -> Result<(), h2::Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        send.send_data(self.0.split().freeze(), false)
    }
}

fn grpc_response() -> http::Response<()> {
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// `grpc-status` (and `grpc-message` for an error).
fn trailers(status: Option<&Status>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(2);
    match status {
        None => {
            map.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        }
        Some(s) => {
            map.insert(GRPC_STATUS, HeaderValue::from(s.code));
            map.insert(GRPC_MESSAGE, s.header_message());
        }
    }
    map
}

/// A failed call answered with headers alone, as gRPC's "trailers-only" response.
fn trailers_only(mut respond: SendResponse<Bytes>, status: &Status) {
    let mut response = grpc_response();
    response.headers_mut().extend(trailers(Some(status)));
    let _ = respond.send_response(response, true);
}

/// A request that is not gRPC at all gets a bare HTTP status.
fn refuse(mut respond: SendResponse<Bytes>, code: StatusCode) {
    let mut response = http::Response::new(());
    *response.status_mut() = code;
    let _ = respond.send_response(response, true);
}
