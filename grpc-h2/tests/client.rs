//! grpc-h2's sans-IO client against grpc-h2's server over TCP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt};
use grpc_h2::{serve_connection, Answer, ClientConnection, Handler, Limits, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Test;

impl Handler for Test {
    fn call(&self, path: &str, message: Bytes) -> BoxFuture<'static, Result<Bytes, Status>> {
        let result = match path {
            "/t.T/Echo" => Ok(message),
            "/t.T/Big" => Ok(Bytes::from(vec![9u8; 6 << 20])),
            _ => Err(Status::new(5, format!("no {path} here"))),
        };
        async move { result }.boxed()
    }
}

async fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let limits = Limits {
                max_message: 16 << 20,
                max_streams: 100,
            };
            let pending = std::future::pending();
            tokio::spawn(serve_connection(
                tcp,
                BytesMut::new(),
                Arc::new(Test),
                limits,
                pending,
            ));
        }
    });
    addr.to_string()
}

/// Sends every call at once on one connection and collects the answers by stream id.
async fn exchange(addr: &str, calls: &[(&str, Vec<u8>)]) -> HashMap<u32, Result<Bytes, Status>> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut conn = ClientConnection::new(addr);
    for (path, message) in calls {
        conn.call(path, message).unwrap();
    }
    let mut input = BytesMut::new();
    let mut answers: Vec<Answer> = Vec::new();
    let mut results = HashMap::new();
    let work = async {
        while results.len() < calls.len() {
            // Answers are small here except Big, which the client's windows let through.
            tcp.write_all(conn.output()).await.unwrap();
            let n = conn.output().len();
            conn.written(n);
            assert!(tcp.read_buf(&mut input).await.unwrap() > 0, "server closed");
            conn.recv(&mut input, &mut answers).unwrap();
            for a in answers.drain(..) {
                results.insert(a.stream_id, a.result);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("every call is answered");
    assert_eq!(conn.open_calls(), 0);
    results
}

#[tokio::test]
async fn calls_answers_and_statuses_over_one_connection() {
    let addr = server().await;
    let mut calls: Vec<(&str, Vec<u8>)> = (0..50u8).map(|i| ("/t.T/Echo", vec![i; 100])).collect();
    calls.push(("/t.T/Missing", Vec::new()));
    calls.push(("/t.T/Big", Vec::new()));
    calls.push(("/t.T/Echo", vec![4; 200_000]));
    let results = exchange(&addr, &calls).await;
    for i in 0..50u32 {
        assert_eq!(
            results[&(2 * i + 1)].as_ref().unwrap()[..],
            vec![i as u8; 100]
        );
    }
    let missing = results[&101].as_ref().unwrap_err();
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (5, "no /t.T/Missing here")
    );
    let big = results[&103].as_ref().unwrap();
    assert!(big.len() == 6 << 20 && big.iter().all(|&b| b == 9));
    assert_eq!(results[&105].as_ref().unwrap().len(), 200_000);
}
