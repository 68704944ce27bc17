//! Real chaos runs against real etcr processes: a minute of faults with nothing wrong found
//! (registers, watchers and leases), and a run with serializable (local) reads, which the checker must flag.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The etcr binary of this build, built first if it is not there yet.
fn etcr() -> PathBuf {
    let chaos = PathBuf::from(env!("CARGO_BIN_EXE_etcr-chaos"));
    let bin = chaos.with_file_name("etcr");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "etcr"])
            .status()
            .expect("run cargo build -p etcr");
        assert!(status.success(), "cargo build -p etcr failed");
    }
    bin
}

fn chaos(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_etcr-chaos"))
        .arg("--etcr")
        .arg(etcr())
        .args(args)
        .output()
        .expect("run etcr-chaos");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The number just before `before` on the first line holding it: `0` in "..., 0 violations".
fn figure(text: &str, before: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let at = l.find(before)?;
        l[..at].split_whitespace().last()?.parse().ok()
    })
}

/// The number just after `after` on the first line holding it: `12` in "resumes 12 (...".
fn figure_after(text: &str, after: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let at = l.find(after)? + after.len();
        l[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn a_minute_of_faults_finds_no_violation_and_no_lost_write() {
    let (out, text) = chaos(&["--duration", "60s", "--seed", "19"]);
    assert!(out.status.success(), "{text}");
    assert_eq!(figure(&text, " violations"), Some(0), "{text}");
    assert!(text.contains("lost acknowledged writes: 0"), "{text}");
    assert!(text.contains("members converged"), "{text}");
    // The watchers saw every revision once, in order, and the writes' own revisions.
    assert_eq!(figure(&text, " watch violations"), Some(0), "{text}");
    assert!(
        figure_after(&text, "events seen ").unwrap_or(0) > 0,
        "{text}"
    );
    assert!(
        text.contains("acknowledged writes missing from the watch history: 0 of"),
        "{text}"
    );
    assert!(text.contains("revisions missing from it: 0"), "{text}");
    // No kept lease expired; the leases left alone expired, each once, in time.
    assert_eq!(figure(&text, " unexpected expiries"), Some(0), "{text}");
    assert!(
        figure_after(&text, "keep-alives ").unwrap_or(0) > 0,
        "{text}"
    );
    assert!(figure_after(&text, "(expired ").unwrap_or(0) > 0, "{text}");
    assert!(
        text.contains("0 early, 0 late, 0 never, 0 not exactly once"),
        "{text}"
    );
    // Faults really happened.
    let faults: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("faults: ")?.trim().parse().ok())
        .unwrap_or(0);
    assert!(faults >= 3, "{text}");
}

#[test]
/// Serializable reads answer from the member's own store: stale on a follower that lags or
/// is cut off. The checker must see it in the history of a real run.
fn serializable_reads_are_flagged_as_not_linearizable() {
    let (out, text) = chaos(&[
        "--duration",
        "15s",
        "--seed",
        "4",
        "--serializable-reads",
        "--faults",
        "isolate,isolate-leader",
        "--discard-data",
    ]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let violations = figure(&text, " violations").unwrap_or(0);
    assert!(violations > 0, "{text}");
    assert!(text.contains("smallest failing history"), "{text}");
    assert!(text.contains("replay with --seed 4"), "{text}");
}
