//! `cargo xtask bench compare [--quick]`: the same load, from `etcr-bench`, against a fresh
//! 3-member etcr cluster and then a fresh 3-member etcd 3.4 cluster on this machine, with
//! fsync on in both. It writes one Markdown table (`target/bench/compare.md`), the raw
//! numbers (`target/bench/compare.json`) and a latency plot (`target/bench/latency.svg`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::procs;

/// Members per cluster.
const MEMBERS: usize = 3;
/// Keys per transaction while filling the store (etcd allows 128 operations per txn): the
/// fill measures what the keys cost at rest, so it goes as fast as both systems allow.
const FILL_TXN_OPS: u64 = 100;

/// One cell of the matrix: a workload at one concurrency.
struct Case {
    /// The row's name, e.g. `put 8B/256B 50/500`.
    label: String,
    /// etcr-bench's workload and its flags.
    args: Vec<&'static str>,
    conns: usize,
    clients: usize,
}

/// What to run: the workloads, how long each, how many keys for the disk measurement.
struct Plan {
    cases: Vec<Case>,
    seconds: u32,
    disk_keys: u64,
    check_perf: Option<&'static str>,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let case = |name: &str, args: &[&'static str], (conns, clients): (usize, usize)| Case {
            label: format!("{name} {conns}/{clients}"),
            args: args.to_vec(),
            conns,
            clients,
        };
        let put_small = ["put", "--key-size", "8", "--val-size", "256"];
        let range_l = ["range", "--consistency", "l"];
        let mixed = ["mixed", "--read-ratio", "0.9"];
        if quick {
            return Plan {
                cases: vec![
                    case("put 8B/256B", &put_small, (50, 500)),
                    case("range linearizable", &range_l, (50, 500)),
                    case("mixed 90/10", &mixed, (10, 100)),
                ],
                seconds: 5,
                disk_keys: 50_000,
                check_perf: None,
            };
        }
        let workloads: [(&str, &[&'static str]); 6] = [
            ("put 8B/256B", &put_small),
            (
                "put 256B/1KiB",
                &["put", "--key-size", "256", "--val-size", "1024"],
            ),
            ("range linearizable", &range_l),
            ("range serializable", &["range", "--consistency", "s"]),
            ("txn-put", &["txn-put"]),
            ("mixed 90/10", &mixed),
        ];
        let mut cases = Vec::new();
        for (name, args) in workloads {
            for concurrency in [(1, 1), (10, 100), (50, 500)] {
                cases.push(case(name, args, concurrency));
            }
        }
        Plan {
            cases,
            seconds: 10,
            disk_keys: 1_000_000,
            check_perf: Some("l"),
        }
    }
}

/// The parts of etcr-bench's JSON report that the comparison uses.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct BenchReport {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    #[serde(default)]
    pub(crate) errors_by_code: BTreeMap<String, u64>,
    pub(crate) throughput: f64,
    pub(crate) latency_ms: Latency,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

/// One workload against one system.
#[derive(Clone, Debug, Serialize)]
struct CaseResult {
    label: String,
    report: BenchReport,
    /// CPU seconds the members spent during the workload, summed over members.
    member_cpu_seconds: f64,
    /// CPU seconds etcr-bench spent generating it, on the same cores.
    generator_cpu_seconds: f64,
    /// Each member's peak RSS (VmHWM) so far, after the workload, bytes.
    peak_rss_bytes: Vec<u64>,
}

/// Disk use of the data directories around writing `keys` distinct keys. Both etcr and etcd
/// keep their WAL in `member/wal` and preallocate its 64 MiB segments, so the store (the data
/// directory without the WAL) is what grows with the keys.
#[derive(Clone, Debug, Default, Serialize)]
struct Disk {
    keys: u64,
    key_size: u32,
    value_size: u32,
    /// Allocated bytes of each member's data directory after the keys, WAL included.
    data_dir_after: Vec<u64>,
    /// Allocated bytes of each member's data directory without the WAL, before and after.
    store_before: Vec<u64>,
    store_after: Vec<u64>,
    /// The average member's store growth while writing the keys, scaled to 100k keys.
    store_growth_per_100k_keys: f64,
    /// Each member's resident set (`VmRSS`) right after the keys were written, bytes.
    rss_after: Vec<u64>,
}

impl Disk {
    fn data_dir_average(&self) -> f64 {
        self.data_dir_after.iter().sum::<u64>() as f64 / self.data_dir_after.len().max(1) as f64
    }
}

/// Allocated bytes of a member's data directory, and of it without the WAL.
fn member_disk(dir: &Path) -> (u64, u64) {
    let all = procs::disk_bytes(dir);
    (
        all,
        all - procs::disk_bytes(&dir.join("member/wal")).min(all),
    )
}

