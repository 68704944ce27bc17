//! One HTTP/2 connection's protocol state, without IO: bytes in, unary gRPC requests out;
//! responses in, bytes out.
//!
//! The driver ([`crate::serve_connection`]) feeds what it reads to [`Connection::recv`], runs
//! the calls, hands each result to [`Connection::respond`] and writes [`Connection::output`].
//! Keeping IO out makes every protocol path testable with byte strings.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::*;
use crate::hpack;
use crate::message;
use crate::status::{percent_encode, Status};

/// Stream-level receive window we advertise: a whole default-sized request fits without a
/// WINDOW_UPDATE round trip.
const RECV_STREAM_WINDOW: i64 = 4 << 20;

/// Connection-level receive window we grant.
const RECV_CONN_WINDOW: i64 = 16 << 20;

/// Header blocks (HEADERS plus CONTINUATIONs) larger than this end the connection.
const MAX_HEADER_BLOCK: usize = 64 << 10;

/// Request bytes a connection holds at most in requests still arriving. Beyond it a request's
/// bytes are dropped and it is answered RESOURCE_EXHAUSTED. (Withholding the connection window
/// instead could deadlock a client that interleaves many large requests.)
const MAX_BUFFERED: usize = 64 << 20;

/// Output beyond this stops reading until the peer takes it.
const OUTPUT_HIGH_WATER: usize = 1 << 20;

/// What the server allows each connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message, in bytes (grpc-go's MaxRecvMsgSize).
    pub max_message: usize,
    /// Streams open at once; more are refused with REFUSED_STREAM.
    pub max_streams: u32,
}

/// A complete unary request.
#[derive(Debug)]
pub(crate) struct Request {
    pub stream_id: u32,
    pub path: String,
    pub message: Bytes,
}

/// A connection error: GOAWAY with `reason` has been queued; close after writing it.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/2 {reason:?}: {detail}")]
pub struct ConnError {
    pub reason: Reason,
    pub detail: String,
}

enum Reject {
    Http(&'static [u8]),
    Grpc(Status),
}

enum Stage {
    Receiving {
        path: String,
        body: BytesMut,
        reject: Option<Reject>,
    },
    Running,
    Sending(Bytes),
}

struct Stream {
    send_window: i64,
    /// Received bytes not yet returned to the peer in a WINDOW_UPDATE.
    recv_unacked: i64,
    stage: Stage,
}

struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    block: Vec<u8>,
}

pub(crate) struct Connection {
    limits: Limits,
    preface_seen: bool,
    settings_seen: bool,
    decoder: hpack::Decoder,
    streams: HashMap<u32, Stream>,
    /// Streams with response data waiting for flow-control window.
    blocked: VecDeque<u32>,
    /// The last stream processed: what a GOAWAY reports.
    last_stream_id: u32,
    /// The highest stream the client opened, processed or (after GOAWAY) ignored.
    highest_stream_id: u32,
    pending_block: Option<PendingBlock>,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_unacked: i64,
    /// Request bytes held in streams still receiving; bounded by [`MAX_BUFFERED`].
    buffered: usize,
    going_away: bool,
    out: Vec<u8>,
    out_pos: usize,
}

pub(crate) fn error(reason: Reason, detail: impl Into<String>) -> ConnError {
    ConnError {
        reason,
        detail: detail.into(),
    }
}

impl Connection {
    pub(crate) fn new(limits: Limits) -> Self {
        let mut c = Connection {
            limits,
            preface_seen: false,
            settings_seen: false,
            decoder: hpack::Decoder::new(4096),
            streams: HashMap::new(),
            blocked: VecDeque::new(),
            last_stream_id: 0,
            highest_stream_id: 0,
            pending_block: None,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: DEFAULT_MAX_FRAME,
            send_window: DEFAULT_WINDOW,
            recv_unacked: 0,
            buffered: 0,
            going_away: false,
            out: Vec::with_capacity(16 << 10),
            out_pos: 0,
        };
        let settings = [
            (SETTINGS_MAX_CONCURRENT_STREAMS, c.limits.max_streams),
            (SETTINGS_INITIAL_WINDOW_SIZE, RECV_STREAM_WINDOW as u32),
            (SETTINGS_HEADER_TABLE_SIZE, 4096),
        ];
        write_settings(&mut c.out, &settings);
        write_window_update(&mut c.out, 0, (RECV_CONN_WINDOW - DEFAULT_WINDOW) as u32);
        c
    }

