//! `cargo xtask bench maintenance`: the Maintenance figures of issue 20, etcr beside etcd 3.4
//! (Debian's), each on a fresh cluster of `--members` members on this machine, with the same
//! clients: etcdctl 3.4 for snapshot save, compaction and defrag, etcr-bench for the load.
//!
//! - the overload: `etcr-bench put` at `--overload-clients` clients for `--overload-seconds`
//!   on a fresh cluster, and each member's peak RSS (VmHWM) after it; then a fresh cluster for
//!   the rest;
//! - snapshot save of a store of `--size-mib` MiB of 1 KiB values: MB/s of the file, and
//!   MiB of values per second;
//! - the store's size before and after deleting half the keys, compacting and defragmenting
//!   every member;
//! - put latency (10 clients) without a defragmentation, then while every member is
//!   defragmented over and over (`etcdctl defrag` on all endpoints, in a loop);
//! - `--big-range-mib` MiB read by one range while small puts go over the same connection
//!   (`etcr-bench big-range`): the puts' p99 alone and beside the range.
//!
//! The defaults run in about 2-3 minutes. For the issue's 1 GiB store:
//! `cargo xtask bench maintenance --size-mib 1024 --overload-seconds 30`.
//! Writes `target/bench/maintenance.{md,json}`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::compare::{bench, mib, peak_rss, ratio, BenchReport};
use crate::procs;

/// Value size of the store's keys. Below LMDB's largest node (about half a 4 KiB page), so
/// that values are not stored on overflow pages, which would round each one up to whole
/// pages (a 4 KiB value takes two).
const VALUE: u64 = 1024;
/// Puts per transaction while filling.
const FILL_TXN_OPS: u64 = 64;

#[derive(clap::Args)]
pub struct Args {
    /// Size of the store's values to write, MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Members per cluster.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Clients of the overload (`etcr-bench put`).
    #[arg(long, default_value_t = 5000)]
    overload_clients: usize,
    /// Seconds of the overload.
    #[arg(long, default_value_t = 15)]
    overload_seconds: u32,
    /// Seconds of each put-latency run (without, then during defragmentation).
    #[arg(long, default_value_t = 10)]
    latency_seconds: u32,
    /// MiB of the large range beside small puts on one connection.
    #[arg(long, default_value_t = 100)]
    big_range_mib: u64,
}

