//! The conformance suite every [`Transport`] implementation runs (feature `conformance`).
//!
//! An implementation crate provides a [`Harness`] and expands [`crate::conformance_tests!`] in a
//! test file; each check is also a plain `pub async fn` here, usable on its own.
//!
//! ```text
//! transport::conformance_tests!(my_crate_tests::Plain);
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::engine::PeerIo;
use crate::frame::{encode_frame, raw_header, FrameKind, FrameReader, Hello, StreamKind, Verdict};
use crate::{Incoming, IncomingReceiver, MemberId, TlsConfig, Transport, TransportConfig};

/// The cluster id used by the suite.
pub const CLUSTER_ID: u64 = 0xE7C4;
/// How long any single wait in the suite may take before the check fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Opaque bytes that serialize as one byte string (fast with bincode, unlike `Vec<u8>`'s sequence).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload(pub Vec<u8>);

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// The message type of the suite (and of the benchmark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestMsg {
    /// Sequence number per sender.
    pub seq: u64,
    /// Send time in nanoseconds since some origin (latency measurements), or 0.
    pub sent_at_ns: u64,
    /// Padding.
    pub payload: Payload,
}

impl TestMsg {
    /// A message with `pad` bytes of payload.
    pub fn new(seq: u64, pad: usize) -> Self {
        Self {
            seq,
            sent_at_ns: 0,
            payload: Payload(vec![0xA5; pad]),
        }
    }
}

/// A started transport and its incoming side.
pub struct Node {
    /// The transport.
    pub transport: Arc<dyn Transport<TestMsg>>,
    /// Its incoming side.
    pub incoming: IncomingReceiver<TestMsg>,
}

/// What an implementation provides to run the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Whether nodes run with mutual TLS (then the suite fills [`TransportConfig::tls`]).
    fn uses_tls(&self) -> bool;
    /// Starts a transport with `cfg`.
    async fn start(&self, cfg: TransportConfig) -> crate::Result<Node>;
    /// Opens a raw byte stream to a transport at `addr` (TLS with `tls` when given), so the suite can
    /// speak the wire protocol by hand: handshakes, corrupt and oversized frames.
    async fn dial_raw(
        &self,
        addr: SocketAddr,
        tls: Option<&TlsConfig>,
    ) -> io::Result<Box<dyn PeerIo>>;
}

/// A certificate authority with member certificates, made with rcgen.
pub struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// TLS material for a member called `name`, signed by this CA.
    pub fn member(&self, name: &str) -> TlsConfig {
        let key = rcgen::KeyPair::generate().expect("member key");
        let mut params = rcgen::CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            name.to_string(),
        ])
        .expect("member params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("member cert");
        TlsConfig {
            ca_pem: self.ca_pem.clone().into_bytes(),
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        }
    }
}

/// A configuration for member `id` on a free loopback port.
pub fn config(id: MemberId, pki: Option<&Pki>) -> TransportConfig {
    let mut cfg = TransportConfig::new(id, CLUSTER_ID, "127.0.0.1:0".parse().expect("addr"));
    cfg.tls = pki.map(|p| p.member(&format!("m{id}")));
    cfg
}

/// Starts `n` members (ids 1..=n) that all know each other.
pub async fn cluster<H: Harness + ?Sized>(h: &H, pki: Option<&Pki>, n: u64) -> Vec<Node> {
    cluster_with(h, pki, n, |_| {}).await
}

/// Starts `n` members (ids 1..=n) that all know each other, adjusting each configuration first.
pub async fn cluster_with<H: Harness + ?Sized>(
    h: &H,
    pki: Option<&Pki>,
    n: u64,
    adjust: impl Fn(&mut TransportConfig),
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        let mut cfg = config(id, pki);
        adjust(&mut cfg);
        nodes.push(h.start(cfg).await.expect("start member"));
    }
    connect_all(&nodes);
    wait_connected(&nodes).await;
    nodes
}

