//! Loopback benchmark of the peer transports: `cargo run --release -p transport-quic --example transport_bench`.
//!
//! For TCP (plaintext), TCP with mutual TLS and QUIC: messages/s and MB/s for 100 B, 4 KiB and 1 MiB
//! messages (a bounded window of messages in flight, so nothing is dropped), then a 1 GiB snapshot
//! streamed while 100 B heartbeats are sent every millisecond: snapshot MB/s, RSS growth of the
//! process (both members live in it) and heartbeat latency percentiles. Prints Markdown tables.
//!
//! Options: `--secs N` per throughput run (default 2), `--snapshot-mib N` (default 1024),
//! `--only tcp|tls|quic` (repeatable).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use transport::conformance::{drain_pattern, rss_bytes, PatternSource, Payload, Pki, TestMsg};
use transport::{Incoming, IncomingReceiver, Transport, TransportConfig};
use transport_quic::QuicTransport;
use transport_tcp::TcpTransport;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Tcp,
    TcpTls,
    Quic,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "TCP",
            Kind::TcpTls => "TCP + mTLS",
            Kind::Quic => "QUIC (mTLS)",
        }
    }
}

struct Options {
    secs: f64,
    snapshot_mib: u64,
    only: Vec<Kind>,
}

fn options() -> Options {
    let mut o = Options {
        secs: 2.0,
        snapshot_mib: 1024,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--secs" => o.secs = val().parse().expect("--secs N"),
            "--snapshot-mib" => o.snapshot_mib = val().parse().expect("--snapshot-mib N"),
            "--only" => o.only.push(match val().as_str() {
                "tcp" => Kind::Tcp,
                "tls" => Kind::TcpTls,
                "quic" => Kind::Quic,
                other => panic!("unknown transport {other}"),
            }),
            other => panic!("unknown option {other}"),
        }
    }
    if o.only.is_empty() {
        o.only = vec![Kind::Tcp, Kind::TcpTls, Kind::Quic];
    }
    o
}

type Node = (Arc<dyn Transport<TestMsg>>, IncomingReceiver<TestMsg>);

async fn start(kind: Kind, id: u64, pki: &Pki) -> Node {
    let mut cfg = TransportConfig::new(id, 1, "127.0.0.1:0".parse().unwrap());
    cfg.queue_capacity = 65_536;
    cfg.incoming_capacity = 65_536;
    cfg.max_frame_bytes = 4 << 20;
    if kind != Kind::Tcp {
        cfg.tls = Some(pki.member(&format!("m{id}")));
    }
    match kind {
        Kind::Tcp | Kind::TcpTls => {
            let (t, i) = TcpTransport::start(cfg).await.expect("start tcp");
            (Arc::new(t), i)
        }
        Kind::Quic => {
            let (t, i) = QuicTransport::start(cfg).await.expect("start quic");
            (Arc::new(t), i)
        }
    }
}

/// What the receiving member has seen.
#[derive(Default)]
struct Seen {
    msgs: AtomicU64,
    bytes: AtomicU64,
    latencies_ns: Mutex<Vec<u64>>,
    snapshot_bytes: AtomicU64,
    /// Signalled after every received batch: a sender with a full window waits on it instead of
    /// spinning, which on two cores would take CPU from the transport under test.
    progress: Notify,
}

fn spawn_receiver(mut incoming: IncomingReceiver<TestMsg>, seen: Arc<Seen>, origin: Instant) {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(1024);
        while incoming.recv_many(&mut batch, 1024).await > 0 {
            let mut n = 0;
            let mut bytes = 0;
            for item in batch.drain(..) {
                match item {
                    Incoming::Message { msg, .. } => {
                        n += 1;
                        bytes += msg.payload.0.len() as u64;
                        if msg.sent_at_ns != 0 {
                            let now = origin.elapsed().as_nanos() as u64;
                            seen.latencies_ns
                                .lock()
                                .unwrap()
                                .push(now.saturating_sub(msg.sent_at_ns));
                        }
                    }
                    Incoming::Snapshot(mut s) => {
                        let seen = seen.clone();
                        tokio::spawn(async move {
                            let r = drain_pattern(&mut s.data, |pos| {
                                seen.snapshot_bytes.store(pos, Ordering::Relaxed)
                            })
                            .await;
                            r.expect("snapshot data");
                        });
                    }
                }
            }
            seen.bytes.fetch_add(bytes, Ordering::Relaxed);
            seen.msgs.fetch_add(n, Ordering::Relaxed);
            seen.progress.notify_one();
        }
    });
}

struct Throughput {
    size: usize,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    dropped: u64,
}

