//! grpc-h2 serving a real gRPC client (tonic) over TCP: unary, server-streaming and
//! bidirectional calls, statuses, limits, cancellation, deadlines and shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::FutureExt;
use futures::stream::{self, StreamExt};
use grpc_h2::{serve_connection, CallKind, Handler, Limits, Metadata, Request, Response, Status};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(10);

/// Counts what happened to the calls that wait forever.
#[derive(Default)]
struct Probe {
    entered: Notify,
    release: Notify,
    dropped: AtomicUsize,
    produced: AtomicUsize,
}

/// Drops with the call that owns it, proving the call was cancelled.
struct OnDrop(Arc<Probe>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

struct Test(Arc<Probe>);

fn decode(message: &Bytes) -> String {
    String::decode(message.clone()).unwrap_or_default()
}

impl Handler for Test {
    fn kind(&self, path: &str) -> Result<CallKind, Status> {
        match path {
            "/t.T/Count" | "/t.T/Flood" | "/t.T/Mixed" => Ok(CallKind::ServerStreaming),
            "/t.T/Chat" => Ok(CallKind::Bidirectional),
            p if p.starts_with("/t.T/") => Ok(CallKind::Unary),
            _ => Err(Status::new(12, format!("unknown service {path}"))),
        }
    }

    fn call(&self, path: &str, metadata: Metadata, request: Request) -> Response {
        let probe = self.0.clone();
        match (path, request) {
            ("/t.T/Count", Request::Message(m)) => {
                let n: usize = decode(&m).parse().unwrap_or(0);
                let items = (0..n).map(|i| Ok(Bytes::from(i.to_string().encode_to_vec())));
                Response::Stream(stream::iter(items).boxed())
            }
            ("/t.T/Mixed", Request::Message(_)) => {
                // Small messages, every 100th one too large to copy, all ready at once, then
                // an error.
                let items = (0..1000)
                    .map(mixed)
                    .map(|m| Ok(Bytes::from(m.encode_to_vec())));
                let end = Err(Status::new(9, "stopped after 1000"));
                Response::Stream(stream::iter(items.chain([end])).boxed())
            }
            ("/t.T/Flood", Request::Message(_)) => {
                // Endless 64 KiB messages; counts how many were produced.
                let guard = OnDrop(probe.clone());
                let items = stream::repeat_with(move || {
                    let _ = &guard;
                    probe.produced.fetch_add(1, Ordering::SeqCst);
                    Ok(Bytes::from(vec![1u8; 64 << 10].encode_to_vec()))
                });
                Response::Stream(items.boxed())
            }
            ("/t.T/Chat", Request::Stream(requests)) => {
                let replies = requests
                    .map(|m| m.map(|m| Bytes::from(format!("re: {}", decode(&m)).encode_to_vec())));
                Response::Stream(replies.boxed())
            }
            (path, Request::Message(message)) => {
                let path = path.to_owned();
                Response::Unary(
                    async move {
                        match path.as_str() {
                            "/t.T/Echo" => Ok(message),
                            "/t.T/Token" => Ok(Bytes::from(
                                metadata.token.unwrap_or_default().encode_to_vec(),
                            )),
                            "/t.T/Fail" => Err(Status::new(5, "not found: ✓ 100%")),
                            "/t.T/Big" => Ok(Bytes::from(vec![7u8; 5 << 20].encode_to_vec())),
                            "/t.T/Wait" => {
                                let _guard = OnDrop(probe.clone());
                                probe.entered.notify_one();
                                probe.release.notified().await;
                                Ok(message)
                            }
                            _ => Err(Status::new(12, "unknown method")),
                        }
                    }
                    .boxed(),
                )
            }
            _ => Response::Unary(async { Err(Status::new(13, "bad shape")) }.boxed()),
        }
    }
}

struct Server {
    addr: std::net::SocketAddr,
    probe: Arc<Probe>,
    stop: watch::Sender<bool>,
    connections: mpsc::UnboundedReceiver<JoinHandle<Result<(), grpc_h2::Error>>>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let probe = Arc::new(Probe::default());
    let handler = Arc::new(Test(probe.clone()));
    let (stop, stop_rx) = watch::channel(false);
    let (tx, connections) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let task = tokio::spawn(serve_connection(
                tcp,
                handler.clone(),
                Limits::default(),
                stopped,
            ));
            let _ = tx.send(task);
        }
    });
    Server {
        addr,
        probe,
        stop,
        connections,
    }
}

