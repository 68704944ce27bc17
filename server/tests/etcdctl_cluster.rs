//! Debian's etcdctl 3.4 against a 3-member etcr cluster: the commands an operator runs first.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Cluster;

const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Runs etcdctl against `endpoints`; returns (exit ok, stdout, stderr).
fn etcdctl(endpoints: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("etcdctl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_works_against_a_cluster() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing: `cargo xtask test` installs Debian's etcd-client"
    );
    let cluster = Cluster::start(3, &[]);
    cluster.leader(Duration::from_secs(10)).await;
    let all = cluster.endpoints().join(",");
    let one = cluster.members[2].endpoint();

    assert_eq!(
        etcdctl(&all, &["put", "foo", "bar"], ""),
        (true, "OK\n".into(), String::new())
    );
    assert_eq!(etcdctl(&one, &["get", "foo"], "").1, "foo\nbar\n");
    let txn = "value(\"foo\") = \"bar\"\n\nput foo baz\n\nget foo\n\n";
    let (ok, out, err) = etcdctl(&all, &["txn"], txn);
    assert!(ok, "{err}");
    // The compare held, so the success branch (the put) ran and the failure branch did not.
    assert_eq!(out, "SUCCESS\n\nOK\n");
    assert_eq!(
        etcdctl(&one, &["get", "foo", "--print-value-only"], "").1,
        "baz\n"
    );
    assert_eq!(etcdctl(&all, &["del", "foo"], "").1, "1\n");

    let (ok, members, err) = etcdctl(&all, &["member", "list"], "");
    assert!(ok, "{err}");
    let lines: Vec<&str> = members.lines().collect();
    assert_eq!(lines.len(), 3, "{members}");
    for (i, m) in cluster.members.iter().enumerate() {
        let name = format!("m{}", i + 1);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!(", started, {name}, ")) && l.contains(&m.endpoint())),
            "member {name} missing from:\n{members}"
        );
    }

    // --cluster: etcdctl reads the members' client URLs and asks each of them.
    let (ok, status, err) = etcdctl(&one, &["endpoint", "status", "--cluster"], "");
    assert!(ok, "{err}");
    let rows: Vec<&str> = status.lines().collect();
    assert_eq!(rows.len(), 3, "{status}{err}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.contains(", true, false, "))
            .count(),
        1,
        "one leader:\n{status}"
    );
    let (ok, _, health) = etcdctl(&one, &["endpoint", "health", "--cluster"], "");
    assert!(ok, "{health}");
    assert_eq!(
        health.lines().filter(|l| l.contains("is healthy")).count(),
        3,
        "{health}"
    );
}