/// Everything measured on one system.
#[derive(Clone, Debug, Default, Serialize)]
struct SystemResult {
    name: String,
    cases: Vec<CaseResult>,
    disk: Disk,
    /// Peak RSS (VmHWM) of each member at the end, bytes.
    peak_rss_bytes: Vec<u64>,
    /// Private memory (RssAnon) of each member at the end, bytes: RSS without the pages of
    /// mapped files, which for LMDB is the page cache of the store.
    anon_rss_bytes: Vec<u64>,
    /// CPU seconds of each member from start to end.
    cpu_seconds: Vec<f64>,
    check_perf: Vec<String>,
}

impl SystemResult {
    fn requests(&self) -> u64 {
        self.cases.iter().map(|c| c.report.requests).sum()
    }
    fn workload_cpu(&self) -> f64 {
        self.cases.iter().map(|c| c.member_cpu_seconds).sum()
    }
    fn generator_cpu(&self) -> f64 {
        self.cases.iter().map(|c| c.generator_cpu_seconds).sum()
    }
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let systems = crate::side_by_side::prepare()?;
    let bench_bin = systems.bench_bin.clone();
    let out_dir = crate::workspace_root().join("target/bench");
    let work = crate::side_by_side::work_dir("compare")?;

    let plan = Plan::new(quick);
    let started = Instant::now();
    let mut results = Vec::new();
    for (name, bin) in systems.list {
        results.push(measure(name, &bin, &bench_bin, &work.join(name), &plan)?);
    }

