//! `etcr-chaos`: starts an etcr cluster on loopback, runs a register workload through the
//! gRPC API, with watchers and lease holders beside it, while a nemesis kills, pauses and
//! partitions members, then checks the history: every key linearizable, no acknowledged
//! write lost, every member with the same keyspace, every watcher with every revision once
//! and in order, no lease expired while kept alive, leases left alone expired once, in time.
//! Exits with 1 when any check fails, printing the smallest failing history and the seed
//! that replays the fault schedule.

mod cluster;
mod lease_check;
mod leases;
mod nemesis;
mod summary;
mod verify;
mod watch_check;
mod watcher;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use linearizability::Operation;

use crate::cluster::Cluster;
use crate::nemesis::{Fault, Timing};
use crate::workload::Shared;

#[derive(Parser)]
#[command(
    name = "etcr-chaos",
    about = "Linearizability-checked chaos test of an etcr cluster"
)]
struct Args {
    /// How long the workload and faults run: 90s, 10m, 1h.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Members in the cluster (3 to 7).
    #[arg(long, default_value_t = 3)]
    size: usize,
    /// Seed of the fault schedule and the clients' choices; random when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients, spread over the members.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Keys the clients share, each a register.
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// Faults to draw from, comma-separated: kill, kill-leader, kill-all, pause-leader,
    /// pause-follower, isolate, isolate-leader. All by default.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Deadline of each call; a write without an answer by then is indeterminate.
    #[arg(long = "op-timeout", default_value = "1s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// Read with `serializable` (local, possibly stale) ranges. Not linearizable by
    /// design: under partitions the checker must flag it.
    #[arg(long = "serializable-reads")]
    serializable_reads: bool,
    /// The etcr binary; by default the one next to this program.
    #[arg(long)]
    etcr: Option<PathBuf>,
    /// Delete the members' data and logs even when a check fails.
    #[arg(long = "discard-data")]
    discard_data: bool,
    /// Search steps per key before the checker gives up.
    #[arg(long = "max-steps", default_value_t = 50_000_000)]
    max_steps: u64,
    /// Watchers of the workload's keys, each checked for every revision once and in order.
    #[arg(long, default_value_t = 2)]
    watchers: u32,
    /// Clients each keeping a lease (with a key) alive: it must not expire.
    #[arg(long, default_value_t = 3)]
    keepers: usize,
    /// TTL in seconds of the kept leases.
    #[arg(long = "lease-ttl", default_value_t = 6)]
    lease_ttl: i64,
    /// How often a lease with a key is granted and left to expire (0: never).
    #[arg(long = "unkept-every", default_value = "5s", value_parser = parse_duration)]
    unkept_every: Duration,
}

/// TTL in seconds of the leases left to expire.
const UNKEPT_TTL: i64 = 3;
/// The members' election timeout (etcr's default), by which a new leader extends leases.
const ELECTION: u64 = 1_000_000_000;
/// What an expiry may take beyond its due time: the leader's expiry loop, the log, a poll.
const EXPIRY_SLACK: u64 = 3_000_000_000;

fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 10m, 1h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit in {s:?}: use ms, s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn etcr_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("etcr"))
            .ok_or_else(|| anyhow::anyhow!("cannot tell where this program lives"))?,
    };
    if !bin.exists() {
        anyhow::bail!(
            "{} is missing: build it (`cargo build -p etcr`) or pass --etcr",
            bin.display()
        );
    }
    Ok(bin)
}

/// Ends every fault, waits for a leader and reads every key once more.
async fn heal_and_read(
    cluster: &mut Cluster,
    shared: &Shared,
    client: u32,
) -> anyhow::Result<Vec<workload::Record>> {
    cluster.restore().await?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    verify::final_reads(cluster, shared, client, Duration::from_secs(60)).await
}

