//! `cargo xtask bench auth [--seconds N] [--rounds N]`: what a permission check costs reads.
//! On a fresh 3-member etcr cluster, then a fresh 3-member etcd 3.4, `etcr-bench range` runs
//! linearizable and serializable with auth disabled, then again with auth enabled as a user
//! whose role may read the keys (not root, which skips the check), sending a simple token.
//! Auth is turned off and on again for each round, so a busy machine disturbs both sides
//! alike; each cell is the best round. It prints one Markdown table and writes
//! `target/bench/auth.md` and `auth.json`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::procs;

/// Members per cluster.
const MEMBERS: usize = 3;
/// Keys the reads pick from (etcr-bench's zero-padded decimal keys, all starting with `0`).
const KEYS: u64 = 10_000;
const CONNS: &str = "10";
const CLIENTS: &str = "100";
/// The reading user, as `--user` and `etcdctl user add` take it.
const READER: &str = "reader:readerpw";
const READER_NAME: &str = "reader";

/// The fields of etcr-bench's JSON report this table uses.
#[derive(Deserialize)]
struct BenchReport {
    requests: u64,
    errors: u64,
    throughput: f64,
    latency_ms: Latency,
}

#[derive(Deserialize)]
struct Latency {
    p99: f64,
}

/// One measured cell: a system, a consistency, with or without auth.
#[derive(Serialize, Default, Clone)]
struct Cell {
    requests: u64,
    errors: u64,
    throughput: f64,
    p99_ms: f64,
}

#[derive(Serialize, Default)]
struct SystemResult {
    name: String,
    /// Without auth, then with it.
    linearizable: (Cell, Cell),
    serializable: (Cell, Cell),
}

pub fn run(seconds: u32, rounds: u32) -> anyhow::Result<()> {
    let systems = crate::side_by_side::prepare()?;
    let bench_bin = systems.bench_bin.clone();
    let out_dir = crate::workspace_root().join("target/bench");
    let work = crate::side_by_side::work_dir("auth")?;
    let mut results = Vec::new();
    for (name, bin) in systems.list {
        results.push(measure(
            name,
            &bin,
            &bench_bin,
            &work.join(name),
            seconds,
            rounds.max(1),
        )?);
    }
    let table = markdown(&results, seconds, rounds.max(1));
    println!("\n{table}");
    fs::write(out_dir.join("auth.md"), &table)?;
    let json = serde_json::json!({
        "seconds": seconds,
        "rounds": rounds,
        "members": MEMBERS,
        "systems": results,
    });
    fs::write(
        out_dir.join("auth.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    eprintln!("== wrote {0}/auth.md and {0}/auth.json", out_dir.display());
    Ok(())
}

fn measure(
    name: &str,
    bin: &Path,
    bench_bin: &Path,
    dir: &Path,
    seconds: u32,
    rounds: u32,
) -> anyhow::Result<SystemResult> {
    eprintln!(
        "== {name}: starting {MEMBERS} members under {}",
        dir.display()
    );
    let (_servers, endpoints) = procs::start_cluster(bin, dir, MEMBERS, &|_| Vec::new())?;
    let keys = KEYS.to_string();
    let fill = bench(
        bench_bin,
        &endpoints,
        dir,
        "fill",
        &["txn-put", "--txn-ops", "100", "--sequential-keys"],
        &[
            "--key-space-size",
            &keys,
            "--total",
            &(KEYS / 100).to_string(),
        ],
    )?;
    anyhow::ensure!(
        fill.errors == 0,
        "{name}: the fill had {} errors",
        fill.errors
    );
    let mut result = SystemResult {
        name: name.to_string(),
        ..Default::default()
    };
    let secs = seconds.to_string();
    let read = |tag: &str, consistency: &str, user: &[&str]| -> anyhow::Result<Cell> {
        eprintln!(
            "== {name}: range --consistency {consistency} {} for {secs} s",
            user.join(" ")
        );
        let mut flags = vec!["--key-space-size", &keys, "--duration", &secs];
        flags.extend(["--conns", CONNS, "--clients", CLIENTS]);
        flags.extend(user);
        let r = bench(
            bench_bin,
            &endpoints,
            dir,
            tag,
            &["range", "--consistency", consistency],
            &flags,
        )?;
        anyhow::ensure!(r.errors == 0, "{name} {tag}: {} errors", r.errors);
        Ok(Cell {
            requests: r.requests,
            errors: r.errors,
            throughput: r.throughput,
            p99_ms: r.latency_ms.p99,
        })
    };
    set_up_users(&endpoints[0])?;
    let user = ["--user", READER];
    let best = |kept: &mut Cell, new: Cell| {
        if new.throughput > kept.throughput {
            *kept = new;
        }
    };
    for round in 0..rounds {
        if round > 0 {
            etcdctl(&endpoints[0], &["--user", "root:rootpw", "auth", "disable"])?;
        }
        best(
            &mut result.linearizable.0,
            read(&format!("l-off-{round}"), "l", &[])?,
        );
        best(
            &mut result.serializable.0,
            read(&format!("s-off-{round}"), "s", &[])?,
        );
        etcdctl(&endpoints[0], &["auth", "enable"])?;
        best(
            &mut result.linearizable.1,
            read(&format!("l-on-{round}"), "l", &user)?,
        );
        best(
            &mut result.serializable.1,
            read(&format!("s-on-{round}"), "s", &user)?,
        );
    }
    Ok(result)
}

/// Root and a reader who may read every benchmark key (through etcdctl 3.4).
fn set_up_users(endpoint: &str) -> anyhow::Result<()> {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", READER],
        &["role", "add", "reads"],
        &["role", "grant-permission", "reads", "read", "0", "--prefix"],
        &["user", "grant-role", READER_NAME, "reads"],
    ] {
        etcdctl(endpoint, args)?;
    }
    Ok(())
}

fn etcdctl(endpoint: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "etcdctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn bench(
    bench_bin: &Path,
    endpoints: &[String],
    dir: &Path,
    tag: &str,
    workload: &[&str],
    flags: &[&str],
) -> anyhow::Result<BenchReport> {
    let json = dir.join(format!("{tag}.json"));
    let status = Command::new(bench_bin)
        .args(workload)
        .args(flags)
        .arg("--quiet")
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", bench_bin.display()))?;
    anyhow::ensure!(status.success(), "etcr-bench {} failed", workload.join(" "));
    Ok(serde_json::from_str(&fs::read_to_string(&json)?)?)
}

fn markdown(results: &[SystemResult], seconds: u32, rounds: u32) -> String {
    let mut t = format!(
        "Range of one key, {MEMBERS} members, {CONNS} connections / {CLIENTS} clients, best of \
         {rounds} rounds of {seconds} s; auth on: a non-root user with READ on the keys, simple token.\n\n\
         | system | reads | auth off (req/s) | auth on (req/s) | on/off | p99 off | p99 on |\n\
         |---|---|---:|---:|---:|---:|---:|\n"
    );
    for r in results {
        for (label, (off, on)) in [
            ("linearizable", &r.linearizable),
            ("serializable", &r.serializable),
        ] {
            let _ = writeln!(
                t,
                "| {} | {label} | {:.0} | {:.0} | {:.2} | {:.2} ms | {:.2} ms |",
                r.name,
                off.throughput,
                on.throughput,
                on.throughput / off.throughput.max(f64::EPSILON),
                off.p99_ms,
                on.p99_ms
            );
        }
    }
    t
}
