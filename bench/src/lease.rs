//! The lease workloads beyond `lease-grant` (a unary workload of the runner):
//!
//! - `lease-keepalive`: grants `--leases` leases, then keeps each alive every TTL/3 over
//!   `--keepalive-streams` LeaseKeepAlive streams for `--keepalive-seconds`, counting the
//!   answers and the leases that expired anyway (an answer with TTL 0).
//! - `lease-expiry`: a put load on other keys runs throughout; after `--expiry-baseline`
//!   seconds, `--leases` leases of `--lease-ttl` seconds are granted with one key each, and a
//!   watcher sees each key's delete: how long after its lease's TTL each went, and the put
//!   load's p99 while they expire against before.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::{
    watch_create_request, watch_request, LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest,
    WatchCreateRequest, WatchRequest,
};
use api::mvccpb::event::EventType;
use futures::StreamExt;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::args::{Args, Workload};
use crate::putter::{Call, PutLoad, PutResult, Until};
use crate::report::Latency;
use crate::runner::{connect, endpoint_url};
use crate::watch::{rate, PutSummary};
use crate::BenchError;

/// Flags of the lease workloads.
#[derive(Clone, Debug, clap::Args)]
pub struct LeaseArgs {
    /// TTL of the granted leases, in seconds.
    #[arg(long, default_value_t = 30)]
    pub lease_ttl: i64,

    /// Leases to grant (lease-keepalive, lease-expiry).
    #[arg(long, default_value_t = 100_000)]
    pub leases: u64,

    /// Concurrent grant (and key attach) loops of lease-keepalive and lease-expiry.
    #[arg(long, default_value_t = 100)]
    pub grant_clients: usize,

    /// LeaseKeepAlive streams the leases are spread over.
    #[arg(long, default_value_t = 100)]
    pub keepalive_streams: usize,

    /// Seconds of keep-alives.
    #[arg(long, default_value_t = 20.0)]
    pub keepalive_seconds: f64,

    /// Seconds of put load measured before the leases of lease-expiry are granted.
    #[arg(long, default_value_t = 3.0)]
    pub expiry_baseline: f64,
}

impl LeaseArgs {
    /// Checks the flags that clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_ttl <= 0 {
            return Err("--lease-ttl must be at least 1".into());
        }
        if self.leases == 0 || self.grant_clients == 0 || self.keepalive_streams == 0 {
            return Err(
                "--leases, --grant-clients and --keepalive-streams must be at least 1".into(),
            );
        }
        let secs = [self.keepalive_seconds, self.expiry_baseline];
        if secs.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            return Err("--keepalive-seconds and --expiry-baseline must be positive".into());
        }
        Ok(())
    }

    /// Between two keep-alives of one stream: each of its leases once every TTL/3.
    pub fn keepalive_period(&self, leases_on_stream: u64) -> Duration {
        Duration::from_secs_f64(self.lease_ttl as f64 / 3.0 / leases_on_stream.max(1) as f64)
    }
}

/// What `lease-keepalive` measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeepAliveReport {
    /// Leases granted.
    pub leases: u64,
    /// Grants per second while granting them.
    pub grant_throughput: f64,
    /// Keep-alive requests sent.
    pub sent: u64,
    /// Answers received.
    pub answered: u64,
    /// Answers with TTL 0: the lease had expired.
    pub expired: u64,
    /// Seconds of keep-alives.
    pub seconds: f64,
    /// Answers per second.
    pub answers_per_second: f64,
}

/// What `lease-expiry` measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpiryReport {
    /// Leases granted with a key attached.
    pub leases: u64,
    /// Their TTL.
    pub ttl_seconds: i64,
    /// Seconds from the first grant's answer to the last.
    pub grant_spread_seconds: f64,
    /// Keys whose delete the watcher saw.
    pub deleted: u64,
    /// Of them, deleted within 1 s of their lease's TTL (from its grant's answer).
    pub within_1s: u64,
    /// How late after the TTL the keys went, in ms.
    pub lateness_ms: Latency,
    /// The put load before the grants.
    pub puts_before: PutSummary,
    /// The put load while the leases expired (first TTL to last delete).
    pub puts_during: PutSummary,
}

/// The report of either workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseReport {
    /// lease-keepalive.
    KeepAlive(KeepAliveReport),
    /// lease-expiry.
    Expiry(ExpiryReport),
}

fn mark(args: &Args, phase: &str) {
    if args.marks {
        println!("mark {phase}");
    }
}