/// Waits until every member's raft stream to every peer is up.
pub async fn wait_connected(nodes: &[Node]) {
    wait_until("every raft stream to connect", || {
        nodes
            .iter()
            .all(|n| n.transport.stats().iter().all(|s| s.connected))
    })
    .await;
}

/// Tells every member about every other.
pub fn connect_all(nodes: &[Node]) {
    for a in nodes {
        for b in nodes {
            if a.transport.local_id() != b.transport.local_id() {
                a.transport
                    .add_peer(b.transport.local_id(), b.transport.local_addr());
            }
        }
    }
}

async fn shutdown_all(nodes: Vec<Node>) {
    for n in &nodes {
        n.transport.shutdown().await;
    }
}

/// The next raft message, failing the check after [`DEADLINE`].
pub async fn next_message(rx: &mut IncomingReceiver<TestMsg>) -> (MemberId, TestMsg) {
    match tokio::time::timeout(DEADLINE, rx.recv()).await {
        Ok(Some(Incoming::Message { from, msg })) => (from, msg),
        Ok(Some(Incoming::Snapshot(s))) => panic!("unexpected snapshot from {}", s.from),
        Ok(None) => panic!("incoming channel closed"),
        Err(_) => panic!("no message within {DEADLINE:?}"),
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pki_for<H: Harness + ?Sized>(h: &H) -> Option<Pki> {
    h.uses_tls().then(|| Pki::new("etcr conformance CA"))
}

/// Messages from one peer arrive complete and in order, both ways at once.
pub async fn ordering<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    const N: u64 = 5_000;
    // Room for every message: this check is about order, not about overflow.
    let mut nodes = cluster_with(h, pki.as_ref(), 2, |c| c.queue_capacity = N as usize).await;
    for seq in 0..N {
        nodes[0]
            .transport
            .send(2, TestMsg::new(seq, (seq % 300) as usize));
        nodes[1].transport.send(1, TestMsg::new(seq, 10));
    }
    for (i, from) in [(1usize, 1u64), (0, 2)] {
        for seq in 0..N {
            let (f, msg) = next_message(&mut nodes[i].incoming).await;
            if (f, msg.seq) != (from, seq) {
                let stats: Vec<_> = nodes.iter().map(|n| n.transport.stats()).collect();
                panic!(
                    "expected {seq} from {from}, got {} from {f}: {stats:?}",
                    msg.seq
                );
            }
        }
    }
    // The sender counts after its write returns, which may be after the peer already read.
    let t = nodes[0].transport.clone();
    wait_until("counters to settle", || t.stats()[0].msgs_sent == N).await;
    let s = &nodes[0].transport.stats()[0];
    assert_eq!(
        (s.id, s.msgs_sent, s.msgs_received, s.dropped),
        (2, N, N, 0)
    );
    assert!(s.bytes_sent > 0 && s.bytes_received > 0 && s.connected);
    shutdown_all(nodes).await;
}

/// Five members all send to all: every message arrives, in order per sender.
pub async fn many_peers<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 5).await;
    const N: u64 = 300;
    for seq in 0..N {
        for a in &nodes {
            for b in 1..=5 {
                if b != a.transport.local_id() {
                    a.transport.send(b, TestMsg::new(seq, 64));
                }
            }
        }
    }
    for node in &mut nodes {
        let mut next: HashMap<MemberId, u64> = HashMap::new();
        for _ in 0..4 * N {
            let (from, msg) = next_message(&mut node.incoming).await;
            let expect = next.entry(from).or_default();
            assert_eq!(msg.seq, *expect, "from {from} out of order");
            *expect += 1;
        }
        assert_eq!(next.len(), 4);
        assert_eq!(node.transport.stats().len(), 4);
    }
    shutdown_all(nodes).await;
}

