//! The client side, without IO: unary calls in, bytes out; bytes in, answers out.
//!
//! Made for load generators that keep many calls open on few connections: the caller owns
//! the socket and the loop, so a call costs no task, channel or lock.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use crate::conn::{error, ConnError};
use crate::frame::*;
use crate::hpack;
use crate::message;
use crate::status::Status;

/// Receive windows we grant the server: large enough that answers never wait for us.
const RECV_STREAM_WINDOW: u32 = 4 << 20;
const RECV_CONN_WINDOW: i64 = 16 << 20;

/// The answer to one call.
#[derive(Debug)]
pub struct Answer {
    pub stream_id: u32,
    pub result: Result<Bytes, Status>,
}

#[derive(Default)]
struct Call {
    /// Request bytes (gRPC-framed) still waiting for send window.
    unsent: Bytes,
    send_window: i64,
    body: BytesMut,
}

/// One client connection's protocol state.
pub struct ClientConnection {
    authority: String,
    decoder: hpack::Decoder,
    calls: HashMap<u32, Call>,
    next_stream_id: u32,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_unacked: i64,
    closed: Option<Status>,
    out: Vec<u8>,
    out_pos: usize,
}

impl ClientConnection {
    /// A connection to `authority` (`host:port`); its preface and settings are the first output.
    pub fn new(authority: &str) -> Self {
        let mut c = ClientConnection {
            authority: authority.to_owned(),
            decoder: hpack::Decoder::new(4096),
            calls: HashMap::new(),
            next_stream_id: 1,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: DEFAULT_MAX_FRAME,
            send_window: DEFAULT_WINDOW,
            recv_unacked: 0,
            closed: None,
            out: PREFACE.to_vec(),
            out_pos: 0,
        };
        let settings = [
            (SETTINGS_ENABLE_PUSH, 0),
            (SETTINGS_INITIAL_WINDOW_SIZE, RECV_STREAM_WINDOW),
        ];
        write_settings(&mut c.out, &settings);
        write_window_update(&mut c.out, 0, (RECV_CONN_WINDOW - DEFAULT_WINDOW) as u32);
        c
    }

