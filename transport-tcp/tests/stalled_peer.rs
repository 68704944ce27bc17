//! A peer that accepts the raft stream and then never reads (a vanished host): the writer gives up
//! after `write_timeout`, counts the stuck batch as dropped and re-dials.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use transport::conformance::{Payload, TestMsg};
use transport::frame::{encode_frame, FrameKind, FrameReader, Hello, Verdict};
use transport::{Transport, TransportConfig};
use transport_tcp::TcpTransport;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_writes_are_abandoned_and_redialled() {
    let hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    // Accept every raft stream, answer its Hello, then hold it open without reading.
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut tcp, _) = hole.accept().await.unwrap();
            let hello: Hello = FrameReader::new(&mut tcp, 1 << 20)
                .read_expected(FrameKind::Hello)
                .await
                .unwrap();
            assert_eq!((hello.from, hello.to), (1, 2));
            let mut buf = bytes::BytesMut::new();
            let ok = Verdict {
                ok: true,
                reason: String::new(),
            };
            encode_frame(&mut buf, FrameKind::HelloAck, &ok, 1 << 20).unwrap();
            tcp.write_all(&buf).await.unwrap();
            held.push(tcp);
        }
    });
    let mut cfg =
        TransportConfig::new(1, 7, "127.0.0.1:0".parse().unwrap()).with_peer(2, hole_addr);
    cfg.write_timeout = Duration::from_millis(300);
    let (a, _incoming) = TcpTransport::<TestMsg>::start(cfg).await.unwrap();
    // Far more than the socket buffers hold.
    let big = Payload(vec![7; 1 << 20]);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = a.stats()[0].clone();
        if s.reconnects >= 1 && s.dropped >= 1 {
            break;
        }
        assert!(
            Instant::now() < end,
            "stalled stream never abandoned: {s:?}"
        );
        a.send(
            2,
            TestMsg {
                seq: 0,
                sent_at_ns: 0,
                payload: big.clone(),
            },
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.shutdown().await;
    accepted.abort();
}
