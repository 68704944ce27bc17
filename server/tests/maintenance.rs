//! Maintenance as tools read it: the standard process metrics, HashKV and Status.

mod common;

use common::{run_etcdctl, Etcd, Etcr, ETCDCTL};

#[test]
fn etcdctl_check_datascale_reads_the_process_metrics() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let dir = tempfile::tempdir().unwrap();
    let m = Etcr::start(&dir.path().join("m"), &[]);
    let metrics = common::http_get(m.client_port, "/metrics").expect("/metrics");
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            metrics.contains(&format!("\n{name} ")),
            "{name} missing from /metrics"
        );
    }
    let (ok, out, err) = run_etcdctl(&m.endpoint(), &["check", "datascale"], b"");
    assert!(ok, "{out}{err}");
    assert!(out.contains("PASS"), "{out}");
}

/// `etcdctl endpoint hashkv -w json`'s hash and compact revision.
fn hashkv(endpoint: &str, rev: &str) -> (String, String) {
    let (ok, out, err) = run_etcdctl(
        endpoint,
        &["endpoint", "hashkv", "-w", "json", "--rev", rev],
        b"",
    );
    assert!(ok, "{err}");
    let field = |name: &str| {
        let at = out
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            + name.len()
            + 3;
        out[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect::<String>()
    };
    (field("hash"), field("compact_revision"))
}

#[test]
fn hashkv_equals_etcds_and_moves_with_compaction() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let etcd = Etcd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let txn = "\n\nput t1 x\nput t2 y\ndel b\n\n";
    let steps: &[(&[&str], &[u8])] = &[
        (&["put", "a", "1"], b""),
        (&["put", "b", "2"], b""),
        (&["put", "a", "3"], b""),
        (&["del", "a"], b""),
        (&["put", "c", "4"], b""),
        (&["txn"], txn.as_bytes()),
        (&["put", "c", "5"], b""),
    ];
    let mut before = Vec::new();
    for (args, stdin) in steps {
        for endpoint in [&etcd.endpoint, &etcr.endpoint()] {
            let (ok, _, err) = run_etcdctl(endpoint, args, stdin);
            assert!(ok, "{args:?} on {endpoint}: {err}");
        }
        let ours = hashkv(&etcr.endpoint(), "0");
        assert_eq!(ours, hashkv(&etcd.endpoint, "0"), "after {args:?}");
        assert_eq!(ours.1, "-1");
        before.push(ours.0);
    }
    // At a past revision too.
    assert_eq!(hashkv(&etcr.endpoint(), "3"), hashkv(&etcd.endpoint, "3"));
    for endpoint in [&etcd.endpoint, &etcr.endpoint()] {
        let (ok, _, err) = run_etcdctl(endpoint, &["compact", "6", "--physical"], b"");
        assert!(ok, "{err}");
    }
    let ours = hashkv(&etcr.endpoint(), "0");
    assert_eq!(ours, hashkv(&etcd.endpoint, "0"));
    assert_eq!(ours.1, "6");
    assert_ne!(
        &ours.0,
        before.last().unwrap(),
        "compaction changes the hash"
    );
    assert_eq!(hashkv(&etcr.endpoint(), "7"), hashkv(&etcd.endpoint, "7"));
}

/// The fields of `etcdctl endpoint status -w json`'s `Status`, with the values' JSON types.
fn status_fields(endpoint: &str) -> Vec<(String, String)> {
    let (ok, out, err) = run_etcdctl(endpoint, &["endpoint", "status", "-w", "json"], b"");
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let status = v[0]["Status"].as_object().expect("a Status object");
    let mut fields: Vec<(String, String)> = status
        .iter()
        .map(|(k, v)| {
            let kind = match v {
                serde_json::Value::Number(_) => "number",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Object(_) => "object",
                serde_json::Value::Array(_) => "array",
                _ => "other",
            };
            (k.clone(), kind.to_string())
        })
        .collect();
    fields.sort();
    fields
}

#[test]
fn status_reports_what_etcds_does() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let etcd = Etcd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    for endpoint in [&etcd.endpoint, &etcr.endpoint()] {
        assert!(run_etcdctl(endpoint, &["put", "a", "1"], b"").0);
    }
    assert_eq!(
        status_fields(&etcr.endpoint()),
        status_fields(&etcd.endpoint)
    );
}
