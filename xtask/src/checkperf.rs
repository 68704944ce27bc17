//! `cargo xtask bench check-perf`: `etcdctl check perf` against a fresh etcr cluster and a
//! fresh etcd 3.4 cluster (Debian's) of the same size, one after the other, on this machine.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::procs::{start_cluster, MemberFlags};

/// Runs `etcdctl check perf --load=LOAD` against `endpoints` and returns its verdict lines
/// (PASS/FAIL).
pub fn check_perf(endpoints: &[String], load: &str) -> anyhow::Result<Vec<String>> {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["check", "perf", &format!("--load={load}")])
        .stderr(Stdio::inherit())
        .output()?;
    Ok(verdicts(&String::from_utf8_lossy(&output.stdout)))
}

/// The verdict lines of check perf's output. The progress bar redraws with carriage returns;
/// etcdctl 3.4 prints a slow request's failure without the "FAIL:" the other failures carry.
fn verdicts(text: &str) -> Vec<String> {
    text.split(['\r', '\n'])
        .filter_map(|l| {
            if l.starts_with("PASS") || l.starts_with("FAIL") {
                Some(l.to_string())
            } else if l.starts_with("Slowest request took too long") {
                Some(format!("FAIL: {l}"))
            } else {
                None
            }
        })
        .collect()
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
    let targets: [(&str, PathBuf, MemberFlags); 2] = [
        (
            "etcr",
            crate::procs::target_dir().join("release/etcr"),
            &etcr_flags,
        ),
        ("etcd", PathBuf::from("/usr/bin/etcd"), &etcd_flags),
    ];
    let mut summary = Vec::new();
    for (name, bin, extra) in targets {
        eprintln!("== etcdctl check perf --load={load} against a {size}-member {name} cluster");
        let (servers, endpoints) = start_cluster(&bin, &out_dir.join(name), size, extra)?;
        let verdict = check_perf(&endpoints, load)?;
        drop(servers);
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_verdict_is_kept_and_marked() {
        let out = " 60 / 60 Boooo! 100.00%\r 60 / 60 Booooo! 100.00% 1m0s\n\
                   FAIL: Throughput too low: 3081 writes/s\n\
                   Slowest request took too long: 0.786915s\n\
                   PASS: Stddev is 0.072064s\nFAIL\n";
        assert_eq!(
            super::verdicts(out),
            [
                "FAIL: Throughput too low: 3081 writes/s",
                "FAIL: Slowest request took too long: 0.786915s",
                "PASS: Stddev is 0.072064s",
                "FAIL"
            ]
        );
    }
}