type Grpc = tonic::client::Grpc<tonic::transport::Channel>;

async fn client(addr: std::net::SocketAddr) -> Grpc {
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
    client: &mut Grpc,
    path: &'static str,
    request: tonic::Request<T>,
) -> Result<T, tonic::Status> {
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<T, T>::default();
    let call = client.unary(request, PathAndQuery::from_static(path), codec);
    tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the call finishes")
        .map(|r| r.into_inner())
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(tokio::time::Instant::now() < give_up, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn concurrent_calls_on_one_connection_are_answered() {
    let server = start().await;
    let client = client(server.addr).await;
    let calls = (0..200).map(|i| {
        let mut c = client.clone();
        async move {
            unary(
                &mut c,
                "/t.T/Echo",
                tonic::Request::new(format!("call {i}")),
            )
            .await
        }
    });
    let answers = futures::future::join_all(calls).await;
    for (i, a) in answers.into_iter().enumerate() {
        assert_eq!(a.unwrap(), format!("call {i}"));
    }
}

#[tokio::test]
async fn statuses_and_metadata_reach_their_side() {
    let server = start().await;
    let mut client = client(server.addr).await;
    let err = unary(&mut client, "/t.T/Fail", tonic::Request::new(String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "not found: ✓ 100%");
    let err = unary(&mut client, "/x.X/Nope", tonic::Request::new(String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.message(), "unknown service /x.X/Nope");

    let mut request = tonic::Request::new(String::new());
    request
        .metadata_mut()
        .insert("token", "secret".parse().unwrap());
    let token = unary(&mut client, "/t.T/Token", request).await.unwrap();
    assert_eq!(token, "secret");
}

#[tokio::test]
async fn large_messages_flow_both_ways_within_the_limit() {
    let server = start().await;
    let mut client = client(server.addr).await;
    let big = unary(
        &mut client,
        "/t.T/Big",
        tonic::Request::new(Vec::<u8>::new()),
    )
    .await
    .unwrap();
    assert_eq!(big.len(), 5 << 20);
    assert!(big.iter().all(|&b| b == 7));

    let three_mib = vec![3u8; 3 << 20];
    let echoed = unary(
        &mut client,
        "/t.T/Echo",
        tonic::Request::new(three_mib.clone()),
    )
    .await
    .unwrap();
    assert_eq!(echoed, three_mib);

    let err = unary(
        &mut client,
        "/t.T/Echo",
        tonic::Request::new(vec![5u8; 5 << 20]),
    )
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
    let after = unary(
        &mut client,
        "/t.T/Echo",
        tonic::Request::new("after".to_string()),
    );
    assert_eq!(after.await.unwrap(), "after");
}

#[tokio::test]
async fn an_unknown_streaming_call_is_refused_without_waiting_for_its_end() {
    let server = start().await;
    let mut client = client(server.addr).await;
    client.ready().await.unwrap();
    // A request stream that never ends, as a watch is.
    let requests = stream::pending::<String>();
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

/// Opens a server-streaming call of strings on a new connection.
async fn string_stream(
    server: &Server,
    path: &'static str,
    request: &str,
) -> tonic::Streaming<String> {
    let mut client = client(server.addr).await;
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<String, String>::default();
    let call = client.server_streaming(
        tonic::Request::new(request.to_string()),
        PathAndQuery::from_static(path),
        codec,
    );
    call.await.unwrap().into_inner()
}

#[tokio::test]
async fn server_streams_deliver_every_message_then_ok() {
    let server = start().await;
    let mut replies = string_stream(&server, "/t.T/Count", "1000").await;
    let mut seen = Vec::new();
    while let Some(item) = replies.message().await.unwrap() {
        seen.push(item);
    }
    let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected);
}

fn mixed(i: usize) -> String {
    if i % 100 == 50 {
        format!("{i}{}", "x".repeat(20 << 10))
    } else {
        i.to_string()
    }
}

#[tokio::test]
async fn messages_ready_together_arrive_whole_and_in_order_before_the_status() {
    let server = start().await;
    let mut replies = string_stream(&server, "/t.T/Mixed", "").await;
    let mut seen = Vec::new();
    let status = loop {
        match replies.message().await {
            Ok(Some(item)) => seen.push(item),
            Ok(None) => panic!("the stream ended without its error"),
            Err(status) => break status,
        }
    };
    assert_eq!(seen.len(), 1000);
    for (i, item) in seen.iter().enumerate() {
        assert!(*item == mixed(i), "message {i} differs");
    }
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "stopped after 1000");
}

#[tokio::test]
async fn bidirectional_calls_answer_each_request_as_it_arrives() {
    let server = start().await;
    let mut client = client(server.addr).await;
    client.ready().await.unwrap();
    let (tx, rx) = mpsc::channel::<String>(1);
    let requests = tokio_stream_from(rx);
    let codec = tonic_prost::ProstCodec::<String, String>::default();
    let call = client.streaming(
        tonic::Request::new(requests),
        PathAndQuery::from_static("/t.T/Chat"),
        codec,
    );
    tx.send("one".into()).await.unwrap();
    let mut replies = call.await.unwrap().into_inner();
    assert_eq!(replies.message().await.unwrap().as_deref(), Some("re: one"));
    // The second request goes out only after the first answer came back.
    tx.send("two".into()).await.unwrap();
    assert_eq!(replies.message().await.unwrap().as_deref(), Some("re: two"));
    drop(tx);
    assert_eq!(replies.message().await.unwrap(), None);
}

fn tokio_stream_from(mut rx: mpsc::Receiver<String>) -> impl futures::Stream<Item = String> {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn a_slow_reader_holds_the_response_stream_back() {
    let server = start().await;
    let mut client = client(server.addr).await;
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<String, Vec<u8>>::default();
    let call = client.server_streaming(
        tonic::Request::new(String::new()),
        PathAndQuery::from_static("/t.T/Flood"),
        codec,
    );
    let mut replies = call.await.unwrap().into_inner();
    let first = replies.message().await.unwrap().unwrap();
    assert_eq!(first.len(), 64 << 10);
    // The client reads nothing more: production stops once the windows are full
    // (about 4 MiB of stream window in 64 KiB messages, plus what sits in buffers).
    let mut last = 0;
    wait_until("production stalls", || {
        let now = server.probe.produced.load(Ordering::SeqCst);
        let stalled = now == last && now > 0;
        last = now;
        stalled
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let produced = server.probe.produced.load(Ordering::SeqCst);
    assert!(
        produced < 200,
        "{produced} messages produced for a reader that stopped"
    );
    // Dropping the call resets the stream, which drops the producer.
    drop(replies);
    wait_until("the producer is dropped", || {
        server.probe.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn a_reset_stream_cancels_its_call() {
    let server = start().await;
    let mut client = client(server.addr).await;
    let mut waiting = client.clone();
    let call = tokio::spawn(async move {
        unary(
            &mut waiting,
            "/t.T/Wait",
            tonic::Request::new("held".to_string()),
        )
        .await
    });
    tokio::time::timeout(DEADLINE, server.probe.entered.notified())
        .await
        .expect("the call reaches the handler");
    // Aborting the client's call resets its stream.
    call.abort();
    wait_until("the handler's future is dropped", || {
        server.probe.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    let after = unary(
        &mut client,
        "/t.T/Echo",
        tonic::Request::new("after".to_string()),
    );
    assert_eq!(after.await.unwrap(), "after");
}

#[tokio::test]
async fn grpc_timeout_ends_the_call_with_deadline_exceeded() {
    let server = start().await;
    // grpc_h2's client, unlike tonic's, does not enforce the timeout itself.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut client, conn) = grpc_h2::client::connect(tcp, &server.addr.to_string())
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut metadata = http::HeaderMap::new();
    metadata.insert("grpc-timeout", "200m".parse().unwrap());
    let held = "held".to_string().encode_to_vec();
    let call = client.unary_with("/t.T/Wait", metadata, &held);
    let err = tokio::time::timeout(DEADLINE, call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, 4);
    assert_eq!(err.message, "context deadline exceeded");
    assert_eq!(server.probe.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_lets_open_calls_finish_then_closes() {
    let mut server = start().await;
    let mut client = client(server.addr).await;
    let warm = unary(
        &mut client,
        "/t.T/Echo",
        tonic::Request::new("warm".to_string()),
    );
    assert_eq!(warm.await.unwrap(), "warm");
    let connection = server.connections.recv().await.unwrap();
    let mut waiting = client.clone();
    let open = tokio::spawn(async move {
        unary(
            &mut waiting,
            "/t.T/Wait",
            tonic::Request::new("held".to_string()),
        )
        .await
    });
    // Once the handler holds the call, the server stops.
    tokio::time::timeout(DEADLINE, server.probe.entered.notified())
        .await
        .expect("the call reaches the handler");
    server.stop.send(true).unwrap();
    server.probe.release.notify_one();
    assert_eq!(open.await.unwrap().unwrap(), "held");
    tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("the connection closes after its last call")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_h2_client_makes_unary_calls() {
    let server = start().await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut client, conn) = grpc_h2::client::connect(tcp, &server.addr.to_string())
        .await
        .unwrap();
    tokio::spawn(conn);
    let reply = client
        .unary("/t.T/Echo", &"hi".to_string().encode_to_vec())
        .await
        .unwrap();
    assert_eq!(String::decode(reply).unwrap(), "hi");
    let err = client.unary("/t.T/Fail", &[]).await.unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (5, "not found: ✓ 100%"));
    let err = client.unary("/x.X/Y", &[]).await.unwrap_err();
    assert_eq!(err.code, 12);
}

/// grpc-go clients (etcd's clientv3, Kubernetes) start with a 64 KiB connection window
/// and put every watch of a process on one connection: a response stream with nothing
/// to send must not hold any of that window, or the next stream never gets an answer.
#[tokio::test]
async fn idle_streams_leave_the_connection_window_to_the_others() {
    let server = start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_connection_window_size(65_535)
        .initial_stream_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let mut open = Vec::new();
    for i in 0..100 {
        client.ready().await.unwrap();
        let (tx, rx) = mpsc::channel::<String>(1);
        let codec = tonic_prost::ProstCodec::<String, String>::default();
        let call = client.streaming(
            tonic::Request::new(tokio_stream_from(rx)),
            PathAndQuery::from_static("/t.T/Chat"),
            codec,
        );
        tx.send(format!("hello {i}")).await.unwrap();
        let mut replies = tokio::time::timeout(DEADLINE, call)
            .await
            .unwrap_or_else(|_| panic!("stream {i} got no response headers"))
            .unwrap()
            .into_inner();
        let reply = tokio::time::timeout(DEADLINE, replies.message())
            .await
            .unwrap_or_else(|_| panic!("stream {i} got no answer"))
            .unwrap();
        assert_eq!(reply, Some(format!("re: hello {i}")));
        // Kept open and idle, as a watch is between events.
        open.push((tx, replies));
    }
    // Every idle stream still answers.
    for (i, (tx, replies)) in open.iter_mut().enumerate() {
        tx.send(format!("again {i}")).await.unwrap();
        let reply = tokio::time::timeout(DEADLINE, replies.message())
            .await
            .unwrap_or_else(|_| panic!("stream {i} went deaf"))
            .unwrap();
        assert_eq!(reply, Some(format!("re: again {i}")));
    }
}
