//! What the server reads through `AuthorityFix` for given client bytes.

mod support;

use h2_authority_fix::{AuthorityFix, Error};
use support::*;
use tokio::io::AsyncReadExt;

fn grpc_request(authority: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":scheme", "http".into()),
        (":path", "/etcdserverpb.Maintenance/Status".into()),
        (":authority", authority.into()),
        ("content-type", "application/grpc".into()),
        ("user-agent", "grpc-go/1.26.0".into()),
        ("te", "trailers".into()),
    ]
}

fn as_refs<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

fn settings() -> Vec<u8> {
    frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff])
}

#[test]
fn http1_request_passes_through_byte_for_byte() {
    let request =
        b"GET /health HTTP/1.1\r\nHost: http://127.0.0.1:2379\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(rewrite(request).unwrap(), request);
    // Diverging only late in the preface still falls back to pass-through.
    let almost = b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n\x00\x00\x00\x01\x04";
    assert_eq!(rewrite(almost).unwrap(), almost);
}

#[test]
fn short_or_empty_connections_pass_through() {
    assert_eq!(rewrite(b"").unwrap(), b"");
    assert_eq!(rewrite(b"PRI * HTTP/2").unwrap(), b"PRI * HTTP/2");
    assert_eq!(rewrite(b"G").unwrap(), b"G");
}

#[test]
fn preface_is_detected() {
    run(async {
        let mut wire = PREFACE.to_vec();
        wire.extend(settings());
        let mut fixed = AuthorityFix::new(&wire[..]);
        assert_eq!(fixed.is_http2(), None);
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        assert_eq!(fixed.is_http2(), Some(true));
        assert_eq!(out, wire);

        let mut fixed = AuthorityFix::new(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        fixed.read_to_end(&mut Vec::new()).await.unwrap();
        assert_eq!(fixed.is_http2(), Some(false));
    });
}

#[test]
fn etcdctl_capture_gets_a_plain_authority() {
    let out = rewrite(ETCDCTL_CAPTURE).unwrap();
    let original = parse_frames(&ETCDCTL_CAPTURE[PREFACE.len()..]);
    assert_eq!(&out[..PREFACE.len()], PREFACE);
    let fixed = parse_frames(&out[PREFACE.len()..]);
    assert_eq!(fixed.len(), original.len());
    for (before, after) in original.iter().zip(&fixed) {
        if before.kind != HEADERS {
            assert_eq!(before, after);
            continue;
        }
        assert_eq!(
            (after.flags, after.stream_id),
            (before.flags | END_HEADERS, before.stream_id)
        );
        let mut expected = decode_fresh(&before.payload);
        let authority = expected
            .iter_mut()
            .find(|(n, _)| n == ":authority")
            .unwrap();
        assert_eq!(authority.1, "http://127.0.0.1:38479");
        authority.1 = "127.0.0.1:38479".into();
        assert_eq!(decode_fresh(&after.payload), expected);
    }
    assert!(fixed.iter().any(|f| f.kind == HEADERS));
}

/// Index of the dynamic-table entry `(name, value)` after the client's
/// decoder has seen `block`, found by probing with an indexed representation.
fn dynamic_index(block: &[u8], name: &str, value: &str) -> u8 {
    (62..127)
        .find(|&index| {
            let mut decoder = loona_hpack::Decoder::new();
            decoder.decode(block).unwrap();
            decoder.decode(&[0x80 | index]).ok()
                == Some(vec![(name.as_bytes().to_vec(), value.as_bytes().to_vec())])
        })
        .expect("entry in the dynamic table")
}

#[test]
fn etcdctl_capture_second_request_by_dynamic_index() {
    let frames = parse_frames(&ETCDCTL_CAPTURE[PREFACE.len()..]);
    let first = &frames.iter().find(|f| f.kind == HEADERS).unwrap().payload;
    let authority = dynamic_index(first, ":authority", "http://127.0.0.1:38479");
    let path = dynamic_index(first, ":path", "/etcdserverpb.Maintenance/Status");
    // A second RPC on the connection: :method POST, :scheme http, then the
    // indexed :path and :authority from the client's dynamic table.
    let second = [0x83, 0x86, 0x80 | path, 0x80 | authority];
    let mut wire = ETCDCTL_CAPTURE.to_vec();
    wire.extend(frame(HEADERS, END_HEADERS, 3, &second));

    let out = rewrite(&wire).unwrap();
    let fixed = parse_frames(&out[PREFACE.len()..]);
    let last = fixed.last().unwrap();
    assert_eq!(
        (last.kind, last.flags, last.stream_id),
        (HEADERS, END_HEADERS, 3)
    );
    assert_eq!(
        decode_fresh(&last.payload),
        headers(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Maintenance/Status"),
            (":authority", "127.0.0.1:38479"),
        ])
    );
}

