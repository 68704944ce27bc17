//! `cargo xtask bench watch [--quick]`: issue 14's watch figures, etcr beside etcd 3.4, each
//! on a fresh 3-member cluster: member memory for 100,000 idle watchers on 1,000 streams,
//! fan-out to 1,000 watchers of one prefix under a put load (events/s, put throughput with
//! and without them, put-to-event latency), and a watcher catching up from history.

use std::path::Path;

use crate::procs;
use crate::side_by_side::{self as sbs, Row, Target, MEMBERS};

/// The sizes of a run.
pub struct Plan {
    pub idle_watchers: u64,
    pub idle_streams: u64,
    pub fanout_watchers: u64,
    pub put_seconds: u64,
    /// Puts per second of the paced fan-out run: a load the machine can deliver to every
    /// watcher, where latency means delivery and not a queue.
    pub paced_rate: u64,
    pub catch_up: u64,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        Plan {
            idle_watchers: 100_000,
            idle_streams: 1_000,
            fanout_watchers: 1_000,
            put_seconds: if quick { 3 } else { 10 },
            paced_rate: 200,
            catch_up: if quick { 50_000 } else { 1_000_000 },
        }
    }
}

/// Memory of the watched member before and after the idle watchers, bytes.
#[derive(Default, Debug, Clone, Copy)]
struct Idle {
    rss: (u64, u64),
    anon: (u64, u64),
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let systems = sbs::prepare()?;
    let work = sbs::work_dir("watch")?;
    let plan = Plan::new(quick);
    eprintln!("== loopback TCP throughput of this machine, for the bytes rows");
    let loopback = loopback_bytes_per_second()?;
    let mut results = Vec::new();
    for (name, bin) in &systems.list {
        let dir = work.join(name);
        results.push(measure(name, bin, &systems.bench_bin, &dir, &plan)?);
        // The next cluster needs the disk more than anyone needs these stores.
        let _ = std::fs::remove_dir_all(dir.join("m1"));
        let _ = std::fs::remove_dir_all(dir.join("m2"));
        let _ = std::fs::remove_dir_all(dir.join("m3"));
    }
    let [(etcr_idle, etcr), (etcd_idle, etcd)] = [results[0].clone(), results[1].clone()];
    let rows = rows(&plan, (&etcr_idle, &etcr), (&etcd_idle, &etcd));
    let title = format!(
        "Watch: etcr vs etcd 3.4, {MEMBERS} members each, {} cores shared with etcr-bench{}",
        sbs::cores(),
        if quick { " (--quick)" } else { "" }
    );
    let mut table = sbs::markdown(&title, &rows);
    table.push_str(&format!(
        "\nLoopback TCP on this machine, one connection with one writing and one reading thread and nothing else running: {:.2} GB/s.\n",
        loopback / 1e9
    ));
    let raw = serde_json::json!({
        "quick": quick,
        "loopback_bytes_per_second": loopback,
        "etcr": {"idle_rss": etcr_idle.rss, "idle_anon": etcr_idle.anon, "fanout": etcr},
        "etcd": {"idle_rss": etcd_idle.rss, "idle_anon": etcd_idle.anon, "fanout": etcd},
    });
    sbs::publish("watch", &table, raw)
}

