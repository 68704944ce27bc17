//! The connection core driven with byte strings.

use super::*;

const ETCDCTL_CAPTURE: &[u8] = include_bytes!("../testdata/etcdctl-3.4-endpoint-status.bin");

#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream_id: u32,
    payload: Vec<u8>,
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, kind, flags, stream_id, payload);
    out
}

fn parse(mut wire: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        let head = FrameHeader::parse(wire[..HEADER_LEN].try_into().unwrap());
        frames.push(Frame {
            kind: head.kind,
            flags: head.flags,
            stream_id: head.stream_id,
            payload: wire[HEADER_LEN..HEADER_LEN + head.len].to_vec(),
        });
        wire = &wire[HEADER_LEN + head.len..];
    }
    frames
}

/// A request header block: every field a literal without indexing.
fn request_block(path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1:2379"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        hpack::put_field(&mut b, n.as_bytes(), v.as_bytes());
    }
    b
}

fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn call(stream_id: u32, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = frame(
        TYPE_HEADERS,
        FLAG_END_HEADERS,
        stream_id,
        &request_block(path),
    );
    out.extend(frame(
        TYPE_DATA,
        FLAG_END_STREAM,
        stream_id,
        &grpc_message(body),
    ));
    out
}

fn all_known(_: &str) -> Result<(), Status> {
    Ok(())
}

struct Harness {
    conn: Connection,
    requests: Vec<Request>,
}

impl Harness {
    /// A connection past the preface and the client's SETTINGS, output drained.
    fn open() -> Self {
        Self::open_with(Limits {
            max_message: 1 << 20,
            max_streams: 4,
        })
    }

    fn open_with(limits: Limits) -> Self {
        let mut h = Harness {
            conn: Connection::new(limits),
            requests: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(TYPE_SETTINGS, 0, 0, &[]));
        h.feed(&hello).unwrap();
        h.take_output();
        h
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let mut input = BytesMut::from(bytes);
        let r = self.conn.recv(&mut input, &mut self.requests, &all_known);
        assert!(r.is_err() || input.is_empty(), "whole frames are consumed");
        r
    }

    fn take_output(&mut self) -> Vec<Frame> {
        let frames = parse(self.conn.output());
        let n = self.conn.output().len();
        self.conn.written(n);
        frames
    }
}

fn decode(block: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    hpack::Decoder::new(4096)
        .decode(block, |n, v| {
            fields.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })
        .unwrap();
    fields
}

fn goaway_reason(frames: &[Frame]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.kind == TYPE_GOAWAY)
        .map(|f| u32::from_be_bytes(f.payload[4..8].try_into().unwrap()))
}

#[test]
fn server_opens_with_settings_and_a_larger_connection_window() {
    let mut conn = Connection::new(Limits {
        max_message: 1,
        max_streams: 7,
    });
    let frames = parse(conn.output());
    assert_eq!(frames[0].kind, TYPE_SETTINGS);
    assert!(frames[0].payload.chunks(6).any(|e| e == [0, 3, 0, 0, 0, 7]));
    assert_eq!(frames[1].kind, TYPE_WINDOW_UPDATE);
    let n = conn.output().len();
    conn.written(n);
    assert!(conn.output().is_empty());
}

#[test]
fn etcdctl_request_with_a_url_authority_is_served() {
    let mut h = Harness {
        conn: Connection::new(Limits {
            max_message: 1 << 20,
            max_streams: 100,
        }),
        requests: Vec::new(),
    };
    // Fed in small pieces: frames split across reads are reassembled.
    let mut input = BytesMut::new();
    for chunk in ETCDCTL_CAPTURE.chunks(7) {
        input.extend_from_slice(chunk);
        h.conn
            .recv(&mut input, &mut h.requests, &all_known)
            .unwrap();
    }
    assert_eq!(h.requests.len(), 1);
    assert_eq!(h.requests[0].path, "/etcdserverpb.Maintenance/Status");
    let frames = h.take_output();
    assert!(frames
        .iter()
        .any(|f| f.kind == TYPE_SETTINGS && f.flags == FLAG_ACK));
}