#[test]
fn indexed_authority_is_fixed_in_every_request() {
    let request = grpc_request("http://127.0.0.1:2379");
    let first = encode_indexing(&as_refs(&request));
    let second = encode_indexed_repeat(request.len());
    assert_eq!(
        to_strings(
            loona_hpack::Decoder::new()
                .decode(&[&first[..], &second].concat())
                .unwrap()
        ),
        [headers(&as_refs(&request)), headers(&as_refs(&request))].concat()
    );

    let mut wire = PREFACE.to_vec();
    wire.extend(settings());
    wire.extend(frame(HEADERS, END_HEADERS, 1, &first));
    wire.extend(frame(HEADERS, END_HEADERS, 3, &second));
    let out = rewrite(&wire).unwrap();

    let expected = headers(&as_refs(&grpc_request("127.0.0.1:2379")));
    let fixed = parse_frames(&out[PREFACE.len()..]);
    assert_eq!(fixed[0].payload, settings()[9..]);
    for (frame, stream_id) in fixed[1..].iter().zip([1, 3]) {
        assert_eq!((frame.kind, frame.stream_id), (HEADERS, stream_id));
        assert_eq!(decode_fresh(&frame.payload), expected);
    }
    assert_eq!(fixed.len(), 3);
}

#[test]
fn huffman_coded_and_indexed_authority_is_fixed() {
    let blocks = HUFFMAN_INDEXED_REQUESTS.map(from_hex);
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(HEADERS, END_HEADERS, 1, &blocks[0]));
    wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &blocks[1]));
    let out = rewrite(&wire).unwrap();
    let fixed = parse_frames(&out[PREFACE.len()..]);
    assert_eq!(fixed.len(), 2);
    for (frame, timeout) in fixed.iter().zip(["4999921u", "4999873u"]) {
        assert_eq!(
            decode_fresh(&frame.payload),
            headers(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/etcdserverpb.KV/Range"),
                (":authority", "127.0.0.1:2379"),
                ("content-type", "application/grpc"),
                ("user-agent", "grpc-go/1.26.0"),
                ("te", "trailers"),
                ("grpc-timeout", timeout),
            ])
        );
    }
    assert_eq!(fixed[1].flags, END_HEADERS | END_STREAM);
}

#[test]
fn valid_authorities_and_other_fields_are_kept_in_order() {
    let list = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "etcd-0:2379"),
        (":path", "/v3/kv/range?x=http://y"),
        ("host", "https://etcd-1:2379/"),
        ("x-empty", ""),
        ("x-url", "http://127.0.0.1:2379"),
    ];
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &encode(&mut loona_hpack::Encoder::new(), &list),
    ));
    let out = rewrite(&wire).unwrap();
    let fixed = parse_frames(&out[PREFACE.len()..]);
    assert_eq!(fixed[0].flags, END_HEADERS | END_STREAM);
    let mut expected = headers(&list);
    expected[4].1 = "etcd-1:2379".into();
    assert_eq!(decode_fresh(&fixed[0].payload), expected);
}

fn split_block(block: &[u8], parts: usize) -> Vec<&[u8]> {
    let size = block.len().div_ceil(parts);
    block.chunks(size).collect()
}

#[test]
fn continuation_frames_are_merged_into_one_headers_frame() {
    let block = encode(
        &mut loona_hpack::Encoder::new(),
        &as_refs(&grpc_request("http://127.0.0.1:2379")),
    );
    let parts = split_block(&block, 3);
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(HEADERS, END_STREAM, 5, parts[0]));
    wire.extend(frame(CONTINUATION, 0, 5, parts[1]));
    wire.extend(frame(CONTINUATION, END_HEADERS, 5, parts[2]));
    wire.extend(frame(DATA, END_STREAM, 5, b"tail"));

    let out = rewrite(&wire).unwrap();
    let fixed = parse_frames(&out[PREFACE.len()..]);
    assert_eq!(fixed.len(), 2);
    assert_eq!(
        (fixed[0].kind, fixed[0].flags, fixed[0].stream_id),
        (HEADERS, END_HEADERS | END_STREAM, 5)
    );
    assert_eq!(
        decode_fresh(&fixed[0].payload),
        headers(&as_refs(&grpc_request("127.0.0.1:2379")))
    );
    assert_eq!(fixed[1].payload, b"tail");
}

