//! `/v3/watch` on the JSON gateway: one HTTP request is a watch stream whose answers arrive
//! as `{"result":...}` lines while the connection stays open, as etcd's gateway sends them.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Etcr;

/// Opens a watch with `body` and returns a reader positioned at the chunked body.
fn open_watch(port: u16, body: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    while line != "\r\n" {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    reader
}

/// The next JSON line of the stream (chunk sizes skipped); the read times out after 10 s.
fn next_line(reader: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("a watch answer within 10 s");
        let line = line.trim();
        if line.starts_with('{') {
            return line.to_string();
        }
    }
}

fn post(port: u16, path: &str, body: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Masks the ids and the term, which name the cluster.
fn mask(line: &str) -> String {
    let mut out = line.to_string();
    for name in ["cluster_id", "member_id", "raft_term"] {
        let needle = format!("\"{name}\":\"");
        if let Some(at) = out.find(&needle) {
            let start = at + needle.len();
            let end = start + out[start..].find('"').unwrap();
            out.replace_range(start..end, "*");
        }
    }
    out
}

/// A masked response header at `rev` (none: no revision field).
fn h(rev: &str) -> String {
    if rev.is_empty() {
        r#""header":{"cluster_id":"*","member_id":"*","raft_term":"*"}"#.to_string()
    } else {
        format!(
            r#""header":{{"cluster_id":"*","member_id":"*","revision":"{rev}","raft_term":"*"}}"#
        )
    }
}

#[test]
fn watch_streams_events_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let port = etcr.client_port;

    let mut watch = open_watch(port, r#"{"create_request":{"key":"Zm9v"}}"#);
    let h = |rev: &str| {
        if rev.is_empty() {
            r#""header":{"cluster_id":"*","member_id":"*","raft_term":"*"}"#.to_string()
        } else {
            format!(
                r#""header":{{"cluster_id":"*","member_id":"*","revision":"{rev}","raft_term":"*"}}"#
            )
        }
    };
    assert_eq!(
        mask(&next_line(&mut watch)),
        format!(r#"{{"result":{{{},"created":true}}}}"#, h("1"))
    );
    post(port, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    assert_eq!(
        mask(&next_line(&mut watch)),
        format!(
            r#"{{"result":{{{},"events":[{{"kv":{{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}}}]}}}}"#,
            h("2")
        )
    );
    post(port, "/v3/kv/deleterange", r#"{"key":"Zm9v"}"#);
    assert_eq!(
        mask(&next_line(&mut watch)),
        format!(
            r#"{{"result":{{{},"events":[{{"type":"DELETE","kv":{{"key":"Zm9v","mod_revision":"3"}}}}]}}}}"#,
            h("3")
        )
    );
}

/// etcd answers a compaction once the compacted revisions are gone for every reader, so a
/// watch from one of them, opened after the answer, is canceled.
#[test]
fn a_watch_from_a_compacted_revision_is_canceled() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let port = etcr.client_port;
    post(port, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    post(port, "/v3/kv/deleterange", r#"{"key":"Zm9v"}"#);
    // A watch from a compacted revision is created, then canceled, as etcd answers.
    post(port, "/v3/kv/compaction", r#"{"revision":"3"}"#);
    let mut old = open_watch(
        port,
        r#"{"create_request":{"key":"Zm9v","start_revision":"2"}}"#,
    );
    assert_eq!(
        mask(&next_line(&mut old)),
        format!(r#"{{"result":{{{},"created":true}}}}"#, h("3"))
    );
    assert_eq!(
        mask(&next_line(&mut old)),
        format!(
            r#"{{"result":{{{},"canceled":true,"compact_revision":"3"}}}}"#,
            h("")
        )
    );
}
