//! The `watch` workload: watchers on a prefix or on distinct keys, fed by a put load.
//!
//! A run measures, in order: put throughput without watchers (the baseline), the time to
//! create `--watchers` watchers on `--watch-streams` streams, then the same put load with
//! them: put throughput, events delivered per second and the latency from each put's answer
//! to each watcher's event; then, with `--catch-up K`, one watcher that starts K revisions
//! back, and how fast it catches up. With `--put-seconds 0` it only creates the watchers and
//! holds them `--hold` seconds (for a caller reading the member's memory).
//!
//! The watchers' answers are decoded only as far as the measurement needs (the event
//! count and each event's revision): the generator shares the machine with the members.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::{watch_request, PutRequest, WatchCreateRequest, WatchRequest};
use clap::ValueEnum;
use futures::StreamExt;
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::args::Args;
use crate::histogram::Histogram;
use crate::putter::{Answers, Call, PutLoad, PutResult, Until};
use crate::report::Latency;
use crate::runner::{connect, endpoint_url};
use crate::workload::KeyGen;
use crate::BenchError;

/// What the watchers watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchKeys {
    /// Every watcher watches the put load's prefix: each put reaches every watcher.
    Prefix,
    /// Watcher i watches key i; the puts pick among the watched keys: each reaches one.
    Distinct,
}

/// Flags of the `watch` workload.
#[derive(Clone, Debug, clap::Args)]
pub struct WatchArgs {
    /// Watchers to create.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,

    /// Watch streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub watch_streams: usize,

    /// HTTP/2 connections the streams are spread over (all to the first endpoint).
    #[arg(long, default_value_t = 10)]
    pub watch_conns: usize,

    /// What the watchers watch.
    #[arg(long, value_enum, default_value = "prefix")]
    pub watch_keys: WatchKeys,

    /// Seconds of put load, without watchers and then with them (0: no puts).
    #[arg(long, default_value_t = 10.0)]
    pub put_seconds: f64,

    /// Puts per second of the put load (0: closed loop, as fast as the answers come).
    #[arg(long, default_value_t = 0.0)]
    pub put_rate: f64,

    /// Skip the put load without watchers.
    #[arg(long)]
    pub no_baseline: bool,

    /// Seconds to keep the watchers once created, before the puts.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,

    /// Then write this many revisions and time one watcher that replays them from history.
    #[arg(long, default_value_t = 0)]
    pub catch_up: u64,
}

impl WatchArgs {
    /// Checks the flags that clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.watch_streams == 0 || self.watch_conns == 0 {
            return Err("--watch-streams and --watch-conns must be at least 1".into());
        }
        if !(self.put_rate >= 0.0 && self.put_rate.is_finite()) {
            return Err("--put-rate must be a number of puts per second".into());
        }
        if !(self.put_seconds >= 0.0 && self.put_seconds.is_finite()) {
            return Err("--put-seconds must be a number of seconds".into());
        }
        if !(self.hold >= 0.0 && self.hold.is_finite()) {
            return Err("--hold must be a number of seconds".into());
        }
        Ok(())
    }
}

/// A put load's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PutSummary {
    /// Answered puts.
    pub puts: u64,
    /// Failed puts.
    pub errors: u64,
    /// Answered puts per second.
    pub throughput: f64,
    /// Put latency.
    pub latency_ms: Latency,
}

impl From<&PutResult> for PutSummary {
    fn from(r: &PutResult) -> Self {
        PutSummary {
            puts: r.puts,
            errors: r.errors,
            throughput: r.throughput(),
            latency_ms: r.latency.latency(),
        }
    }
}

/// The catch-up measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CatchUp {
    /// Revisions written before the watcher started.
    pub revisions: u64,
    /// Events the watcher received (fewer than `revisions` if it ran out of time).
    pub events: u64,
    /// From the create request to the last event.
    pub seconds: f64,
    /// Events per second.
    pub events_per_second: f64,
}

