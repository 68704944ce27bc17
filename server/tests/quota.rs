//! The space quota against real processes, driven by Debian's etcdctl 3.4: filling the store
//! raises a NOSPACE alarm on every member, writes are refused with etcd's error while reads
//! go on, the alarm survives a restart, and compaction plus `alarm disarm` bring writes back.

mod common;

use std::time::Duration;

use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::StatusRequest;
use common::{http_get_any, run_etcdctl, Cluster, Etcd, Etcr, ETCDCTL};

const QUOTA: &[&str] = &["--quota-backend-bytes", "4000000"];
const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn value() -> Vec<u8> {
    vec![b'a'; 1_000_000]
}

/// Puts 1 MB values under `k` through `endpoint` until one is refused; returns how many
/// went in and the refusal.
fn fill(endpoint: &str) -> (usize, String) {
    for i in 0..20 {
        let (ok, _, err) = run_etcdctl(endpoint, &["put", "k"], &value());
        if !ok {
            return (i, err);
        }
    }
    panic!("20 MB went into a store with a 4 MB quota");
}

async fn status(endpoint: &str) -> api::etcdserverpb::StatusResponse {
    let mut c = MaintenanceClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    c.status(StatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// `etcdctl alarm list`'s output, retried while the command fails (an election under a
/// loaded machine), for up to 10 s.
fn alarm_list(endpoint: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, err) = run_etcdctl(endpoint, &["alarm", "list"], b"");
        if ok {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alarm list on {endpoint}: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alarm_line(member: u64) -> String {
    format!("memberID:{member} alarm:NOSPACE \n")
}

fn revision(endpoint: &str) -> String {
    let (ok, out, err) = run_etcdctl(endpoint, &["endpoint", "status", "-w", "json"], b"");
    assert!(ok, "{err}");
    let at = out.find("\"revision\":").expect("a revision") + "\"revision\":".len();
    out[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect()
}

fn assert_unhealthy(m: &Etcr) {
    let (status, body) = http_get_any(m.client_port, "/health").expect("/health answers");
    assert!(status.contains("503"), "{status}");
    assert_eq!(body, "{\"health\":\"false\"}\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_refuses_writes_over_quota_and_recovers_after_compaction_defrag_and_disarm() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut m = Etcr::start(&dir.path().join("m"), QUOTA);
    let ep = m.endpoint();
    let id = status(&ep).await.header.unwrap().member_id;

    let (accepted, refusal) = fill(&ep);
    assert!(accepted >= 2, "only {accepted} MB fit in 4 MB");
    assert!(refusal.contains(&format!("Error: {NOSPACE}")), "{refusal}");
    // Still up, still reading, alarm raised, unhealthy as etcd reports it.
    assert!(m.child.as_mut().unwrap().try_wait().unwrap().is_none());
    let (ok, out, err) = run_etcdctl(&ep, &["get", "k", "--keys-only"], b"");
    assert!(ok, "{err}");
    assert_eq!(out, "k\n\n");
    assert_eq!(alarm_list(&ep), alarm_line(id));
    assert_eq!(
        status(&ep).await.errors,
        vec![format!("memberID:{id} alarm:NOSPACE ")]
    );
    assert_unhealthy(&m);
    // Small writes are refused too while the alarm is raised; deletes are not.
    let (ok, _, err) = run_etcdctl(&ep, &["put", "small", "v"], b"");
    assert!(!ok && err.contains(NOSPACE), "{err}");
    let (ok, out, err) = run_etcdctl(&ep, &["del", "nothing"], b"");
    assert!(ok, "{err}");
    assert_eq!(out, "0\n");

    // The alarm is replicated state: a restart keeps it.
    m.restart_until_serving();
    assert_eq!(alarm_list(&ep), alarm_line(id));
    let (ok, _, err) = run_etcdctl(&ep, &["put", "small", "v"], b"");
    assert!(!ok && err.contains(NOSPACE), "{err}");

    // Compaction frees the old values; disarming lets writes in again.
    let rev = revision(&ep);
    let (ok, out, err) = run_etcdctl(&ep, &["compact", &rev, "--physical"], b"");
    assert!(ok, "{err}");
    assert_eq!(out, format!("compacted revision {rev}\n"));
    // Defragmenting under NOSPACE gives the freed pages back to the file system.
    let size = status(&ep).await.db_size;
    assert_eq!(
        run_etcdctl(&ep, &["defrag"], b""),
        (
            true,
            format!("Finished defragmenting etcd member[{ep}]\n"),
            String::new()
        )
    );
    let defragmented = status(&ep).await.db_size;
    assert!(defragmented * 2 < size, "db size {size} -> {defragmented}");
    assert_eq!(
        run_etcdctl(&ep, &["alarm", "disarm"], b""),
        (true, alarm_line(id), String::new())
    );
    assert_eq!(alarm_list(&ep), "");
    assert_eq!(
        run_etcdctl(&ep, &["put", "small", "v"], b""),
        (true, "OK\n".into(), String::new())
    );
    m.wait_healthy();
    assert!(status(&ep).await.errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_the_alarm_and_survive_a_full_store() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let mut cluster = Cluster::start(3, QUOTA);
    cluster.leader(Duration::from_secs(10)).await;
    let ids = cluster.member_ids().await;
    let first = cluster.members[0].endpoint();

    let (_, refusal) = fill(&first);
    assert!(refusal.contains(&format!("Error: {NOSPACE}")), "{refusal}");
    // Every member holds the alarm the first one raised, and refuses writes.
    for m in &mut cluster.members {
        assert!(m.child.as_mut().unwrap().try_wait().unwrap().is_none());
        assert_eq!(alarm_list(&m.endpoint()), alarm_line(ids[0]));
        let (ok, _, err) = run_etcdctl(&m.endpoint(), &["put", "small", "v"], b"");
        assert!(!ok && err.contains(NOSPACE), "{}: {err}", m.name);
        let (ok, out, _) = run_etcdctl(&m.endpoint(), &["get", "k", "--keys-only"], b"");
        assert!(ok);
        assert_eq!(out, "k\n\n");
        assert_unhealthy(m);
    }

    // A member restarted during NOSPACE still holds the alarm.
    cluster.members[1].restart_until_serving();
    assert_eq!(
        alarm_list(&cluster.members[1].endpoint()),
        alarm_line(ids[0])
    );

    let rev = revision(&first);
    let (ok, _, err) = run_etcdctl(&first, &["compact", &rev, "--physical"], b"");
    assert!(ok, "{err}");
    let last = cluster.members[2].endpoint();
    assert_eq!(
        run_etcdctl(&last, &["alarm", "disarm"], b"").1,
        alarm_line(ids[0])
    );
    for m in &mut cluster.members {
        assert_eq!(
            run_etcdctl(&m.endpoint(), &["put", "small", "v"], b""),
            (true, "OK\n".into(), String::new()),
            "{}",
            m.name
        );
        m.wait_healthy();
    }
}

/// What an operator sees (`alarm list`, `alarm disarm`, `/health`, the refusal) is etcd
/// 3.4's, member id aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_operator_sees_matches_etcd() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let etcd = Etcd::start(QUOTA);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), QUOTA);
    let mut seen = Vec::new();
    for (endpoint, port) in [
        (etcd.endpoint.clone(), etcd.client_port),
        (etcr.endpoint(), etcr.client_port),
    ] {
        let id = status(&endpoint).await.header.unwrap().member_id;
        let (_, refusal) = fill(&endpoint);
        let last_line = refusal.lines().last().unwrap_or_default().to_string();
        let neutral = |s: String| s.replace(&id.to_string(), "ID");
        seen.push((
            last_line,
            neutral(alarm_list(&endpoint)),
            http_get_any(port, "/health"),
            neutral(run_etcdctl(&endpoint, &["alarm", "disarm"], b"").1),
            alarm_list(&endpoint),
        ));
    }
    assert_eq!(seen[1], seen[0], "etcr (right) against etcd (left)");
}
