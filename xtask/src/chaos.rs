//! `cargo xtask chaos`: builds etcr and etcr-chaos (release, or dev with `--dev`) and runs
//! the chaos test, a linearizability-checked register workload, watchers and lease holders
//! under kills, pauses and partitions.

use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// How long the faults run: 60s, 10m, 1h.
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Members (3 to 7).
    #[arg(long, default_value_t = 3)]
    size: usize,
    /// Replays a fault schedule printed by an earlier run.
    #[arg(long)]
    seed: Option<u64>,
    /// Use dev (debug) binaries: a much shorter build, slower members.
    #[arg(long)]
    dev: bool,
    /// Further etcr-chaos flags (`--clients`, `--keys`, `--faults`, `--watchers`, `--keepers`,
    /// `--lease-ttl`, `--serializable-reads`...).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let profile = if args.dev { "debug" } else { "release" };
    eprintln!("== building {profile} binaries (etcr, etcr-chaos)");
    let mut build = Command::new("cargo");
    build.args(["build", "-p", "etcr", "-p", "etcr-chaos"]);
    if !args.dev {
        build.arg("--release");
    }
    crate::run_cmd(&mut build)?;
    let bins = crate::procs::target_dir().join(profile);
    let mut cmd = Command::new(bins.join("etcr-chaos"));
    cmd.arg("--etcr")
        .arg(bins.join("etcr"))
        .args(["--duration", &args.duration])
        .args(["--size", &args.size.to_string()]);
    if let Some(seed) = args.seed {
        cmd.args(["--seed", &seed.to_string()]);
    }
    cmd.args(&args.rest);
    crate::run_cmd(&mut cmd)
}
