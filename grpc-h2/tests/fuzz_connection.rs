//! Fuzzing the client port's connection path as the server runs it: bytes after the HTTP/2
//! preface go through the authority repair (which decodes the first header block with its own
//! HPACK decoder), h2, and grpc-h2's message framing into a handler. Arbitrary bytes, and a
//! real etcdctl 3.4 capture cut and mutated, must end the connection with a result — never a
//! panic, never a hang once the client has hung up.
//!
//! `ETCR_FUZZ_CASES` sets the cases per batch (128 by default); with `ETCR_FUZZ_SECONDS`
//! batches with fresh seeds run until that much time has passed (`cargo xtask fuzz`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::FutureExt;
use futures::stream::StreamExt;
use grpc_h2::{serve_connection, AuthorityFix, CallKind, Handler, Limits, Metadata};
use grpc_h2::{Request, Response, Status, PREFACE};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::AsyncWriteExt;

/// etcdctl 3.4's opening of a connection and one `endpoint status` call, as it sent them.
const CAPTURE: &[u8] = include_bytes!("../testdata/etcdctl-3.4-endpoint-status.bin");

/// How long a connection may take to finish once its client has sent everything and hung up.
const DEADLINE: Duration = Duration::from_secs(10);

/// Echoes unary requests and every message of a stream: every request reaches a handler.
struct Echo;

impl Handler for Echo {
    fn kind(&self, path: &str) -> Result<CallKind, Status> {
        match path {
            "/e.E/Chat" => Ok(CallKind::Bidirectional),
            _ => Ok(CallKind::Unary),
        }
    }

    fn call(&self, _path: &str, _metadata: Metadata, request: Request) -> Response {
        match request {
            Request::Message(m) => Response::Unary(async move { Ok(m) }.boxed()),
            Request::Stream(s) => Response::Stream(s.boxed()),
        }
    }
}

fn limits() -> Limits {
    Limits {
        max_message: 64 << 10,
        max_buffered: 1 << 20,
        max_unsent: 1 << 20,
        handshake_timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

/// Serves `input` as one client connection that then hangs up, as the server does (the
/// authority repair in front of h2), and says how it ended.
fn serve(input: Vec<u8>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let served = tokio::spawn(serve_connection(
            AuthorityFix::new(server),
            Arc::new(Echo),
            limits(),
            std::future::pending(),
        ));
        // The server may close its side early; what it did not read is simply not sent.
        let _ = client.write_all(&input).await;
        let _ = client.shutdown().await;
        // Read whatever the server answers so a full pipe never holds it up.
        let drain = tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut client, &mut sink).await;
        });
        match tokio::time::timeout(DEADLINE, served).await {
            Err(_) => Err(TestCaseError::fail(format!(
                "the connection did not end within {DEADLINE:?} of the client hanging up"
            ))),
            Ok(Err(join)) => Err(TestCaseError::fail(format!(
                "the connection task panicked: {join}"
            ))),
            Ok(Ok(_ended)) => {
                drain.abort();
                Ok(())
            }
        }
    })
}

fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("ETCR_FUZZ_CASES").unwrap_or(128) as u32;
    let until = env("ETCR_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let mut total = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{e}");
        }
        total += u64::from(cases);
        if until.is_none_or(|t| Instant::now() >= t) {
            break;
        }
    }
    // Test threads bear their test's name.
    let test = std::thread::current().name().unwrap_or("fuzz").to_string();
    eprintln!("{test}: {total} cases, no failure");
}

#[test]
fn arbitrary_bytes_after_the_preface() {
    fuzz(prop::collection::vec(any::<u8>(), 0..4096), |tail| {
        let mut input = PREFACE.to_vec();
        input.extend(tail);
        serve(input)
    });
}

#[test]
fn the_etcdctl_capture_cut_anywhere() {
    fuzz(0..=CAPTURE.len(), |cut| serve(CAPTURE[..cut].to_vec()));
}

#[test]
fn the_etcdctl_capture_mutated() {
    let mutations = prop::collection::vec((0..CAPTURE.len(), any::<u8>()), 1..16);
    fuzz(mutations, |changes| {
        let mut input = CAPTURE.to_vec();
        for (at, byte) in changes {
            input[at] = byte;
        }
        serve(input)
    });
}

/// Valid HTTP/2 up to the call, then an arbitrary request body: gRPC's 5-byte message prefix
/// (compression flag, declared length) and whatever follows it, in arbitrary DATA frames.
#[test]
fn arbitrary_grpc_bodies_through_a_real_client() {
    let bodies = (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
        any::<bool>(),
    );
    fuzz(bodies, |(chunks, streaming)| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
        runtime.block_on(async move {
            let (client_io, server_io) = tokio::io::duplex(1 << 20);
            let served = tokio::spawn(serve_connection(
                AuthorityFix::new(server_io),
                Arc::new(Echo),
                limits(),
                std::future::pending(),
            ));
            let call = async move {
                let (mut h2, connection) = h2::client::handshake(client_io).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let path = if streaming { "/e.E/Chat" } else { "/e.E/Say" };
                let request = http::Request::builder()
                    .method("POST")
                    .uri(format!("http://fuzz{path}"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .map_err(|_| h2::Error::from(h2::Reason::INTERNAL_ERROR))?;
                let (response, mut send) = h2.send_request(request, false)?;
                if chunks.is_empty() {
                    send.send_data(Bytes::new(), true)?;
                }
                let last = chunks.len().saturating_sub(1);
                for (i, chunk) in chunks.into_iter().enumerate() {
                    send.send_data(Bytes::from(chunk), i == last)?;
                }
                let mut body = response.await?.into_body();
                while let Some(data) = body.data().await {
                    let data = data?;
                    let _ = body.flow_control().release_capacity(data.len());
                }
                let _ = body.trailers().await?;
                Ok::<_, h2::Error>(())
            };
            // An error answer (a reset, a GOAWAY) is a fine outcome; only a hang or a panic is not.
            let answered = tokio::time::timeout(DEADLINE, call).await;
            if answered.is_err() {
                return Err(TestCaseError::fail("the call was never answered"));
            }
            served.abort();
            match served.await {
                Err(e) if e.is_panic() => Err(TestCaseError::fail("the connection task panicked")),
                _ => Ok(()),
            }
        })
    });
}