    let table = markdown(&results[0], &results[1], &plan, quick);
    println!("\n{table}");
    fs::write(out_dir.join("compare.md"), &table)?;
    let json = serde_json::json!({
        "quick": quick,
        "members": MEMBERS,
        "seconds_per_workload": plan.seconds,
        "systems": results,
    });
    fs::write(
        out_dir.join("compare.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    fs::write(
        out_dir.join("latency.svg"),
        latency_svg(&results[0], &results[1]),
    )?;
    eprintln!(
        "== measured in {:.0} s; wrote {1}/compare.md, {1}/compare.json and {1}/latency.svg",
        started.elapsed().as_secs_f64(),
        out_dir.display()
    );
    Ok(())
}

/// Starts a fresh cluster of `bin`, runs the plan against it and stops it.
fn measure(
    name: &str,
    bin: &Path,
    bench_bin: &Path,
    dir: &Path,
    plan: &Plan,
) -> anyhow::Result<SystemResult> {
    eprintln!(
        "== {name}: starting {MEMBERS} members under {}",
        dir.display()
    );
    let (servers, endpoints) = procs::start_cluster(bin, dir, MEMBERS, &|_| Vec::new())?;
    let pids = servers.pids();
    let cpu_at_start = cpu(&pids)?;
    let member_dirs: Vec<PathBuf> = (1..=MEMBERS).map(|i| dir.join(format!("m{i}"))).collect();
    let mut result = SystemResult {
        name: name.to_string(),
        ..Default::default()
    };

    // Disk first, on the fresh cluster: distinct keys, which the reads below then find.
    let store_before: Vec<u64> = member_dirs.iter().map(|d| member_disk(d).1).collect();
    let keys = plan.disk_keys.to_string();
    eprintln!(
        "== {name}: writing {keys} keys (8 B keys, 256 B values, {FILL_TXN_OPS} per txn) to measure disk and memory use"
    );
    let txns = (plan.disk_keys / FILL_TXN_OPS).to_string();
    let ops = FILL_TXN_OPS.to_string();
    let fill = bench(
        bench_bin,
        &endpoints,
        dir,
        "disk",
        &[
            "txn-put",
            "--txn-ops",
            &ops,
            "--sequential-keys",
            "--key-space-size",
            &keys,
        ],
        &["--total", &txns, "--conns", "10", "--clients", "100"],
    )?;
    if fill.errors > 0 {
        eprintln!(
            "   {} errors while writing: {:?}",
            fill.errors, fill.errors_by_code
        );
    }
    let (data_dir_after, store_after): (Vec<u64>, Vec<u64>) =
        member_dirs.iter().map(|d| member_disk(d)).unzip();
    let growth = store_after.iter().sum::<u64>() as f64 - store_before.iter().sum::<u64>() as f64;
    result.disk = Disk {
        keys: plan.disk_keys,
        key_size: 8,
        value_size: 256,
        store_growth_per_100k_keys: growth / MEMBERS as f64 * 100_000.0 / plan.disk_keys as f64,
        data_dir_after,
        store_before,
        store_after,
        rss_after: pids
            .iter()
            .map(|&p| procs::rss_bytes(p))
            .collect::<anyhow::Result<_>>()?,
    };

    let seconds = plan.seconds.to_string();
    for (i, case) in plan.cases.iter().enumerate() {
        eprintln!(
            "== {name} [{}/{}]: {} for {seconds} s",
            i + 1,
            plan.cases.len(),
            case.label
        );
        let cpu_before: f64 = cpu(&pids)?.iter().sum();
        let generator_before = procs::ended_children_cpu_seconds();
        let report = bench(
            bench_bin,
            &endpoints,
            dir,
            &format!("case{i}"),
            &case.args,
            &[
                "--conns",
                &case.conns.to_string(),
                "--clients",
                &case.clients.to_string(),
                "--duration",
                &seconds,
            ],
        )?;
        let cpu_used = cpu(&pids)?.iter().sum::<f64>() - cpu_before;
        let generator_cpu_seconds = procs::ended_children_cpu_seconds() - generator_before;
        eprintln!(
            "   {name} {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, members used {cpu_used:.1} CPU s",
            case.label,
            report.throughput,
            report.latency_ms.p50,
            report.latency_ms.p99,
            report.errors
        );
        result.cases.push(CaseResult {
            label: case.label.clone(),
            report,
            member_cpu_seconds: cpu_used,
            generator_cpu_seconds,
            peak_rss_bytes: peak_rss(&pids)?,
        });
    }

    if let Some(load) = plan.check_perf {
        eprintln!("== {name}: etcdctl check perf --load={load}");
        result.check_perf = crate::checkperf::check_perf(&endpoints, load)?;
    }
    result.peak_rss_bytes = peak_rss(&pids)?;
    result.anon_rss_bytes = pids
        .iter()
        .map(|&p| procs::anon_rss_bytes(p))
        .collect::<anyhow::Result<_>>()?;
    result.cpu_seconds = pids
        .iter()
        .zip(&cpu_at_start)
        .map(|(&p, start)| Ok(procs::cpu_seconds(p)? - start))
        .collect::<anyhow::Result<_>>()?;
    drop(servers); // kills the members
    Ok(result)
}

fn cpu(pids: &[u32]) -> anyhow::Result<Vec<f64>> {
    pids.iter().map(|&p| procs::cpu_seconds(p)).collect()
}

pub(crate) fn peak_rss(pids: &[u32]) -> anyhow::Result<Vec<u64>> {
    pids.iter().map(|&p| procs::peak_rss_bytes(p)).collect()
}

/// Runs etcr-bench once with a JSON report in `dir/<tag>.json` and returns the report.
pub(crate) fn bench(
    bench_bin: &Path,
    endpoints: &[String],
    dir: &Path,
    tag: &str,
    workload: &[&str],
    flags: &[&str],
) -> anyhow::Result<BenchReport> {
    let json = dir.join(format!("{tag}.json"));
    let output = Command::new(bench_bin)
        .args(workload)
        .args(flags)
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", bench_bin.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "etcr-bench {} failed with {}",
            workload.join(" "),
            output.status
        );
    }
    Ok(serde_json::from_str(&fs::read_to_string(&json)?)?)
}

pub(crate) fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

pub(crate) fn ratio(etcr: f64, etcd: f64) -> String {
    if etcd > 0.0 {
        format!("{:.2}", etcr / etcd)
    } else {
        "-".into()
    }
}

fn errors(r: &BenchReport) -> String {
    if r.errors == 0 {
        return "0".into();
    }
    let codes: Vec<String> = r
        .errors_by_code
        .iter()
        .map(|(code, n)| format!("{n} {code}"))
        .collect();
    codes.join(", ")
}

