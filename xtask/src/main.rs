//! Project automation, run as `cargo xtask <command>`:
//!
//! - `cluster up|status|stop|start|down`: a local etcr cluster in the background, under `.etcr/`.
//! - `test`: everything CI runs (installs Debian's etcd packages the compatibility tests need).
//! - `bench raft|transport|mvcc`: the crates' benchmarks; `bench check-perf`,
//!   `bench compare`, `bench watch`, `bench lease`, `bench join`, `bench maintenance` and
//!   `bench auth`: etcr and etcd 3.4 clusters side by side.
//! - `chaos`: a linearizability-checked workload on a cluster under faults (etcr-chaos).
//! - `fuzz`: the decoder fuzz tests (transport frames, raft-wal recovery) for a set time.
//! - `certs`: a cluster CA, member certificates (peer mTLS, client TLS) and a client certificate.

mod authbench;
mod bench;
mod bench_join;
mod bench_lease;
mod bench_watch;
mod certs;
mod chaos;
mod checkperf;
mod cluster;
mod compare;
mod fuzz;
mod health;
mod maintenance;
mod packages;
mod procs;
mod side_by_side;
mod test;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "etcr project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local cluster in the background.
    Cluster {
        #[command(subcommand)]
        action: cluster::Action,
    },
    /// Run the whole test suite, as CI does.
    Test(test::Args),
    /// Run a benchmark.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
    /// Chaos test: a checked register workload under kills, pauses and partitions.
    Chaos(chaos::Args),
    /// Feed the wire and log decoders arbitrary and damaged bytes for a while.
    Fuzz(fuzz::Args),
    /// Create a cluster CA, member certificates (for peers and clients) and a client
    /// certificate for the user `root` (client.pem).
    Certs {
        /// Where to write the PEM files.
        #[arg(long, default_value = ".etcr/certs")]
        dir: PathBuf,
        /// Member names, comma-separated.
        #[arg(long, default_value = "m1,m2,m3")]
        members: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cluster { action } => cluster::run(action),
        Command::Test(args) => test::run(args),
        Command::Bench { which } => bench::run(which),
        Command::Chaos(args) => chaos::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Certs { dir, members } => {
            let names: Vec<String> = members
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            certs::generate(&dir, &names)
                .and_then(|_| certs::generate_client(&dir, "root"))
                .map(|_| println!("certificates for {} in {}", names.join(", "), dir.display()))
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs a command in the workspace root, failing with its exit status.
pub fn run_cmd(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    let status = cmd
        .current_dir(workspace_root())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e}"))?;
    if !status.success() {
        anyhow::bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
