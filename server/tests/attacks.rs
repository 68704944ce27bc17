//! Hostile HTTP/2 clients against a real member, each for a few seconds, while a
//! well-behaved client on its own connection keeps doing put+get: the member stays up, that
//! client's median put+get stays under 50 ms, and the member's RSS grows by at most 64 MiB.
//!
//! The attackers speak raw HTTP/2 frames over a TcpStream, so they can do what no library
//! client would: reset every stream at once, bloat HPACK, never end a header block, flood
//! PINGs, keep a zero window, or say nothing at all.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use api::etcdserverpb::{PutRequest, RangeRequest};
use common::Etcr;
use prost::Message;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

const ATTACK: Duration = Duration::from_secs(3);
const MAX_MEDIAN: Duration = Duration::from_millis(50);
const MAX_RSS_GROWTH_KIB: u64 = 64 << 10;

/// One attack at a time: they share two cores with each other otherwise.
static SERIAL: Mutex<()> = Mutex::new(());

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `prefix`-bit prefix, the first byte's other bits set to `high`.
fn hpack_int(out: &mut Vec<u8>, high: u8, prefix: u8, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(high | n as u8);
        return;
    }
    out.push(high | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// A header field as a literal, added to the dynamic table if `index`.
fn literal(out: &mut Vec<u8>, name: &str, value: &[u8], index: bool) {
    out.push(if index { 0x40 } else { 0x00 });
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

fn request_block(path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    literal(&mut b, ":method", b"POST", false);
    literal(&mut b, ":scheme", b"http", false);
    literal(&mut b, ":path", path.as_bytes(), false);
    literal(&mut b, ":authority", b"127.0.0.1", false);
    literal(&mut b, "content-type", b"application/grpc", false);
    literal(&mut b, "te", b"trailers", false);
    b
}

fn grpc_message(m: &impl Message) -> Vec<u8> {
    let body = m.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// What the attacker's reader saw of the server's frames.
#[derive(Default)]
struct Seen {
    closed: AtomicBool,
    goaway: Mutex<Option<u32>>,
    frames: AtomicU64,
}

/// A raw HTTP/2 connection; a thread reads what the server sends (and tallies it) unless the
/// attack is not to read at all.
struct Raw {
    tcp: TcpStream,
    seen: Arc<Seen>,
    reader: Option<JoinHandle<()>>,
}

impl Raw {
    fn connect(port: u16, settings: &[(u16, u32)], read: bool) -> Raw {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_nodelay(true).unwrap();
        tcp.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &payload));
        hello.extend(frame(SETTINGS, ACK, 0, &[]));
        tcp.write_all(&hello).expect("send the preface");
        let seen = Arc::new(Seen::default());
        let reader = read.then(|| {
            let (mut tcp, seen) = (tcp.try_clone().unwrap(), seen.clone());
            std::thread::spawn(move || read_frames(&mut tcp, &seen))
        });
        Raw { tcp, seen, reader }
    }

    /// Whether the write went out (false once the server closed or stopped reading).
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).is_ok()
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn read_frames(tcp: &mut TcpStream, seen: &Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 9 {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == GOAWAY && len >= 8 {
                let code = u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]);
                *seen.goaway.lock().unwrap() = Some(code);
            }
            seen.frames.fetch_add(1, Ordering::Relaxed);
            buf.drain(..9 + len);
        }
    }
    seen.closed.store(true, Ordering::SeqCst);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn start_member(extra: &[&str]) -> (tempfile::TempDir, Etcr) {
    let dir = tempfile::tempdir().unwrap();
    let member = Etcr::start(&dir.path().join("m"), extra);
    (dir, member)
}

fn pid(member: &Etcr) -> u32 {
    member.child.as_ref().expect("running").id()
}

fn assert_alive(member: &mut Etcr) {
    let exited = member
        .child
        .as_mut()
        .and_then(|c| c.try_wait().ok().flatten());
    assert!(
        exited.is_none(),
        "the member exited: {exited:?}\n{}",
        member.log_tail()
    );
}