/// A peer restarts on the same address: the sender reconnects and delivery resumes.
pub async fn peer_restart_reconnects<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 2).await;
    nodes[0].transport.send(2, TestMsg::new(0, 8));
    assert_eq!(next_message(&mut nodes[1].incoming).await.1.seq, 0);
    let b = nodes.pop().expect("two nodes");
    let b_addr = b.transport.local_addr();
    b.transport.shutdown().await;
    drop(b);
    let mut cfg = config(2, pki.as_ref());
    cfg.listen = b_addr;
    cfg.peers.insert(1, nodes[0].transport.local_addr());
    // The old socket may take a moment to be released (QUIC drains its connections first).
    let end = Instant::now() + DEADLINE;
    let mut b = loop {
        match h.start(cfg.clone()).await {
            Ok(b) => break b,
            Err(e) if Instant::now() < end => {
                tracing::debug!(error = %e, "address not free yet");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("restart member 2: {e}"),
        }
    };
    // Keep sending (raft would retransmit) until the restarted member hears from us.
    let end = Instant::now() + DEADLINE;
    let mut seq = 1;
    loop {
        assert!(Instant::now() < end, "no delivery after the peer restarted");
        nodes[0].transport.send(2, TestMsg::new(seq, 8));
        seq += 1;
        if let Ok(Some(Incoming::Message { from, .. })) =
            tokio::time::timeout(Duration::from_millis(50), b.incoming.recv()).await
        {
            assert_eq!(from, 1);
            break;
        }
    }
    let s = &nodes[0].transport.stats()[0];
    assert!(s.reconnects >= 1, "reconnect not counted: {s:?}");
    // And the restarted member can talk back over its own stream.
    b.transport.send(1, TestMsg::new(77, 8));
    loop {
        let (from, msg) = next_message(&mut nodes[0].incoming).await;
        if from == 2 && msg.seq == 77 {
            break;
        }
    }
    nodes.push(b);
    shutdown_all(nodes).await;
}

/// A peer that cannot be reached: the bounded queue fills, then messages are dropped and counted.
pub async fn queue_overflow<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    // An address where nothing listens: bind a port, then let it go.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut cfg = config(1, pki.as_ref());
    cfg.queue_capacity = 16;
    cfg.peers.insert(2, dead);
    let node = h.start(cfg).await.expect("start");
    const N: u64 = 1_000;
    for seq in 0..N {
        node.transport.send(2, TestMsg::new(seq, 100));
    }
    node.transport.send(99, TestMsg::new(0, 1)); // unknown member: dropped, no panic, no entry
    let s = node.transport.stats();
    assert_eq!(s.len(), 1);
    assert!(
        s[0].dropped >= N - 16 - 1,
        "dropped {} of {N}",
        s[0].dropped
    );
    assert_eq!(s[0].msgs_sent, 0);
    assert!(!s[0].connected);
    node.transport.shutdown().await;
}

const PATTERN: usize = 251;

/// An endless-looking source of patterned bytes (no memory), `len` bytes long.
pub struct PatternSource {
    table: Vec<u8>,
    pos: u64,
    len: u64,
}

impl PatternSource {
    /// `len` bytes of pattern.
    pub fn new(len: u64) -> Self {
        Self {
            table: (0..(PATTERN * 1100)).map(|i| (i % PATTERN) as u8).collect(),
            pos: 0,
            len,
        }
    }
}

impl AsyncRead for PatternSource {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let off = (this.pos % PATTERN as u64) as usize;
        let n = (this.len - this.pos)
            .min(buf.remaining() as u64)
            .min((this.table.len() - off) as u64) as usize;
        buf.put_slice(&this.table[off..off + n]);
        this.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Reads a snapshot to its end, checking the pattern; returns the byte count.
pub async fn drain_pattern(
    data: &mut crate::SnapshotReader,
    mut on_chunk: impl FnMut(u64),
) -> io::Result<u64> {
    let table: Vec<u8> = (0..(PATTERN * 4200)).map(|i| (i % PATTERN) as u8).collect();
    let mut pos = 0u64;
    while let Some(chunk) = data.next_chunk().await? {
        for piece in chunk.chunks(PATTERN * 4000) {
            let off = (pos % PATTERN as u64) as usize;
            if piece != &table[off..off + piece.len()] {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot corrupt near byte {pos}"),
                ));
            }
            pos += piece.len() as u64;
        }
        on_chunk(pos);
    }
    Ok(pos)
}

