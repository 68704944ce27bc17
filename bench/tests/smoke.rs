//! Runs every workload for 200 requests against one real `etcr` member on 127.0.0.1.
//!
//! The `etcr` binary is `$ETCR_BIN`, or the one beside this test in the target directory;
//! when neither exists it is built with `cargo build -p etcr`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use etcr_bench::{run, Args, Report};

/// One `etcr` member, killed on drop.
struct Member {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// `$ETCR_BIN`, or `etcr` in this test's profile directory (built there if missing).
fn etcr_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ETCR_BIN") {
        return PathBuf::from(bin);
    }
    // This test runs as <target>/<profile>/deps/smoke-<hash>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
    let bin = profile_dir.join("etcr");
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("target dir");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "--quiet", "-p", "etcr", "--target-dir"]);
        cargo.arg(target_dir);
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build -p etcr");
        assert!(status.success(), "cargo build -p etcr failed");
    }
    bin
}

fn healthy(endpoint: &str) -> bool {
    let addr = endpoint.trim_start_matches("http://");
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    s.write_all(request.as_bytes()).is_ok()
        && s.read_to_string(&mut out).is_ok()
        && out.contains("\"health\":\"true\"")
}

fn start_member(dir: &Path) -> Member {
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = dir.join("etcr.log");
    let child = Command::new(etcr_bin())
        .args(["--name", "b1", "--data-dir"])
        .arg(dir.join("b1"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("b1={peer}")])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start etcr");
    let mut member = Member {
        child,
        endpoint: client,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthy(&member.endpoint) {
        if Instant::now() > deadline || matches!(member.child.try_wait(), Ok(Some(_))) {
            let log = std::fs::read_to_string(&member.log).unwrap_or_default();
            panic!("etcr did not become healthy; log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    member
}

fn bench(endpoint: &str, extra: &[&str]) -> Report {
    let mut argv = vec!["etcr-bench"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&[
        "--endpoints",
        endpoint,
        "--conns",
        "2",
        "--clients",
        "8",
        "--total",
        "200",
        "--key-space-size",
        "100",
        "--quiet",
    ]);
    let args = Args::parse_from(argv);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&args)).expect("benchmark runs")
}

fn assert_sane(report: &Report, workload: &str) {
    assert_eq!(report.workload, workload);
    assert_eq!(report.errors, 0, "{workload}: {}", report.table());
    assert_eq!(report.requests, 200, "{workload}: {}", report.table());
    assert!(report.throughput > 0.0);
    let l = &report.latency_ms;
    assert!(l.p50 > 0.0 && l.p50 <= l.p90 && l.p90 <= l.p99, "{l:?}");
    assert!(l.p99 <= l.p999 && l.p999 <= l.max, "{l:?}");
}

#[test]
fn every_workload_runs_without_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let member = start_member(dir.path());
    let ep = member.endpoint.as_str();

    assert_sane(&bench(ep, &["put"]), "put");
    assert_sane(
        &bench(ep, &["put", "--key-size", "256", "--val-size", "1024"]),
        "put",
    );
    assert_sane(&bench(ep, &["range"]), "range");
    let serializable = bench(ep, &["range", "--consistency", "s"]);
    assert_sane(&serializable, "range");
    assert_eq!(serializable.consistency, "s");
    assert_sane(&bench(ep, &["txn-put", "--txn-ops", "2"]), "txn-put");
    let leader = bench(ep, &["mixed", "--target-leader"]);
    assert_sane(&leader, "mixed");
    assert_eq!(leader.endpoints, [ep]);
}

#[test]
fn the_binary_writes_a_table_and_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let member = start_member(dir.path());
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_etcr-bench"))
        .args(["put", "--total", "200", "--clients", "4", "--endpoints"])
        .arg(&member.endpoint)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run etcr-bench");
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("requests/s"), "{table}");
    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json report"))
            .expect("valid json");
    assert_sane(&report, "put");

    let refused = Command::new(env!("CARGO_BIN_EXE_etcr-bench"))
        .args(["put", "--total", "1", "--endpoints", "127.0.0.1:1"])
        .output()
        .expect("run etcr-bench");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot connect"));
}

