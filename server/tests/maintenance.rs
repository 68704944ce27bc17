//! Maintenance as tools read it: the standard process metrics, HashKV and Status.

mod common;

use common::{run_etcdctl, Etcr, ETCDCTL};

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