    /// Bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`Self::output`] were written.
    pub fn written(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Calls sent and not yet answered.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Starts a unary call; its answer comes out of [`Self::recv`] with the returned stream id.
    /// After the server closed the connection the call fails at once (`Err`).
    pub fn call(&mut self, path: &str, message: &[u8]) -> Result<u32, Status> {
        if let Some(status) = &self.closed {
            return Err(status.clone());
        }
        let id = self.next_stream_id;
        self.next_stream_id += 2;
        let mut block = Vec::with_capacity(96);
        block.push(0x80 | hpack::METHOD_POST as u8);
        block.push(0x80 | hpack::SCHEME_HTTP as u8);
        hpack::put_field_indexed_name(&mut block, hpack::PATH_NAME, path.as_bytes());
        hpack::put_field_indexed_name(&mut block, hpack::AUTHORITY_NAME, self.authority.as_bytes());
        hpack::put_field_indexed_name(&mut block, hpack::CONTENT_TYPE_NAME, b"application/grpc");
        hpack::put_field(&mut block, b"te", b"trailers");
        write_frame(&mut self.out, TYPE_HEADERS, FLAG_END_HEADERS, id, &block);
        self.calls.insert(
            id,
            Call {
                unsent: message::frame(message),
                send_window: self.peer_initial_window,
                ..Call::default()
            },
        );
        self.send_body(id);
        Ok(id)
    }

    /// Gives up on a call: the server is told to drop it and no answer will come.
    pub fn cancel(&mut self, stream_id: u32) {
        if self.calls.remove(&stream_id).is_some() {
            let code = (Reason::Cancel as u32).to_be_bytes();
            write_frame(&mut self.out, TYPE_RST_STREAM, 0, stream_id, &code);
        }
    }

    fn send_body(&mut self, stream_id: u32) {
        let Some(call) = self.calls.get_mut(&stream_id) else {
            return;
        };
        while !call.unsent.is_empty() {
            let n = (call.unsent.len() as i64)
                .min(self.send_window)
                .min(call.send_window)
                .min(self.peer_max_frame as i64);
            if n <= 0 {
                return;
            }
            let chunk = call.unsent.split_to(n as usize);
            let last = call.unsent.is_empty();
            let flags = if last { FLAG_END_STREAM } else { 0 };
            write_frame(&mut self.out, TYPE_DATA, flags, stream_id, &chunk);
            self.send_window -= n;
            call.send_window -= n;
        }
    }

    fn send_all_blocked(&mut self) {
        let blocked: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.unsent.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in blocked {
            self.send_body(id);
        }
    }

    /// Consumes every complete frame at the front of `input`, appending finished calls to
    /// `answers`. An error means the connection is unusable; open calls are lost with it.
    pub fn recv(
        &mut self,
        input: &mut BytesMut,
        answers: &mut Vec<Answer>,
    ) -> Result<(), ConnError> {
        while input.len() >= HEADER_LEN {
            let head = FrameHeader::parse(input[..HEADER_LEN].try_into().expect("9 bytes"));
            if head.len > DEFAULT_MAX_FRAME {
                return Err(error(
                    Reason::FrameSizeError,
                    "the server sent a frame over 16 KiB",
                ));
            }
            if input.len() < HEADER_LEN + head.len {
                input.reserve(HEADER_LEN + head.len - input.len());
                break;
            }
            input.advance(HEADER_LEN);
            let payload = input.split_to(head.len);
            self.frame(head, &payload, answers)?;
        }
        Ok(())
    }

    fn frame(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        answers: &mut Vec<Answer>,
    ) -> Result<(), ConnError> {
        match head.kind {
            TYPE_SETTINGS if head.flags & FLAG_ACK == 0 => {
                for entry in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([entry[0], entry[1]]);
                    let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                    if id == SETTINGS_INITIAL_WINDOW_SIZE {
                        let delta = i64::from(value) - self.peer_initial_window;
                        self.peer_initial_window = i64::from(value);
                        self.calls.values_mut().for_each(|c| c.send_window += delta);
                    } else if id == SETTINGS_MAX_FRAME_SIZE {
                        self.peer_max_frame = (value as usize).clamp(DEFAULT_MAX_FRAME, 1 << 24);
                    }
                }
                write_frame(&mut self.out, TYPE_SETTINGS, FLAG_ACK, 0, &[]);
                self.send_all_blocked();
            }
            TYPE_PING if head.flags & FLAG_ACK == 0 => {
                write_frame(&mut self.out, TYPE_PING, FLAG_ACK, 0, payload);
            }
            TYPE_WINDOW_UPDATE => {
                let bytes: [u8; 4] = payload
                    .try_into()
                    .map_err(|_| error(Reason::FrameSizeError, "malformed WINDOW_UPDATE"))?;
                let inc = i64::from(u32::from_be_bytes(bytes) & 0x7fff_ffff);
                if head.stream_id == 0 {
                    self.send_window += inc;
                    self.send_all_blocked();
                } else if let Some(call) = self.calls.get_mut(&head.stream_id) {
                    call.send_window += inc;
                    self.send_body(head.stream_id);
                }
            }
            TYPE_HEADERS => {
                if head.flags & FLAG_END_HEADERS == 0 {
                    return Err(error(
                        Reason::ProtocolError,
                        "response headers split over CONTINUATION frames are not supported",
                    ));
                }
                let block = unpad(head.flags, payload, true)
                    .ok_or_else(|| error(Reason::ProtocolError, "bad HEADERS padding"))?;
                let (mut http_status, mut grpc_status, mut grpc_message) =
                    (None, None, String::new());
                self.decoder
                    .decode(block, |name, value| match name {
                        b":status" => http_status = Some(value.to_vec()),
                        b"grpc-status" => {
                            grpc_status = std::str::from_utf8(value)
                                .ok()
                                .and_then(|v| v.parse::<i32>().ok())
                        }
                        b"grpc-message" => {
                            grpc_message = String::from_utf8_lossy(value).into_owned()
                        }
                        _ => {}
                    })
                    .map_err(|e| error(Reason::CompressionError, e.to_string()))?;
                let Some(call) = self.calls.get_mut(&head.stream_id) else {
                    return Ok(());
                };
                if let Some(status) = http_status.filter(|s| s != b"200") {
                    let text = String::from_utf8_lossy(&status).into_owned();
                    self.finish(
                        head.stream_id,
                        Err(Status::new(Status::INTERNAL, format!("HTTP status {text}"))),
                        answers,
                    );
                    return Ok(());
                }
                if head.flags & FLAG_END_STREAM != 0 {
                    let result = match grpc_status {
                        Some(0) => {
                            let body = std::mem::take(&mut call.body).freeze();
                            if body.len() < message::PREFIX_LEN {
                                Err(Status::new(
                                    Status::INTERNAL,
                                    "the answer carries no message",
                                ))
                            } else {
                                Ok(body.slice(message::PREFIX_LEN..))
                            }
                        }
                        Some(code) => Err(Status::new(code, grpc_message)),
                        None => Err(Status::new(
                            Status::INTERNAL,
                            "the answer has no grpc-status",
                        )),
                    };
                    self.finish(head.stream_id, result, answers);
                }
            }
            TYPE_DATA => {
                let len = payload.len() as i64;
                self.recv_unacked += len;
                if self.recv_unacked >= RECV_CONN_WINDOW / 2 {
                    let inc = self.recv_unacked as u32;
                    self.recv_unacked = 0;
                    write_window_update(&mut self.out, 0, inc);
                }
                let data = unpad(head.flags, payload, false)
                    .ok_or_else(|| error(Reason::ProtocolError, "bad DATA padding"))?;
                if let Some(call) = self.calls.get_mut(&head.stream_id) {
                    call.body.extend_from_slice(data);
                    // One answer fits the stream window; a larger one gets more as it arrives.
                    if call.body.len() as i64 >= i64::from(RECV_STREAM_WINDOW) / 2 {
                        write_window_update(&mut self.out, head.stream_id, len as u32);
                    }
                }
            }
            TYPE_RST_STREAM => {
                let status = Status::new(14, "the server reset the stream");
                self.finish(head.stream_id, Err(status), answers);
            }
            TYPE_GOAWAY => {
                let last = payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                });
                let status = Status::new(14, "the server closed the connection (GOAWAY)");
                let lost: Vec<u32> = self.calls.keys().copied().filter(|id| *id > last).collect();
                for id in lost {
                    self.finish(id, Err(status.clone()), answers);
                }
                self.closed = Some(status);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, stream_id: u32, result: Result<Bytes, Status>, answers: &mut Vec<Answer>) {
        if self.calls.remove(&stream_id).is_some() {
            answers.push(Answer { stream_id, result });
        }
    }
}