/// Runs `attack` on its own threads for [`ATTACK`] while a client does put+get on its own
/// connection; checks that client's median, the member's liveness and its RSS growth.
fn under_attack(member: &mut Etcr, attackers: usize, attack: impl Fn(u16, &AtomicBool) + Sync) {
    let port = member.client_port;
    let pid = pid(member);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut kv = runtime.block_on(member.kv());
    // Warm up: the first calls pay for connection setup and the first allocations.
    let put = PutRequest {
        key: b"victim".to_vec(),
        value: vec![1; 64],
        ..Default::default()
    };
    let get = RangeRequest {
        key: b"victim".to_vec(),
        ..Default::default()
    };
    for _ in 0..20 {
        runtime.block_on(kv.put(put.clone())).unwrap();
    }
    let rss_before = rss_kib(pid);
    let stop = AtomicBool::new(false);
    let mut latencies = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..attackers {
            s.spawn(|| attack(port, &stop));
        }
        let until = Instant::now() + ATTACK;
        while Instant::now() < until {
            let started = Instant::now();
            let done = runtime.block_on(async {
                let call = async {
                    kv.put(put.clone()).await?;
                    kv.range(get.clone()).await
                };
                tokio::time::timeout(Duration::from_secs(5), call).await
            });
            assert!(
                matches!(done, Ok(Ok(_))),
                "the well-behaved client failed: {done:?}\n{}",
                member.log_tail()
            );
            latencies.push(started.elapsed());
        }
        stop.store(true, Ordering::SeqCst);
    });
    assert_alive(member);
    let rss_after = rss_kib(pid);
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < MAX_MEDIAN,
        "put+get median {median:?} under attack ({} calls)",
        latencies.len()
    );
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "under attack: {} put+get, median {median:?}, RSS {rss_before} -> {rss_after} KiB",
        latencies.len()
    );
    assert!(
        growth <= MAX_RSS_GROWTH_KIB,
        "RSS grew by {growth} KiB ({rss_before} -> {rss_after})"
    );
}

#[test]
fn rapid_reset_cancels_calls_without_hurting_others() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_dir, mut member) = start_member(&[]);
    let resets = AtomicU64::new(0);
    let put = grpc_message(&PutRequest {
        key: b"reset".to_vec(),
        value: vec![2; 256],
        ..Default::default()
    });
    let block = request_block("/etcdserverpb.KV/Put");
    under_attack(&mut member, 2, |port, stop| {
        while !stop.load(Ordering::Relaxed) {
            let mut raw = Raw::connect(port, &[], true);
            let mut stream = 1u32;
            while !stop.load(Ordering::Relaxed) && stream < 1 << 30 {
                let mut burst = Vec::new();
                for _ in 0..100 {
                    burst.extend(frame(HEADERS, END_HEADERS, stream, &block));
                    burst.extend(frame(DATA, END_STREAM, stream, &put));
                    burst.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
                    stream += 2;
                }
                if !raw.send(&burst) {
                    break;
                }
                resets.fetch_add(100, Ordering::Relaxed);
            }
        }
    });
    assert!(
        resets.load(Ordering::Relaxed) > 1000,
        "the attack hardly ran"
    );
}

#[test]
fn hpack_references_to_a_bloated_header_are_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_dir, mut member) = start_member(&[]);
    // One 4 KiB header stored in the dynamic table, then referenced 2,000 times a block:
    // 8 MB of decoded headers for each 6 KB on the wire.
    let mut block = request_block("/etcdserverpb.KV/Range");
    literal(&mut block, "x-bloat", &[b'a'; 4000], true);
    for _ in 0..2000 {
        hpack_int(&mut block, 0x80, 7, 62);
    }
    under_attack(&mut member, 2, |port, stop| {
        while !stop.load(Ordering::Relaxed) {
            let mut raw = Raw::connect(port, &[], true);
            let mut stream = 1u32;
            while !stop.load(Ordering::Relaxed) {
                let mut burst = Vec::new();
                for chunk_start in (0..block.len()).step_by(16 << 10) {
                    let end = (chunk_start + (16 << 10)).min(block.len());
                    let last = end == block.len();
                    let kind = if chunk_start == 0 {
                        HEADERS
                    } else {
                        CONTINUATION
                    };
                    let flags = if last { END_HEADERS | END_STREAM } else { 0 };
                    burst.extend(frame(kind, flags, stream, &block[chunk_start..end]));
                }
                stream += 2;
                if !raw.send(&burst) {
                    break;
                }
            }
        }
    });
}

#[test]
fn an_endless_header_block_ends_the_connection() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_dir, mut member) = start_member(&[]);
    let sent = AtomicU64::new(0);
    let closed = AtomicBool::new(false);
    under_attack(&mut member, 1, |port, stop| {
        let mut raw = Raw::connect(port, &[], true);
        let mut first = request_block("/etcdserverpb.KV/Range");
        literal(&mut first, "x-more", b"1", false);
        raw.send(&frame(HEADERS, 0, 1, &first));
        let mut filler = Vec::new();
        for i in 0..500 {
            literal(&mut filler, &format!("x-{i}"), &[b'b'; 20], false);
        }
        while !stop.load(Ordering::Relaxed) && !raw.seen.closed.load(Ordering::SeqCst) {
            if !raw.send(&frame(CONTINUATION, 0, 1, &filler)) {
                break;
            }
            sent.fetch_add(filler.len() as u64, Ordering::Relaxed);
        }
        let give_up = Instant::now() + Duration::from_secs(5);
        while !raw.seen.closed.load(Ordering::SeqCst) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        closed.store(raw.seen.closed.load(Ordering::SeqCst), Ordering::SeqCst);
    });
    assert!(
        closed.load(Ordering::SeqCst),
        "the server kept the connection"
    );
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent < 16 << 20,
        "the server read {sent} bytes of one header block"
    );
}