/// Runs `lease-keepalive` or `lease-expiry`.
pub async fn run(args: &Args) -> Result<LeaseReport, BenchError> {
    args.validate().map_err(BenchError::Args)?;
    let urls: Vec<String> = args.endpoints.iter().map(|e| endpoint_url(e)).collect();
    let report = match args.workload {
        Workload::LeaseExpiry => LeaseReport::Expiry(expiry(args, &urls).await?),
        _ => LeaseReport::KeepAlive(keepalive(args, &urls).await?),
    };
    mark(args, "done");
    if let Some(path) = &args.json {
        crate::report::write_json(path, &report)?;
    }
    Ok(report)
}

/// Grants `--leases` leases of `ttl`; the answered grants in sequence order.
async fn grant(args: &Args, urls: &[String], ttl: i64) -> Result<PutResult, BenchError> {
    let clients = args.lease.grant_clients;
    let load = PutLoad {
        call: Call::LeaseGrant,
        targets: urls.to_vec(),
        conns: clients.div_ceil(10),
        clients,
        make: Arc::new(move |_| LeaseGrantRequest { ttl, id: 0 }.encode_to_vec()),
        timeout: Duration::from_secs_f64(args.timeout),
        answers: None,
        timeline: true,
        rate: None,
    };
    let mut granted = load.run(Until::Total(args.lease.leases)).await?;
    if granted.errors > 0 {
        eprintln!(
            "{} grants failed ({})",
            granted.errors,
            granted.first_error.clone().unwrap_or_default()
        );
    }
    granted.answered.sort_by_key(|a| a.n);
    Ok(granted)
}

async fn keepalive(args: &Args, urls: &[String]) -> Result<KeepAliveReport, BenchError> {
    let l = &args.lease;
    mark(args, "grant");
    let granted = grant(args, urls, l.lease_ttl).await?;
    let ids: Vec<i64> = granted.answered.iter().map(|a| a.id).collect();
    let mut channels = Vec::new();
    for i in 0..args.conns {
        channels.push(connect(&urls[i % urls.len()]).await?);
    }
    mark(args, "keepalive");
    let begin = tokio::time::Instant::now();
    let length = Duration::from_secs_f64(l.keepalive_seconds);
    let mut streams = Vec::new();
    for s in 0..l.keepalive_streams {
        let mine: Vec<i64> = ids
            .iter()
            .skip(s)
            .step_by(l.keepalive_streams)
            .copied()
            .collect();
        if mine.is_empty() {
            continue;
        }
        let period = l.keepalive_period(mine.len() as u64);
        let sends = (length.as_secs_f64() / period.as_secs_f64()) as u64;
        let mut client = LeaseClient::new(channels[s % channels.len()].clone());
        streams.push(tokio::spawn(async move {
            let requests = futures::stream::unfold(0u64, move |i| {
                let id = mine[i as usize % mine.len()];
                async move {
                    if i >= sends {
                        return None;
                    }
                    tokio::time::sleep_until(begin + period.mul_f64(i as f64)).await;
                    Some((LeaseKeepAliveRequest { id }, i + 1))
                }
            });
            let mut answers = client
                .lease_keep_alive(requests)
                .await
                .map_err(|s| BenchError::Task(format!("LeaseKeepAlive: {}", s.message())))?
                .into_inner();
            let (mut answered, mut expired) = (0u64, 0u64);
            let give_up = tokio::time::sleep_until(begin + length + Duration::from_secs(5));
            tokio::pin!(give_up);
            while answered < sends {
                let next = tokio::select! {
                    a = answers.message() => a,
                    _ = &mut give_up => break,
                };
                match next {
                    Ok(Some(a)) => {
                        answered += 1;
                        expired += u64::from(a.ttl <= 0);
                    }
                    Ok(None) => break,
                    Err(s) => {
                        return Err(BenchError::Task(format!("LeaseKeepAlive: {}", s.message())))
                    }
                }
            }
            Ok::<_, BenchError>((sends, answered, expired))
        }));
    }
    let mut report = KeepAliveReport {
        leases: ids.len() as u64,
        grant_throughput: granted.throughput(),
        ..Default::default()
    };
    for s in streams {
        let (sent, answered, expired) = s.await.map_err(|e| BenchError::Task(e.to_string()))??;
        report.sent += sent;
        report.answered += answered;
        report.expired += expired;
    }
    let elapsed = begin.elapsed();
    report.seconds = elapsed.as_secs_f64();
    report.answers_per_second = rate(report.answered, elapsed);
    mark(args, "keepalive-done");
    Ok(report)
}

