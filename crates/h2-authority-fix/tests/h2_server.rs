//! A real `h2` server behind `AuthorityFix`, fed the bytes etcdctl sends.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use h2_authority_fix::AuthorityFix;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

/// How the server answered one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Status(String),
    Reset(u32),
}

struct Outcome {
    /// `:authority` of each request the server accepted.
    authorities: Vec<String>,
    answers: BTreeMap<u32, Answer>,
}

async fn serve<T: AsyncRead + AsyncWrite + Unpin>(io: T) -> Vec<String> {
    let mut conn = h2::server::handshake(io).await.expect("handshake");
    let mut authorities = Vec::new();
    while let Some(request) = conn.accept().await {
        let Ok((request, mut respond)) = request else {
            break;
        };
        authorities.push(request.uri().authority().unwrap().to_string());
        let response = http::Response::builder().status(200).body(()).unwrap();
        respond.send_response(response, true).unwrap();
    }
    authorities
}

/// Sends `client_bytes` to an h2 server (behind `AuthorityFix` if `fix`) and
/// collects its answers to `streams`.
async fn exchange(client_bytes: &[u8], streams: &[u32], fix: bool) -> Outcome {
    let (mut client, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        if fix {
            serve(AuthorityFix::new(server_io)).await
        } else {
            serve(server_io).await
        }
    });
    client.write_all(client_bytes).await.unwrap();
    let answers = tokio::time::timeout(Duration::from_secs(10), read_answers(&mut client, streams))
        .await
        .expect("server answered in time");
    drop(client);
    Outcome {
        authorities: server.await.unwrap(),
        answers,
    }
}

async fn read_answers(client: &mut DuplexStream, streams: &[u32]) -> BTreeMap<u32, Answer> {
    let mut decoder = loona_hpack::Decoder::new();
    let mut answers = BTreeMap::new();
    while streams.iter().any(|s| !answers.contains_key(s)) {
        let mut header = [0; 9];
        client.read_exact(&mut header).await.unwrap();
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let stream_id = u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        client.read_exact(&mut payload).await.unwrap();
        match kind {
            SETTINGS if flags & ACK == 0 => {
                client
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .await
                    .unwrap();
            }
            HEADERS => {
                assert_ne!(flags & END_HEADERS, 0, "test server sends small headers");
                let fields = to_strings(decoder.decode(&payload).unwrap());
                let status = fields.iter().find(|(n, _)| n == ":status").unwrap();
                answers.insert(stream_id, Answer::Status(status.1.clone()));
            }
            RST_STREAM => {
                let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                answers.insert(stream_id, Answer::Reset(code));
            }
            GOAWAY => panic!("server sent GOAWAY: {payload:?}"),
            _ => {}
        }
    }
    answers
}

const PROTOCOL_ERROR: u32 = 0x1;

#[tokio::test]
async fn without_the_fix_h2_resets_the_etcdctl_request() {
    let outcome = exchange(ETCDCTL_CAPTURE, &[1], false).await;
    assert_eq!(outcome.answers[&1], Answer::Reset(PROTOCOL_ERROR));
    assert!(outcome.authorities.is_empty());
}

#[tokio::test]
async fn h2_server_accepts_the_etcdctl_request_through_the_fix() {
    let outcome = exchange(ETCDCTL_CAPTURE, &[1], true).await;
    assert_eq!(outcome.answers[&1], Answer::Status("200".into()));
    assert_eq!(outcome.authorities, ["127.0.0.1:38479"]);
}

#[tokio::test]
async fn h2_server_accepts_indexed_authority_on_later_requests() {
    let blocks = HUFFMAN_INDEXED_REQUESTS.map(from_hex);
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(SETTINGS, 0, 0, &[]));
    for (block, stream_id) in blocks.iter().zip([1, 3]) {
        wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block));
    }
    let outcome = exchange(&wire, &[1, 3], true).await;
    let ok = Answer::Status("200".into());
    assert_eq!(outcome.answers, BTreeMap::from([(1, ok.clone()), (3, ok)]));
    assert_eq!(outcome.authorities, ["127.0.0.1:2379"; 2]);
}