#[test]
fn a_call_is_answered_with_headers_data_and_trailers() {
    let mut h = Harness::open();
    h.feed(&call(1, "/svc/M", b"hello")).unwrap();
    let r = h.requests.pop().unwrap();
    assert_eq!(
        (r.stream_id, r.path.as_str(), &r.message[..]),
        (1, "/svc/M", &b"hello"[..])
    );
    h.conn.respond(1, Ok(Bytes::from_static(b"world")));
    let frames = h.take_output();
    let kinds: Vec<(u8, u8)> = frames.iter().map(|f| (f.kind, f.flags)).collect();
    assert_eq!(
        kinds,
        [
            (TYPE_HEADERS, FLAG_END_HEADERS),
            (TYPE_DATA, 0),
            (TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM)
        ]
    );
    assert_eq!(
        decode(&frames[0].payload),
        [
            (":status".into(), "200".into()),
            ("content-type".into(), "application/grpc".into())
        ]
    );
    assert_eq!(frames[1].payload, grpc_message(b"world"));
    assert_eq!(
        decode(&frames[2].payload),
        [("grpc-status".into(), "0".into())]
    );
    assert!(h.conn.streams.is_empty());
}

#[test]
fn errors_are_trailers_only() {
    let mut h = Harness::open();
    h.feed(&call(1, "/svc/M", b"")).unwrap();
    h.conn
        .respond(1, Err(Status::new(9, "etcdserver: key not found é")));
    let frames = h.take_output();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].flags, FLAG_END_HEADERS | FLAG_END_STREAM);
    let fields = decode(&frames[0].payload);
    assert!(fields.contains(&("grpc-status".into(), "9".into())));
    assert!(fields.contains(&(
        "grpc-message".into(),
        "etcdserver: key not found %C3%A9".into()
    )));
}

#[test]
fn unknown_calls_are_refused_when_their_headers_arrive() {
    let mut h = Harness::open();
    let mut input = BytesMut::from(
        &frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &request_block("/etcdserverpb.Watch/Watch"),
        )[..],
    );
    let refuse = |p: &str| Err(Status::new(12, format!("unknown service {p}")));
    h.conn.recv(&mut input, &mut h.requests, &refuse).unwrap();
    assert!(h.requests.is_empty());
    let frames = h.take_output();
    assert_eq!(frames[0].kind, TYPE_HEADERS);
    assert!(decode(&frames[0].payload).contains(&("grpc-status".into(), "12".into())));
    assert_eq!((frames[1].kind, frames[1].stream_id), (TYPE_RST_STREAM, 1));
    // What the client still sends on that stream is dropped quietly.
    h.feed(&frame(TYPE_DATA, FLAG_END_STREAM, 1, &grpc_message(b"x")))
        .unwrap();
    assert!(h.requests.is_empty());
}

#[test]
fn body_split_over_frames_with_padding_and_continuations() {
    let mut h = Harness::open();
    let block = request_block("/svc/Padded");
    let (a, b) = block.split_at(10);
    let mut wire = frame(TYPE_HEADERS, 0, 3, a);
    wire.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, b));
    let msg = grpc_message(b"0123456789");
    let mut padded = vec![4];
    padded.extend_from_slice(&msg[..7]);
    padded.extend_from_slice(&[0; 4]);
    wire.extend(frame(TYPE_DATA, FLAG_PADDED, 3, &padded));
    wire.extend(frame(TYPE_DATA, FLAG_END_STREAM, 3, &msg[7..]));
    h.feed(&wire).unwrap();
    assert_eq!(&h.requests[0].message[..], b"0123456789");
}

#[test]
fn oversized_messages_get_grpc_go_words() {
    let mut h = Harness::open();
    let mut wire = frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &request_block("/svc/M"));
    let mut prefix = vec![0];
    prefix.extend_from_slice(&(2u32 << 20).to_be_bytes());
    wire.extend(frame(TYPE_DATA, 0, 1, &prefix));
    wire.extend(frame(TYPE_DATA, FLAG_END_STREAM, 1, &[7; 100]));
    h.feed(&wire).unwrap();
    assert!(h.requests.is_empty());
    let frames = h.take_output();
    let fields = decode(&frames[0].payload);
    assert!(fields.contains(&("grpc-status".into(), "8".into())));
    assert!(fields.contains(&(
        "grpc-message".into(),
        "grpc: received message larger than max (2097152 vs. 1048576)".into()
    )));
}