#[test]
fn a_ping_flood_gets_goaway_enhance_your_calm() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_dir, mut member) = start_member(&[]);
    let calmed = AtomicU64::new(0);
    under_attack(&mut member, 2, |port, stop| {
        while !stop.load(Ordering::Relaxed) {
            let mut raw = Raw::connect(port, &[], true);
            let burst: Vec<u8> = (0..100u64)
                .flat_map(|i| frame(PING, 0, 0, &i.to_be_bytes()))
                .collect();
            while !stop.load(Ordering::Relaxed) && raw.send(&burst) {
                if raw.seen.closed.load(Ordering::SeqCst) {
                    break;
                }
            }
            if wait_closed(&raw, Duration::from_secs(2))
                && *raw.seen.goaway.lock().unwrap() == Some(ENHANCE_YOUR_CALM)
            {
                calmed.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    assert!(
        calmed.load(Ordering::Relaxed) > 0,
        "no GOAWAY ENHANCE_YOUR_CALM"
    );
}

#[test]
fn a_client_that_never_opens_its_window_costs_a_bounded_amount() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_dir, mut member) = start_member(&[]);
    // A 256 KiB value, read over and over by a client whose stream windows are zero.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(async {
            let mut kv = member.kv().await;
            let put = PutRequest {
                key: b"big".to_vec(),
                value: vec![3; 256 << 10],
                ..Default::default()
            };
            kv.put(put).await
        })
        .unwrap();
    let range = grpc_message(&RangeRequest {
        key: b"big".to_vec(),
        serializable: true,
        ..Default::default()
    });
    let block = request_block("/etcdserverpb.KV/Range");
    let requests = AtomicU64::new(0);
    let attackers = AtomicU64::new(0);
    // One attacker reads the socket (so it sees headers and trailers, never data), the other
    // never reads at all.
    under_attack(&mut member, 2, |port, stop| {
        let reads = attackers.fetch_add(1, Ordering::SeqCst) == 0;
        let mut raw = Raw::connect(port, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)], reads);
        let mut stream = 1u32;
        while !stop.load(Ordering::Relaxed) {
            let mut burst = Vec::new();
            for _ in 0..50 {
                burst.extend(frame(HEADERS, END_HEADERS, stream, &block));
                burst.extend(frame(DATA, END_STREAM, stream, &range));
                stream += 2;
            }
            if !raw.send(&burst) {
                break;
            }
            requests.fetch_add(50, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    // Far more responses were asked for than the member may hold (8 MiB is 32 of them).
    assert!(
        requests.load(Ordering::Relaxed) > 1000,
        "the attack hardly ran"
    );
}

fn wait_closed(raw: &Raw, within: Duration) -> bool {
    let give_up = Instant::now() + within;
    while !raw.seen.closed.load(Ordering::SeqCst) {
        if Instant::now() > give_up {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn silent_idle_and_unresponsive_connections_are_closed() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_dir, member) = start_member(&[
        "--client-idle-timeout",
        "1s",
        "--grpc-keepalive-interval",
        "1s",
        "--grpc-keepalive-timeout",
        "1s",
    ]);
    let port = member.client_port;

    // Says nothing at all: the handshake timeout (5 s) closes it.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    assert!(
        matches!(silent.read(&mut byte), Ok(0)),
        "a silent connection was kept"
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // Handshakes, then opens no call: GOAWAY once idle for 1 s.
    let idle = Raw::connect(port, &[], true);
    assert!(
        wait_closed(&idle, Duration::from_secs(4)),
        "an idle connection was kept"
    );
    assert_eq!(
        *idle.seen.goaway.lock().unwrap(),
        Some(0),
        "GOAWAY NO_ERROR"
    );

    // Starts a header block and never ends it: no call opens, so it is idle too.
    let mut half = Raw::connect(port, &[], true);
    half.send(&frame(
        HEADERS,
        0,
        1,
        &request_block("/etcdserverpb.KV/Range"),
    ));
    assert!(
        wait_closed(&half, Duration::from_secs(4)),
        "a half-sent header block was kept"
    );

    // Keeps a call open but never answers the server's PINGs: closed after 1 s + 1 s.
    let mut deaf = Raw::connect(port, &[], true);
    let range = grpc_message(&RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    // A request whose body never ends keeps the call (and the connection) busy.
    deaf.send(&frame(
        HEADERS,
        END_HEADERS,
        1,
        &request_block("/etcdserverpb.KV/Range"),
    ));
    deaf.send(&frame(DATA, 0, 1, &range[..3]));
    assert!(
        wait_closed(&deaf, Duration::from_secs(6)),
        "a client deaf to PINGs was kept"
    );
}
