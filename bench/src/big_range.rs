//! `big-range`: whether one large read holds up the other calls of its connection. It fills
//! `--big-range-mib` MiB under `big/`, then on a single HTTP/2 connection times
//! `--big-range-puts` small sequential puts alone, and again while a linearizable range
//! of all of `big/` streams back on the same connection.

use std::fmt::Write as _;
use std::time::Instant;

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{PutRequest, RangeRequest};
use serde::Serialize;
use tonic::transport::Channel;

use crate::report::Latency;
use crate::runner::{connect, endpoint_url};
use crate::{Args, BenchError};

const PREFIX: &str = "big/";
/// Each value of the fill: well under etcd's 1.5 MiB request limit.
const FILL_VALUE: usize = 100 * 1024;
/// Fill puts in flight at once.
const FILL_CONCURRENCY: usize = 8;

/// The flags of `big-range`.
#[derive(Clone, Debug, clap::Args)]
pub struct BigRangeArgs {
    /// MiB of values the large range reads.
    #[arg(long, default_value_t = 100)]
    pub big_range_mib: u64,
    /// Small puts timed alone, then beside the range.
    #[arg(long, default_value_t = 100)]
    pub big_range_puts: usize,
}

/// What `big-range` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BigRangeReport {
    /// Bytes of values the range returned.
    pub range_bytes: u64,
    /// Keys it returned.
    pub range_keys: u64,
    /// How long it took, from send to the whole answer.
    pub range_seconds: f64,
    /// The small puts with the connection to themselves.
    pub puts_before: Latency,
    /// The small puts sent beside the range.
    pub puts_during: Latency,
    /// How many of those completed before the range did.
    pub puts_done_while_range_ran: u64,
}

fn status(what: &str) -> impl Fn(tonic::Status) -> BenchError + '_ {
    move |s| BenchError::Task(format!("{what}: {}", s.message()))
}

async fn small_puts(
    kv: &KvClient<Channel>,
    n: usize,
    tag: &str,
) -> Result<Vec<(u64, Instant)>, BenchError> {
    let mut kv = kv.clone();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let put = PutRequest {
            key: format!("small/{tag}/{i}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        let started = Instant::now();
        kv.put(put).await.map_err(status("small put"))?;
        out.push((started.elapsed().as_micros() as u64, Instant::now()));
    }
    Ok(out)
}

/// Runs `big-range` against the first endpoint.
pub async fn run(args: &Args) -> Result<BigRangeReport, BenchError> {
    args.validate().map_err(BenchError::Args)?;
    let b = &args.big_range;
    if b.big_range_mib == 0 || b.big_range_puts == 0 {
        return Err(BenchError::Args(
            "--big-range-mib and --big-range-puts must be at least 1".into(),
        ));
    }
    let url = endpoint_url(&args.endpoints[0]);
    let kv = KvClient::new(connect(&url).await?).max_decoding_message_size(usize::MAX);

    let values = (b.big_range_mib * 1024 * 1024).div_ceil(FILL_VALUE as u64);
    if !args.quiet {
        eprintln!("big-range: filling {values} values of {FILL_VALUE} B");
    }
    let mut next = 0u64;
    let mut filling = tokio::task::JoinSet::new();
    while next < values || !filling.is_empty() {
        while next < values && filling.len() < FILL_CONCURRENCY {
            let mut kv = kv.clone();
            let put = PutRequest {
                key: format!("{PREFIX}{next:08}").into_bytes(),
                value: vec![b'x'; FILL_VALUE],
                ..Default::default()
            };
            filling.spawn(async move { kv.put(put).await.map(|_| ()) });
            next += 1;
        }
        if let Some(done) = filling.join_next().await {
            done.map_err(|e| BenchError::Task(e.to_string()))?
                .map_err(status("fill put"))?;
        }
    }

    let mut before: Vec<u64> = small_puts(&kv, b.big_range_puts, "before")
        .await?
        .into_iter()
        .map(|(us, _)| us)
        .collect();

    let mut reader = kv.clone();
    let range = tokio::spawn(async move {
        let all = RangeRequest {
            key: PREFIX.as_bytes().to_vec(),
            range_end: b"big0".to_vec(),
            ..Default::default()
        };
        let started = Instant::now();
        let answer = reader.range(all).await;
        (answer, started.elapsed(), Instant::now())
    });
    let during = small_puts(&kv, b.big_range_puts, "during").await?;
    let (answer, took, ended) = range.await.map_err(|e| BenchError::Task(e.to_string()))?;
    let answer = answer.map_err(status("the large range"))?.into_inner();
    let range_bytes = answer.kvs.iter().map(|kv| kv.value.len() as u64).sum();
    let done_while_range_ran = during.iter().filter(|(_, at)| *at <= ended).count() as u64;
    let mut during: Vec<u64> = during.into_iter().map(|(us, _)| us).collect();
    let report = BigRangeReport {
        range_bytes,
        range_keys: answer.kvs.len() as u64,
        range_seconds: took.as_secs_f64(),
        puts_before: Latency::from_micros(&mut before),
        puts_during: Latency::from_micros(&mut during),
        puts_done_while_range_ran: done_while_range_ran,
    };
    if let Some(path) = &args.json {
        crate::report::write_json(path, &report)?;
    }
    Ok(report)
}

impl BigRangeReport {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "big-range: {} keys, {:.1} MB in {:.2} s on one connection",
            self.range_keys,
            self.range_bytes as f64 / 1e6,
            self.range_seconds
        );
        let _ = writeln!(
            out,
            "small puts p99 {:.2} ms alone, {:.2} ms beside the range ({} of them done before it)",
            self.puts_before.p99, self.puts_during.p99, self.puts_done_while_range_ran
        );
        out
    }
}
