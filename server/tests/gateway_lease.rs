//! Leases through the JSON gateway and gRPC on one member share its lease service.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::LeaseGrantRequest;
use common::Etcr;

fn post(port: u16, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

#[tokio::test]
async fn grants_on_both_ports_get_distinct_ids() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let mut grpc = LeaseClient::connect(etcr.endpoint()).await.unwrap();
    for _ in 0..5 {
        let by_grpc = grpc
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .expect("a grant over gRPC")
            .into_inner()
            .id;
        let answer = post(etcr.client_port, "/v3/lease/grant", r#"{"TTL":"60"}"#);
        assert!(
            !answer.contains(&format!("\"ID\":\"{by_grpc}\"")),
            "the gateway handed out {by_grpc} again: {answer}"
        );
    }
}
