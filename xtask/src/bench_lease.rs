//! `cargo xtask bench lease [--quick]`: issue 15's lease figures, etcr beside etcd 3.4, each
//! workload on a fresh 3-member cluster: grant throughput (100,000 leases from 500 clients),
//! the members' CPU and memory while 100,000 leases are kept alive every TTL/3, and 10,000
//! leases expiring together (how late their keys go, and other writes' p99 meanwhile).

use std::path::Path;

use crate::procs;
use crate::side_by_side::{self as sbs, Row, Target, MEMBERS};

/// The sizes of a run.
pub struct Plan {
    pub grants: u64,
    pub keepalive_leases: u64,
    pub keepalive_seconds: u64,
    pub expiring: u64,
    pub expiry_ttl: u64,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        Plan {
            grants: if quick { 50_000 } else { 100_000 },
            keepalive_leases: if quick { 50_000 } else { 100_000 },
            keepalive_seconds: if quick { 10 } else { 30 },
            expiring: 10_000,
            expiry_ttl: 10,
        }
    }
}

/// The members' resources over the keep-alive phase.
#[derive(Default, Debug, Clone, serde::Serialize)]
struct KeepAliveCost {
    cpu_seconds: f64,
    max_rss: u64,
    max_anon: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
struct SystemResult {
    grant: serde_json::Value,
    keepalive: serde_json::Value,
    keepalive_cost: KeepAliveCost,
    expiry: serde_json::Value,
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let systems = sbs::prepare()?;
    let work = sbs::work_dir("lease")?;
    let plan = Plan::new(quick);
    let mut results = Vec::new();
    for (name, bin) in &systems.list {
        results.push(measure(
            name,
            bin,
            &systems.bench_bin,
            &work.join(name),
            &plan,
        )?);
    }
    let rows = rows(&plan, &results[0], &results[1]);
    let title = format!(
        "Leases: etcr vs etcd 3.4, {MEMBERS} members each, {} cores shared with etcr-bench{}",
        sbs::cores(),
        if quick { " (--quick)" } else { "" }
    );
    let table = sbs::markdown(&title, &rows);
    let raw = serde_json::json!({"quick": quick, "etcr": results[0], "etcd": results[1]});
    sbs::publish("lease", &table, raw)
}

fn rows(plan: &Plan, etcr: &SystemResult, etcd: &SystemResult) -> Vec<Row> {
    let n = sbs::num;
    let both = |label: String, unit, f: &dyn Fn(&SystemResult) -> f64| {
        Row::new(label, unit, f(etcr), f(etcd))
    };
    let within = |s: &SystemResult| {
        100.0 * n(&s.expiry, "/expiry/within_1s") / n(&s.expiry, "/expiry/leases").max(1.0)
    };
    let p99_ratio = |s: &SystemResult| {
        let before = n(&s.expiry, "/expiry/puts_before/latency_ms/p99");
        if before > 0.0 {
            n(&s.expiry, "/expiry/puts_during/latency_ms/p99") / before
        } else {
            0.0
        }
    };
    let ka = format!(
        "{} leases kept alive every TTL/3 for {} s",
        plan.keepalive_leases, plan.keepalive_seconds
    );
    let ex = format!(
        "{} leases of {} s expiring together",
        plan.expiring, plan.expiry_ttl
    );
    vec![
        both(
            format!("lease grants per second, {} from 500 clients", plan.grants),
            "/s",
            &|s| n(&s.grant, "/throughput"),
        )
        .target(Target::RatioAtLeast(3.0)),
        both("lease grant p99".into(), "ms", &|s| {
            n(&s.grant, "/latency_ms/p99")
        }),
        both(format!("member CPU, all members, {ka}"), "s", &|s| {
            s.keepalive_cost.cpu_seconds
        })
        .target(Target::RatioAtMost(0.5)),
        both(format!("member RSS, largest, {ka}"), "MiB", &|s| {
            sbs::mib(s.keepalive_cost.max_rss as f64)
        })
        .target(Target::RatioAtMost(0.5)),
        both(
            "member private memory (RssAnon), largest".into(),
            "MiB",
            &|s| sbs::mib(s.keepalive_cost.max_anon as f64),
        ),
        both("keep-alive answers per second".into(), "/s", &|s| {
            n(&s.keepalive, "/keep-alive/answers_per_second")
        }),
        both(
            "keep-alive answers saying expired (TTL 0)".into(),
            "",
            &|s| n(&s.keepalive, "/keep-alive/expired"),
        ),
        both(
            format!("keys gone within 1 s of their TTL, {ex}"),
            "%",
            &within,
        )
        .target(Target::AtLeast(100.0)),
        both("expiry lateness after the TTL, p99".into(), "ms", &|s| {
            n(&s.expiry, "/expiry/lateness_ms/p99")
        }),
        both("expiry lateness after the TTL, max".into(), "ms", &|s| {
            n(&s.expiry, "/expiry/lateness_ms/max")
        }),
        both("other writes' p99 before the expiry".into(), "ms", &|s| {
            n(&s.expiry, "/expiry/puts_before/latency_ms/p99")
        }),
        both(
            "other writes' p99 while the leases expire".into(),
            "ms",
            &|s| n(&s.expiry, "/expiry/puts_during/latency_ms/p99"),
        ),
        both("other writes' p99, during / before".into(), "", &p99_ratio)
            .target(Target::AtMost(2.0)),
    ]
}

fn cluster(name: &str, bin: &Path, dir: &Path) -> anyhow::Result<(procs::Servers, Vec<String>)> {
    let _ = std::fs::remove_dir_all(dir);
    eprintln!("== {name}: fresh {MEMBERS} members under {}", dir.display());
    procs::start_cluster(bin, dir, MEMBERS, &|_| Vec::new())
}

fn measure(
    name: &str,
    bin: &Path,
    bench_bin: &Path,
    dir: &Path,
    plan: &Plan,
) -> anyhow::Result<SystemResult> {
    let none = &mut |_: &str| Ok(());

    let (servers, endpoints) = cluster(name, bin, &dir.join("grant"))?;
    let grant = sbs::bench(
        bench_bin,
        &endpoints,
        &dir.join("grant.json"),
        &sbs::strings(&[
            "lease-grant",
            "--total",
            &plan.grants.to_string(),
            "--conns",
            "50",
            "--clients",
            "500",
            "--lease-ttl",
            "600",
        ]),
        none,
    )?;
    drop(servers);

    let (servers, endpoints) = cluster(name, bin, &dir.join("keepalive"))?;
    let pids = servers.pids();
    let mut cost = KeepAliveCost::default();
    let mut cpu_start = 0.0;
    let cpu =
        |pids: &[u32]| -> anyhow::Result<f64> { pids.iter().map(|&p| procs::cpu_seconds(p)).sum() };
    let keepalive = sbs::bench(
        bench_bin,
        &endpoints,
        &dir.join("keepalive.json"),
        &sbs::strings(&[
            "lease-keepalive",
            "--leases",
            &plan.keepalive_leases.to_string(),
            // Long enough that no lease expires while the others are still being granted
            // (100k grants take etcd 30-40 s here): a keep-alive every 30 s, 3.3k/s for 100k.
            "--lease-ttl",
            "90",
            "--grant-clients",
            "500",
            "--keepalive-streams",
            "100",
            "--conns",
            "10",
            "--keepalive-seconds",
            &plan.keepalive_seconds.to_string(),
        ]),
        &mut |phase| {
            match phase {
                "keepalive" => cpu_start = cpu(&pids)?,
                "keepalive-done" => {
                    cost.cpu_seconds = cpu(&pids)? - cpu_start;
                    for &p in &pids {
                        cost.max_rss = cost.max_rss.max(procs::rss_bytes(p)?);
                        cost.max_anon = cost.max_anon.max(procs::anon_rss_bytes(p)?);
                    }
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    drop(servers);

    let (servers, endpoints) = cluster(name, bin, &dir.join("expiry"))?;
    let expiry = sbs::bench(
        bench_bin,
        &endpoints,
        &dir.join("expiry.json"),
        &sbs::strings(&[
            "lease-expiry",
            "--leases",
            &plan.expiring.to_string(),
            "--lease-ttl",
            &plan.expiry_ttl.to_string(),
            "--grant-clients",
            "200",
            "--conns",
            "4",
            "--clients",
            "16",
            "--expiry-baseline",
            "3",
        ]),
        none,
    )?;
    drop(servers);
    let _ = std::fs::remove_dir_all(dir);
    Ok(SystemResult {
        grant,
        keepalive,
        keepalive_cost: cost,
        expiry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_the_reports() {
        let system = |grants: f64, within: f64| SystemResult {
            grant: serde_json::json!({"throughput": grants, "latency_ms": {"p99": 3.0}}),
            keepalive: serde_json::json!({"keep-alive": {"answers_per_second": 10.0, "expired": 0}}),
            keepalive_cost: KeepAliveCost {
                cpu_seconds: 2.0,
                max_rss: 64 << 20,
                max_anon: 32 << 20,
            },
            expiry: serde_json::json!({"expiry": {
                "leases": 100, "within_1s": within,
                "puts_before": {"latency_ms": {"p99": 2.0}},
                "puts_during": {"latency_ms": {"p99": 3.0}},
            }}),
        };
        let rows = rows(
            &Plan::new(true),
            &system(3000.0, 100.0),
            &system(1000.0, 40.0),
        );
        assert_eq!((rows[0].etcr, rows[0].etcd), (3000.0, 1000.0));
        let within = rows
            .iter()
            .find(|r| r.label.contains("within 1 s"))
            .unwrap();
        assert_eq!((within.etcr, within.etcd), (100.0, 40.0));
        let ratio = rows.last().unwrap();
        assert_eq!(ratio.etcr, 1.5);
        let rss = rows
            .iter()
            .find(|r| r.label.starts_with("member RSS"))
            .unwrap();
        assert_eq!(rss.etcr, 64.0);
    }
}