#[test]
fn ping_is_acknowledged_and_reset_streams_are_not_answered() {
    let mut h = Harness::open();
    h.feed(&frame(TYPE_PING, 0, 0, b"12345678")).unwrap();
    let frames = h.take_output();
    assert_eq!(
        frames,
        [Frame {
            kind: TYPE_PING,
            flags: FLAG_ACK,
            stream_id: 0,
            payload: b"12345678".to_vec()
        }]
    );
    h.feed(&call(1, "/svc/M", b"x")).unwrap();
    h.feed(&frame(TYPE_RST_STREAM, 0, 1, &8u32.to_be_bytes()))
        .unwrap();
    h.conn.respond(1, Ok(Bytes::from_static(b"late")));
    assert!(h.take_output().is_empty());
}

#[test]
fn streams_beyond_the_limit_are_refused() {
    let mut h = Harness::open();
    for id in [1, 3, 5, 7, 9] {
        h.feed(&call(id, "/svc/M", b"x")).unwrap();
    }
    assert_eq!(h.requests.len(), 4);
    let frames = h.take_output();
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].kind, frames[0].stream_id), (TYPE_RST_STREAM, 9));
    assert_eq!(
        frames[0].payload,
        (Reason::RefusedStream as u32).to_be_bytes()
    );
}

#[test]
fn responses_wait_for_the_flow_control_window() {
    let mut h = Harness::open();
    // The client allows 10 bytes per stream.
    let mut settings = SETTINGS_INITIAL_WINDOW_SIZE.to_be_bytes().to_vec();
    settings.extend_from_slice(&10u32.to_be_bytes());
    h.feed(&frame(TYPE_SETTINGS, 0, 0, &settings)).unwrap();
    h.take_output();
    h.feed(&call(1, "/svc/M", b"x")).unwrap();
    h.conn.respond(1, Ok(Bytes::from(vec![1; 20])));
    let frames = h.take_output();
    let data: usize = frames
        .iter()
        .filter(|f| f.kind == TYPE_DATA)
        .map(|f| f.payload.len())
        .sum();
    assert_eq!(data, 10);
    assert!(!frames.iter().any(|f| f.flags & FLAG_END_STREAM != 0));
    h.feed(&frame(TYPE_WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()))
        .unwrap();
    let frames = h.take_output();
    assert_eq!(frames[0].kind, TYPE_DATA);
    assert_eq!(frames[0].payload.len(), 15);
    assert_eq!(frames[1].flags, FLAG_END_HEADERS | FLAG_END_STREAM);
}

#[test]
fn graceful_shutdown_answers_open_streams_and_ignores_new_ones() {
    let mut h = Harness::open();
    h.feed(&call(1, "/svc/M", b"x")).unwrap();
    h.conn.go_away();
    let frames = h.take_output();
    assert_eq!(goaway_reason(&frames), Some(0));
    assert_eq!(&frames[0].payload[..4], &1u32.to_be_bytes());
    h.feed(&call(3, "/svc/M", b"y")).unwrap();
    assert_eq!(h.requests.len(), 1);
    assert!(!h.conn.is_finished());
    h.conn.respond(1, Ok(Bytes::new()));
    h.take_output();
    assert!(h.conn.is_finished());
}

#[test]
fn protocol_violations_end_the_connection_with_goaway() {
    let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
        (
            "frame over 16 KiB",
            frame(TYPE_DATA, 0, 1, &vec![0; DEFAULT_MAX_FRAME + 1]),
            Reason::FrameSizeError,
        ),
        (
            "even stream id",
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 2, &request_block("/a/b")),
            Reason::ProtocolError,
        ),
        (
            "interrupted header block",
            [
                frame(TYPE_HEADERS, 0, 1, &request_block("/a/b")[..4]),
                frame(TYPE_PING, 0, 0, &[0; 8]),
            ]
            .concat(),
            Reason::ProtocolError,
        ),
        (
            "bad HPACK index",
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0xff, 0x7f]),
            Reason::CompressionError,
        ),
        (
            "DATA on an idle stream",
            frame(TYPE_DATA, 0, 5, b"x"),
            Reason::ProtocolError,
        ),
        (
            "PING on a stream",
            frame(TYPE_PING, 0, 1, &[0; 8]),
            Reason::ProtocolError,
        ),
        (
            "short PING",
            frame(TYPE_PING, 0, 0, &[0; 7]),
            Reason::FrameSizeError,
        ),
        (
            "window overflow",
            frame(TYPE_WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
            Reason::FlowControlError,
        ),
    ];
    for (what, wire, reason) in cases {
        let mut h = Harness::open();
        let err = h.feed(&wire).expect_err(what);
        assert_eq!(err.reason, reason, "{what}");
        assert_eq!(
            goaway_reason(&h.take_output()),
            Some(reason as u32),
            "{what}"
        );
    }
}