/// What a `watch` run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchReport {
    /// Watchers created.
    pub watchers: usize,
    /// Streams they were on.
    pub streams: usize,
    /// What they watched.
    pub keys: Option<WatchKeys>,
    /// Seconds from the first create request to the last created answer.
    pub create_seconds: f64,
    /// Watchers the server canceled.
    pub canceled: u64,
    /// The put load without watchers.
    pub put_baseline: Option<PutSummary>,
    /// The put load with the watchers.
    pub put_with_watchers: Option<PutSummary>,
    /// Events the watchers received.
    pub events: u64,
    /// Events they should receive: every answered put times the watchers it reaches.
    pub expected_events: u64,
    /// Bytes of gRPC messages (with their prefix) the events came in, over the events: what
    /// one event costs the connection.
    pub bytes_per_event: f64,
    /// Events per second, from the start of the puts to the last event.
    pub events_per_second: f64,
    /// From a put's answer to each watcher's event (0 when the event came first).
    pub delivery_latency_ms: Latency,
    /// The catch-up measurement, with `--catch-up`.
    pub catch_up: Option<CatchUp>,
}

/// `WatchResponse`, decoded only as far as the measurement needs (prost skips the rest).
#[derive(Clone, PartialEq, prost::Message)]
struct WatchAnswer {
    #[prost(bool, tag = "3")]
    created: bool,
    #[prost(bool, tag = "4")]
    canceled: bool,
    #[prost(string, tag = "6")]
    cancel_reason: String,
    #[prost(message, repeated, tag = "11")]
    events: Vec<EventRevision>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EventRevision {
    #[prost(message, optional, tag = "2")]
    kv: Option<KvRevision>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KvRevision {
    #[prost(int64, tag = "3")]
    mod_revision: i64,
}

/// Counters shared by the stream tasks.
#[derive(Default)]
struct Counters {
    created: AtomicU64,
    canceled: AtomicU64,
    events: AtomicU64,
    /// Bytes of the responses that carried events, each message with its 5-byte prefix.
    event_bytes: AtomicU64,
    /// Nanoseconds from the run's start to the latest event.
    last_event_ns: AtomicU64,
}

/// Which watcher goes on which stream: watcher i on stream i mod streams.
pub fn stream_of(watcher: usize, streams: usize) -> usize {
    watcher % streams
}

fn create(key: Vec<u8>, range_end: Vec<u8>, start_revision: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key,
                range_end,
                start_revision,
                ..Default::default()
            },
        )),
    }
}

/// The watchers' key prefix and the put load's.
const PREFIX: &[u8] = b"w/";
/// The catch-up keys' prefix.
const CATCH_UP_PREFIX: &[u8] = b"c/";
/// How long the catch-up watcher may take (etcd 3.4 replays 1M revisions at a few hundred
/// events per second).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

fn mark(args: &Args, phase: &str) {
    if args.marks {
        println!("mark {phase}");
    }
}