fn args(endpoint: &str, extra: &[&str]) -> Args {
    let mut argv = vec!["etcr-bench"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&["--endpoints", endpoint, "--quiet"]);
    Args::parse_from(argv)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn watch_workload_delivers_every_event_and_catches_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let member = start_member(dir.path());
    let a = args(
        &member.endpoint,
        &[
            "watch",
            "--watchers",
            "20",
            "--watch-streams",
            "3",
            "--watch-conns",
            "2",
            "--put-seconds",
            "1",
            "--conns",
            "2",
            "--clients",
            "4",
            "--catch-up",
            "300",
        ],
    );
    let report = block_on(etcr_bench::watch::run(&a)).expect("watch runs");
    assert_eq!(report.canceled, 0);
    let with = report.put_with_watchers.as_ref().expect("puts ran");
    assert!(report.put_baseline.as_ref().is_some_and(|p| p.puts > 0));
    assert!(with.puts > 0 && with.errors == 0, "{}", report.table());
    assert_eq!(report.expected_events, with.puts * 20);
    assert_eq!(report.events, report.expected_events, "{}", report.table());
    assert!(report.events_per_second > 0.0);
    let l = &report.delivery_latency_ms;
    assert!(l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    let c = report.catch_up.clone().expect("catch-up ran");
    assert_eq!((c.revisions, c.events), (300, 300), "{}", report.table());
}

#[test]
fn lease_workloads_grant_keep_alive_and_expire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let member = start_member(dir.path());
    let ep = member.endpoint.as_str();
    assert_sane(&bench(ep, &["lease-grant"]), "lease-grant");

    let a = args(
        ep,
        &[
            "lease-keepalive",
            "--leases",
            "50",
            "--lease-ttl",
            "3",
            "--keepalive-streams",
            "4",
            "--keepalive-seconds",
            "2",
        ],
    );
    let etcr_bench::lease::LeaseReport::KeepAlive(k) =
        block_on(etcr_bench::lease::run(&a)).expect("keep-alive runs")
    else {
        panic!("a keep-alive report")
    };
    assert_eq!(k.leases, 50);
    // Every lease once a second (TTL/3) for 2 s.
    assert!((90..=100).contains(&k.sent), "{k:?}");
    assert_eq!((k.answered, k.expired), (k.sent, 0), "{k:?}");

    let a = args(
        ep,
        &[
            "lease-expiry",
            "--leases",
            "30",
            "--lease-ttl",
            "2",
            "--grant-clients",
            "5",
            "--clients",
            "2",
            "--expiry-baseline",
            "0.5",
        ],
    );
    let etcr_bench::lease::LeaseReport::Expiry(e) =
        block_on(etcr_bench::lease::run(&a)).expect("expiry runs")
    else {
        panic!("an expiry report")
    };
    assert_eq!((e.leases, e.deleted), (30, 30), "{e:?}");
    assert!(e.lateness_ms.max < 5000.0, "{e:?}");
    assert!(e.puts_before.puts > 0 && e.puts_during.puts > 0, "{e:?}");
}

#[test]
fn user_sends_its_token_with_every_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let member = start_member(dir.path());
    let ep = member.endpoint.as_str();
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "reader:rpw"],
        &["role", "add", "reads"],
        &["role", "grant-permission", "reads", "read", "0", "--prefix"],
        &["user", "grant-role", "reader", "reads"],
        &["auth", "enable"],
    ] {
        let out = Command::new("/usr/bin/etcdctl")
            .arg(format!("--endpoints={ep}"))
            .args(args)
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    }
    assert_sane(&bench(ep, &["range", "--user", "reader:rpw"]), "range");
    let split = bench(ep, &["range", "--user", "reader", "--password", "rpw"]);
    assert_sane(&split, "range");
    let anonymous = bench(ep, &["range"]);
    assert_eq!(anonymous.errors, 200, "{}", anonymous.table());
    let denied = bench(ep, &["put", "--user", "reader:rpw"]);
    assert_eq!(denied.errors, 200, "{}", denied.table());
    assert!(
        denied
            .error_samples
            .values()
            .any(|m| m == "etcdserver: permission denied"),
        "{:?}",
        denied.error_samples
    );
}