/// Runs the whole test; `Ok(false)` when a check failed.
async fn run(args: Args) -> anyhow::Result<bool> {
    if !(3..=7).contains(&args.size) {
        anyhow::bail!("--size must be between 3 and 7");
    }
    if args.clients == 0 || args.keys == 0 {
        anyhow::bail!("--clients and --keys must be at least 1");
    }
    let faults: Vec<Fault> = if args.faults.is_empty() {
        nemesis::ALL.to_vec()
    } else {
        args.faults
            .iter()
            .map(|f| Fault::parse(f.trim()))
            .collect::<anyhow::Result<_>>()?
    };
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let bin = etcr_binary(args.etcr)?;
    let dir = tempfile::Builder::new().prefix("etcr-chaos-").tempdir()?;
    println!(
        "etcr-chaos: seed {seed}, {} members, {} clients, {} keys, {:?}, faults {}",
        args.size,
        args.clients,
        args.keys,
        args.duration,
        faults
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut cluster = Cluster::start(&bin, dir.path(), args.size).await?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        next_value: AtomicU64::new(1),
        prefix: "chaos/".to_string(),
        keys: (0..args.keys).map(|k| format!("chaos/k{k}")).collect(),
        op_timeout: args.op_timeout,
        serializable_reads: args.serializable_reads,
    });
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let endpoint = cluster.endpoint(c as usize % cluster.size());
        let seed = seed.wrapping_add(1 + u64::from(c));
        clients.push(tokio::spawn(workload::client(
            c,
            endpoint,
            shared.clone(),
            seed,
        )));
    }
    let endpoints: Vec<String> = (0..cluster.size()).map(|i| cluster.endpoint(i)).collect();
    let watch_end = Arc::new(watcher::WatchEnd::new());
    let watchers: Vec<_> = (0..args.watchers)
        .map(|w| {
            tokio::spawn(watcher::watcher(
                w,
                endpoints.clone(),
                shared.prefix.clone(),
                watch_end.clone(),
                seed.wrapping_add(1000 + u64::from(w)),
            ))
        })
        .collect();
    let keepers_stop = Arc::new(AtomicBool::new(false));
    let keepers: Vec<_> = (0..args.keepers)
        .map(|k| {
            tokio::spawn(leases::keeper(
                k,
                endpoints.clone(),
                shared.clone(),
                args.lease_ttl,
                keepers_stop.clone(),
                seed.wrapping_add(2000 + k as u64),
            ))
        })
        .collect();
    let unkept = tokio::spawn(spawn_unkept(
        endpoints.clone(),
        shared.clone(),
        args.unkept_every,
        seed.wrapping_add(3000),
    ));
    let timing = Timing {
        quiet: (Duration::from_secs(1), Duration::from_secs(3)),
        hold: (Duration::from_secs(1), Duration::from_secs(5)),
        recovery_limit: Duration::from_secs(30),
    };
    let until = Instant::now() + args.duration;
    // Whatever kept the cluster from recovering; the history is still checked.
    let mut trouble = Vec::new();
    let mut windows = Vec::new();
    let schedule = nemesis::run(
        &mut cluster,
        &shared,
        &faults,
        &timing,
        seed,
        until,
        &mut windows,
    );
    match schedule.await {
        // The last fault may end before the time is up: the workload runs on undisturbed.
        Ok(()) => tokio::time::sleep_until(until.into()).await,
        Err(e) => trouble.push(format!("{e:#}")),
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    for c in clients {
        records.extend(c.await?);
    }
    let mut final_ops = Vec::new();
    match heal_and_read(&mut cluster, &shared, args.clients).await {
        Ok(finals) => {
            final_ops = finals.iter().map(|r| r.op.clone()).collect();
            records.extend(finals);
        }
        Err(e) => trouble.push(format!("after the heal: {e:#}")),
    }
    let mut unkept_leases = Vec::new();
    for u in unkept.await? {
        unkept_leases.extend(u.await?);
    }
    keepers_stop.store(true, Ordering::Relaxed);
    let mut kept_leases = Vec::new();
    for k in keepers {
        kept_leases.extend(k.await?);
    }
    let (truth, until) = match final_history(&endpoints, &shared.prefix).await {
        Ok(h) => h,
        Err(e) => {
            trouble.push(format!("the final watch history: {e:#}"));
            (Vec::new(), 0)
        }
    };
    watch_end.target.store(until, Ordering::Relaxed);
    let give_up = {
        let end = watch_end.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            end.give_up.store(true, Ordering::Relaxed);
        })
    };
    let mut watch_logs = Vec::new();
    for w in watchers {
        watch_logs.push(w.await?);
    }
    give_up.abort();
    let history: Vec<Operation> = records.iter().map(|r| r.op.clone()).collect();

    let counts = summary::count(&records);
    let checked = Instant::now();
    let report = linearizability::check(&history, args.max_steps)?;
    let check_time = checked.elapsed();
    let lost = verify::lost_acks(&history, &final_ops);
    let converged = verify::converge(&cluster, Duration::from_secs(30)).await;
    let gaps = summary::unavailability(&records, &windows);

    println!("faults: {}", windows.len());
    for (fault, gap) in &gaps {
        let n = windows.iter().filter(|w| w.fault == *fault).count();
        println!(
            "  {:<15} x{n:<3} longest unavailability {:.2}s",
            fault.name(),
            gap.as_secs_f64()
        );
    }
    println!(
        "ops: {} (ok {}, failed {}, timed out {}; indeterminate writes {})",
        counts.ops, counts.ok, counts.failed, counts.timed_out, counts.indeterminate
    );
    println!(
        "linearizability: {} keys checked in {:.2}s, {} violations, {} undecided",
        report.keys,
        check_time.as_secs_f64(),
        report.violations.len(),
        report.gave_up.len()
    );
    println!("lost acknowledged writes: {}", lost.len());
    for t in &trouble {
        println!("the cluster did NOT recover: {t}");
    }
    match &converged {
        Ok((rev, hash)) => println!("members converged: revision {rev}, hash {hash:#010x}"),
        Err(why) => println!("members did NOT converge: {why}"),
    }

    for v in &report.violations {
        println!(
            "\nkey {} is not linearizable ({} ops); smallest failing history ({} ops):",
            v.key,
            v.ops,
            v.smallest.len()
        );
        for op in &v.smallest {
            println!("  {op}");
        }
    }
    for l in lost.iter().take(20) {
        println!("lost: {} (final value {:?})", l.write, l.final_value);
    }
    for key in &report.gave_up {
        println!(
            "key {key}: search gave up after {} steps (raise --max-steps)",
            args.max_steps
        );
    }
    let watch_ok = report_watchers(&watch_logs, &truth, until, &records);
    let leases_ok = report_leases(&kept_leases, &mut unkept_leases, &truth, &shared);
    let passed = report.is_linearizable()
        && lost.is_empty()
        && converged.is_ok()
        && trouble.is_empty()
        && watch_ok
        && leases_ok;
    if passed {
        println!("PASS");
    } else if args.discard_data {
        println!("FAIL: replay with --seed {seed} (same flags)");
    } else {
        // Keep the members' data and logs, and the whole history, for a post-mortem.
        let kept = dir.keep();
        let mut ops = history;
        ops.sort_by_key(|op| (op.invoke, op.client));
        let lines: Vec<String> = ops.iter().map(|op| op.to_string()).collect();
        std::fs::write(kept.join("history.txt"), lines.join("\n") + "\n")?;
        std::fs::write(kept.join("watch.txt"), watch_dump(&watch_logs, &truth))?;
        println!(
            "FAIL: replay with --seed {seed} (same flags); member data, logs, history.txt and watch.txt kept in {}",
            kept.display()
        );
    }
    Ok(passed)
}