/// Runs the `watch` workload.
pub async fn run(args: &Args) -> Result<WatchReport, BenchError> {
    args.validate().map_err(BenchError::Args)?;
    let w = &args.watch;
    let urls: Vec<String> = args.endpoints.iter().map(|e| endpoint_url(e)).collect();
    let start = Instant::now();
    let answers = Answers::new(start);
    let key_space = match w.watch_keys {
        WatchKeys::Prefix => args.key_space_size,
        WatchKeys::Distinct => w.watchers.max(1) as u64,
    };
    let keys = KeyGen::new(args.key_size, key_space, false);
    let value: Vec<u8> = vec![b'v'; args.value_size];
    let put_keys = keys.clone();
    let puts = PutLoad {
        call: Call::Put,
        targets: urls.clone(),
        conns: args.conns,
        clients: args.clients,
        make: Arc::new(move |_| {
            PutRequest {
                key: [PREFIX, &put_keys.next_key()].concat(),
                value: value.clone(),
                ..Default::default()
            }
            .encode_to_vec()
        }),
        timeout: Duration::from_secs_f64(args.timeout),
        answers: Some(answers.clone()),
        timeline: false,
        rate: (w.put_rate > 0.0).then_some(w.put_rate),
    };
    let put_for = Until::Elapsed(Duration::from_secs_f64(w.put_seconds));
    let mut report = WatchReport {
        watchers: w.watchers,
        streams: w.watch_streams,
        keys: Some(w.watch_keys),
        ..Default::default()
    };
    if w.put_seconds > 0.0 && !w.no_baseline {
        mark(args, "baseline");
        report.put_baseline = Some(PutSummary::from(&puts.run(put_for.clone()).await?));
    }

    mark(args, "watchers-start");
    let mut per_stream: Vec<Vec<WatchRequest>> = vec![Vec::new(); w.watch_streams];
    for i in 0..w.watchers {
        let request = match w.watch_keys {
            WatchKeys::Prefix => create(PREFIX.to_vec(), api::prefix_range_end(PREFIX), 0),
            WatchKeys::Distinct => create([PREFIX, &keys.key(i as u64)].concat(), vec![], 0),
        };
        per_stream[stream_of(i, w.watch_streams)].push(request);
    }
    let mut channels = Vec::new();
    for _ in 0..w.watch_conns {
        channels.push(connect(&urls[0]).await?);
    }
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let created_at = Instant::now();
    let streams: Vec<_> = per_stream
        .into_iter()
        .enumerate()
        .map(|(i, creates)| {
            tokio::spawn(watch_stream(
                channels[i % channels.len()].clone(),
                creates,
                counters.clone(),
                answers.clone(),
                start,
                stop_rx.clone(),
            ))
        })
        .collect();
    let all = w.watchers as u64;
    let done = |c: &Counters| {
        c.created.load(Ordering::Relaxed) + c.canceled.load(Ordering::Relaxed) >= all
    };
    if !wait_for(Duration::from_secs(300), || done(&counters)).await {
        return Err(BenchError::Task(format!(
            "only {} of {all} watchers created in 300 s",
            counters.created.load(Ordering::Relaxed)
        )));
    }
    report.create_seconds = created_at.elapsed().as_secs_f64();
    report.canceled = counters.canceled.load(Ordering::Relaxed);
    if w.hold > 0.0 {
        // Let the members settle before a caller samples them.
        tokio::time::sleep(Duration::from_secs(1)).await;
        mark(args, "watchers-created");
        tokio::time::sleep(Duration::from_secs_f64(w.hold)).await;
    }

    if w.put_seconds > 0.0 {
        mark(args, "puts-with-watchers");
        let put_start = start.elapsed();
        let with = puts.run(put_for).await?;
        let reach = match w.watch_keys {
            WatchKeys::Prefix => w.watchers as u64,
            WatchKeys::Distinct => 1,
        };
        report.expected_events = with.puts * reach;
        let expected = report.expected_events;
        wait_for(Duration::from_secs(10), || {
            counters.events.load(Ordering::Relaxed) >= expected
        })
        .await;
        report.events = counters.events.load(Ordering::Relaxed);
        report.bytes_per_event =
            counters.event_bytes.load(Ordering::Relaxed) as f64 / report.events.max(1) as f64;
        let last = Duration::from_nanos(counters.last_event_ns.load(Ordering::Relaxed));
        report.events_per_second = rate(report.events, last.saturating_sub(put_start));
        report.put_with_watchers = Some(PutSummary::from(&with));
    }
    let _ = stop_tx.send(true);
    let mut latency = Histogram::default();
    for s in streams {
        latency.merge(&s.await.map_err(|e| BenchError::Task(e.to_string()))??);
    }
    report.delivery_latency_ms = latency.latency();
    drop(channels);

    if w.catch_up > 0 {
        mark(args, "catch-up");
        report.catch_up = Some(catch_up(args, &urls, w.catch_up).await?);
    }
    mark(args, "done");
    if let Some(path) = &args.json {
        crate::report::write_json(path, &report)?;
    }
    Ok(report)
}

/// `events` over `elapsed`, per second.
pub fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

/// Waits until `done` holds or `limit` passes; whether it holds.
async fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let give_up = Instant::now() + limit;
    while !done() {
        if Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Decodes [`WatchAnswer`]s and keeps each one's size on the wire.
struct SizedCodec;

struct SizedDecoder;

/// gRPC's prefix before each message.
const PREFIX_BYTES: usize = 5;

impl tonic::codec::Decoder for SizedDecoder {
    type Item = (WatchAnswer, usize);
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        let len = bytes::Buf::remaining(src) + PREFIX_BYTES;
        let answer =
            WatchAnswer::decode(src).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(Some((answer, len)))
    }
}