#[test]
fn a_connection_without_the_preface_is_refused() {
    let mut conn = Connection::new(Limits {
        max_message: 1,
        max_streams: 1,
    });
    let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    assert!(conn.recv(&mut input, &mut Vec::new(), &all_known).is_err());
    let mut conn = Connection::new(Limits {
        max_message: 1,
        max_streams: 1,
    });
    let mut input = BytesMut::from(&PREFACE[..]);
    input.extend_from_slice(&frame(TYPE_PING, 0, 0, &[0; 8]));
    let err = conn
        .recv(&mut input, &mut Vec::new(), &all_known)
        .unwrap_err();
    assert_eq!(err.reason, Reason::ProtocolError);
}

#[test]
fn a_body_longer_than_declared_is_refused_by_its_size() {
    let mut h = Harness::open();
    let mut wire = frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &request_block("/svc/M"));
    // Declares 10 bytes, then keeps sending past the 1 MiB limit.
    let mut first = vec![0, 0, 0, 0, 10];
    first.extend_from_slice(&[1; 16_000]);
    wire.extend(frame(TYPE_DATA, 0, 1, &first));
    for _ in 0..70 {
        wire.extend(frame(TYPE_DATA, 0, 1, &[1; 16_000]));
    }
    h.feed(&wire).unwrap();
    assert_eq!(h.conn.buffered, 0, "a refused body is not kept");
    h.feed(&frame(TYPE_DATA, FLAG_END_STREAM, 1, &[])).unwrap();
    let frames = h.take_output();
    let answer = frames.iter().find(|f| f.kind == TYPE_HEADERS).unwrap();
    let fields = decode(&answer.payload);
    assert!(fields.contains(&("grpc-status".into(), "8".into())));
    let message = &fields.iter().find(|(n, _)| n == "grpc-message").unwrap().1;
    assert!(
        message.starts_with("grpc: received message larger than max (10"),
        "{message}"
    );
}

#[test]
fn a_connection_holds_a_bounded_number_of_request_bytes() {
    let mut h = Harness::open_with(Limits {
        max_message: 4 << 20,
        max_streams: 100,
    });
    // Interleaved 3 MiB requests, none finished: the window keeps opening (a client that
    // interleaves must not deadlock), and what is held stays bounded.
    let streams = 30u32;
    let chunk = vec![0u8; 16_384];
    let mut opened = Vec::new();
    for i in 0..streams {
        let id = 2 * i + 1;
        let mut wire = frame(TYPE_HEADERS, FLAG_END_HEADERS, id, &request_block("/svc/M"));
        let mut first = vec![0];
        first.extend_from_slice(&(3u32 << 20).to_be_bytes());
        first.extend_from_slice(&chunk[..16_379]);
        wire.extend(frame(TYPE_DATA, 0, id, &first));
        opened.extend(wire);
    }
    h.feed(&opened).unwrap();
    let mut window_updates = 0;
    for _ in 1..192 {
        let mut round = Vec::new();
        for i in 0..streams {
            round.extend(frame(TYPE_DATA, 0, 2 * i + 1, &chunk));
        }
        h.feed(&round).unwrap();
        assert!(
            h.conn.buffered <= MAX_BUFFERED + chunk.len(),
            "{} held",
            h.conn.buffered
        );
        window_updates += h
            .take_output()
            .iter()
            .filter(|f| f.kind == TYPE_WINDOW_UPDATE && f.stream_id == 0)
            .count();
    }
    assert!(
        window_updates >= 5,
        "{window_updates} connection window updates"
    );
    for i in 0..streams {
        h.feed(&frame(TYPE_DATA, FLAG_END_STREAM, 2 * i + 1, &[]))
            .unwrap();
    }
    assert_eq!(h.conn.buffered, 0);
    // Every request either went through whole or was refused; none was truncated.
    assert!(h.requests.iter().all(|r| r.message.len() == 3 << 20));
    let refused = h
        .take_output()
        .iter()
        .filter(|f| f.kind == TYPE_HEADERS)
        .count();
    assert_eq!(h.requests.len() + refused, streams as usize);
}
