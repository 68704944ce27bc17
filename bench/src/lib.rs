//! `etcr-bench`: a load generator for the etcd v3 gRPC API, modelled on etcd's `benchmark`
//! tool. It speaks only the public API, so it measures etcr and etcd alike.
//!
//! A run sends one workload (`put`, `range`, `txn-put`, `mixed` or `lease-grant`) from
//! `--clients` concurrent request loops spread over `--conns` HTTP/2 channels, for `--total`
//! requests or `--duration` seconds, and reports throughput, latency percentiles and errors
//! by gRPC code. The streaming workloads have their own modules and reports: `watch`
//! ([`watch`]), `lease-keepalive` and `lease-expiry` ([`lease`]), `big-range` ([`big_range`]).
//!
//! ```no_run
//! use clap::Parser;
//! use etcr_bench::{run, Args};
//!
//! # async fn example() -> Result<(), etcr_bench::BenchError> {
//! let args = Args::parse_from([
//!     "etcr-bench", "put", "--endpoints", "127.0.0.1:2379",
//!     "--conns", "10", "--clients", "100", "--total", "10000",
//! ]);
//! let report = run(&args).await?;
//! println!("{}", report.table());
//! assert_eq!(report.errors, 0);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod args;
mod auth;
pub mod big_range;
pub mod histogram;
pub mod lease;
pub mod putter;
pub mod report;
pub mod runner;
pub mod watch;
pub mod workload;

use std::path::PathBuf;

pub use args::{Args, Consistency, Workload};
pub use report::{Latency, Report};
pub use runner::run;

/// Why a benchmark could not run. Failed requests are not errors: they are counted in the
/// [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The flags do not make sense together.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// An endpoint is not a valid URL.
    #[error("invalid endpoint {0}: {1}")]
    Endpoint(String, String),
    /// A channel could not be opened.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint's URL.
        endpoint: String,
        /// The transport's error.
        reason: String,
    },
    /// `--target-leader` found no leader among the endpoints.
    #[error("no leader found: {0}")]
    NoLeader(String),
    /// `--user` could not authenticate.
    #[error("cannot authenticate: {0}")]
    Auth(String),
    /// A request loop panicked.
    #[error("request loop failed: {0}")]
    Task(String),
    /// The JSON report could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The `--json` file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}