/// Resident set size of this process in bytes (Linux), or 0 where unknown.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Snapshot size of [`large_snapshot_bounded_memory`] in MiB (`ETCR_CONFORMANCE_SNAPSHOT_MIB`, default 128).
pub fn snapshot_test_mib() -> u64 {
    std::env::var("ETCR_CONFORMANCE_SNAPSHOT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

/// Streams a large snapshot; both sides together grow by less than 64 MiB of RSS.
pub async fn large_snapshot_bounded_memory<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 2).await;
    let len = snapshot_test_mib() << 20;
    let base = rss_bytes();
    let a = nodes[0].transport.clone();
    let sender = tokio::spawn(async move {
        a.send_snapshot(2, TestMsg::new(42, 16), Box::new(PatternSource::new(len)))
            .await
    });
    let snap = match tokio::time::timeout(DEADLINE, nodes[1].incoming.recv()).await {
        Ok(Some(Incoming::Snapshot(s))) => s,
        _ => panic!("no snapshot arrived"),
    };
    assert_eq!((snap.from, snap.meta.seq), (1, 42));
    let mut data = snap.data;
    let mut peak = 0u64;
    let got = tokio::time::timeout(
        Duration::from_secs(120),
        drain_pattern(&mut data, |pos| {
            if pos % (8 << 20) < (1 << 20) {
                peak = peak.max(rss_bytes().saturating_sub(base));
            }
        }),
    )
    .await
    .expect("snapshot took too long")
    .expect("snapshot data");
    assert_eq!(got, len);
    let sent = sender.await.expect("sender task").expect("send_snapshot");
    assert_eq!(sent, len);
    peak = peak.max(rss_bytes().saturating_sub(base));
    assert!(
        peak < 64 << 20,
        "RSS grew by {} MiB while streaming {} MiB",
        peak >> 20,
        len >> 20
    );
    let s = &nodes[0].transport.stats()[0];
    assert_eq!(s.snapshots_sent, 1);
    assert!(s.bytes_sent >= len);
    assert_eq!(nodes[1].transport.stats()[0].snapshots_received, 1);
    shutdown_all(nodes).await;
}

/// Raft messages keep flowing while a snapshot stream is stalled by its reader.
pub async fn heartbeats_not_blocked_by_snapshot<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 2).await;
    let len: u64 = 32 << 20;
    let a = nodes[0].transport.clone();
    let sender = tokio::spawn(async move {
        a.send_snapshot(2, TestMsg::new(1, 0), Box::new(PatternSource::new(len)))
            .await
    });
    let mut snap = match tokio::time::timeout(DEADLINE, nodes[1].incoming.recv()).await {
        Ok(Some(Incoming::Snapshot(s))) => s,
        _ => panic!("no snapshot arrived"),
    };
    // The snapshot is stalled (nobody reads it); heartbeats must still get through.
    for seq in 0..100 {
        nodes[0].transport.send(2, TestMsg::new(seq, 8));
    }
    for seq in 0..100 {
        assert_eq!(next_message(&mut nodes[1].incoming).await.1.seq, seq);
    }
    assert!(
        !sender.is_finished(),
        "snapshot should still be waiting for its reader"
    );
    let got = drain_pattern(&mut snap.data, |_| {})
        .await
        .expect("snapshot data");
    assert_eq!(got, len);
    assert_eq!(sender.await.expect("task").expect("snapshot"), len);
    shutdown_all(nodes).await;
}

