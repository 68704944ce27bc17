//! What `bench watch`, `bench lease` and `bench join` share: the release binaries, etcr-bench
//! runs whose phases the caller samples (`--marks`), and a Markdown table of figures for both
//! systems with their ratio and the target.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::procs;

/// Members per cluster.
pub const MEMBERS: usize = 3;

/// The two systems: name and server binary.
pub struct Systems {
    pub list: [(&'static str, PathBuf); 2],
    pub bench_bin: PathBuf,
}

/// Installs etcd 3.4 if missing and builds etcr and etcr-bench in release mode.
pub fn prepare() -> anyhow::Result<Systems> {
    crate::packages::ensure_etcd()?;
    eprintln!("== building etcr and etcr-bench (release)");
    crate::run_cmd(Command::new("cargo").args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "etcr",
        "-p",
        "etcr-bench",
    ]))?;
    let release = procs::target_dir().join("release");
    Ok(Systems {
        list: [
            ("etcr", release.join("etcr")),
            ("etcd", PathBuf::from("/usr/bin/etcd")),
        ],
        bench_bin: release.join("etcr-bench"),
    })
}

/// A fresh work directory `target/bench/<name>`.
pub fn work_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = crate::workspace_root().join("target/bench").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs etcr-bench with `args` against `endpoints`, with `--marks` and a JSON report in
/// `json`; calls `on_mark` with each phase as it begins (the bench waits meanwhile only as
/// long as the call takes). Returns the report.
pub fn bench(
    bench_bin: &Path,
    endpoints: &[String],
    json: &Path,
    args: &[String],
    on_mark: &mut dyn FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<serde_json::Value> {
    eprintln!("   etcr-bench {}", args.join(" "));
    let mut child = Command::new(bench_bin)
        .args(args)
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .arg("--json")
        .arg(json)
        .args(["--marks", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", bench_bin.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut marked = Ok(());
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match line.strip_prefix("mark ") {
            Some(phase) if marked.is_ok() => marked = on_mark(phase),
            Some(_) => {}
            None => eprintln!("   {line}"),
        }
    }
    let status = child.wait()?;
    marked?;
    if !status.success() {
        anyhow::bail!("etcr-bench {} failed with {status}", args.join(" "));
    }
    Ok(serde_json::from_str(&fs::read_to_string(json)?)?)
}

/// A number in a report, by JSON pointer (`/put_baseline/throughput`); 0 when absent.
pub fn num(report: &serde_json::Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

/// Owned strings from literals, for etcr-bench's arguments.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// What the issue asks of a figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// etcr / etcd at least this.
    RatioAtLeast(f64),
    /// etcr / etcd at most this.
    RatioAtMost(f64),
    /// etcr's figure at least this.
    AtLeast(f64),
    /// etcr's figure at most this.
    AtMost(f64),
}

impl Target {
    fn met(self, etcr: f64, etcd: f64) -> Option<bool> {
        let ratio = (etcd != 0.0).then(|| etcr / etcd);
        match self {
            Target::RatioAtLeast(t) => ratio.map(|r| r >= t),
            Target::RatioAtMost(t) => ratio.map(|r| r <= t),
            Target::AtLeast(t) => Some(etcr >= t),
            Target::AtMost(t) => Some(etcr <= t),
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::RatioAtLeast(t) => format!("ratio ≥ {t}"),
            Target::RatioAtMost(t) => format!("ratio ≤ {t}"),
            Target::AtLeast(t) => format!("etcr ≥ {}", format_value(t, unit)),
            Target::AtMost(t) => format!("etcr ≤ {}", format_value(t, unit)),
        }
    }
}

/// One figure for both systems.
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    pub etcr: f64,
    pub etcd: f64,
    /// `/s`, `ms`, `MiB`, `s`, `%`, `B`, `GB/s` or empty.
    pub unit: &'static str,
    pub target: Option<Target>,
}

impl Row {
    pub fn new(label: impl Into<String>, unit: &'static str, etcr: f64, etcd: f64) -> Row {
        Row {
            label: label.into(),
            etcr,
            etcd,
            unit,
            target: None,
        }
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }
}

fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "/s" => format!("{v:.0}/s"),
        "ms" => format!("{v:.2} ms"),
        "s" => format!("{v:.2} s"),
        "MiB" => format!("{v:.1} MiB"),
        "%" => format!("{v:.1}%"),
        "B" => format!("{v:.0} B"),
        "GB/s" => format!("{v:.2} GB/s"),
        _ => format!("{v:.2}"),
    }
}