/// What `etcr-bench big-range` reports (the fields read here).
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct BigRange {
    range_bytes: u64,
    range_seconds: f64,
    puts_before: Percentiles,
    puts_during: Percentiles,
    puts_done_while_range_ran: u64,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct Percentiles {
    p99: f64,
    max: f64,
}

/// Everything measured on one system.
#[derive(Debug, Default, Serialize)]
struct Measured {
    name: String,
    overload: BenchReport,
    overload_peak_rss: Vec<u64>,
    /// Private memory (RssAnon) right after the overload: the peak RSS also counts the pages
    /// of the store's file mapped in, which grow with what was written.
    overload_anon_rss: Vec<u64>,
    snapshot_bytes: u64,
    snapshot_seconds: f64,
    db_size_full: Vec<u64>,
    db_size_compacted: Vec<u64>,
    db_size_defragmented: Vec<u64>,
    /// One `etcdctl defrag` of every member, after the compaction.
    defrag_seconds: f64,
    puts: BenchReport,
    puts_during_defrag: BenchReport,
    defrags_during: u32,
    big_range: BigRange,
}

impl Measured {
    fn snapshot_mb_per_s(&self) -> f64 {
        self.snapshot_bytes as f64 / 1e6 / self.snapshot_seconds.max(1e-9)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let systems = crate::side_by_side::prepare()?;
    let out_dir = crate::workspace_root().join("target/bench");
    let work = crate::side_by_side::work_dir("maintenance")?;
    let started = Instant::now();
    let mut results = Vec::new();
    for (name, bin) in systems.list {
        let result = measure(name, &bin, &systems.bench_bin, &work.join(name), &args);
        // The data directories are large; keep only the reports and logs.
        for d in ["", "overload"] {
            for i in 1..=args.members {
                let _ = fs::remove_dir_all(work.join(name).join(d).join(format!("m{i}")));
            }
        }
        results.push(result?);
    }
    let table = markdown(&results[0], &results[1], &args);
    println!("\n{table}");
    fs::write(out_dir.join("maintenance.md"), &table)?;
    let json = serde_json::json!({
        "members": args.members,
        "size_mib": args.size_mib,
        "overload_clients": args.overload_clients,
        "overload_seconds": args.overload_seconds,
        "systems": results,
    });
    fs::write(
        out_dir.join("maintenance.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    eprintln!(
        "== measured in {:.0} s; wrote {1}/maintenance.md and {1}/maintenance.json",
        started.elapsed().as_secs_f64(),
        out_dir.display()
    );
    Ok(())
}

fn measure(
    name: &str,
    bin: &Path,
    bench_bin: &Path,
    dir: &Path,
    args: &Args,
) -> anyhow::Result<Measured> {
    let members = args.members;
    eprintln!(
        "== {name}: starting {members} members under {}",
        dir.display()
    );
    // etcd's default quota (2 GiB) is below what a 1 GiB store with its history needs.
    let quota = |_: &str| {
        vec![
            "--quota-backend-bytes".to_string(),
            (8u64 << 30).to_string(),
        ]
    };
    let (servers, endpoints) = procs::start_cluster(bin, &dir.join("overload"), members, &quota)?;
    let pids = servers.pids();
    let mut m = Measured {
        name: name.to_string(),
        ..Default::default()
    };

    eprintln!(
        "== {name}: overload, put at {} clients for {} s",
        args.overload_clients, args.overload_seconds
    );
    m.overload = bench(
        bench_bin,
        &endpoints,
        dir,
        "overload",
        &["put", "--key-space-size", "100000"],
        &[
            "--conns",
            "100",
            "--clients",
            &args.overload_clients.to_string(),
            "--duration",
            &args.overload_seconds.to_string(),
            "--timeout",
            "30",
        ],
    )?;
    m.overload_peak_rss = peak_rss(&pids)?;
    m.overload_anon_rss = pids
        .iter()
        .map(|&p| procs::anon_rss_bytes(p))
        .collect::<anyhow::Result<_>>()?;
    drop(servers);
    // A fresh cluster for the rest, so that the overload's history (which grows with the
    // puts each system answered) does not weigh on the store's size.
    eprintln!("== {name}: starting {members} new members");
    let (servers, endpoints) = procs::start_cluster(bin, dir, members, &quota)?;

    let keys = (args.size_mib << 20) / VALUE;
    eprintln!(
        "== {name}: writing {keys} keys of {VALUE} B ({} MiB)",
        args.size_mib
    );
    let fill = bench(
        bench_bin,
        &endpoints,
        dir,
        "fill",
        &[
            "txn-put",
            "--txn-ops",
            &FILL_TXN_OPS.to_string(),
            "--val-size",
            &VALUE.to_string(),
            "--sequential-keys",
            "--key-space-size",
            &keys.to_string(),
        ],
        &[
            "--total",
            &keys.div_ceil(FILL_TXN_OPS).to_string(),
            "--conns",
            "4",
            "--clients",
            "16",
        ],
    )?;
    if fill.errors > 0 {
        eprintln!(
            "   {} errors while filling: {:?}",
            fill.errors, fill.errors_by_code
        );
    }
    m.db_size_full = db_sizes(&endpoints)?;

    eprintln!("== {name}: snapshot save");
    let file = dir.join("snapshot.db");
    let t = Instant::now();
    etcdctl(
        &endpoints[..1],
        &["snapshot", "save", &file.display().to_string()],
    )?;
    m.snapshot_seconds = t.elapsed().as_secs_f64();
    m.snapshot_bytes = fs::metadata(&file)?.len();
    let _ = fs::remove_file(&file);
    eprintln!(
        "   {:.1} MB in {:.2} s: {:.0} MB/s",
        m.snapshot_bytes as f64 / 1e6,
        m.snapshot_seconds,
        m.snapshot_mb_per_s()
    );

    eprintln!("== {name}: deleting half the keys, compacting, defragmenting every member");
    let key = |n: u64| format!("{n:08}");
    etcdctl(&endpoints[..1], &["del", &key(0), &key(keys / 2)])?;
    let status = etcdctl(&endpoints[..1], &["endpoint", "status", "-w", "json"])?;
    let revision = json_numbers(&status, "\"revision\":")
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no revision in {status}"))?;
    etcdctl(
        &endpoints[..1],
        &["compaction", "--physical", &revision.to_string()],
    )?;
    m.db_size_compacted = db_sizes(&endpoints)?;
    let t = Instant::now();
    etcdctl(&endpoints, &["defrag"])?;
    m.defrag_seconds = t.elapsed().as_secs_f64();
    m.db_size_defragmented = db_sizes(&endpoints)?;
    eprintln!(
        "   db size {} -> {} in {:.2} s",
        mib(m.db_size_compacted[0] as f64),
        mib(m.db_size_defragmented[0] as f64),
        m.defrag_seconds
    );

    let latency = args.latency_seconds.to_string();
    let put_flags = ["--conns", "2", "--clients", "10", "--duration", &latency];
    let put = [
        "put",
        "--key-space-size",
        &keys.to_string(),
        "--val-size",
        "256",
    ];
    eprintln!("== {name}: puts, 10 clients, {latency} s");
    m.puts = bench(bench_bin, &endpoints, dir, "puts", &put, &put_flags)?;
    eprintln!("== {name}: the same while every member is defragmented in a loop");
    let json = dir.join("puts-during-defrag.json");
    let mut load = Command::new(bench_bin)
        .args(put)
        .args(put_flags)
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .stdin(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    while load.try_wait()?.is_none() {
        etcdctl(&endpoints, &["defrag"])?;
        m.defrags_during += 1;
    }
    if !load.wait()?.success() {
        anyhow::bail!("etcr-bench during defrag failed");
    }
    m.puts_during_defrag = serde_json::from_str(&fs::read_to_string(&json)?)?;
    eprintln!(
        "   p99 {:.2} ms without, {:.2} ms during {} defrag rounds",
        m.puts.latency_ms.p99, m.puts_during_defrag.latency_ms.p99, m.defrags_during
    );

    eprintln!(
        "== {name}: a {} MiB range beside small puts on one connection",
        args.big_range_mib
    );
    let json = dir.join("big-range.json");
    let ran = Command::new(bench_bin)
        .args([
            "big-range",
            "--big-range-mib",
            &args.big_range_mib.to_string(),
        ])
        .arg("--endpoints")
        .arg(&endpoints[0])
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .status()?;
    if !ran.success() {
        anyhow::bail!("etcr-bench big-range failed");
    }
    m.big_range = serde_json::from_str(&fs::read_to_string(&json)?)?;
    drop(servers);
    Ok(m)
}

/// Runs etcdctl 3.4 against `endpoints`; its stdout, or an error with its stderr.
fn etcdctl(endpoints: &[String], args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--command-timeout", "600s"])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "etcdctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every member's db size, from `etcdctl endpoint status -w json`.
fn db_sizes(endpoints: &[String]) -> anyhow::Result<Vec<u64>> {
    let out = etcdctl(endpoints, &["endpoint", "status", "-w", "json"])?;
    Ok(json_numbers(&out, "\"dbSize\":"))
}

/// The numbers that follow `field` in `text`, in order.
fn json_numbers(text: &str, field: &str) -> Vec<u64> {
    text.match_indices(field)
        .filter_map(|(at, _)| {
            let rest = &text[at + field.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

fn average(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
}

fn max(v: &[u64]) -> f64 {
    v.iter().copied().max().unwrap_or(0) as f64
}

fn markdown(etcr: &Measured, etcd: &Measured, args: &Args) -> String {
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut row = |what: String, a: f64, b: f64, show: &dyn Fn(f64) -> String| {
        rows.push((what, show(a), show(b), ratio(a, b)));
    };
    let ms = |v: f64| format!("{v:.2} ms");
    row(
        format!("snapshot save, {} MiB of values: MB/s", args.size_mib),
        etcr.snapshot_mb_per_s(),
        etcd.snapshot_mb_per_s(),
        &|v| format!("{v:.0}"),
    );
    row(
        "snapshot save: MiB of values per second".into(),
        args.size_mib as f64 / etcr.snapshot_seconds.max(1e-9),
        args.size_mib as f64 / etcd.snapshot_seconds.max(1e-9),
        &|v| format!("{v:.0}"),
    );
    row(
        "snapshot file size".into(),
        etcr.snapshot_bytes as f64,
        etcd.snapshot_bytes as f64,
        &mib,
    );
    row(
        "db size, full (average member)".into(),
        average(&etcr.db_size_full),
        average(&etcd.db_size_full),
        &mib,
    );
    row(
        "db size, half deleted and compacted".into(),
        average(&etcr.db_size_compacted),
        average(&etcd.db_size_compacted),
        &mib,
    );
    row(
        "db size, defragmented".into(),
        average(&etcr.db_size_defragmented),
        average(&etcd.db_size_defragmented),
        &mib,
    );
    row(
        format!("defrag of all {} members, one after another", args.members),
        etcr.defrag_seconds,
        etcd.defrag_seconds,
        &|v| format!("{v:.2} s"),
    );
    row(
        "put p99, 10 clients".into(),
        etcr.puts.latency_ms.p99,
        etcd.puts.latency_ms.p99,
        &ms,
    );
    row(
        "put p99, 10 clients, during defrags".into(),
        etcr.puts_during_defrag.latency_ms.p99,
        etcd.puts_during_defrag.latency_ms.p99,
        &ms,
    );
    row(
        "put max, 10 clients, during defrags".into(),
        etcr.puts_during_defrag.latency_ms.max,
        etcd.puts_during_defrag.latency_ms.max,
        &ms,
    );
    row(
        "puts/s, 10 clients, during defrags".into(),
        etcr.puts_during_defrag.throughput,
        etcd.puts_during_defrag.throughput,
        &|v| format!("{v:.0}"),
    );
    row(
        format!(
            "{} MiB range on one connection: seconds",
            args.big_range_mib
        ),
        etcr.big_range.range_seconds,
        etcd.big_range.range_seconds,
        &|v| format!("{v:.2} s"),
    );
    row(
        "small puts on that connection: p99 alone".into(),
        etcr.big_range.puts_before.p99,
        etcd.big_range.puts_before.p99,
        &ms,
    );
    row(
        "small puts on that connection: p99 beside the range".into(),
        etcr.big_range.puts_during.p99,
        etcd.big_range.puts_during.p99,
        &ms,
    );
    row(
        "small puts answered before the range".into(),
        etcr.big_range.puts_done_while_range_ran as f64,
        etcd.big_range.puts_done_while_range_ran as f64,
        &|v| format!("{v:.0}"),
    );
    row(
        format!(
            "overload, {} clients for {} s: answered puts/s",
            args.overload_clients, args.overload_seconds
        ),
        etcr.overload.throughput,
        etcd.overload.throughput,
        &|v| format!("{v:.0}"),
    );
    row(
        "overload: errors".into(),
        etcr.overload.errors as f64,
        etcd.overload.errors as f64,
        &|v| format!("{v:.0}"),
    );
    row(
        "overload: highest member peak RSS".into(),
        max(&etcr.overload_peak_rss),
        max(&etcd.overload_peak_rss),
        &mib,
    );
    row(
        "overload: largest member private memory (RssAnon) after".into(),
        max(&etcr.overload_anon_rss),
        max(&etcd.overload_anon_rss),
        &mib,
    );
    let mut out = format!(
        "Maintenance, etcr vs etcd 3.4, {} members each on this machine (etcdctl 3.4 and etcr-bench as clients); {} and {} defrag rounds ran during the put runs.\n\n| | etcr | etcd | etcr/etcd |\n|---|---|---|---|\n",
        args.members, etcr.defrags_during, etcd.defrags_during
    );
    for (what, a, b, r) in rows {
        out.push_str(&format!("| {what} | {a} | {b} | {r} |\n"));
    }
    for m in [etcr, etcd] {
        if !m.overload.errors_by_code.is_empty() {
            out.push_str(&format!(
                "\n{} overload errors by code: {:?}",
                m.name, m.overload.errors_by_code
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_follow_their_field() {
        let status = r#"[{"Endpoint":"a","Status":{"header":{"revision":12},"dbSize":20480}},{"Status":{"dbSize":4096}}]"#;
        assert_eq!(super::json_numbers(status, "\"dbSize\":"), [20480, 4096]);
        assert_eq!(super::json_numbers(status, "\"revision\":"), [12]);
    }
}