impl tonic::codec::Codec for SizedCodec {
    type Encode = WatchRequest;
    type Decode = (WatchAnswer, usize);
    type Encoder =
        <tonic_prost::ProstCodec<WatchRequest, WatchAnswer> as tonic::codec::Codec>::Encoder;
    type Decoder = SizedDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic::codec::Codec::encoder(
            &mut tonic_prost::ProstCodec::<WatchRequest, WatchAnswer>::default(),
        )
    }

    fn decoder(&mut self) -> Self::Decoder {
        SizedDecoder
    }
}

/// Opens a watch stream with the answers decoded as [`WatchAnswer`]s with their size; the
/// requests stay open (the stream ends when dropped).
async fn open_stream(
    channel: Channel,
    creates: Vec<WatchRequest>,
) -> Result<tonic::Streaming<(WatchAnswer, usize)>, BenchError> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| BenchError::Task(format!("watch connection: {e}")))?;
    let requests = futures::stream::iter(creates).chain(futures::stream::pending());
    let codec = SizedCodec;
    let path = PathAndQuery::from_static("/etcdserverpb.Watch/Watch");
    let answer = grpc
        .streaming(tonic::Request::new(requests), path, codec)
        .await
        .map_err(|s| BenchError::Task(format!("Watch: {}", s.message())))?;
    Ok(answer.into_inner())
}

