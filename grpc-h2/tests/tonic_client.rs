//! grpc-h2 serving a real gRPC client (tonic) over TCP.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt};
use grpc_h2::{serve_connection, Handler, Limits, Status};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(10);

struct Test {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl Handler for Test {
    fn check(&self, path: &str) -> Result<(), Status> {
        if path.starts_with("/t.T/") {
            Ok(())
        } else {
            Err(Status::new(12, format!("unknown service {path}")))
        }
    }

    fn call(&self, path: &str, message: Bytes) -> BoxFuture<'static, Result<Bytes, Status>> {
        let (entered, release) = (self.entered.clone(), self.release.clone());
        let path = path.to_owned();
        async move {
            match path.as_str() {
                "/t.T/Echo" => Ok(message),
                "/t.T/Fail" => Err(Status::new(5, "not found: ✓ 100%")),
                "/t.T/Big" => Ok(Bytes::from(vec![7u8; 5 << 20].encode_to_vec())),
                "/t.T/Wait" => {
                    entered.notify_one();
                    release.notified().await;
                    Ok(message)
                }
                _ => Err(Status::new(12, "unknown method")),
            }
        }
        .boxed()
    }
}

struct Server {
    addr: std::net::SocketAddr,
    entered: Arc<Notify>,
    release: Arc<Notify>,
    stop: watch::Sender<bool>,
    connections: tokio::sync::mpsc::UnboundedReceiver<JoinHandle<Result<(), grpc_h2::Error>>>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let handler = Arc::new(Test {
        entered: entered.clone(),
        release: release.clone(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let (tx, connections) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let limits = Limits {
                max_message: 4 << 20,
                max_streams: 1000,
            };
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let task = tokio::spawn(serve_connection(
                tcp,
                BytesMut::new(),
                handler.clone(),
                limits,
                stopped,
            ));
            let _ = tx.send(task);
        }
    });
    Server {
        addr,
        entered,
        release,
        stop,
        connections,
    }
}

async fn client(addr: std::net::SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

async fn unary<T: Message + Default + 'static>(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &'static str,
    request: T,
) -> Result<T, tonic::Status> {
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<T, T>::default();
    let call = client.unary(
        tonic::Request::new(request),
        PathAndQuery::from_static(path),
        codec,
    );
    tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the call finishes")
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn concurrent_calls_on_one_connection_are_answered() {
    let server = start().await;
    let client = client(server.addr).await;
    let calls = (0..200).map(|i| {
        let mut c = client.clone();
        async move { unary(&mut c, "/t.T/Echo", format!("call {i}")).await }
    });
    let answers = futures::future::join_all(calls).await;
    for (i, a) in answers.into_iter().enumerate() {
        assert_eq!(a.unwrap(), format!("call {i}"));
    }
}

#[tokio::test]
async fn statuses_reach_the_client_with_their_message() {
    let server = start().await;
    let mut client = client(server.addr).await;
    let err = unary(&mut client, "/t.T/Fail", String::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "not found: ✓ 100%");
    let err = unary(&mut client, "/t.T/Nope", String::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test]
async fn large_messages_flow_both_ways_within_the_limit() {
    let server = start().await;
    let mut client = client(server.addr).await;
    let big = unary(&mut client, "/t.T/Big", Vec::<u8>::new())
        .await
        .unwrap();
    assert_eq!(big.len(), 5 << 20);
    assert!(big.iter().all(|&b| b == 7));

    let three_mib = vec![3u8; 3 << 20];
    let echoed = unary(&mut client, "/t.T/Echo", three_mib.clone())
        .await
        .unwrap();
    assert_eq!(echoed, three_mib);

    let err = unary(&mut client, "/t.T/Echo", vec![5u8; 5 << 20])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .starts_with("grpc: received message larger than max ("),
        "{}",
        err.message()
    );
    // The connection is still good.
    assert_eq!(
        unary(&mut client, "/t.T/Echo", "after".to_string())
            .await
            .unwrap(),
        "after"
    );
}

#[tokio::test]
async fn an_unknown_streaming_call_is_refused_without_waiting_for_its_end() {
    let server = start().await;
    let mut client = client(server.addr).await;
    client.ready().await.unwrap();
    // A request stream that never ends, as a watch is.
    let requests = futures::stream::pending::<String>();
    let codec = tonic_prost::ProstCodec::<String, String>::default();
    let call = client.streaming(
        tonic::Request::new(requests),
        PathAndQuery::from_static("/etcdserverpb.Watch/Watch"),
        codec,
    );
    let err = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("refused promptly")
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.message(), "unknown service /etcdserverpb.Watch/Watch");
}

#[tokio::test]
async fn shutdown_lets_open_calls_finish_then_closes() {
    let mut server = start().await;
    let mut client = client(server.addr).await;
    assert_eq!(
        unary(&mut client, "/t.T/Echo", "warm".to_string())
            .await
            .unwrap(),
        "warm"
    );
    let connection = server.connections.recv().await.unwrap();
    let mut waiting = client.clone();
    let open =
        tokio::spawn(async move { unary(&mut waiting, "/t.T/Wait", "held".to_string()).await });
    // Once the handler holds the call, the server stops.
    tokio::time::timeout(DEADLINE, server.entered.notified())
        .await
        .expect("the call reaches the handler");
    server.stop.send(true).unwrap();
    server.release.notify_one();
    assert_eq!(open.await.unwrap().unwrap(), "held");
    tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("the connection closes after its last call")
        .unwrap()
        .unwrap();
}