/// Writes a `Hello` on a raw stream and reads the verdict; `Err` if the stream failed or was closed.
pub async fn raw_handshake(io: &mut Box<dyn PeerIo>, hello: &Hello) -> io::Result<Verdict> {
    let mut buf = bytes::BytesMut::new();
    encode_frame(&mut buf, FrameKind::Hello, hello, 1 << 20).map_err(io::Error::other)?;
    io.write_all(&buf).await?;
    io.flush().await?;
    let verdict = tokio::time::timeout(
        DEADLINE,
        FrameReader::new(io, 1 << 20).read_expected::<Verdict>(FrameKind::HelloAck),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no handshake answer"))?;
    verdict.map_err(io::Error::other)
}

fn raft_hello(from: MemberId, to: MemberId) -> Hello {
    Hello {
        cluster_id: CLUSTER_ID,
        from,
        to,
        stream: StreamKind::Raft,
    }
}

/// Whether a raw stream is (or gets) closed by the other side within [`DEADLINE`].
async fn closed_by_peer(io: &mut Box<dyn PeerIo>) -> bool {
    let mut buf = [0u8; 64];
    let end = Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, io.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn handshake_refused<H: Harness + ?Sized>(
    h: &H,
    addr: SocketAddr,
    tls: Option<&TlsConfig>,
    hello: &Hello,
) -> bool {
    let Ok(mut io) = h.dial_raw(addr, tls).await else {
        return true;
    };
    match raw_handshake(&mut io, hello).await {
        Ok(v) if v.ok => false,
        Ok(_) => closed_by_peer(&mut io).await,
        Err(_) => true,
    }
}

/// With TLS, certificates not signed by the cluster CA are refused, whichever side presents them.
pub async fn mtls_refuses_foreign_certificate<H: Harness + ?Sized>(h: &H) {
    let Some(pki) = pki_for(h) else {
        return; // plaintext harness: nothing to check
    };
    let nodes = cluster(h, Some(&pki), 2).await;
    let addr = nodes[1].transport.local_addr();
    let good = pki.member("m1");
    assert!(
        !handshake_refused(h, addr, Some(&good), &raft_hello(1, 2)).await,
        "a cluster certificate must be accepted"
    );

    // A client certificate from another CA (while trusting ours) is refused.
    let foreign = Pki::new("foreign CA");
    let mut intruder = foreign.member("m1");
    intruder.ca_pem = good.ca_pem.clone();
    assert!(
        handshake_refused(h, addr, Some(&intruder), &raft_hello(1, 2)).await,
        "foreign client certificate accepted"
    );

    // A member whose server certificate comes from another CA is refused by the dialer.
    let mut cfg = config(3, None);
    cfg.tls = Some(foreign.member("m3"));
    cfg.peers.insert(1, nodes[0].transport.local_addr());
    let rogue = h.start(cfg).await.expect("start rogue member");
    assert!(
        handshake_refused(
            h,
            rogue.transport.local_addr(),
            Some(&good),
            &raft_hello(1, 3)
        )
        .await,
        "foreign server certificate accepted"
    );
    // And the rogue's own messages never reach member 1: its stream is refused, so it stays unconnected.
    rogue.transport.send(1, TestMsg::new(0, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!rogue.transport.stats()[0].connected);
    rogue.transport.shutdown().await;
    shutdown_all(nodes).await;
}

/// Streams from unknown members, other clusters, or meant for another member are refused.
pub async fn unknown_member_refused<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let nodes = cluster(h, pki.as_ref(), 2).await;
    let addr = nodes[1].transport.local_addr();
    let tls = pki.as_ref().map(|p| p.member("m1"));
    let tls = tls.as_ref();
    assert!(!handshake_refused(h, addr, tls, &raft_hello(1, 2)).await);
    assert!(
        handshake_refused(h, addr, tls, &raft_hello(99, 2)).await,
        "unknown member accepted"
    );
    assert!(
        handshake_refused(h, addr, tls, &raft_hello(1, 3)).await,
        "stream for another member accepted"
    );
    let mut other = raft_hello(1, 2);
    other.cluster_id += 1;
    assert!(
        handshake_refused(h, addr, tls, &other).await,
        "other cluster accepted"
    );
    // A removed member's new streams are refused too.
    nodes[1].transport.remove_peer(1);
    assert!(
        handshake_refused(h, addr, tls, &raft_hello(1, 2)).await,
        "removed member accepted"
    );
    shutdown_all(nodes).await;
}

/// Corrupt, oversized and truncated frames close the connection; the member keeps working.
pub async fn corrupt_frames_close_the_connection<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 3).await;
    let addr = nodes[1].transport.local_addr();
    let max = nodes[1].transport.stats().len(); // keep the borrow checker quiet about nodes below
    assert_eq!(max, 2);
    let tls = pki.as_ref().map(|p| p.member("m3"));
    let default_max = TransportConfig::new(0, 0, addr).max_frame_bytes;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "unknown version",
            vec![0, 0, 0, 1, 99, FrameKind::Message as u8, 0],
            false,
        ),
        ("unknown kind", vec![0, 0, 0, 1, 1, 200, 0], false),
        (
            "oversized",
            raw_header(FrameKind::Message, default_max + 1).to_vec(),
            false,
        ),
        (
            "huge length",
            vec![0xff, 0xff, 0xff, 0xff, 1, FrameKind::Message as u8],
            false,
        ),
        (
            "undecodable payload",
            [&raw_header(FrameKind::Message, 3)[..], &[0xff, 0xff, 0xff]].concat(),
            false,
        ),
        (
            "hostile inner length",
            [
                &raw_header(FrameKind::Message, 10)[..],
                &[0, 0, 253, 0, 0, 0, 0, 0, 0, 0x10],
            ]
            .concat(),
            false,
        ),
        (
            "wrong frame kind",
            [&raw_header(FrameKind::SnapshotChunk, 2)[..], &[1, 2]].concat(),
            false,
        ),
        (
            "truncated frame",
            [&raw_header(FrameKind::Message, 100)[..], &[0u8; 10]].concat(),
            true,
        ),
        ("truncated header", vec![0, 0, 0], true),
    ];
    for (what, bytes, then_close_write) in cases {
        let mut io = h.dial_raw(addr, tls.as_ref()).await.expect("dial");
        let v = raw_handshake(&mut io, &raft_hello(3, 2))
            .await
            .expect("handshake");
        assert!(v.ok, "{what}: handshake refused: {}", v.reason);
        io.write_all(&bytes).await.expect("write");
        io.flush().await.expect("flush");
        if then_close_write {
            let _ = io.shutdown().await;
        }
        assert!(
            closed_by_peer(&mut io).await,
            "{what}: connection left open"
        );
    }
    // A corrupt snapshot stream: chunks before metadata.
    let mut io = h.dial_raw(addr, tls.as_ref()).await.expect("dial");
    let mut hello = raft_hello(3, 2);
    hello.stream = StreamKind::Snapshot;
    assert!(raw_handshake(&mut io, &hello).await.expect("handshake").ok);
    io.write_all(&[&raw_header(FrameKind::SnapshotChunk, 4)[..], &[1, 2, 3, 4]].concat())
        .await
        .expect("write");
    io.flush().await.expect("flush");
    assert!(
        closed_by_peer(&mut io).await,
        "corrupt snapshot stream left open"
    );
    // Member 2 still works.
    nodes[0].transport.send(2, TestMsg::new(5, 5));
    assert_eq!(
        next_message(&mut nodes[1].incoming).await,
        (1, TestMsg::new(5, 5))
    );
    shutdown_all(nodes).await;
}