/// The comparison as one Markdown table: workloads, then memory, CPU, disk and check perf.
fn markdown(etcr: &SystemResult, etcd: &SystemResult, plan: &Plan, quick: bool) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "### etcr vs etcd 3.4: {MEMBERS} members each, fsync on, {} s per workload{}, \
         {cores} cores shared by the members and etcr-bench\n",
        plan.seconds,
        if quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        out,
        "| workload (conns/clients) | etcr req/s | etcd req/s | ratio | etcr p99 | etcd p99 | errors (etcr / etcd) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
    for (a, b) in etcr.cases.iter().zip(&etcd.cases) {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {:.2} ms | {:.2} ms | {} / {} |",
            a.label,
            a.report.throughput,
            b.report.throughput,
            ratio(a.report.throughput, b.report.throughput),
            a.report.latency_ms.p99,
            b.report.latency_ms.p99,
            errors(&a.report),
            errors(&b.report)
        );
    }
    let max_rss = |s: &SystemResult| s.peak_rss_bytes.iter().copied().max().unwrap_or(0) as f64;
    let _ = writeln!(
        out,
        "| peak RSS, largest member (VmHWM) | {} | {} | {} | | | |",
        mib(max_rss(etcr)),
        mib(max_rss(etcd)),
        ratio(max_rss(etcr), max_rss(etcd))
    );
    let anon = |s: &SystemResult| s.anon_rss_bytes.iter().copied().max().unwrap_or(0) as f64;
    let _ = writeln!(
        out,
        "| private memory at the end, largest member (RssAnon; RSS less mapped files) | {} | {} | {} | | | |",
        mib(anon(etcr)),
        mib(anon(etcd)),
        ratio(anon(etcr), anon(etcd))
    );
    // The generator shares the cores: what it spends per request the members cannot.
    type CpuSeconds = fn(&SystemResult) -> f64;
    let cpu_rows: [(&str, CpuSeconds); 2] = [
        (
            "member CPU per 1k requests, all members",
            SystemResult::workload_cpu,
        ),
        (
            "etcr-bench CPU per 1k requests (the generator, on the same cores)",
            SystemResult::generator_cpu,
        ),
    ];
    for (label, seconds) in cpu_rows {
        let per_1k = |s: &SystemResult| seconds(s) * 1000.0 / s.requests().max(1) as f64;
        let ms = |s: &SystemResult| format!("{:.0} ms", per_1k(s) * 1000.0);
        row(
            &mut out,
            label,
            [ms(etcr), ms(etcd), ratio(per_1k(etcr), per_1k(etcd))],
        );
    }
    let total_cpu = |s: &SystemResult| s.cpu_seconds.iter().sum::<f64>();
    let _ = writeln!(
        out,
        "| member CPU, whole run, all members | {:.1} s | {:.1} s | {} | | | |",
        total_cpu(etcr),
        total_cpu(etcd),
        ratio(total_cpu(etcr), total_cpu(etcd))
    );
    let store = |s: &SystemResult| s.disk.store_growth_per_100k_keys;
    row(
        &mut out,
        "store growth per 100k keys (8 B/256 B), per member, WAL excluded",
        [
            mib(store(etcr)),
            mib(store(etcd)),
            ratio(store(etcr), store(etcd)),
        ],
    );
    let rss = |s: &SystemResult| s.disk.rss_after.iter().copied().max().unwrap_or(0) as f64;
    row(
        &mut out,
        &format!(
            "RSS with {} keys stored, largest member (VmRSS)",
            etcr.disk.keys
        ),
        [mib(rss(etcr)), mib(rss(etcd)), ratio(rss(etcr), rss(etcd))],
    );
    let dir = |s: &SystemResult| s.disk.data_dir_average();
    row(
        &mut out,
        &format!(
            "data dir per member after {} keys, preallocated WAL included",
            etcr.disk.keys
        ),
        [mib(dir(etcr)), mib(dir(etcd)), ratio(dir(etcr), dir(etcd))],
    );
    if let Some(load) = plan.check_perf {
        let rows = etcr.check_perf.len().max(etcd.check_perf.len());
        for i in 0..rows {
            let cell = |s: &SystemResult| s.check_perf.get(i).cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "| etcdctl check perf --load={load} | {} | {} | | | | |",
                cell(etcr),
                cell(etcd)
            );
        }
    }
    out
}

/// A row of the resources part of the table: etcr, etcd, ratio.
fn row(out: &mut String, label: &str, [etcr, etcd, ratio]: [String; 3]) {
    let _ = writeln!(out, "| {label} | {etcr} | {etcd} | {ratio} | | | |");
}