fn rows(
    plan: &Plan,
    (etcr_idle, etcr): (&Idle, &serde_json::Value),
    (etcd_idle, etcd): (&Idle, &serde_json::Value),
) -> Vec<Row> {
    let growth = |(before, after): (u64, u64)| sbs::mib(after.saturating_sub(before) as f64);
    let n = |v: &serde_json::Value, p: &str| sbs::num(v, p);
    let with_over_without = |v: &serde_json::Value| {
        let without = n(v, "/put_baseline/throughput");
        if without > 0.0 {
            n(v, "/put_with_watchers/throughput") / without
        } else {
            0.0
        }
    };
    let needed = |v: &serde_json::Value| {
        0.9 * n(v, "/put_baseline/throughput")
            * plan.fanout_watchers as f64
            * n(v, "/bytes_per_event")
            / 1e9
    };
    let delivered =
        |v: &serde_json::Value| 100.0 * n(v, "/events") / n(v, "/expected_events").max(1.0);
    let idle = format!(
        "{} watchers on {} streams (distinct keys)",
        plan.idle_watchers, plan.idle_streams
    );
    let fan = format!("{} watchers of one prefix", plan.fanout_watchers);
    vec![
        Row::new(
            format!("member RSS growth (VmRSS), {idle}"),
            "MiB",
            growth(etcr_idle.rss),
            growth(etcd_idle.rss),
        )
        .target(Target::RatioAtMost(0.5)),
        Row::new(
            format!("member private memory growth (RssAnon), {idle}"),
            "MiB",
            growth(etcr_idle.anon),
            growth(etcd_idle.anon),
        ),
        Row::new(
            "time to create them",
            "s",
            n(etcr, "/idle_create_seconds"),
            n(etcd, "/idle_create_seconds"),
        ),
        Row::new(
            format!("events delivered per second, {fan}, put 10/100"),
            "/s",
            n(etcr, "/events_per_second"),
            n(etcd, "/events_per_second"),
        )
        .target(Target::RatioAtLeast(3.0)),
        Row::new(
            "events delivered of expected (puts × watchers)",
            "%",
            delivered(etcr),
            delivered(etcd),
        ),
        Row::new(
            "put throughput without watchers",
            "/s",
            n(etcr, "/put_baseline/throughput"),
            n(etcd, "/put_baseline/throughput"),
        ),
        Row::new(
            format!("put throughput with {fan}"),
            "/s",
            n(etcr, "/put_with_watchers/throughput"),
            n(etcd, "/put_with_watchers/throughput"),
        ),
        Row::new(
            "put throughput with watchers / without",
            "",
            with_over_without(etcr),
            with_over_without(etcd),
        )
        .target(Target::AtLeast(0.9)),
        Row::new(
            "bytes per event on the wire (gRPC message and prefix)",
            "B",
            n(etcr, "/bytes_per_event"),
            n(etcd, "/bytes_per_event"),
        ),
        Row::new(
            "what a 0.9 put ratio would take: 0.9 × puts/s without watchers × watchers × bytes per event",
            "GB/s",
            needed(etcr),
            needed(etcd),
        ),
        Row::new(
            "put answer to event received, p99",
            "ms",
            n(etcr, "/delivery_latency_ms/p99"),
            n(etcd, "/delivery_latency_ms/p99"),
        )
        .target(Target::AtMost(10.0)),
        Row::new(
            "put answer to event received, p50",
            "ms",
            n(etcr, "/delivery_latency_ms/p50"),
            n(etcd, "/delivery_latency_ms/p50"),
        ),
        Row::new(
            format!(
                "events delivered per second, {fan}, {} puts/s",
                plan.paced_rate
            ),
            "/s",
            n(etcr, "/paced/events_per_second"),
            n(etcd, "/paced/events_per_second"),
        ),
        Row::new(
            format!(
                "put answer to event received, p99, {} puts/s",
                plan.paced_rate
            ),
            "ms",
            n(etcr, "/paced/delivery_latency_ms/p99"),
            n(etcd, "/paced/delivery_latency_ms/p99"),
        )
        .target(Target::AtMost(10.0)),
        Row::new(
            format!("catch-up of one watcher {} revisions behind", plan.catch_up),
            "/s",
            n(etcr, "/catch_up/events_per_second"),
            n(etcd, "/catch_up/events_per_second"),
        )
        .target(Target::AtLeast(200_000.0)),
    ]
}

/// Bytes a second one loopback TCP connection carries between a writing and a reading
/// thread for a second: the most that watch events could flow on this machine with no
/// member and no client doing anything else.
fn loopback_bytes_per_second() -> anyhow::Result<f64> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let run_for = std::time::Duration::from_secs(1);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = std::net::TcpStream::connect(addr)?;
        let chunk = vec![0u8; 1 << 20];
        let start = std::time::Instant::now();
        while start.elapsed() < run_for {
            out.write_all(&chunk)?;
        }
        Ok(())
    });
    let (mut input, _) = listener.accept()?;
    let mut buf = vec![0u8; 1 << 20];
    let (start, mut total) = (std::time::Instant::now(), 0u64);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the loopback writer panicked"))??;
    Ok(total as f64 / seconds.max(f64::EPSILON))
}

