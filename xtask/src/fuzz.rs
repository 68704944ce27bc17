//! `cargo xtask fuzz`: the property tests that feed the network- and disk-facing decoders
//! arbitrary and damaged bytes, run for a set time per target instead of CI's fixed case
//! count (`ETCR_FUZZ_SECONDS`, read by the tests' drivers).

use std::process::Command;

/// The `cargo test` arguments that select each fuzz target.
const TARGETS: [&[&str]; 4] = [
    &["-p", "transport", "--test", "fuzz_frames"],
    &["-p", "raft-wal", "--test", "fuzz_recovery"],
    &["-p", "grpc-h2", "--test", "fuzz_connection"],
    // Client requests into validation, inside the server binary's unit tests.
    &["-p", "etcr", "--bin", "etcr", "validate::fuzz"],
];

#[derive(clap::Args)]
pub struct Args {
    /// How long each target runs: 60s, 10m, 1h.
    #[arg(long, default_value = "1m")]
    duration: String,
}

fn seconds(s: &str) -> anyhow::Result<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a duration like 90s, 10m, 1h"))?;
    Ok(match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => anyhow::bail!("unknown unit in {s:?}: use s, m or h"),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let secs = seconds(&args.duration)?;
    for target in TARGETS {
        eprintln!("== fuzz {} for {secs} s", target.join(" "));
        crate::run_cmd(
            Command::new("cargo")
                .arg("test")
                .args(target)
                // Every test at once, so each gets the whole time rather than a turn.
                .arg("--")
                .args(["--nocapture", "--test-threads", "64"])
                .env("ETCR_FUZZ_SECONDS", secs.to_string()),
        )?;
    }
    Ok(())
}
