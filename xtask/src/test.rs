//! `cargo xtask test`: the whole suite, exactly what CI runs: the checks a reviewer makes
//! (formatting, lints, docs), then the build and the tests, with one summary line per stage.

use std::process::Command;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Run only the tests, skipping the formatting, lint and documentation checks.
    #[arg(long)]
    pub tests_only: bool,
    /// Extra arguments passed to `cargo test` (for example a test name filter).
    #[arg(trailing_var_arg = true)]
    pub cargo_args: Vec<String>,
}

/// One stage of the run: what it is called in the summary, and the command it runs.
struct Stage {
    name: &'static str,
    command: Command,
}

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new("cargo");
    c.args(args);
    c
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::packages::ensure_etcd()?;
    let mut stages = Vec::new();
    if !args.tests_only {
        stages.push(Stage {
            name: "fmt",
            command: cargo(&["fmt", "--all", "--", "--check"]),
        });
        stages.push(Stage {
            name: "clippy",
            command: cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ]),
        });
        let mut doc = cargo(&["doc", "--workspace", "--no-deps", "--quiet"]);
        doc.env("RUSTDOCFLAGS", "-D warnings");
        stages.push(Stage {
            name: "doc",
            command: doc,
        });
    }
    stages.push(Stage {
        name: "build",
        // The binaries the integration tests start.
        command: cargo(&["build", "--workspace", "--bins"]),
    });
    let mut test = cargo(&["test", "--workspace", "--no-fail-fast"]);
    test.args(&args.cargo_args);
    stages.push(Stage {
        name: "test",
        command: test,
    });

    let mut summary: Vec<(&str, Duration, bool)> = Vec::new();
    let started = Instant::now();
    for mut stage in stages {
        eprintln!("== {}", stage.name);
        let t = Instant::now();
        let ok = crate::run_cmd(&mut stage.command).is_ok();
        summary.push((stage.name, t.elapsed(), ok));
        // The tests need the binaries; any other failure lets the run go on, so that one
        // run shows every problem.
        if !ok && matches!(stage.name, "build") {
            break;
        }
    }
    eprintln!("== summary");
    for (name, took, ok) in &summary {
        let verdict = if *ok { "ok" } else { "FAILED" };
        eprintln!("{name:<8} {verdict:<7} {:>7.1} s", took.as_secs_f64());
    }
    eprintln!(
        "total            {:>7.1} s",
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<&str> = summary
        .iter()
        .filter(|(_, _, ok)| !ok)
        .map(|(n, _, _)| *n)
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("failed stages: {}", failed.join(", "));
    }
    Ok(())
}