/// One system: the idle watchers (memory), then fan-out and catch-up, on one cluster.
fn measure(
    name: &str,
    bin: &Path,
    bench_bin: &Path,
    dir: &Path,
    plan: &Plan,
) -> anyhow::Result<(Idle, serde_json::Value)> {
    eprintln!(
        "== {name}: starting {MEMBERS} members under {}",
        dir.display()
    );
    let (servers, endpoints) = procs::start_cluster(bin, dir, MEMBERS, &|_| Vec::new())?;
    // The watch streams go to the first endpoint: that member's memory is the one to watch.
    let watched = servers.pids()[0];
    eprintln!("== {name}: {} idle watchers", plan.idle_watchers);
    let mut idle = Idle::default();
    let idle_args = sbs::strings(&[
        "watch",
        "--watchers",
        &plan.idle_watchers.to_string(),
        "--watch-streams",
        &plan.idle_streams.to_string(),
        // 40 streams per connection: etcr's grpc-h2 gives each response stream 64 KiB of the
        // client's 5 MiB connection window up front, so past 80 idle streams on one
        // connection the others never get to send (a server bug, reported).
        "--watch-conns",
        "25",
        "--watch-keys",
        "distinct",
        "--put-seconds",
        "0",
        "--hold",
        "2",
    ]);
    let idle_report = sbs::bench(
        bench_bin,
        &endpoints,
        &dir.join("idle.json"),
        &idle_args,
        &mut |phase| {
            let sample = (procs::rss_bytes(watched)?, procs::anon_rss_bytes(watched)?);
            match phase {
                "watchers-start" => (idle.rss.0, idle.anon.0) = sample,
                "watchers-created" => (idle.rss.1, idle.anon.1) = sample,
                _ => {}
            }
            Ok(())
        },
    )?;
    eprintln!(
        "   {name}: RSS {:.1} → {:.1} MiB",
        sbs::mib(idle.rss.0 as f64),
        sbs::mib(idle.rss.1 as f64)
    );

    eprintln!(
        "== {name}: fan-out to {} watchers, put 10/100 for {} s without and with them, then catch-up of {} revisions",
        plan.fanout_watchers, plan.put_seconds, plan.catch_up
    );
    let fan_args = sbs::strings(&[
        "watch",
        "--watchers",
        &plan.fanout_watchers.to_string(),
        "--watch-streams",
        "10",
        "--watch-conns",
        "10",
        "--watch-keys",
        "prefix",
        "--put-seconds",
        &plan.put_seconds.to_string(),
        "--conns",
        "10",
        "--clients",
        "100",
        "--catch-up",
        &plan.catch_up.to_string(),
    ]);
    let mut fan = sbs::bench(
        bench_bin,
        &endpoints,
        &dir.join("fanout.json"),
        &fan_args,
        &mut |_| Ok(()),
    )?;
    eprintln!(
        "== {name}: fan-out to {} watchers at {} puts/s",
        plan.fanout_watchers, plan.paced_rate
    );
    let paced_args = sbs::strings(&[
        "watch",
        "--watchers",
        &plan.fanout_watchers.to_string(),
        "--watch-streams",
        "10",
        "--watch-conns",
        "10",
        "--put-seconds",
        &plan.put_seconds.to_string(),
        "--put-rate",
        &plan.paced_rate.to_string(),
        "--no-baseline",
        "--conns",
        "10",
        "--clients",
        "100",
    ]);
    let paced = sbs::bench(
        bench_bin,
        &endpoints,
        &dir.join("paced.json"),
        &paced_args,
        &mut |_| Ok(()),
    )?;
    if let Some(obj) = fan.as_object_mut() {
        obj.insert(
            "idle_create_seconds".into(),
            idle_report["create_seconds"].clone(),
        );
        obj.insert("paced".into(), paced);
    }
    drop(servers);
    Ok((idle, fan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_keep_the_issue_sizes() {
        let quick = Plan::new(true);
        assert_eq!((quick.idle_watchers, quick.idle_streams), (100_000, 1_000));
        assert!(quick.catch_up < Plan::new(false).catch_up);
        assert_eq!(Plan::new(false).catch_up, 1_000_000);
    }

    #[test]
    fn rows_compute_growth_and_ratios() {
        let idle = |before, after| Idle {
            rss: (before, after),
            anon: (before, after),
        };
        let report = |without: f64, with: f64| {
            serde_json::json!({
                "put_baseline": {"throughput": without},
                "put_with_watchers": {"throughput": with},
                "events": 900, "expected_events": 1000, "bytes_per_event": 300.0,
            })
        };
        let rows = rows(
            &Plan::new(true),
            (&idle(100 << 20, 150 << 20), &report(1000.0, 950.0)),
            (&idle(100 << 20, 300 << 20), &report(1000.0, 400.0)),
        );
        assert_eq!((rows[0].etcr, rows[0].etcd), (50.0, 200.0));
        let ratio = rows.iter().find(|r| r.label.contains("/ without")).unwrap();
        assert_eq!((ratio.etcr, ratio.etcd), (0.95, 0.4));
        let delivered = rows.iter().find(|r| r.unit == "%").unwrap();
        assert_eq!(delivered.etcr, 90.0);
        // 0.9 × 1000 puts/s × 1000 watchers × 300 B.
        let needed = rows.iter().find(|r| r.unit == "GB/s").unwrap();
        assert!((needed.etcr - 0.27).abs() < 1e-9, "{}", needed.etcr);
    }

    #[test]
    fn loopback_carries_bytes() {
        assert!(loopback_bytes_per_second().unwrap() > 1e6);
    }
}
