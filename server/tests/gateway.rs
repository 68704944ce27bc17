//! etcd's JSON gateway on a real etcr: the same requests a fresh etcd 3.4 was sent give the
//! same status lines and bodies, field for field and in etcd's order, once the values that
//! name a particular cluster (ids, terms, URLs, sizes) are masked.
//!
//! `tests/fixtures/gateway-etcd-3.4.txt` holds etcd's answers. To capture them again from the
//! etcd at /usr/bin/etcd: `cargo test -p etcr --test gateway -- --ignored capture_etcd`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, healthy, Etcr};

/// Requests in order, each `METHOD PATH BODY`, against a member that starts empty.
const SCENARIO: &[&str] = &[
    r#"POST /v3/kv/range {"key":"Zm9v"}"#,
    r#"POST /v3/kv/put {"key":"Zm9v","value":"YmFy"}"#,
    // lowerCamelCase names are read too, and fields etcd does not know are skipped.
    r#"POST /v3/kv/put {"key":"Zm9v","value":"YmF6","prevKv":true,"unknown":[1]}"#,
    r#"POST /v3/kv/range {"key":"Zm9v"}"#,
    r#"POST /v3/kv/put {"key":"YQ==","value":"MQ=="}"#,
    r#"POST /v3/kv/put {"key":"Yg==","value":"Mg=="}"#,
    r#"POST /v3/kv/range {"key":"YQ==","range_end":"Yw==","limit":"1"}"#,
    r#"POST /v3/kv/range {"key":"YQ==","range_end":"Yw==","count_only":true}"#,
    r#"POST /v3/kv/range {"key":"YQ==","range_end":"Yw==","keys_only":true,"sort_order":"DESCEND"}"#,
    r#"POST /v3/kv/range {"key":"bm8="}"#,
    r#"POST /v3/kv/txn {"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],"success":[{"request_range":{"key":"Zm9v"}},{"request_put":{"key":"Zm9v","value":"cXV4"}},{"request_delete_range":{"key":"eA=="}}]}"#,
    r#"POST /v3/kv/txn {"compare":[{"key":"Zm9v","target":"VERSION","version":"9"}],"failure":[{"request_range":{"key":"YQ=="}}]}"#,
    r#"POST /v3/kv/deleterange {"key":"YQ==","prev_kv":true}"#,
    r#"POST /v3/kv/deleterange {"key":"YQ=="}"#,
    r#"POST /v3/kv/compaction {"revision":"3"}"#,
    r#"POST /v3/kv/range {"key":"Zm9v","revision":"2"}"#,
    r#"POST /v3/kv/range {"key":"Zm9v","revision":1000}"#,
    r#"POST /v3/kv/put {"value":"YmFy"}"#,
    "POST /v3/kv/range ",
    r#"POST /v3/kv/put {"key":"Zm9v","value":"YmFy","lease":"12345"}"#,
    r#"POST /v3/kv/txn {"success":[{"request_put":{"key":"Zm9v"}},{"request_put":{"key":"Zm9v"}}]}"#,
    r#"POST /v3beta/kv/range {"key":"Zm9v"}"#,
    // Nested txns, filters, sorting by value, ignore_value, a ranged delete.
    r#"POST /v3/kv/txn {"success":[{"request_txn":{"compare":[{"key":"Zm9v","target":"CREATE","result":"GREATER","create_revision":"1"}],"success":[{"request_put":{"key":"bmVzdA==","value":"MQ==","prev_kv":true}}]}}]}"#,
    r#"POST /v3/kv/range {"key":"AA==","range_end":"AA==","sort_target":"VALUE","sort_order":"ASCEND","min_mod_revision":"5"}"#,
    r#"POST /v3/kv/range {"key":"AA==","range_end":"AA==","serializable":true,"max_create_revision":"2","keys_only":true}"#,
    r#"POST /v3/kv/put {"key":"bmVzdA==","ignore_value":true,"prev_kv":true}"#,
    r#"POST /v3/kv/put {"key":"bm9uZQ==","ignore_value":true}"#,
    r#"POST /v3/kv/put {"key":"bmVzdA==","value":"Mg==","ignore_value":true}"#,
    r#"POST /v3/kv/deleterange {"key":"AA==","range_end":"AA==","prev_kv":true}"#,
    r#"POST /v3/kv/range {"key":"AA==","range_end":"AA==","count_only":true}"#,
    r#"POST /v3/cluster/member/list {}"#,
    r#"POST /v3/maintenance/status {}"#,
    "GET /v3/kv/range ",
];

