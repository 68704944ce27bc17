//! `cargo xtask bench join [--keys N]`: issue 16's figure, how long a new member takes to join
//! a cluster holding N keys, for etcr and etcd 3.4. A fresh 3-member cluster gets N keys
//! (8 B keys, 256 B values, 100 per txn), `etcdctl member add` a fourth member, which is then
//! started with `--initial-cluster-state existing`; the time is from its start until it
//! answers a serializable read of the last key written.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs;
use crate::side_by_side::{self as sbs, Row, MEMBERS};

/// Keys per fill transaction (etcd allows 128 operations per txn).
const FILL_TXN_OPS: u64 = 100;
/// How long the new member may take.
const JOIN_LIMIT: Duration = Duration::from_secs(600);

/// A started process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Join {
    fill_seconds: f64,
    add_seconds: f64,
    join_seconds: f64,
}

pub fn run(keys: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        keys >= FILL_TXN_OPS,
        "--keys must be at least {FILL_TXN_OPS}"
    );
    let systems = sbs::prepare()?;
    let work = sbs::work_dir("join")?;
    let mut results = Vec::new();
    for (name, bin) in &systems.list {
        let dir = work.join(name);
        results.push(measure(name, bin, &systems.bench_bin, &dir, keys)?);
        let _ = fs::remove_dir_all(&dir);
    }
    let (etcr, etcd) = (results[0], results[1]);
    let rows = vec![
        Row::new(
            format!("a 4th member joins and serves the last of {keys} keys (serializable)"),
            "s",
            etcr.join_seconds,
            etcd.join_seconds,
        ),
        Row::new(
            "member add answered",
            "s",
            etcr.add_seconds,
            etcd.add_seconds,
        ),
        Row::new(
            format!("filling {keys} keys, {FILL_TXN_OPS} per txn, 100 clients"),
            "s",
            etcr.fill_seconds,
            etcd.fill_seconds,
        ),
    ];
    let title = format!(
        "Join: etcr vs etcd 3.4, {MEMBERS} members + 1, {} cores",
        sbs::cores()
    );
    let table = sbs::markdown(&title, &rows);
    sbs::publish(
        "join",
        &table,
        serde_json::json!({"keys": keys, "etcr": etcr, "etcd": etcd}),
    )
}

/// The `ETCD_INITIAL_CLUSTER` value etcdctl's `member add` printed.
pub fn initial_cluster(member_add_output: &str) -> Option<String> {
    member_add_output.lines().find_map(|l| {
        let v = l.trim().strip_prefix("ETCD_INITIAL_CLUSTER=")?;
        Some(v.trim_matches('"').to_string())
    })
}

/// The key with number `n` as etcr-bench's sequential 8-byte keys name it.
pub fn bench_key(n: u64) -> String {
    let digits = format!("{n:08}");
    digits[digits.len() - 8..].to_string()
}

fn etcdctl(endpoints: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::null())
        .output()?)
}

fn measure(
    name: &str,
    bin: &Path,
    bench_bin: &Path,
    dir: &Path,
    keys: u64,
) -> anyhow::Result<Join> {
    eprintln!(
        "== {name}: starting {MEMBERS} members under {}",
        dir.display()
    );
    let (servers, endpoints) = procs::start_cluster(bin, dir, MEMBERS, &|_| Vec::new())?;
    eprintln!("== {name}: writing {keys} keys");
    let fill_start = Instant::now();
    let fill = sbs::bench(
        bench_bin,
        &endpoints,
        &dir.join("fill.json"),
        &sbs::strings(&[
            "txn-put",
            "--txn-ops",
            &FILL_TXN_OPS.to_string(),
            "--sequential-keys",
            "--key-space-size",
            &keys.to_string(),
            "--total",
            &(keys / FILL_TXN_OPS).to_string(),
            "--conns",
            "10",
            "--clients",
            "100",
        ]),
        &mut |_| Ok(()),
    )?;
    let fill_seconds = fill_start.elapsed().as_secs_f64();
    anyhow::ensure!(
        sbs::num(&fill, "/errors") == 0.0,
        "{name}: the fill had errors: {}",
        fill["errors_by_code"]
    );
    let last_key = bench_key(keys / FILL_TXN_OPS * FILL_TXN_OPS - 1);

    let (client, peer) = (procs::free_port()?, procs::free_port()?);
    let client = format!("http://127.0.0.1:{client}");
    let peer = format!("http://127.0.0.1:{peer}");
    eprintln!("== {name}: member add m4 {peer}");
    let add_start = Instant::now();
    let added = etcdctl(
        &endpoints.join(","),
        &["member", "add", "m4", &format!("--peer-urls={peer}")],
    )?;
    let add_seconds = add_start.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&added.stdout);
    let initial = initial_cluster(&out).ok_or_else(|| {
        anyhow::anyhow!(
            "{name}: member add printed no ETCD_INITIAL_CLUSTER: {out}{}",
            String::from_utf8_lossy(&added.stderr)
        )
    })?;
    let log = fs::File::create(dir.join("m4.log"))?;
    let started = Instant::now();
    let _m4 = Killed(
        procs::member_command(bin, "m4", dir, &client, &peer, &initial)
            .args(["--initial-cluster-state", "existing"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    eprintln!("== {name}: m4 started; waiting for it to serve {last_key}");
    loop {
        let got = etcdctl(
            &client,
            &[
                "get",
                &last_key,
                "--consistency=s",
                "--print-value-only",
                "--command-timeout=1s",
            ],
        )?;
        if got.status.success() && !got.stdout.trim_ascii().is_empty() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < JOIN_LIMIT,
            "{name}: m4 did not serve {last_key} within {JOIN_LIMIT:?}; see {}",
            dir.join("m4.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let join_seconds = started.elapsed().as_secs_f64();
    eprintln!("   {name}: joined in {join_seconds:.2} s");
    drop(servers);
    Ok(Join {
        fill_seconds,
        add_seconds,
        join_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_initial_cluster_etcdctl_prints() {
        let out = "Member 8e9e05c52164694d added to cluster cdf818194e3a8c32\n\n\
                   ETCD_NAME=\"m4\"\n\
                   ETCD_INITIAL_CLUSTER=\"m1=http://127.0.0.1:1,m4=http://127.0.0.1:4\"\n\
                   ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://127.0.0.1:4\"\n\
                   ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n";
        assert_eq!(
            initial_cluster(out).as_deref(),
            Some("m1=http://127.0.0.1:1,m4=http://127.0.0.1:4")
        );
        assert_eq!(
            initial_cluster("Error: etcdserver: unhealthy cluster"),
            None
        );
    }

    #[test]
    fn keys_are_named_as_etcr_bench_names_them() {
        assert_eq!(bench_key(999_999), "00999999");
        assert_eq!(bench_key(0), "00000000");
    }
}
