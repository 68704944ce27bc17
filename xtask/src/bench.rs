//! `cargo xtask bench`: runs the benchmarks in release mode and prints their tables.

use std::process::Command;

#[derive(clap::Subcommand)]
pub enum Which {
    /// raft-core: committed proposals per second of a 3-member in-memory cluster.
    Raft,
    /// Peer transports over loopback: throughput and latency for TCP and QUIC.
    Transport,
    /// mvcc: open time and memory of a store holding many keys.
    Mvcc {
        /// Number of keys in the store.
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
    },
    /// `etcdctl check perf` against one etcr member, then one etcd 3.4 member.
    CheckPerf {
        /// The load profile: s, m, l or xl.
        #[arg(long, default_value = "m")]
        load: String,
        /// Members per cluster.
        #[arg(long, default_value_t = 3)]
        size: usize,
        /// etcr's peer transport: tcp or quic.
        #[arg(long = "peer-transport", default_value = "tcp")]
        peer_transport: String,
    },
    /// Range throughput with auth off and on (a simple token), on a 3-member etcr and a
    /// 3-member etcd 3.4: target/bench/auth.{md,json}.
    Auth {
        /// Seconds per measurement (four per round and system).
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Rounds of auth off, then on; each cell is the best round.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// etcr-bench against a 3-member etcr, then a 3-member etcd 3.4: one Markdown table,
    /// target/bench/compare.{md,json} and target/bench/latency.svg.
    Compare {
        /// Three short workloads instead of the full matrix (under 3 minutes).
        #[arg(long)]
        quick: bool,
    },
    /// Watch against etcr and etcd 3.4 (3 members each): memory of 100k idle watchers,
    /// fan-out, put-to-event latency, catch-up; target/bench/watch.{md,json}.
    Watch {
        /// 3 s put phases instead of 10 and a 50k-revision catch-up instead of 1M.
        #[arg(long)]
        quick: bool,
    },
    /// Leases against etcr and etcd 3.4: grant throughput, keep-alive cost, mass expiry;
    /// target/bench/lease.{md,json}.
    Lease {
        /// 50k leases instead of 100k and a 10 s keep-alive phase instead of 30 s.
        #[arg(long)]
        quick: bool,
    },
    /// How long a 4th member takes to join a 3-member cluster holding `--keys` keys, etcr
    /// and etcd 3.4; target/bench/join.{md,json}.
    Join {
        /// Keys in the cluster before the member joins.
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
    },
    /// Snapshot save MB/s, db size around compaction and defrag, put latency during
    /// defrags and member memory under a 5,000-client overload: etcr beside etcd 3.4,
    /// target/bench/maintenance.{md,json}.
    Maintenance(crate::maintenance::Args),
}

pub fn run(which: Which) -> anyhow::Result<()> {
    let example = |package: &str, name: &str| {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "run",
            "--release",
            "--quiet",
            "-p",
            package,
            "--example",
            name,
        ]);
        cmd
    };
    let mut cmd = match which {
        Which::CheckPerf {
            load,
            size,
            peer_transport,
        } => return crate::checkperf::run(&load, size, &peer_transport),
        Which::Compare { quick } => return crate::compare::run(quick),
        Which::Watch { quick } => return crate::bench_watch::run(quick),
        Which::Lease { quick } => return crate::bench_lease::run(quick),
        Which::Join { keys } => return crate::bench_join::run(keys),
        Which::Maintenance(args) => return crate::maintenance::run(args),
        Which::Auth { seconds, rounds } => return crate::authbench::run(seconds, rounds),
        Which::Raft => example("raft-core", "throughput"),
        Which::Transport => example("transport-quic", "transport_bench"),
        Which::Mvcc { keys } => {
            let mut cmd = example("mvcc", "open_bench");
            cmd.arg("--").arg(keys.to_string());
            cmd
        }
    };
    crate::run_cmd(&mut cmd)
}
