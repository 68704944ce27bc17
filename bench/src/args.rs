//! Command-line flags, in the spirit of etcd's `benchmark` tool.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `Put` of one key.
    Put,
    /// `Range` of one key (linearizable unless `--consistency s`).
    Range,
    /// `Txn` with no compares and `--txn-ops` puts.
    TxnPut,
    /// `Range` with probability `--read-ratio`, `Put` otherwise.
    Mixed,
    /// `LeaseGrant` of a `--lease-ttl` lease.
    LeaseGrant,
    /// Watchers (`--watchers` on `--watch-streams`) under a put load: events delivered,
    /// put throughput with and without them, put-to-event latency; `--catch-up`.
    Watch,
    /// `--leases` leases kept alive every TTL/3 over `--keepalive-streams` streams.
    LeaseKeepalive,
    /// `--leases` leases with a key each expiring together, beside a put load.
    LeaseExpiry,
    /// Small puts on one connection, alone and beside a `--big-range-mib` range.
    BigRange,
}

impl Workload {
    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Range => "range",
            Workload::TxnPut => "txn-put",
            Workload::Mixed => "mixed",
            Workload::LeaseGrant => "lease-grant",
            Workload::Watch => "watch",
            Workload::LeaseKeepalive => "lease-keepalive",
            Workload::LeaseExpiry => "lease-expiry",
            Workload::BigRange => "big-range",
        }
    }
}

/// Read consistency: etcd's `l` (linearizable) or `s` (serializable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub enum Consistency {
    /// Linearizable: the member confirms it is up to date through a ReadIndex round.
    #[value(name = "l")]
    #[serde(rename = "l")]
    Linearizable,
    /// Serializable: the member answers from its local store.
    #[value(name = "s")]
    #[serde(rename = "s")]
    Serializable,
}

/// Load generator for the etcd v3 gRPC API (etcr or etcd).
#[derive(Clone, Debug, Parser)]
#[command(name = "etcr-bench")]
pub struct Args {
    /// The workload to run.
    #[arg(value_enum)]
    pub workload: Workload,

    /// Client endpoints, comma-separated (`host:port` or `http://host:port`).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Send every request to the leader (found through Maintenance.Status) instead of
    /// spreading the connections over the endpoints round-robin.
    #[arg(long)]
    pub target_leader: bool,

    /// gRPC connections (HTTP/2 channels).
    #[arg(long, default_value_t = 1)]
    pub conns: usize,

    /// Concurrent request loops, spread over the connections.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,

    /// Total requests to send (default 10000 unless `--duration` is given).
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,

    /// Send requests for this many seconds instead of a fixed total.
    #[arg(long)]
    pub duration: Option<f64>,

    /// Key size in bytes (keys are zero-padded decimal numbers from the key space).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,

    /// Value size in bytes.
    #[arg(long = "val-size", default_value_t = 256)]
    pub value_size: usize,

    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub key_space_size: u64,

    /// Walk the key space in order (0, 1, 2, ...) instead of picking keys at random.
    #[arg(long)]
    pub sequential_keys: bool,

    /// Read consistency: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,

    /// Share of reads in the mixed workload, from 0 to 1.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,

    /// Puts per transaction in the txn-put workload.
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,

    /// Give up on a request after this many seconds (counted as DeadlineExceeded).
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,

    /// Authenticate as this user (`name:password`, or `name` with `--password`) before the
    /// run; every request then carries the token.
    #[arg(long)]
    pub user: Option<String>,

    /// The password of `--user`.
    #[arg(long)]
    pub password: Option<String>,

    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print `mark <phase>` lines on stdout as phases begin (for a caller sampling the
    /// members' memory and CPU).
    #[arg(long)]
    pub marks: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: crate::watch::WatchArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub lease: crate::lease::LeaseArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub big_range: crate::big_range::BigRangeArgs,
}

/// When a run stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// After this many requests (successful or not).
    Total(u64),
    /// After this long.
    Duration(Duration),
}

impl Args {
    /// Checks the flags that clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.conns == 0 || self.clients == 0 {
            return Err("--conns and --clients must be at least 1".into());
        }
        if self.endpoints.is_empty() {
            return Err("--endpoints is empty".into());
        }
        if self.key_size == 0 || self.key_space_size == 0 {
            return Err("--key-size and --key-space-size must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err("--read-ratio must be between 0 and 1".into());
        }
        if self.txn_ops == 0 || self.txn_ops as u64 > self.key_space_size {
            return Err("--txn-ops must be between 1 and --key-space-size".into());
        }
        if self.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
            return Err("--duration must be a positive number of seconds".into());
        }
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            return Err("--timeout must be a positive number of seconds".into());
        }
        self.watch.validate()?;
        self.lease.validate()
    }

    /// When the run stops: `--duration`, else `--total`, else after 10000 requests.
    pub fn stop(&self) -> Stop {
        match (self.total, self.duration) {
            (_, Some(secs)) => Stop::Duration(Duration::from_secs_f64(secs)),
            (Some(n), None) => Stop::Total(n),
            (None, None) => Stop::Total(10_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_etcd_benchmark_sizes() {
        let args = Args::parse_from(["etcr-bench", "put"]);
        assert_eq!(args.key_size, 8);
        assert_eq!(args.value_size, 256);
        assert_eq!(args.stop(), Stop::Total(10_000));
        assert_eq!(args.consistency, Consistency::Linearizable);
        assert!(args.validate().is_ok());
    }

    #[test]
    fn parses_lists_and_duration() {
        let args = Args::parse_from([
            "etcr-bench",
            "range",
            "--endpoints",
            "a:1,b:2",
            "--consistency",
            "s",
            "--duration",
            "2.5",
        ]);
        assert_eq!(args.endpoints, ["a:1", "b:2"]);
        assert_eq!(args.consistency, Consistency::Serializable);
        assert_eq!(args.stop(), Stop::Duration(Duration::from_millis(2500)));
    }

    #[test]
    fn rejects_nonsense() {
        let args = Args::parse_from(["etcr-bench", "mixed", "--read-ratio", "1.5"]);
        assert!(args.validate().is_err());
        let args = Args::parse_from(["etcr-bench", "put", "--clients", "0"]);
        assert!(args.validate().is_err());
    }
}