/// Shutdown stops every task: the runtime is back to its task count, incoming channels end.
pub async fn clean_shutdown<H: Harness + ?Sized>(h: &H) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 3).await;
    for n in &nodes {
        for to in 1..=3 {
            n.transport.send(to, TestMsg::new(1, 1));
        }
    }
    for n in &mut nodes {
        next_message(&mut n.incoming).await;
        next_message(&mut n.incoming).await;
    }
    // A snapshot in flight at shutdown is cut short, not leaked.
    let a = nodes[0].transport.clone();
    let pending = tokio::spawn(async move {
        a.send_snapshot(2, TestMsg::new(9, 0), Box::new(PatternSource::new(1 << 30)))
            .await
    });
    let held = match tokio::time::timeout(DEADLINE, nodes[1].incoming.recv()).await {
        Ok(Some(Incoming::Snapshot(s))) => s,
        _ => panic!("no snapshot arrived"),
    };
    for n in &nodes {
        n.transport.shutdown().await;
    }
    assert!(
        pending.await.expect("snapshot task").is_err(),
        "snapshot should fail at shutdown"
    );
    drop(held);
    for n in &mut nodes {
        n.transport.send(1, TestMsg::new(2, 1)); // after shutdown: ignored, no panic
        let end = tokio::time::timeout(DEADLINE, async {
            while n.incoming.recv().await.is_some() {}
        });
        end.await.expect("incoming channel did not end");
        assert!(n
            .transport
            .send_snapshot(2, TestMsg::new(0, 0), Box::new(PatternSource::new(1)))
            .await
            .is_err());
    }
    drop(nodes);
    wait_until("every transport task to end", || {
        metrics.num_alive_tasks() <= before
    })
    .await;
}

