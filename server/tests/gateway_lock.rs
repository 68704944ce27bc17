//! Locks and elections through the JSON gateway: `/v3/lock/*` and `/v3/election/*` run the
//! gRPC port's services, with etcd's JSON (bytes in base64, 64-bit numbers as strings).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Etcr;

/// One POST; the status code and the de-chunked body.
fn post(port: u16, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    (status, body.to_string())
}

fn field(json: &str, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v[name].clone()
}

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn locks_and_elections_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let port = etcr.client_port;
    let (status, grant) = post(port, "/v3/lease/grant", r#"{"TTL":"30"}"#);
    assert_eq!(status, 200, "{grant}");
    let lease: i64 = field(&grant, "ID").as_str().unwrap().parse().unwrap();

    let (status, locked) = post(
        port,
        "/v3/lock/lock",
        &format!(r#"{{"name":"{}","lease":"{lease}"}}"#, b64("job")),
    );
    assert_eq!(status, 200, "{locked}");
    let key = field(&locked, "key");
    assert_eq!(key.as_str().unwrap(), b64(&format!("job/{lease:x}")));
    let (status, unlocked) = post(port, "/v3/lock/unlock", &format!(r#"{{"key":{key}}}"#));
    assert_eq!(status, 200, "{unlocked}");

    let (status, campaign) = post(
        port,
        "/v3/election/campaign",
        &format!(
            r#"{{"name":"{}","lease":"{lease}","value":"{}"}}"#,
            b64("e"),
            b64("one")
        ),
    );
    assert_eq!(status, 200, "{campaign}");
    let leader = field(&campaign, "leader");
    assert_eq!(
        leader["key"].as_str().unwrap(),
        b64(&format!("e/{lease:x}"))
    );
    let (status, answer) = post(
        port,
        "/v3/election/leader",
        &format!(r#"{{"name":"{}"}}"#, b64("e")),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(field(&answer, "kv")["value"].as_str().unwrap(), b64("one"));
    let (status, answer) = post(
        port,
        "/v3/election/resign",
        &format!(r#"{{"leader":{leader}}}"#),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        port,
        "/v3/election/leader",
        &format!(r#"{{"name":"{}"}}"#, b64("e")),
    );
    assert_eq!(
        (status, answer.as_str()),
        (
            500,
            r#"{"error":"election: no leader","message":"election: no leader","code":2}"#
        )
    );
}