#[test]
fn interrupted_header_block_is_an_error() {
    let block = encode(&mut loona_hpack::Encoder::new(), &[(":method", "GET")]);
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(HEADERS, 0, 1, &block));
    wire.extend(frame(DATA, 0, 1, b"x"));
    let err = rewrite(&wire).unwrap_err();
    assert_eq!(
        fix_error(&err),
        Error::ExpectedContinuation {
            stream_id: 1,
            frame_type: DATA,
            frame_stream_id: 1
        }
    );

    let mut wire = PREFACE.to_vec();
    wire.extend(frame(HEADERS, 0, 1, &block));
    wire.extend(frame(CONTINUATION, END_HEADERS, 3, &[]));
    assert!(matches!(
        fix_error(&rewrite(&wire).unwrap_err()),
        Error::ExpectedContinuation { .. }
    ));
}

#[test]
fn stray_continuation_is_forwarded_for_the_server_to_reject() {
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(CONTINUATION, END_HEADERS, 1, &[0x82]));
    assert_eq!(rewrite(&wire).unwrap(), wire);
}

#[test]
fn padding_is_dropped_and_priority_kept() {
    let block = encode(
        &mut loona_hpack::Encoder::new(),
        &[(":method", "GET"), (":authority", "http://h:1")],
    );
    let priority = [0x80, 0, 0, 7, 200];
    let mut payload = vec![4];
    payload.extend(priority);
    payload.extend(&block);
    payload.extend([0; 4]);
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(
        HEADERS,
        PADDED | PRIORITY | END_HEADERS | END_STREAM,
        9,
        &payload,
    ));

    let out = rewrite(&wire).unwrap();
    let fixed = parse_frames(&out[PREFACE.len()..]);
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].flags, PRIORITY | END_HEADERS | END_STREAM);
    assert_eq!(fixed[0].payload[..5], priority);
    assert_eq!(
        decode_fresh(&fixed[0].payload[5..]),
        headers(&[(":method", "GET"), (":authority", "h:1")])
    );
}

#[test]
fn bad_padding_is_an_error() {
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(HEADERS, PADDED | END_HEADERS, 1, &[9, 0x82]));
    assert_eq!(
        fix_error(&rewrite(&wire).unwrap_err()),
        Error::BadPadding { stream_id: 1 }
    );
}

#[test]
fn undecodable_header_block_is_an_error() {
    let mut wire = PREFACE.to_vec();
    // Indexed field 70 with an empty dynamic table.
    wire.extend(frame(HEADERS, END_HEADERS, 1, &[0x80 | 70]));
    assert!(matches!(
        fix_error(&rewrite(&wire).unwrap_err()),
        Error::Hpack { stream_id: 1, .. }
    ));
}

#[test]
fn oversized_header_frame_is_refused_before_buffering() {
    let mut wire = PREFACE.to_vec();
    // Only the frame header: the wrapper must refuse without waiting for
    // (or allocating) the 2 MiB payload.
    wire.extend(&frame(HEADERS, END_HEADERS, 1, &[])[..]);
    wire[PREFACE.len()] = 0x20;
    assert_eq!(
        fix_error(&rewrite(&wire).unwrap_err()),
        Error::HeaderBlockTooLarge { stream_id: 1 }
    );
}

#[test]
fn large_header_block_is_split_at_16k() {
    let big = "v".repeat(40_000);
    let list = [(":method", "GET"), ("x-big", big.as_str())];
    let block = encode(&mut loona_hpack::Encoder::new(), &list);
    let mut wire = PREFACE.to_vec();
    for (i, part) in split_block(&block, 4).iter().enumerate() {
        let (kind, flags) = match i {
            0 => (HEADERS, 0),
            3 => (CONTINUATION, END_HEADERS),
            _ => (CONTINUATION, 0),
        };
        wire.extend(frame(kind, flags, 1, part));
    }
    let out = rewrite(&wire).unwrap();
    let fixed = parse_frames(&out[PREFACE.len()..]);
    let shape: Vec<_> = fixed
        .iter()
        .map(|f| (f.kind, f.flags, f.payload.len() <= 16_384))
        .collect();
    assert_eq!(
        shape,
        [
            (HEADERS, 0, true),
            (CONTINUATION, 0, true),
            (CONTINUATION, END_HEADERS, true)
        ]
    );
    let joined: Vec<u8> = fixed.iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(decode_fresh(&joined), headers(&list));
}

