//! The result of a run: throughput, latency percentiles and errors, as a table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Latency percentiles of the successful requests, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Average.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// Summarises latencies given in microseconds (sorts them in place).
    pub fn from_micros(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        // Nearest rank: the smallest sample with at least q of the samples at or below it.
        let at = |q: f64| {
            let rank = (q * samples.len() as f64).ceil() as usize;
            ms(samples[rank.clamp(1, samples.len()) - 1])
        };
        let sum: u64 = samples.iter().sum();
        Latency {
            mean: ms(sum) / samples.len() as f64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: ms(samples[samples.len() - 1]),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `put`, `range`, `txn-put` or `mixed`.
    pub workload: String,
    /// The endpoints the connections went to.
    pub endpoints: Vec<String>,
    /// gRPC connections.
    pub conns: usize,
    /// Concurrent request loops.
    pub clients: usize,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// Read consistency, `l` or `s`.
    pub consistency: String,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests by gRPC code name (`Unavailable`, `DeadlineExceeded`, ...).
    pub errors_by_code: BTreeMap<String, u64>,
    /// The first error message seen for each code.
    pub error_samples: BTreeMap<String, String>,
    /// Wall-clock time of the run.
    pub seconds: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of the successful requests.
    pub latency_ms: Latency,
}

impl Report {
    /// A human-readable summary, like etcd's benchmark prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "{} ({} conns, {} clients, key {} B, value {} B, consistency {}) against {}",
            self.workload,
            self.conns,
            self.clients,
            self.key_size,
            self.value_size,
            self.consistency,
            self.endpoints.join(",")
        );
        let _ = writeln!(out, "  total:        {:.4} s", self.seconds);
        let _ = writeln!(
            out,
            "  requests:     {} ok, {} errors",
            self.requests, self.errors
        );
        let _ = writeln!(out, "  requests/s:   {:.1}", self.throughput);
        let _ = writeln!(
            out,
            "  latency (ms): {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "mean", "p50", "p90", "p99", "p99.9", "max"
        );
        let _ = writeln!(
            out,
            "                {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            l.mean, l.p50, l.p90, l.p99, l.p999, l.max
        );
        for (code, n) in &self.errors_by_code {
            let sample = self.error_samples.get(code).map_or("", String::as_str);
            let _ = writeln!(out, "  error {code}: {n} ({sample})");
        }
        out
    }
}

/// Writes a report as pretty JSON to `path`.
pub fn write_json<T: Serialize>(
    path: &std::path::Path,
    report: &T,
) -> Result<(), crate::BenchError> {
    let text = serde_json::to_string_pretty(report).expect("a report serialises");
    std::fs::write(path, text + "\n").map_err(|e| crate::BenchError::Write {
        path: path.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<u64> = (1..=1000).rev().map(|i| i * 1000).collect();
        let l = Latency::from_micros(&mut samples);
        assert_eq!(l.p50, 500.0);
        assert_eq!(l.p90, 900.0);
        assert_eq!(l.p99, 990.0);
        assert_eq!(l.p999, 999.0);
        assert_eq!(l.max, 1000.0);
        assert_eq!(l.mean, 500.5);
    }

    #[test]
    fn one_sample_and_none() {
        let l = Latency::from_micros(&mut [1500]);
        assert_eq!((l.p50, l.p999, l.max), (1.5, 1.5, 1.5));
        assert_eq!(Latency::from_micros(&mut []), Latency::default());
    }
}