/// Grants a lease with a key every `every` until the workload stops, and leaves it to
/// expire; the tasks that poll those keys.
async fn spawn_unkept(
    endpoints: Vec<String>,
    shared: Arc<Shared>,
    every: Duration,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<Option<lease_check::UnkeptLease>>> {
    let mut tasks = Vec::new();
    if every.is_zero() {
        return tasks;
    }
    while !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        let idx = tasks.len();
        tasks.push(tokio::spawn(leases::unkept(
            idx,
            endpoints.clone(),
            shared.clone(),
            UNKEPT_TTL,
            ELECTION,
            EXPIRY_SLACK,
            seed.wrapping_add(idx as u64),
        )));
    }
    tasks
}

/// The history under the prefix from the first member that gives it within a minute.
async fn final_history(
    endpoints: &[String],
    prefix: &str,
) -> anyhow::Result<(Vec<watch_check::Change>, i64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = anyhow::anyhow!("no member");
    for e in endpoints.iter().cycle() {
        if Instant::now() > deadline {
            break;
        }
        match watcher::history(e, prefix).await {
            Ok(h) => return Ok(h),
            Err(err) => last = err,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

/// The final watch history and what each watcher went through, one line each.
fn watch_dump(logs: &[watch_check::WatchLog], truth: &[watch_check::Change]) -> String {
    use std::fmt::Write;
    let mut out = String::from("history:\n");
    for c in truth {
        let _ = writeln!(out, "  {c}");
    }
    for l in logs {
        let _ = writeln!(out, "watcher {} from rev {}:", l.watcher, l.start_revision);
        for s in &l.seen {
            let _ = match s {
                watch_check::Seen::Response(changes) => writeln!(
                    out,
                    "  response: {}",
                    changes
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                watch_check::Seen::Resumed { start_revision } => {
                    writeln!(out, "  resumed from rev {start_revision}")
                }
                watch_check::Seen::Compacted { compact_revision } => {
                    writeln!(out, "  compacted: resumes from rev {compact_revision}")
                }
            };
        }
    }
    out
}

/// Prints the watchers' figures and violations; true when there are none.
fn report_watchers(
    logs: &[watch_check::WatchLog],
    truth: &[watch_check::Change],
    until: i64,
    records: &[workload::Record],
) -> bool {
    use linearizability::{Call, Outcome, Ret};
    let violations: Vec<_> = logs
        .iter()
        .map(|l| (l.watcher, watch_check::check(l, truth, until)))
        .collect();
    let total: usize = violations.iter().map(|(_, v)| v.len()).sum();
    println!(
        "watchers: {}, history {} events through revision {until}; events seen {}, resumes {} (compacted {}), {total} watch violations",
        logs.len(),
        truth.len(),
        logs.iter().map(|l| l.events()).sum::<usize>(),
        logs.iter().map(|l| l.resumes()).sum::<usize>(),
        logs.iter().map(|l| l.compactions()).sum::<usize>(),
    );
    let acked: Vec<watch_check::Change> = records
        .iter()
        .filter_map(|r| {
            let v = match (r.op.call, r.op.outcome) {
                (
                    Call::Write(v) | Call::Cas { new: v, .. },
                    Outcome::Done {
                        ret: Ret::Write | Ret::Cas(true),
                        ..
                    },
                ) => v,
                _ => return None,
            };
            Some(watch_check::Change {
                revision: r.revision?,
                key: r.op.key.clone(),
                value: Some(v.to_string()),
            })
        })
        .collect();
    let unrecorded = watch_check::unrecorded_writes(&acked, truth);
    let holes = watch_check::holes(truth, until);
    println!(
        "acknowledged writes missing from the watch history: {} of {}; revisions missing from it: {}",
        unrecorded.len(),
        acked.len(),
        holes.len()
    );
    if !holes.is_empty() {
        println!(
            "  revisions no event carries: {:?}",
            &holes[..holes.len().min(20)]
        );
    }
    for (w, vs) in &violations {
        for v in vs.iter().take(10) {
            println!("  watcher {w}: {v}");
        }
        if vs.len() > 10 {
            println!("  watcher {w}: ... {} more", vs.len() - 10);
        }
    }
    for c in unrecorded.iter().take(10) {
        println!("  acknowledged, not in the history: {c}");
    }
    total == 0 && unrecorded.is_empty() && holes.is_empty()
}

/// Prints the lease holders' figures and violations; true when there are none.
fn report_leases(
    kept: &[lease_check::KeptLease],
    unkept: &mut [lease_check::UnkeptLease],
    truth: &[watch_check::Change],
    shared: &Shared,
) -> bool {
    let end = shared.now();
    let unexpected: Vec<_> = kept.iter().filter_map(lease_check::check_kept).collect();
    let lost_legitimately = kept
        .iter()
        .filter(|l| !l.gone.is_empty())
        .count()
        .saturating_sub(unexpected.len());
    let longest = kept.iter().map(|l| l.longest_gap(end)).max().unwrap_or(0);
    println!(
        "leases kept: {}, keep-alives {}, longest gap {:.2}s (TTL {}s), {} unexpected expiries, {lost_legitimately} lost after a gap over the TTL",
        kept.len(),
        kept.iter().map(|l| l.renewals.len()).sum::<usize>(),
        longest as f64 / 1e9,
        kept.first().map(|l| l.ttl_secs).unwrap_or_default(),
        unexpected.len(),
    );
    for u in unkept.iter_mut() {
        let events: Vec<_> = truth.iter().filter(|c| c.key == u.key).collect();
        u.deletes = events.iter().filter(|c| c.value.is_none()).count();
        u.put_after_delete = events
            .iter()
            .skip_while(|c| c.value.is_some())
            .any(|c| c.value.is_some());
    }
    let expiry: Vec<_> = unkept
        .iter()
        .flat_map(|u| {
            let last = u.polls.last().map(|p| p.sent).unwrap_or(u.grant_answered);
            lease_check::check_unkept(u, ELECTION, EXPIRY_SLACK, last)
        })
        .collect();
    let expired = unkept.iter().filter(|u| u.gone_at().is_some()).count();
    let count =
        |f: fn(&lease_check::ExpiryViolation) -> bool| expiry.iter().filter(|v| f(v)).count();
    println!(
        "leases left to expire: {} (expired {expired}), {} early, {} late, {} never, {} not exactly once",
        unkept.len(),
        count(|v| matches!(v, lease_check::ExpiryViolation::Early { .. })),
        count(|v| matches!(v, lease_check::ExpiryViolation::Late { .. })),
        count(|v| matches!(v, lease_check::ExpiryViolation::Never { .. })),
        count(|v| matches!(v, lease_check::ExpiryViolation::NotOnce { .. })),
    );
    for v in &unexpected {
        println!("  {v}");
        if let Some(l) = kept.iter().find(|l| l.id == v.id) {
            for r in l
                .renewals
                .iter()
                .filter(|r| r.answered <= v.at)
                .rev()
                .take(3)
            {
                println!(
                    "    renewal sent {:.2}s, answered {:.2}s",
                    r.sent as f64 / 1e9,
                    r.answered as f64 / 1e9
                );
            }
        }
    }
    for v in &expiry {
        println!("  {v}");
    }
    unexpected.is_empty() && expiry.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