/// One stream's watchers: counts what they get until told to stop; returns the latencies.
async fn watch_stream(
    channel: Channel,
    creates: Vec<WatchRequest>,
    counters: Arc<Counters>,
    answers: Arc<Answers>,
    start: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Histogram, BenchError> {
    let mut latency = Histogram::default();
    if creates.is_empty() {
        return Ok(latency);
    }
    let mut stream = open_stream(channel, creates).await?;
    loop {
        let answer = tokio::select! {
            a = stream.message() => a,
            _ = stop.changed() => break,
        };
        let (answer, size) = match answer {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(s) => return Err(BenchError::Task(format!("watch stream: {}", s.message()))),
        };
        if answer.created {
            counters.created.fetch_add(1, Ordering::Relaxed);
        }
        if answer.canceled {
            counters.canceled.fetch_add(1, Ordering::Relaxed);
            if !answer.cancel_reason.is_empty() {
                eprintln!("watch canceled: {}", answer.cancel_reason);
            }
        }
        if !answer.events.is_empty() {
            for e in &answer.events {
                let revision = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                latency.record(answers.since_answer_us(revision));
            }
            counters
                .events
                .fetch_add(answer.events.len() as u64, Ordering::Relaxed);
            counters
                .event_bytes
                .fetch_add(size as u64, Ordering::Relaxed);
            let now = start.elapsed().as_nanos() as u64;
            counters.last_event_ns.fetch_max(now, Ordering::Relaxed);
        }
    }
    Ok(latency)
}

/// Writes `revisions` puts under their own prefix, then times one watcher that starts at
/// the first of them.
async fn catch_up(args: &Args, urls: &[String], revisions: u64) -> Result<CatchUp, BenchError> {
    let keys = KeyGen::new(args.key_size, revisions, true);
    let value: Vec<u8> = vec![b'c'; args.value_size];
    let fill = PutLoad {
        call: Call::Put,
        targets: urls.to_vec(),
        conns: args.conns,
        clients: args.clients,
        make: Arc::new(move |_| {
            PutRequest {
                key: [CATCH_UP_PREFIX, &keys.next_key()].concat(),
                value: value.clone(),
                ..Default::default()
            }
            .encode_to_vec()
        }),
        timeout: Duration::from_secs_f64(args.timeout),
        answers: None,
        timeline: false,
        rate: None,
    };
    let written = fill.run(Until::Total(revisions)).await?;
    if written.errors > 0 {
        eprintln!(
            "catch-up: {} puts failed ({})",
            written.errors,
            written.first_error.unwrap_or_default()
        );
    }
    let (first, _) = written.revisions;
    let channel = connect(&urls[0]).await?;
    let sent = Instant::now();
    let request = create(
        CATCH_UP_PREFIX.to_vec(),
        api::prefix_range_end(CATCH_UP_PREFIX),
        first,
    );
    let mut stream = open_stream(channel, vec![request]).await?;
    let mut events = 0;
    // The rate is what counts: a watcher still behind then reports what it got so far.
    let give_up = tokio::time::sleep(CATCH_UP_LIMIT);
    tokio::pin!(give_up);
    while events < written.puts {
        let answer = tokio::select! {
            a = stream.message() => a,
            _ = &mut give_up => break,
        };
        match answer {
            Ok(Some((a, _))) => events += a.events.len() as u64,
            Ok(None) => break,
            Err(s) => return Err(BenchError::Task(format!("watch stream: {}", s.message()))),
        }
    }
    let seconds = sent.elapsed().as_secs_f64();
    Ok(CatchUp {
        revisions: written.puts,
        events,
        seconds,
        events_per_second: events as f64 / seconds.max(f64::EPSILON),
    })
}

impl WatchReport {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "watch: {} watchers on {} streams ({:?}), created in {:.2} s, {} canceled",
            self.watchers,
            self.streams,
            self.keys.unwrap_or(WatchKeys::Prefix),
            self.create_seconds,
            self.canceled
        );
        let put = |name: &str, p: &Option<PutSummary>, out: &mut String| {
            if let Some(p) = p {
                let _ = writeln!(
                    out,
                    "  puts {name}: {:.1}/s ({} ok, {} errors, p99 {:.2} ms)",
                    p.throughput, p.puts, p.errors, p.latency_ms.p99
                );
            }
        };
        put("without watchers", &self.put_baseline, &mut out);
        put("with watchers", &self.put_with_watchers, &mut out);
        if self.put_with_watchers.is_some() {
            let l = &self.delivery_latency_ms;
            let _ = writeln!(
                out,
                "  events: {} of {} expected, {:.0}/s, {:.0} bytes each; put answer to event p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                self.events, self.expected_events, self.events_per_second, self.bytes_per_event, l.p50, l.p99, l.max
            );
        }
        if let Some(c) = &self.catch_up {
            let _ = writeln!(
                out,
                "  catch-up: {} events of {} revisions in {:.2} s, {:.0} events/s",
                c.events, c.revisions, c.seconds, c.events_per_second
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn watchers_spread_evenly_over_streams() {
        let mut per = [0usize; 7];
        for i in 0..100 {
            per[stream_of(i, 7)] += 1;
        }
        assert!(per.iter().all(|&n| n == 14 || n == 15), "{per:?}");
    }

    #[test]
    fn flags_parse_and_validate() {
        let args = Args::parse_from([
            "b",
            "watch",
            "--watchers",
            "100000",
            "--watch-streams",
            "1000",
            "--watch-keys",
            "distinct",
            "--put-seconds",
            "0",
            "--hold",
            "3",
        ]);
        assert_eq!(args.watch.watchers, 100_000);
        assert_eq!(args.watch.watch_keys, WatchKeys::Distinct);
        assert!(args.validate().is_ok());
        let args = Args::parse_from(["b", "watch", "--watch-streams", "0"]);
        assert!(args.validate().is_err());
        let args = Args::parse_from(["b", "watch", "--put-seconds=-1"]);
        assert!(args.validate().is_err());
    }

    #[test]
    fn rate_guards_against_zero_time() {
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
        assert!(rate(1, Duration::ZERO).is_finite());
    }

    #[test]
    fn the_partial_answer_reads_events_and_revisions() {
        use api::etcdserverpb::WatchResponse;
        use api::mvccpb::{Event, KeyValue};
        let full = WatchResponse {
            watch_id: 3,
            created: true,
            events: vec![Event {
                kv: Some(KeyValue {
                    key: b"w/1".to_vec(),
                    value: b"v".repeat(100),
                    mod_revision: 42,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let lite = WatchAnswer::decode(full.encode_to_vec().as_slice()).unwrap();
        assert!(lite.created && !lite.canceled);
        assert_eq!(lite.events.len(), 1);
        assert_eq!(lite.events[0].kv.as_ref().unwrap().mod_revision, 42);
    }
}