#[test]
fn data_and_other_frames_pass_unchanged() {
    // A DATA payload that looks like frames and a preface must not be parsed.
    let mut body = PREFACE.to_vec();
    body.extend(frame(HEADERS, END_HEADERS, 1, &[0x80 | 99]));
    body.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let mut wire = PREFACE.to_vec();
    wire.extend(settings());
    wire.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0x10, 0, 0]));
    wire.extend(frame(DATA, 0, 1, &body[..16_000]));
    wire.extend(frame(DATA, PADDED | END_STREAM, 1, &body));
    wire.extend(frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    wire.extend(frame(0xfa, 0xff, 7, b"unknown extension frame"));
    wire.extend(frame(GOAWAY, 0, 0, &[0; 8]));
    assert_eq!(rewrite(&wire).unwrap(), wire);
}

/// A connection exercising every code path, for split-invariance tests.
fn mixed_connection() -> Vec<u8> {
    let request = grpc_request("http://127.0.0.1:2379");
    let first = encode_indexing(&as_refs(&request));
    let second = encode_indexed_repeat(request.len());
    let mut wire = ETCDCTL_CAPTURE.to_vec();
    wire.extend(frame(DATA, 0, 1, &[7; 300]));
    let parts = split_block(&first, 2);
    let mut padded = vec![3];
    padded.extend(parts[0]);
    padded.extend([0; 3]);
    wire.extend(frame(HEADERS, PADDED, 3, &padded));
    wire.extend(frame(CONTINUATION, END_HEADERS, 3, parts[1]));
    wire.extend(frame(DATA, END_STREAM, 3, b"payload"));
    wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &second));
    wire
}

#[test]
fn output_does_not_depend_on_how_reads_are_split() {
    let wire = mixed_connection();
    let expected = rewrite(&wire).unwrap();
    assert_ne!(expected, wire);
    run(async {
        for at in 0..=wire.len() {
            let out = read_all(ChunkedReader::split_at(&wire, at), 4096)
                .await
                .unwrap();
            assert_eq!(out, expected, "input split at byte {at}");
        }
        let out = read_all(ChunkedReader::bytewise(&wire), 4096)
            .await
            .unwrap();
        assert_eq!(out, expected, "one byte per read from the socket");
        for read_size in [1, 2, 9, 10, 100] {
            let out = read_all(ChunkedReader::bytewise(&wire), read_size)
                .await
                .unwrap();
            assert_eq!(out, expected, "caller buffer of {read_size} bytes");
            let out = read_all(&wire[..], read_size).await.unwrap();
            assert_eq!(out, expected, "caller buffer of {read_size} bytes");
        }
    });
}

#[test]
fn http1_output_does_not_depend_on_how_reads_are_split() {
    let wire = b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\n\r\n{\"key\":\"YQ==\"}";
    run(async {
        for at in 0..=wire.len() {
            let out = read_all(ChunkedReader::split_at(wire, at), 7)
                .await
                .unwrap();
            assert_eq!(out, wire);
        }
    });
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let valid = mixed_connection();
    for _ in 0..3000 {
        let mut wire = valid.clone();
        // Flip a few bytes after the preface, then maybe truncate.
        for _ in 0..1 + next() % 4 {
            let i = PREFACE.len() + (next() as usize) % (wire.len() - PREFACE.len());
            wire[i] = next() as u8;
        }
        wire.truncate(PREFACE.len() + (next() as usize) % (wire.len() - PREFACE.len() + 1));
        if let Err(e) = rewrite(&wire) {
            fix_error(&e);
        }
    }
    for len in 0..64 {
        let mut wire = PREFACE.to_vec();
        wire.extend((0..len * 17).map(|_| next() as u8));
        if let Err(e) = rewrite(&wire) {
            fix_error(&e);
        }
    }
}

#[test]
fn errors_are_sticky() {
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(HEADERS, END_HEADERS, 1, &[0x80 | 70]));
    wire.extend(frame(HEADERS, END_HEADERS, 3, &[0x82]));
    run(async {
        let mut fixed = AuthorityFix::new(&wire[..]);
        let mut buf = [0; 100];
        // The preface is returned first; the error follows.
        assert_eq!(fixed.read(&mut buf).await.unwrap(), PREFACE.len());
        for _ in 0..2 {
            let err = fixed.read(&mut buf).await.unwrap_err();
            assert!(matches!(fix_error(&err), Error::Hpack { stream_id: 1, .. }));
        }
    });
}