/// The keys of `lease-expiry`: `x/<n>` for the n-th lease.
const EXPIRY_PREFIX: &str = "x/";

/// The lease number in an expiring key, if it is one.
pub fn expiry_key_number(key: &[u8]) -> Option<usize> {
    std::str::from_utf8(key.strip_prefix(EXPIRY_PREFIX.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

/// The latencies of `timeline` samples sent within `[from_ms, to_ms)`, summarised.
pub fn window(timeline: &[(u32, u32)], from_ms: u64, to_ms: u64) -> PutSummary {
    let mut us: Vec<u64> = timeline
        .iter()
        .filter(|(at, _)| (from_ms..to_ms).contains(&u64::from(*at)))
        .map(|(_, lat)| u64::from(*lat))
        .collect();
    let seconds = to_ms.saturating_sub(from_ms) as f64 / 1000.0;
    PutSummary {
        puts: us.len() as u64,
        errors: 0,
        throughput: us.len() as f64 / seconds.max(f64::EPSILON),
        latency_ms: Latency::from_micros(&mut us),
    }
}

async fn expiry(args: &Args, urls: &[String]) -> Result<ExpiryReport, BenchError> {
    let l = &args.lease;
    let stop = Arc::new(AtomicBool::new(false));
    let value = vec![b'o'; args.value_size];
    let writers = PutLoad {
        call: Call::Put,
        targets: urls.to_vec(),
        conns: args.conns,
        clients: args.clients,
        make: Arc::new(move |n| {
            PutRequest {
                key: format!("o/{}", n % 10_000).into_bytes(),
                value: value.clone(),
                ..Default::default()
            }
            .encode_to_vec()
        }),
        timeout: Duration::from_secs_f64(args.timeout),
        answers: None,
        timeline: true,
        rate: None,
    };
    let writers_start = Instant::now();
    let until = Until::Flag(stop.clone());
    let writing = tokio::spawn(async move { writers.run(until).await });
    tokio::time::sleep(Duration::from_secs_f64(l.expiry_baseline)).await;
    let baseline_end = writers_start.elapsed();

    mark(args, "grant");
    let granted = grant(args, urls, l.lease_ttl).await?;
    let grant_start = granted.started.unwrap_or(writers_start);
    let ttl = Duration::from_secs(l.lease_ttl as u64);
    let deadline_of = |at_us: u64| grant_start + Duration::from_micros(at_us) + ttl;
    let deadlines: Vec<Instant> = granted
        .answered
        .iter()
        .map(|a| deadline_of(a.at_us))
        .collect();
    let ids: Vec<i64> = granted.answered.iter().map(|a| a.id).collect();
    let attach_ids = Arc::new(ids.clone());
    let attach = PutLoad {
        call: Call::Put,
        targets: urls.to_vec(),
        conns: l.grant_clients.div_ceil(10),
        clients: l.grant_clients,
        make: Arc::new(move |n| {
            PutRequest {
                key: format!("{EXPIRY_PREFIX}{n}").into_bytes(),
                value: b"x".to_vec(),
                lease: attach_ids[n as usize],
                ..Default::default()
            }
            .encode_to_vec()
        }),
        timeout: Duration::from_secs_f64(args.timeout),
        answers: None,
        timeline: false,
        rate: None,
    };
    let attached = attach.run(Until::Total(ids.len() as u64)).await?;
    if attached.errors > 0 {
        eprintln!(
            "{} key puts failed ({})",
            attached.errors,
            attached.first_error.clone().unwrap_or_default()
        );
    }

    mark(args, "expiry");
    let mut watch = WatchClient::new(connect(&urls[0]).await?);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: EXPIRY_PREFIX.as_bytes().to_vec(),
                range_end: api::prefix_range_end(EXPIRY_PREFIX.as_bytes()),
                start_revision: attached.revisions.1 + 1,
                filters: vec![watch_create_request::FilterType::Noput as i32],
                ..Default::default()
            },
        )),
    };
    let requests = futures::stream::iter([create]).chain(futures::stream::pending());
    let mut events = watch
        .watch(requests)
        .await
        .map_err(|s| BenchError::Task(format!("Watch: {}", s.message())))?
        .into_inner();
    let last_deadline = deadlines.iter().max().copied().unwrap_or_else(Instant::now);
    let give_up = tokio::time::sleep_until((last_deadline + Duration::from_secs(30)).into());
    tokio::pin!(give_up);
    let mut late_us: HashMap<usize, i64> = HashMap::new();
    let mut last_delete = Instant::now();
    let expected = attached.puts as usize;
    while late_us.len() < expected {
        let next = tokio::select! {
            a = events.message() => a,
            _ = &mut give_up => break,
        };
        let answer = match next {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(s) => return Err(BenchError::Task(format!("watch: {}", s.message()))),
        };
        let now = Instant::now();
        for e in answer.events {
            if e.r#type != EventType::Delete as i32 {
                continue;
            }
            let Some(n) = e.kv.and_then(|kv| expiry_key_number(&kv.key)) else {
                continue;
            };
            if let Some(deadline) = deadlines.get(n) {
                let late = if now >= *deadline {
                    now.duration_since(*deadline).as_micros() as i64
                } else {
                    -(deadline.duration_since(now).as_micros() as i64)
                };
                late_us.entry(n).or_insert(late);
                last_delete = now;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writing
        .await
        .map_err(|e| BenchError::Task(e.to_string()))??;

    let first_deadline = deadlines.iter().min().copied().unwrap_or(last_delete);
    let ms_of = |t: Instant| t.saturating_duration_since(writers_start).as_millis() as u64;
    let mut lateness: Vec<u64> = late_us.values().map(|&us| us.max(0) as u64).collect();
    let spread = granted.answered.last().map_or(0, |a| a.at_us)
        - granted.answered.first().map_or(0, |a| a.at_us);
    Ok(ExpiryReport {
        leases: expected as u64,
        ttl_seconds: l.lease_ttl,
        grant_spread_seconds: spread as f64 / 1e6,
        deleted: late_us.len() as u64,
        within_1s: late_us.values().filter(|&&us| us <= 1_000_000).count() as u64,
        lateness_ms: Latency::from_micros(&mut lateness),
        puts_before: window(&written.timeline, 0, baseline_end.as_millis() as u64),
        puts_during: window(
            &written.timeline,
            ms_of(first_deadline),
            ms_of(last_delete).max(ms_of(first_deadline) + 1),
        ),
    })
}

impl LeaseReport {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        match self {
            LeaseReport::KeepAlive(k) => {
                let _ = writeln!(
                    out,
                    "lease-keepalive: {} leases (granted at {:.0}/s), {} keep-alives sent, {} answered ({:.0}/s) in {:.1} s, {} expired",
                    k.leases, k.grant_throughput, k.sent, k.answered, k.answers_per_second, k.seconds, k.expired
                );
            }
            LeaseReport::Expiry(e) => {
                let l = &e.lateness_ms;
                let _ = writeln!(
                    out,
                    "lease-expiry: {} leases of {} s granted over {:.2} s; {} keys deleted, {} within 1 s of their TTL",
                    e.leases, e.ttl_seconds, e.grant_spread_seconds, e.deleted, e.within_1s
                );
                let _ = writeln!(
                    out,
                    "  lateness after the TTL: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                    l.p50, l.p99, l.max
                );
                let _ = writeln!(
                    out,
                    "  puts before: {:.0}/s p99 {:.2} ms; while expiring: {:.0}/s p99 {:.2} ms",
                    e.puts_before.throughput,
                    e.puts_before.latency_ms.p99,
                    e.puts_during.throughput,
                    e.puts_during.latency_ms.p99
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn keepalives_of_a_stream_cover_each_lease_every_third_of_the_ttl() {
        let args = Args::parse_from(["b", "lease-keepalive", "--lease-ttl", "30"]);
        assert_eq!(args.lease.keepalive_period(1000), Duration::from_millis(10));
        assert_eq!(args.lease.keepalive_period(1), Duration::from_secs(10));
        assert!(args.validate().is_ok());
        let args = Args::parse_from(["b", "lease-expiry", "--lease-ttl", "0"]);
        assert!(args.validate().is_err());
    }

    #[test]
    fn expiring_keys_name_their_lease() {
        assert_eq!(expiry_key_number(b"x/123"), Some(123));
        assert_eq!(expiry_key_number(b"o/123"), None);
        assert_eq!(expiry_key_number(b"x/abc"), None);
    }

    #[test]
    fn windows_take_the_samples_sent_inside() {
        let timeline = [(0, 1000), (500, 2000), (999, 3000), (1000, 9000)];
        let w = window(&timeline, 0, 1000);
        assert_eq!(w.puts, 3);
        assert_eq!(w.latency_ms.p99, 3.0);
        assert_eq!(w.throughput, 3.0);
        assert_eq!(window(&timeline, 1000, 2000).latency_ms.max, 9.0);
    }
}