/// Snapshots to unknown members fail at once; a receiver dropping the reader fails the sender.
pub async fn snapshot_errors<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 2).await;
    let a = nodes[0].transport.clone();
    let r = a
        .send_snapshot(9, TestMsg::new(0, 0), Box::new(PatternSource::new(10)))
        .await;
    assert_eq!(r, Err(crate::Error::UnknownPeer(9)));
    let sender = tokio::spawn(async move {
        a.send_snapshot(
            2,
            TestMsg::new(3, 0),
            Box::new(PatternSource::new(64 << 20)),
        )
        .await
    });
    match tokio::time::timeout(DEADLINE, nodes[1].incoming.recv()).await {
        Ok(Some(Incoming::Snapshot(s))) => drop(s), // refuse it
        _ => panic!("no snapshot arrived"),
    }
    let r = tokio::time::timeout(DEADLINE, sender)
        .await
        .expect("sender hung")
        .expect("task");
    assert!(r.is_err(), "a refused snapshot must fail the sender");
    assert_eq!(nodes[0].transport.stats()[0].snapshots_sent, 0);
    // Raft traffic is unaffected.
    nodes[0].transport.send(2, TestMsg::new(1, 1));
    assert_eq!(next_message(&mut nodes[1].incoming).await.1.seq, 1);
    shutdown_all(nodes).await;
}

/// Messages from a member that was removed are dropped; re-adding it restores delivery.
pub async fn removed_member_is_dropped<H: Harness + ?Sized>(h: &H) {
    let pki = pki_for(h);
    let mut nodes = cluster(h, pki.as_ref(), 2).await;
    nodes[0].transport.remove_peer(2);
    assert!(nodes[0].transport.stats().is_empty());
    // Written on the stream that was accepted before the removal: dropped by the receiver.
    nodes[1].transport.send(1, TestMsg::new(0, 1));
    let b = nodes[1].transport.clone();
    wait_until("the removed member's stream to close", || {
        !b.stats()[0].connected
    })
    .await;
    nodes[0]
        .transport
        .add_peer(2, nodes[1].transport.local_addr());
    // Retransmit (as raft would) until delivery resumes; the first message seen must be a new one.
    let end = Instant::now() + DEADLINE;
    let mut seq = 1;
    loop {
        assert!(
            Instant::now() < end,
            "delivery did not resume after re-adding the member"
        );
        nodes[1].transport.send(1, TestMsg::new(seq, 1));
        seq += 1;
        if let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(50), nodes[0].incoming.recv()).await
        {
            match item {
                Incoming::Message { from, msg } => {
                    assert_eq!(from, 2);
                    assert_ne!(msg.seq, 0, "a message sent while removed was delivered");
                    break;
                }
                Incoming::Snapshot(_) => panic!("unexpected snapshot"),
            }
        }
    }
    shutdown_all(nodes).await;
}