/// A grouped bar chart of p50 and p99 latency per workload for both systems, log scale.
fn latency_svg(etcr: &SystemResult, etcd: &SystemResult) -> String {
    const LEFT: f64 = 70.0;
    const TOP: f64 = 50.0;
    const HEIGHT: f64 = 320.0;
    const BOTTOM: f64 = 170.0;
    const GROUP: f64 = 76.0;
    const BAR: f64 = 14.0;
    type Series<'a> = (&'a str, &'a SystemResult, fn(&Latency) -> f64, &'a str);
    let series: [Series; 4] = [
        ("etcr p50", etcr, |l| l.p50, "#1f77b4"),
        ("etcr p99", etcr, |l| l.p99, "#9ecae1"),
        ("etcd p50", etcd, |l| l.p50, "#d62728"),
        ("etcd p99", etcd, |l| l.p99, "#fc9272"),
    ];
    let groups = etcr.cases.len().min(etcd.cases.len());
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, s, f, _)| s.cases.iter().map(|c| f(&c.report.latency_ms)))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .log10()
        .floor();
    let hi = values.iter().copied().fold(0.0, f64::max).log10().ceil();
    let (lo, hi) = if values.is_empty() {
        (-1.0, 3.0)
    } else {
        (lo, hi.max(lo + 1.0))
    };
    let y = |v: f64| TOP + HEIGHT * (1.0 - (v.max(10f64.powf(lo)).log10() - lo) / (hi - lo));
    // Room on the right for the legend, the title and the last slanted label.
    let width = (LEFT + GROUP * groups as f64 + 120.0).max(600.0);
    let total_height = TOP + HEIGHT + BOTTOM;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="20" font-size="14">Latency per workload (ms, log scale): etcr vs etcd 3.4, {MEMBERS} members</text>"#
    );
    for decade in lo as i32..=hi as i32 {
        let v = 10f64.powi(decade);
        let yy = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
            LEFT + GROUP * groups as f64,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for (i, (name, _, _, color)) in series.iter().enumerate() {
        let x = LEFT + 10.0 + i as f64 * 90.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="30" width="10" height="10" fill="{color}"/><text x="{}" y="39">{name}</text>"#,
            x + 14.0
        );
    }
    for g in 0..groups {
        let x0 = LEFT + GROUP * g as f64 + (GROUP - 4.0 * BAR) / 2.0;
        for (i, (name, system, f, color)) in series.iter().enumerate() {
            let v = f(&system.cases[g].report.latency_ms);
            let top = y(v);
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{top:.1}" width="{BAR}" height="{:.1}" fill="{color}"><title>{} {name}: {v:.3} ms</title></rect>"#,
                x0 + BAR * i as f64,
                TOP + HEIGHT - top,
                system.cases[g].label
            );
        }
        let lx = LEFT + GROUP * g as f64 + GROUP / 2.0;
        let ly = TOP + HEIGHT + 10.0;
        let _ = writeln!(
            svg,
            r#"<text x="{lx:.1}" y="{ly:.1}" transform="rotate(45 {lx:.1} {ly:.1})">{}</text>"#,
            etcr.cases[g].label
        );
    }
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="black"/>"#,
        TOP + HEIGHT
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(name: &str, p50: f64, p99: f64) -> SystemResult {
        SystemResult {
            name: name.into(),
            cases: vec![CaseResult {
                label: "put 8B/256B 50/500".into(),
                report: BenchReport {
                    requests: 1000,
                    throughput: 200.0,
                    latency_ms: Latency {
                        p50,
                        p99,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                member_cpu_seconds: 2.0,
                generator_cpu_seconds: 0.5,
                peak_rss_bytes: vec![],
            }],
            peak_rss_bytes: vec![50 << 20, 60 << 20, 55 << 20],
            cpu_seconds: vec![1.0, 1.0, 1.0],
            ..Default::default()
        }
    }

    #[test]
    fn quick_plan_is_small_and_full_plan_is_the_matrix() {
        let quick = Plan::new(true);
        assert_eq!(quick.cases.len(), 3);
        assert!(quick.cases.len() as u32 * quick.seconds * 2 < 60);
        let full = Plan::new(false);
        assert_eq!(full.cases.len(), 18);
        assert_eq!(full.cases[0].label, "put 8B/256B 1/1");
        assert_eq!(full.cases[17].label, "mixed 90/10 50/500");
    }

    #[test]
    fn table_has_one_row_per_workload_and_the_ratio() {
        let plan = Plan::new(true);
        let md = markdown(
            &system("etcr", 1.0, 4.0),
            &system("etcd", 2.0, 8.0),
            &plan,
            true,
        );
        assert!(
            md.contains("| put 8B/256B 50/500 | 200 | 200 | 1.00 | 4.00 ms | 8.00 ms | 0 / 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| peak RSS, largest member (VmHWM) | 60.0 MiB | 60.0 MiB | 1.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| member CPU per 1k requests, all members | 2000 ms |"),
            "{md}"
        );
        assert!(
            md.contains("| etcr-bench CPU per 1k requests (the generator, on the same cores) | 500 ms | 500 ms | 1.00 |"),
            "{md}"
        );
    }

    #[test]
    fn svg_draws_four_bars_per_workload() {
        let svg = latency_svg(&system("etcr", 1.0, 4.0), &system("etcd", 0.5, 20.0));
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 4);
        assert!(
            svg.contains(">0.1</text>") && svg.contains(">100</text>"),
            "{svg}"
        );
    }
}
