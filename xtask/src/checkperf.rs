//! `cargo xtask bench check-perf`: `etcdctl check perf` against a fresh etcr cluster and a
//! fresh etcd 3.4 cluster (Debian's) of the same size, one after the other, on this machine.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::health;

/// Server processes that are killed when dropped, whatever happens in between.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `size` members of `bin` (etcd or etcr: they take the same flags) under `dir` and
/// returns them with their client URLs once every member is healthy.
fn start_cluster(
    bin: &Path,
    dir: &Path,
    size: usize,
    extra: &dyn Fn(&str) -> Vec<String>,
) -> anyhow::Result<(Servers, Vec<String>)> {
    fs::create_dir_all(dir)?;
    let mut ports = Vec::new();
    for _ in 0..size {
        ports.push((free_port()?, free_port()?));
    }
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Servers(Vec::new());
    let mut clients = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let name = format!("m{}", i + 1);
        let client = format!("http://127.0.0.1:{client}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = fs::File::create(dir.join(format!("{name}.log")))?;
        let child = Command::new(bin)
            .args(["--name", &name, "--data-dir"])
            .arg(dir.join(&name))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                "bench",
            ])
            .args(extra(&name))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        servers.0.push(child);
        clients.push(client);
    }
    if !health::wait_until(Duration::from_secs(60), || {
        clients.iter().all(|c| health::is_healthy(c))
    }) {
        anyhow::bail!(
            "{} cluster did not become healthy; see the logs in {}",
            bin.display(),
            dir.display()
        );
    }
    Ok((servers, clients))
}

pub fn run(load: &str, size: usize, peer_transport: &str) -> anyhow::Result<()> {
    crate::packages::ensure_etcd()?;
    eprintln!("== building etcr (release)");
    crate::run_cmd(Command::new("cargo").args(["build", "--release", "-p", "etcr"]))?;
    let out_dir = crate::workspace_root().join("target/bench/check-perf");
    let _ = fs::remove_dir_all(&out_dir);
    let certs = out_dir.join("certs");
    if peer_transport == "quic" {
        let names: Vec<String> = (1..=size).map(|i| format!("m{i}")).collect();
        crate::certs::generate(&certs, &names)?;
    }
    let etcr_flags = |name: &str| crate::cluster::tls_flags(&certs, name, peer_transport);
    let etcd_flags = |_: &str| Vec::new();
    let targets: [(&str, PathBuf, &dyn Fn(&str) -> Vec<String>); 2] = [
        (
            "etcr",
            crate::workspace_root().join("target/release/etcr"),
            &etcr_flags,
        ),
        ("etcd", PathBuf::from("/usr/bin/etcd"), &etcd_flags),
    ];
    let mut summary = Vec::new();
    for (name, bin, extra) in targets {
        eprintln!("== etcdctl check perf --load={load} against a {size}-member {name} cluster");
        let (servers, endpoints) = start_cluster(&bin, &out_dir.join(name), size, extra)?;
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(["check", "perf", &format!("--load={load}")])
            .stderr(Stdio::inherit())
            .output()?;
        drop(servers);
        // The progress bar redraws with carriage returns; keep the verdict lines.
        let text = String::from_utf8_lossy(&output.stdout);
        let verdict: Vec<String> = text
            .split(['\r', '\n'])
            .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
            .map(str::to_string)
            .collect();
        for line in &verdict {
            println!("{name}: {line}");
        }
        summary.push((name, verdict));
    }
    println!("\n| check perf --load={load}, {size} members | etcr | etcd |");
    println!("|---|---|---|");
    let rows = summary[0].1.len().max(summary[1].1.len());
    for i in 0..rows {
        let cell = |s: &Vec<String>| s.get(i).cloned().unwrap_or_default();
        println!("| | {} | {} |", cell(&summary[0].1), cell(&summary[1].1));
    }
    Ok(())
}