/// The fault-injecting wrapper over this transport: drops, partitions, one-way cuts and delays.
pub async fn fault_injection<H: Harness + ?Sized>(h: &H) {
    use crate::fault::{FaultRules, FaultyTransport};
    let pki = pki_for(h);
    let nodes = cluster(h, pki.as_ref(), 3).await;
    let rules = FaultRules::new(3);
    let mut faulty: Vec<(Arc<dyn Transport<TestMsg>>, IncomingReceiver<TestMsg>)> = nodes
        .into_iter()
        .map(|n| {
            let t: Arc<dyn Transport<TestMsg>> =
                Arc::new(FaultyTransport::new(n.transport, rules.clone()));
            (t, n.incoming)
        })
        .collect();
    // Dropped messages never arrive: the next one through is the marker sent after healing.
    rules.partition([vec![1, 2], vec![3]]);
    faulty[0].0.send(3, TestMsg::new(1, 1));
    faulty[2].0.send(1, TestMsg::new(1, 1));
    faulty[0].0.send(2, TestMsg::new(2, 1));
    assert_eq!(
        next_message(&mut faulty[1].1).await,
        (1, TestMsg::new(2, 1)),
        "same side of the partition"
    );
    let s = faulty[0].0.stats();
    assert_eq!(s.iter().find(|s| s.id == 3).map(|s| s.dropped), Some(1));
    rules.heal();
    rules.cut(1, 3);
    faulty[0].0.send(3, TestMsg::new(3, 1));
    faulty[2].0.send(1, TestMsg::new(4, 1));
    assert_eq!(
        next_message(&mut faulty[0].1).await,
        (3, TestMsg::new(4, 1)),
        "the direction not cut"
    );
    rules.heal();
    rules.set_drop_rate(1.0);
    faulty[0].0.send(3, TestMsg::new(5, 1));
    assert!(faulty[0]
        .0
        .send_snapshot(3, TestMsg::new(0, 0), Box::new(PatternSource::new(8)))
        .await
        .is_err());
    rules.set_drop_rate(0.0);
    faulty[0].0.send(3, TestMsg::new(6, 1));
    assert_eq!(
        next_message(&mut faulty[2].1).await,
        (1, TestMsg::new(6, 1)),
        "after healing"
    );
    // Delay: arrives, in order, no sooner than the delay.
    rules.set_delay(Duration::from_millis(150));
    let t0 = Instant::now();
    for seq in 10..20 {
        faulty[1].0.send(3, TestMsg::new(seq, 1));
    }
    for seq in 10..20 {
        assert_eq!(
            next_message(&mut faulty[2].1).await,
            (2, TestMsg::new(seq, 1))
        );
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "delay not applied"
    );
    for (t, _) in &faulty {
        t.shutdown().await;
    }
}

/// Expands to one `#[tokio::test]` per conformance check, each run against `$harness`.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            ordering,
            many_peers,
            peer_restart_reconnects,
            queue_overflow,
            large_snapshot_bounded_memory,
            heartbeats_not_blocked_by_snapshot,
            mtls_refuses_foreign_certificate,
            snapshot_errors,
            removed_member_is_dropped,
            fault_injection,
            unknown_member_refused,
            corrupt_frames_close_the_connection,
            clean_shutdown
        );
    };
    (@each $harness:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::$name(&$harness).await;
            }
        )*
    };
}