    /// Bytes waiting to be written.
    pub(crate) fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`Self::output`] were written.
    pub(crate) fn written(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Whether more input should be read now (false while output piles up).
    pub(crate) fn wants_input(&self) -> bool {
        self.out.len() - self.out_pos < OUTPUT_HIGH_WATER
    }

    /// Whether a graceful shutdown has finished: GOAWAY sent and every stream answered.
    pub(crate) fn is_finished(&self) -> bool {
        self.going_away && self.streams.is_empty() && self.output().is_empty()
    }

    /// Starts a graceful shutdown: no new streams; those already open are answered.
    pub(crate) fn go_away(&mut self) {
        if !self.going_away {
            self.going_away = true;
            self.write_goaway(Reason::NoError);
        }
    }

    fn write_goaway(&mut self, reason: Reason) {
        let mut payload = [0u8; 8];
        payload[..4].copy_from_slice(&self.last_stream_id.to_be_bytes());
        payload[4..].copy_from_slice(&(reason as u32).to_be_bytes());
        write_frame(&mut self.out, TYPE_GOAWAY, 0, 0, &payload);
    }

    /// A header block that ends the stream: trailers, or a whole error response.
    fn write_final_headers(&mut self, stream_id: u32, block: &[u8]) {
        let flags = FLAG_END_HEADERS | FLAG_END_STREAM;
        write_frame(&mut self.out, TYPE_HEADERS, flags, stream_id, block);
    }

    fn write_rst(&mut self, stream_id: u32, reason: Reason) {
        write_frame(
            &mut self.out,
            TYPE_RST_STREAM,
            0,
            stream_id,
            &(reason as u32).to_be_bytes(),
        );
    }

    /// Consumes every complete frame at the front of `input`, appending finished requests to
    /// `requests`. On error a GOAWAY is queued and the connection must be closed after
    /// writing it.
    /// `known` says whether a path names a call the server has: others are refused as soon as
    /// their headers arrive, so a streaming call is not left waiting for a request end that a
    /// client may never send.
    pub(crate) fn recv(
        &mut self,
        input: &mut BytesMut,
        requests: &mut Vec<Request>,
        known: &dyn Fn(&str) -> Result<(), Status>,
    ) -> Result<(), ConnError> {
        let result = self.recv_frames(input, requests, known);
        if let Err(e) = &result {
            self.write_goaway(e.reason);
        }
        result
    }

    fn recv_frames(
        &mut self,
        input: &mut BytesMut,
        requests: &mut Vec<Request>,
        known: &dyn Fn(&str) -> Result<(), Status>,
    ) -> Result<(), ConnError> {
        if !self.preface_seen {
            let n = input.len().min(PREFACE.len());
            if input[..n] != PREFACE[..n] {
                return Err(error(
                    Reason::ProtocolError,
                    "the client did not send the HTTP/2 preface",
                ));
            }
            if n < PREFACE.len() {
                return Ok(());
            }
            input.advance(PREFACE.len());
            self.preface_seen = true;
        }
        while input.len() >= HEADER_LEN {
            let head = FrameHeader::parse(input[..HEADER_LEN].try_into().expect("9 bytes"));
            if head.len > DEFAULT_MAX_FRAME {
                return Err(error(
                    Reason::FrameSizeError,
                    format!("a {}-byte frame exceeds SETTINGS_MAX_FRAME_SIZE", head.len),
                ));
            }
            if input.len() < HEADER_LEN + head.len {
                input.reserve(HEADER_LEN + head.len - input.len());
                break;
            }
            input.advance(HEADER_LEN);
            let payload = input.split_to(head.len);
            if !self.settings_seen && head.kind != TYPE_SETTINGS {
                return Err(error(
                    Reason::ProtocolError,
                    "the first frame after the preface must be SETTINGS",
                ));
            }
            self.frame(head, &payload, requests, known)?;
        }
        Ok(())
    }

    fn frame(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        requests: &mut Vec<Request>,
        known: &dyn Fn(&str) -> Result<(), Status>,
    ) -> Result<(), ConnError> {
        if let Some(pending) = &mut self.pending_block {
            if head.kind != TYPE_CONTINUATION || head.stream_id != pending.stream_id {
                return Err(error(
                    Reason::ProtocolError,
                    "a header block was interrupted by another frame",
                ));
            }
            if pending.block.len() + payload.len() > MAX_HEADER_BLOCK {
                return Err(error(Reason::ProtocolError, "header block too large"));
            }
            pending.block.extend_from_slice(payload);
            if head.flags & FLAG_END_HEADERS != 0 {
                let p = self.pending_block.take().expect("checked above");
                self.header_block(p.stream_id, p.end_stream, &p.block, requests, known)?;
            }
            return Ok(());
        }
        match head.kind {
            TYPE_DATA => self.data(head, payload, requests),
            TYPE_HEADERS => {
                if head.stream_id == 0 {
                    return Err(error(Reason::ProtocolError, "HEADERS on stream 0"));
                }
                let fragment = unpad(head.flags, payload, true)
                    .ok_or_else(|| error(Reason::ProtocolError, "bad HEADERS padding"))?;
                let end_stream = head.flags & FLAG_END_STREAM != 0;
                if head.flags & FLAG_END_HEADERS != 0 {
                    self.header_block(head.stream_id, end_stream, fragment, requests, known)
                } else {
                    self.pending_block = Some(PendingBlock {
                        stream_id: head.stream_id,
                        end_stream,
                        block: fragment.to_vec(),
                    });
                    Ok(())
                }
            }
            TYPE_PRIORITY => Ok(()),
            TYPE_RST_STREAM => {
                if head.stream_id == 0 || payload.len() != 4 {
                    return Err(error(Reason::ProtocolError, "malformed RST_STREAM"));
                }
                if !self.drop_stream(head.stream_id) && head.stream_id > self.highest_stream_id {
                    return Err(error(Reason::ProtocolError, "RST_STREAM on an idle stream"));
                }
                Ok(())
            }
            TYPE_SETTINGS => self.settings(head, payload),
            TYPE_PUSH_PROMISE => Err(error(
                Reason::ProtocolError,
                "a client may not send PUSH_PROMISE",
            )),
            TYPE_PING => {
                if head.stream_id != 0 {
                    return Err(error(Reason::ProtocolError, "PING on a stream"));
                }
                if payload.len() != 8 {
                    return Err(error(Reason::FrameSizeError, "PING of the wrong length"));
                }
                if head.flags & FLAG_ACK == 0 {
                    write_frame(&mut self.out, TYPE_PING, FLAG_ACK, 0, payload);
                }
                Ok(())
            }
            TYPE_GOAWAY => {
                // The client opens no more streams; the open ones are still answered.
                Ok(())
            }
            TYPE_WINDOW_UPDATE => self.window_update(head, payload),
            TYPE_CONTINUATION => Err(error(
                Reason::ProtocolError,
                "CONTINUATION without a header block",
            )),
            // RFC 9113 §5.5: unknown frame types are ignored.
            _ => Ok(()),
        }
    }

    fn settings(&mut self, head: FrameHeader, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream_id != 0 {
            return Err(error(Reason::ProtocolError, "SETTINGS on a stream"));
        }
        if head.flags & FLAG_ACK != 0 {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(error(Reason::FrameSizeError, "SETTINGS ack with a payload"))
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(error(Reason::FrameSizeError, "SETTINGS length"));
        }
        self.settings_seen = true;
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match id {
                SETTINGS_INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > MAX_WINDOW {
                        return Err(error(
                            Reason::FlowControlError,
                            "SETTINGS_INITIAL_WINDOW_SIZE too large",
                        ));
                    }
                    let delta = value - self.peer_initial_window;
                    self.peer_initial_window = value;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                    }
                }
                SETTINGS_MAX_FRAME_SIZE => {
                    let value = value as usize;
                    if !(DEFAULT_MAX_FRAME..1 << 24).contains(&value) {
                        return Err(error(
                            Reason::ProtocolError,
                            "SETTINGS_MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.peer_max_frame = value;
                }
                // The encoder uses no dynamic table, so the client's table size does not
                // matter; the other settings concern what the server sends, which is little.
                _ => {}
            }
        }
        write_frame(&mut self.out, TYPE_SETTINGS, FLAG_ACK, 0, &[]);
        self.unblock();
        Ok(())
    }

    fn window_update(&mut self, head: FrameHeader, payload: &[u8]) -> Result<(), ConnError> {
        let Ok(bytes) = <[u8; 4]>::try_from(payload) else {
            return Err(error(Reason::FrameSizeError, "malformed WINDOW_UPDATE"));
        };
        let inc = i64::from(u32::from_be_bytes(bytes) & 0x7fff_ffff);
        if head.stream_id == 0 {
            if inc == 0 {
                return Err(error(Reason::ProtocolError, "WINDOW_UPDATE of 0"));
            }
            self.send_window += inc;
            if self.send_window > MAX_WINDOW {
                return Err(error(
                    Reason::FlowControlError,
                    "connection window overflow",
                ));
            }
            self.unblock();
        } else if let Some(s) = self.streams.get_mut(&head.stream_id) {
            s.send_window += inc;
            if inc == 0 || s.send_window > MAX_WINDOW {
                self.drop_stream(head.stream_id);
                self.write_rst(head.stream_id, Reason::FlowControlError);
            } else if matches!(s.stage, Stage::Sending(_)) {
                self.send_data(head.stream_id);
            }
        }
        Ok(())
    }

    fn data(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        requests: &mut Vec<Request>,
    ) -> Result<(), ConnError> {
        if head.stream_id == 0 {
            return Err(error(Reason::ProtocolError, "DATA on stream 0"));
        }
        // Flow control counts the whole payload, padding included (RFC 9113 §6.9.1).
        let len = payload.len() as i64;
        self.recv_unacked += len;
        if self.recv_unacked > RECV_CONN_WINDOW {
            return Err(error(
                Reason::FlowControlError,
                "the client overran the connection window",
            ));
        }
        let data = unpad(head.flags, payload, false)
            .ok_or_else(|| error(Reason::ProtocolError, "bad DATA padding"))?;
        let end_stream = head.flags & FLAG_END_STREAM != 0;
        let max_message = self.limits.max_message;
        let Some(stream) = self.streams.get_mut(&head.stream_id) else {
            if head.stream_id > self.highest_stream_id {
                return Err(error(Reason::ProtocolError, "DATA on an idle stream"));
            }
            // A stream we already reset or answered: drop what is still in flight.
            self.release_window();
            return Ok(());
        };
        let Stage::Receiving { body, reject, .. } = &mut stream.stage else {
            self.streams.remove(&head.stream_id);
            self.write_rst(head.stream_id, Reason::StreamClosed);
            return Ok(());
        };
        if reject.is_none() {
            body.extend_from_slice(data);
            self.buffered += data.len();
            if body.len() >= message::PREFIX_LEN {
                let declared = message::declared_len(body);
                // A client may also send more than it declared.
                let size = declared.max(body.len() - message::PREFIX_LEN);
                if size > max_message {
                    *reject = Some(Reject::Grpc(Status::new(
                        Status::RESOURCE_EXHAUSTED,
                        format!(
                            "grpc: received message larger than max ({size} vs. {max_message})"
                        ),
                    )));
                }
            }
            if reject.is_none() && self.buffered > MAX_BUFFERED {
                *reject = Some(Reject::Grpc(Status::new(
                    Status::RESOURCE_EXHAUSTED,
                    "grpc-h2: too many request bytes in flight on this connection; retry",
                )));
            }
            if reject.is_some() {
                self.buffered -= body.len();
                *body = BytesMut::new();
            }
        }
        if end_stream {
            self.complete(head.stream_id, requests);
        } else {
            stream.recv_unacked += len;
            if stream.recv_unacked >= RECV_STREAM_WINDOW / 2 {
                let inc = stream.recv_unacked as u32;
                stream.recv_unacked = 0;
                write_window_update(&mut self.out, head.stream_id, inc);
            }
        }
        self.release_window();
        Ok(())
    }

    /// Returns received bytes to the client's connection window.
    fn release_window(&mut self) {
        if self.recv_unacked >= RECV_CONN_WINDOW / 2 {
            let inc = self.recv_unacked as u32;
            self.recv_unacked = 0;
            write_window_update(&mut self.out, 0, inc);
        }
    }

    /// Forgets a stream, and the request bytes it held.
    fn drop_stream(&mut self, stream_id: u32) -> bool {
        let Some(stream) = self.streams.remove(&stream_id) else {
            return false;
        };
        if let Stage::Receiving { body, .. } = stream.stage {
            self.buffered -= body.len();
            self.release_window();
        }
        true
    }

    fn header_block(
        &mut self,
        stream_id: u32,
        end_stream: bool,
        block: &[u8],
        requests: &mut Vec<Request>,
        known: &dyn Fn(&str) -> Result<(), Status>,
    ) -> Result<(), ConnError> {
        let mut method_post = false;
        let mut grpc_content = false;
        let mut path = String::new();
        self.decoder
            .decode(block, |name, value| match name {
                b":method" => method_post = value == b"POST",
                b":path" => path = String::from_utf8_lossy(value).into_owned(),
                b"content-type" => grpc_content = value.starts_with(b"application/grpc"),
                _ => {}
            })
            .map_err(|e| error(Reason::CompressionError, e.to_string()))?;

        if let Some(stream) = self.streams.get(&stream_id) {
            // Trailers from the client: they must end the stream.
            if !end_stream || !matches!(stream.stage, Stage::Receiving { .. }) {
                return Err(error(
                    Reason::ProtocolError,
                    "HEADERS in the middle of a stream",
                ));
            }
            self.complete(stream_id, requests);
            return Ok(());
        }
        if stream_id.is_multiple_of(2) || stream_id <= self.highest_stream_id {
            return Err(error(
                Reason::ProtocolError,
                format!("the client opened stream {stream_id} out of order"),
            ));
        }
        self.highest_stream_id = stream_id;
        if self.going_away {
            // RFC 9113 §6.8: streams above the GOAWAY's last id are ignored.
            return Ok(());
        }
        self.last_stream_id = stream_id;
        if self.streams.len() >= self.limits.max_streams as usize {
            self.write_rst(stream_id, Reason::RefusedStream);
            return Ok(());
        }
        let reject = if !method_post {
            Some(Reject::Http(b"405"))
        } else if !grpc_content {
            Some(Reject::Http(b"415"))
        } else if let Err(status) = known(&path) {
            // Answer now; what the client still sends on this stream is dropped.
            self.streams
                .insert(stream_id, self.new_stream(Stage::Running));
            self.respond(stream_id, Err(status));
            if !end_stream {
                self.write_rst(stream_id, Reason::NoError);
            }
            return Ok(());
        } else {
            None
        };
        let stream = self.new_stream(Stage::Receiving {
            path,
            body: BytesMut::new(),
            reject,
        });
        self.streams.insert(stream_id, stream);
        if end_stream {
            self.complete(stream_id, requests);
        }
        Ok(())
    }

    fn new_stream(&self, stage: Stage) -> Stream {
        Stream {
            send_window: self.peer_initial_window,
            recv_unacked: 0,
            stage,
        }
    }

    /// The client finished sending `stream_id`: emit the request, or answer an error.
    fn complete(&mut self, stream_id: u32, requests: &mut Vec<Request>) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let Stage::Receiving { path, body, reject } =
            std::mem::replace(&mut stream.stage, Stage::Running)
        else {
            return;
        };
        self.buffered -= body.len();
        self.release_window();
        let reject = reject.or_else(|| match body.get(..message::PREFIX_LEN) {
            None => Some(Reject::Grpc(Status::new(
                Status::INTERNAL,
                "grpc: the request carries no message",
            ))),
            Some(prefix) if prefix[0] != 0 => Some(Reject::Grpc(Status::new(
                Status::UNIMPLEMENTED,
                "grpc: compressed requests are not supported",
            ))),
            Some(prefix) => {
                let declared = message::declared_len(prefix);
                (declared != body.len() - message::PREFIX_LEN).then(|| {
                    Reject::Grpc(Status::new(
                        Status::INTERNAL,
                        "grpc: a unary request must carry exactly one message",
                    ))
                })
            }
        });
        match reject {
            None => {
                let message = body.freeze().slice(message::PREFIX_LEN..);
                requests.push(Request {
                    stream_id,
                    path,
                    message,
                });
            }
            Some(Reject::Grpc(status)) => self.respond(stream_id, Err(status)),
            Some(Reject::Http(code)) => {
                self.streams.remove(&stream_id);
                let mut block = Vec::with_capacity(8);
                hpack::put_field_indexed_name(&mut block, hpack::STATUS_NAME, code);
                self.write_final_headers(stream_id, &block);
            }
        }
    }

    /// Answers a request. A stream the client has reset meanwhile is skipped.
    pub(crate) fn respond(&mut self, stream_id: u32, result: Result<Bytes, Status>) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let mut block = Vec::with_capacity(64);
        block.push(0x80 | hpack::STATUS_200 as u8);
        hpack::put_field_indexed_name(&mut block, hpack::CONTENT_TYPE_NAME, b"application/grpc");
        match result {
            Ok(message) => {
                write_frame(
                    &mut self.out,
                    TYPE_HEADERS,
                    FLAG_END_HEADERS,
                    stream_id,
                    &block,
                );
                stream.stage = Stage::Sending(message::frame(&message));
                self.send_data(stream_id);
            }
            Err(status) => {
                self.streams.remove(&stream_id);
                hpack::put_field(
                    &mut block,
                    b"grpc-status",
                    status.code.to_string().as_bytes(),
                );
                let mut message = Vec::with_capacity(status.message.len());
                // Header blocks must fit one frame; etcd's messages are far shorter.
                let text: String = status.message.chars().take(4096).collect();
                percent_encode(&text, &mut message);
                hpack::put_field(&mut block, b"grpc-message", &message);
                self.write_final_headers(stream_id, &block);
            }
        }
    }

    /// Sends as much of a stream's response as the windows allow, then its trailers.
    fn send_data(&mut self, stream_id: u32) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let Stage::Sending(data) = &mut stream.stage else {
            return;
        };
        while !data.is_empty() {
            let n = (data.len() as i64)
                .min(self.send_window)
                .min(stream.send_window)
                .min(self.peer_max_frame as i64);
            if n <= 0 {
                if !self.blocked.contains(&stream_id) {
                    self.blocked.push_back(stream_id);
                }
                return;
            }
            let chunk = data.split_to(n as usize);
            write_frame(&mut self.out, TYPE_DATA, 0, stream_id, &chunk);
            self.send_window -= n;
            stream.send_window -= n;
        }
        self.streams.remove(&stream_id);
        let mut block = Vec::with_capacity(16);
        hpack::put_field(&mut block, b"grpc-status", b"0");
        self.write_final_headers(stream_id, &block);
    }

    fn unblock(&mut self) {
        for _ in 0..self.blocked.len() {
            if self.send_window <= 0 {
                return;
            }
            if let Some(id) = self.blocked.pop_front() {
                self.send_data(id);
            }
        }
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