/// The table: one row per figure, both systems, the ratio, the target and whether etcr met it.
pub fn markdown(title: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(
        out,
        "| figure | etcr | etcd 3.4 | etcr/etcd | target | met |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    for r in rows {
        let ratio = if r.etcd != 0.0 {
            format!("{:.2}", r.etcr / r.etcd)
        } else {
            "-".into()
        };
        let (target, met) = match r.target {
            Some(t) => (
                t.describe(r.unit),
                match t.met(r.etcr, r.etcd) {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "-",
                },
            ),
            None => (String::new(), ""),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {target} | {met} |",
            r.label,
            format_value(r.etcr, r.unit),
            format_value(r.etcd, r.unit)
        );
    }
    out
}

/// Prints the table and writes it, with the raw reports, under `target/bench/`.
pub fn publish(name: &str, table: &str, raw: serde_json::Value) -> anyhow::Result<()> {
    let out = crate::workspace_root().join("target/bench");
    println!("\n{table}");
    fs::write(out.join(format!("{name}.md")), table)?;
    fs::write(
        out.join(format!("{name}.json")),
        serde_json::to_string_pretty(&raw)? + "\n",
    )?;
    eprintln!("== wrote {0}/{name}.md and {0}/{name}.json", out.display());
    Ok(())
}

/// Bytes as MiB.
pub fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// The cores the members and etcr-bench share.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_check_ratios_and_absolute_figures() {
        assert_eq!(Target::RatioAtLeast(3.0).met(300.0, 100.0), Some(true));
        assert_eq!(Target::RatioAtLeast(3.0).met(299.0, 100.0), Some(false));
        assert_eq!(Target::RatioAtMost(0.5).met(50.0, 100.0), Some(true));
        assert_eq!(Target::RatioAtMost(0.5).met(1.0, 0.0), None);
        assert_eq!(Target::AtMost(10.0).met(12.0, 1.0), Some(false));
        assert_eq!(Target::AtLeast(0.9).met(0.95, 0.2), Some(true));
    }

    #[test]
    fn table_rows_carry_both_figures_ratio_and_verdict() {
        let rows = [
            Row::new("events/s", "/s", 30_000.0, 10_000.0).target(Target::RatioAtLeast(3.0)),
            Row::new("p99", "ms", 12.0, 40.0).target(Target::AtMost(10.0)),
            Row::new("create", "s", 1.0, 0.0),
        ];
        let md = markdown("t", &rows);
        assert!(
            md.contains("| events/s | 30000/s | 10000/s | 3.00 | ratio ≥ 3 | yes |"),
            "{md}"
        );
        assert!(
            md.contains("| p99 | 12.00 ms | 40.00 ms | 0.30 | etcr ≤ 10.00 ms | **no** |"),
            "{md}"
        );
        assert!(
            md.contains("| create | 1.00 s | 0.00 s | - |  |  |"),
            "{md}"
        );
    }

    #[test]
    fn numbers_come_from_json_pointers() {
        let v = serde_json::json!({"a": {"b": 2.5}, "c": 3});
        assert_eq!(num(&v, "/a/b"), 2.5);
        assert_eq!(num(&v, "/c"), 3.0);
        assert_eq!(num(&v, "/missing"), 0.0);
    }
}