async fn throughput(
    a: &Arc<dyn Transport<TestMsg>>,
    seen: &Seen,
    size: usize,
    secs: f64,
) -> Throughput {
    let window: u64 = ((64u64 << 20) / size as u64).clamp(16, 32_768);
    let payload = Payload(vec![0x5A; size]);
    let base_msgs = seen.msgs.load(Ordering::Relaxed);
    let base_bytes = seen.bytes.load(Ordering::Relaxed);
    let base_drop: u64 = a.stats().iter().map(|s| s.dropped).sum();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut sent: u64 = 0;
    while Instant::now() < end {
        let received = seen.msgs.load(Ordering::Relaxed) - base_msgs;
        let room = window.saturating_sub(sent - received);
        if room == 0 {
            // A permit stored by a batch received since the load above wakes this at once.
            let _ = tokio::time::timeout_at(end.into(), seen.progress.notified()).await;
            continue;
        }
        for _ in 0..room {
            a.send(
                2,
                TestMsg {
                    seq: sent,
                    sent_at_ns: 0,
                    payload: payload.clone(),
                },
            );
            sent += 1;
        }
    }
    // Wait for what is in flight.
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    let dropped = || a.stats().iter().map(|s| s.dropped).sum::<u64>() - base_drop;
    while seen.msgs.load(Ordering::Relaxed) - base_msgs + dropped() < sent
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let msgs = seen.msgs.load(Ordering::Relaxed) - base_msgs;
    let bytes = seen.bytes.load(Ordering::Relaxed) - base_bytes;
    Throughput {
        size,
        msgs_per_sec: msgs as f64 / elapsed,
        mb_per_sec: bytes as f64 / elapsed / 1e6,
        dropped: dropped(),
    }
}

struct SnapshotRun {
    mib: u64,
    mb_per_sec: f64,
    rss_growth_mib: f64,
    heartbeats: usize,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

async fn snapshot_with_heartbeats(
    a: &Arc<dyn Transport<TestMsg>>,
    seen: &Arc<Seen>,
    mib: u64,
    origin: Instant,
) -> SnapshotRun {
    seen.latencies_ns.lock().unwrap().clear();
    seen.snapshot_bytes.store(0, Ordering::Relaxed);
    let len = mib << 20;
    let base_rss = rss_bytes();
    let peak = Arc::new(AtomicU64::new(base_rss));
    let start = Instant::now();
    let sender = {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_snapshot(2, TestMsg::new(0, 0), Box::new(PatternSource::new(len)))
                .await
        })
    };
    let heartbeats = {
        let a = a.clone();
        let peak = peak.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut seq = 0;
            while seen.snapshot_bytes.load(Ordering::Relaxed) < len {
                tick.tick().await;
                let mut m = TestMsg::new(seq, 100);
                m.sent_at_ns = origin.elapsed().as_nanos() as u64;
                a.send(2, m);
                seq += 1;
                if seq % 64 == 0 {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                }
            }
        })
    };
    let sent = sender.await.expect("snapshot task").expect("snapshot");
    assert_eq!(sent, len);
    let elapsed = start.elapsed().as_secs_f64();
    heartbeats.await.expect("heartbeat task");
    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(20)).await; // last heartbeats
    let mut lat = seen.latencies_ns.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
        }
    };
    SnapshotRun {
        mib,
        mb_per_sec: len as f64 / elapsed / 1e6,
        rss_growth_mib: (peak.load(Ordering::Relaxed).saturating_sub(base_rss)) as f64
            / (1 << 20) as f64,
        heartbeats: lat.len(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: pct(1.0),
    }
}

async fn bench(kind: Kind, opts: &Options, pki: &Pki) -> (Vec<Throughput>, SnapshotRun) {
    let origin = Instant::now();
    let (a, _a_in) = start(kind, 1, pki).await;
    let (b, b_in) = start(kind, 2, pki).await;
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    let seen = Arc::new(Seen::default());
    spawn_receiver(b_in, seen.clone(), origin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.stats().iter().all(|s| s.connected) {
        assert!(Instant::now() < deadline, "no connection");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut rows = Vec::new();
    for size in [100, 4096, 1 << 20] {
        let t = throughput(&a, &seen, size, opts.secs).await;
        eprintln!(
            "{}: {} B: {:.0} msgs/s, {:.1} MB/s",
            kind.name(),
            size,
            t.msgs_per_sec,
            t.mb_per_sec
        );
        rows.push(t);
    }
    let snap = snapshot_with_heartbeats(&a, &seen, opts.snapshot_mib, origin).await;
    eprintln!(
        "{}: snapshot {:.0} MB/s, p99 {:.0} us",
        kind.name(),
        snap.mb_per_sec,
        snap.p99_us
    );
    a.shutdown().await;
    b.shutdown().await;
    (rows, snap)
}

fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn main() {
    let opts = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt.block_on(async {
        let pki = Pki::new("bench CA");
        let mut results = Vec::new();
        for &kind in &opts.only {
            results.push((kind, bench(kind, &opts, &pki).await));
        }
        results
    });
    println!(
        "\n### Transport throughput (loopback, one sender → one receiver, {:.0} s per run)\n",
        opts.secs
    );
    println!("| transport | message | msgs/s | MB/s | dropped |");
    println!("|---|---:|---:|---:|---:|");
    for (kind, (rows, _)) in &results {
        for r in rows {
            println!(
                "| {} | {} | {:.0} | {:.1} | {} |",
                kind.name(),
                size_label(r.size),
                r.msgs_per_sec,
                r.mb_per_sec,
                r.dropped
            );
        }
    }
    println!("\n### Snapshot streaming with 100 B heartbeats every 1 ms\n");
    println!("| transport | snapshot | MB/s | RSS growth (both sides) | heartbeats | p50 latency | p99 latency | max latency |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, (_, s)) in &results {
        println!(
            "| {} | {} MiB | {:.0} | {:.1} MiB | {} | {:.0} µs | {:.0} µs | {:.0} µs |",
            kind.name(),
            s.mib,
            s.mb_per_sec,
            s.rss_growth_mib,
            s.heartbeats,
            s.p50_us,
            s.p99_us,
            s.max_us
        );
    }
}
