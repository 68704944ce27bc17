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
}

pub fn run(which: Which) -> anyhow::Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--release", "--quiet"]);
    match which {
        Which::Raft => cmd.args(["-p", "raft-core", "--example", "throughput"]),
        Which::Transport => cmd.args(["-p", "transport-quic", "--example", "transport_bench"]),
        Which::Mvcc { keys } => cmd
            .args(["-p", "mvcc", "--example", "open_bench", "--"])
            .arg(keys.to_string()),
    };
    crate::run_cmd(&mut cmd)
}