/// Fields whose values depend on the cluster, not on the gateway: masked before comparing.
/// `version` is masked where it is the server's (`3.4.x`), not where it counts a key's puts.
const MASKED: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "ID",
    "leader",
    "peerURLs",
    "clientURLs",
    "version",
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
];

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway-etcd-3.4.txt")
}

#[test]
fn answers_as_etcd_3_4_does() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let ours = run_scenario(etcr.client_port);
    let fixture = std::fs::read_to_string(fixture_path()).expect("read the etcd fixture");
    let theirs: Vec<&str> = fixture.lines().collect();
    assert_eq!(ours.len(), theirs.len(), "one answer per request");
    for (i, (ours, theirs)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(ours, theirs, "answer {i} to {}", SCENARIO[i]);
    }
}

/// Runs the scenario against a fresh etcd 3.4 and writes its answers as the fixture.
#[test]
#[ignore = "needs /usr/bin/etcd; rewrites the fixture"]
fn capture_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = RealEtcd::start(dir.path());
    let answers = run_scenario(etcd.client_port);
    std::fs::write(fixture_path(), answers.join("\n") + "\n").unwrap();
}

#[test]
fn bad_bodies_and_big_messages_get_etcds_codes() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &["--max-request-bytes", "1024"]);
    let port = etcr.client_port;

    // etcd's words come from Go's JSON decoder; the code and status are what clients see.
    for body in [
        "notjson",
        r#"{"key":1}"#,
        r#"{"key":"Zm9v","lease":"x"}"#,
        r#"{"key":"Zm9v","ignore_value":"SIDEWAYS"}"#,
    ] {
        let (status, answer) = post(port, "/v3/kv/put", body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.ends_with(r#","code":3}"#), "{body}: {answer}");
    }

    let value = "eHh4".repeat(400); // 1,200 bytes: over --max-request-bytes
    let (status, answer) = post(
        port,
        "/v3/kv/put",
        &format!(r#"{{"key":"YQ==","value":"{value}"}}"#),
    );
    assert_eq!(
        (status, answer.as_str()),
        (
            400,
            r#"{"error":"etcdserver: request is too large","message":"etcdserver: request is too large","code":3}"#
        )
    );
    // Past the gRPC port's message limit (the flag plus 512 KiB) it is grpc-go's refusal.
    let value = "eHh4".repeat(200_000);
    let (status, answer) = post(
        port,
        "/v3/kv/put",
        &format!(r#"{{"key":"YQ==","value":"{value}"}}"#),
    );
    assert_eq!(status, 429, "{answer}");
    assert_eq!(
        answer,
        r#"{"error":"grpc: received message larger than max (600007 vs. 525312)","message":"grpc: received message larger than max (600007 vs. 525312)","code":8}"#
    );
}

#[test]
fn services_etcr_lacks_answer_unimplemented_on_every_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let port = etcr.client_port;
    for prefix in ["/v3", "/v3beta", "/v3alpha"] {
        let (status, answer) = post(port, &format!("{prefix}/lease/leases"), "{}");
        assert_eq!(
            (status, answer.as_str()),
            (
                501,
                r#"{"error":"unknown service etcdserverpb.Lease","message":"unknown service etcdserverpb.Lease","code":12}"#
            )
        );
        // Streams fail in grpc-gateway's stream-error shape.
        let (status, answer) = post(
            port,
            &format!("{prefix}/watch"),
            r#"{"create_request":{"key":"YQ=="}}"#,
        );
        assert_eq!(
            (status, answer.as_str()),
            (501, "{\"error\":{\"grpc_code\":12,\"http_code\":501,\"message\":\"unknown service etcdserverpb.Watch\",\"http_status\":\"Not Implemented\"}}\n")
        );
        let (status, answer) = post(port, &format!("{prefix}/kv/range"), r#"{"key":"YQ=="}"#);
        assert_eq!(status, 200, "{answer}");
    }
    // Browsers may call the gateway from any origin, as etcd allows.
    let (status, head, _) = request(port, "OPTIONS", "/v3/kv/put", "");
    assert_eq!(status, 200);
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let (_, head, _) = request(port, "POST", "/v3/kv/range", "{}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");

    let (status, answer) = post(port, "/v3/maintenance/hashkv", "{}");
    assert_eq!(
        (status, answer.as_str()),
        (404, "404 page not found\n"),
        "etcd 3.4's gateway has no path for HashKV"
    );
    let (status, _, answer) = request(port, "GET", "/v3alpha/nowhere", "");
    assert_eq!((status, answer.as_str()), (404, "404 page not found\n"));
}

/// Sends the scenario; one line per answer: the status code and the masked body.
fn run_scenario(port: u16) -> Vec<String> {
    SCENARIO
        .iter()
        .map(|step| {
            let (method, rest) = step.split_once(' ').unwrap();
            let (path, body) = rest.split_once(' ').unwrap();
            let (status, _, answer) = request(port, method, path, body);
            format!("{status} {}", mask(answer.trim_end()))
        })
        .collect()
}

fn post(port: u16, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = request(port, "POST", path, body);
    (status, body)
}

/// One HTTP/1.1 request; the status code, the header lines in lower case and the body
/// (de-chunked).
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_ascii_lowercase(), body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// Replaces the value of each `MASKED` field (a string, number or array) with `<name>`.
fn mask(body: &str) -> String {
    let mut out = body.to_string();
    for name in MASKED {
        let needle = format!("\"{name}\":");
        let mut from = 0;
        while let Some(at) = out[from..].find(&needle) {
            let start = from + at + needle.len();
            let end = start + value_len(&out[start..]);
            if *name == "version" && !out[start..end].contains('.') {
                from = end;
                continue;
            }
            out.replace_range(start..end, &format!("\"<{name}>\""));
            from = start;
        }
    }
    out
}

/// The length of the JSON scalar or array of scalars at the start of `s`.
fn value_len(s: &str) -> usize {
    let b = s.as_bytes();
    match b.first() {
        Some(b'"') => 1 + s[1..].find('"').map_or(s.len() - 1, |e| e + 1),
        Some(b'[') => s.find(']').map_or(s.len(), |e| e + 1),
        _ => s.find([',', '}']).unwrap_or(s.len()),
    }
}

/// A single-member etcd from /usr/bin/etcd, killed on drop.
struct RealEtcd {
    child: Child,
    client_port: u16,
}

impl RealEtcd {
    fn start(dir: &Path) -> RealEtcd {
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("/usr/bin/etcd")
            .args(["--name", "t1", "--data-dir"])
            .arg(dir.join("etcd"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("t1={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/etcd");
        let mut etcd = RealEtcd { child, client_port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthy(client_port) {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            assert!(etcd.child.try_wait().unwrap().is_none(), "etcd exited");
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every member serves the gateway: a write on one is read, linearizably, on each other.
#[test]
fn every_member_of_a_cluster_serves_the_gateway() {
    let cluster = common::Cluster::start(3, &[]);
    for (i, writer) in cluster.members.iter().enumerate() {
        let value = ["MQ==", "Mg==", "Mw=="][i];
        let (status, answer) = post(
            writer.client_port,
            "/v3/kv/put",
            &format!(r#"{{"key":"Y2x1c3Rlcg==","value":"{value}"}}"#),
        );
        assert_eq!(status, 200, "{answer}");
        for reader in &cluster.members {
            let (status, answer) = post(
                reader.client_port,
                "/v3/kv/range",
                r#"{"key":"Y2x1c3Rlcg=="}"#,
            );
            assert_eq!(status, 200, "{answer}");
            assert!(
                answer.contains(&format!(r#""value":"{value}""#)),
                "{answer}"
            );
        }
    }
    let (status, answer) = post(
        cluster.members[0].client_port,
        "/v3/cluster/member/list",
        "{}",
    );
    assert_eq!(status, 200);
    assert_eq!(answer.matches("\"ID\":").count(), 3, "{answer}");
}
