//! Locks and elections: etcdctl 3.4's `lock` and `elect` against etcr give etcd 3.4's output and wait as
//! on etcd, and many clients contending on one lock across a leader kill never hold it at
//! once, judged by the revisions of the lock keys.
//!
//! The contention test runs `ETCR_LOCK_TEST_SECS` seconds (default 60) with
//! `ETCR_LOCK_TEST_CLIENTS` clients (default 20).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{
    LeaseGrantRequest, LeaseRevokeRequest, RangeRequest, WatchCreateRequest, WatchRequest,
};
use api::v3lockpb::lock_client::LockClient;
use api::v3lockpb::{LockRequest, UnlockRequest};
use common::{run_etcdctl, Cluster, Etcd, Etcr, ETCDCTL};
use futures::StreamExt;
use tokio::sync::Mutex;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `etcdctl <args>` running (`lock`, `elect`), its stdout lines on a channel.
struct Holder {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Holder {
    fn start(endpoint: &str, args: &[&str]) -> Holder {
        let mut child = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run etcdctl");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Holder { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from etcdctl within 20 s")
    }

    /// SIGINT, on which etcdctl ends its session (revoking its lease) before it exits.
    fn interrupt(&mut self) {
        let interrupted = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(interrupted.success());
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys under `prefix`, through etcdctl.
fn keys(endpoint: &str, prefix: &str) -> Vec<String> {
    let (ok, out, err) = run_etcdctl(endpoint, &["get", "--prefix", "--keys-only", prefix], b"");
    assert!(ok, "{err}");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a user of etcdctl sees: a command run under the lock, the key of a hold, a second
/// locker that waits until the first is killed. Lease ids in keys are masked.
fn lock_session(endpoint: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let (ok, out, err) = run_etcdctl(endpoint, &["lock", "job", "--", "echo", "ran"], b"");
    seen.push(format!("{ok} {out:?} {err:?}"));
    let mut first = Holder::start(endpoint, &["lock", "job"]);
    let key = first.line();
    seen.push(mask_lease(&key));
    let second = Holder::start(endpoint, &["lock", "job", "--", "echo", "second"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while keys(endpoint, "job/").len() < 2 {
        assert!(Instant::now() < deadline, "the second locker never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut second = second;
    assert!(
        second.child.try_wait().expect("poll etcdctl").is_none(),
        "the second locker ran while the first held the lock"
    );
    first.interrupt();
    seen.push(second.line());
    let status = second.child.wait().expect("etcdctl exits");
    seen.push(format!("second exited {}", status.success()));
    seen
}

fn mask_lease(key: &str) -> String {
    match key.split_once('/') {
        Some((name, lease)) if u64::from_str_radix(lease, 16).is_ok() => format!("{name}/<lease>"),
        _ => key.to_string(),
    }
}

/// `etcdctl elect`: an observer sees each leader's key and value; a second candidate wins
/// once the first is interrupted.
fn elect_session(endpoint: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let observer = Holder::start(endpoint, &["elect", "-l", "e"]);
    let mut first = Holder::start(endpoint, &["elect", "e", "one"]);
    seen.push(format!(
        "first {} {}",
        mask_lease(&first.line()),
        first.line()
    ));
    seen.push(format!(
        "observer {} {}",
        mask_lease(&observer.line()),
        observer.line()
    ));
    let second = Holder::start(endpoint, &["elect", "e", "two"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while keys(endpoint, "e/").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second candidate never queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.interrupt();
    seen.push(format!(
        "second {} {}",
        mask_lease(&second.line()),
        second.line()
    ));
    seen.push(format!(
        "observer {} {}",
        mask_lease(&observer.line()),
        observer.line()
    ));
    seen
}

#[test]
fn etcdctl_elect_on_etcr_behaves_as_on_etcd() {
    let etcd = Etcd::start(&[]);
    let on_etcd = elect_session(&etcd.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let on_etcr = elect_session(&etcr.endpoint());
    assert_eq!(on_etcr, on_etcd);
}

#[test]
fn etcdctl_lock_on_etcr_behaves_as_on_etcd() {
    let etcd = Etcd::start(&[]);
    let on_etcd = lock_session(&etcd.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let on_etcr = lock_session(&etcr.endpoint());
    assert_eq!(on_etcr, on_etcd);
}

/// One successful Lock: the key and the revision of the answer.
struct Acquired {
    key: Vec<u8>,
    at: i64,
}

#[derive(Default)]
struct Tally {
    acquired: Vec<Acquired>,
    errors: Vec<String>,
}

async fn contend(endpoints: Vec<String>, first: usize, until: Instant, tally: Arc<Mutex<Tally>>) {
    let mut member = first;
    while Instant::now() < until {
        let endpoint = endpoints[member % endpoints.len()].clone();
        let round = tokio::time::timeout(Duration::from_secs(30), async {
            let mut leases = LeaseClient::connect(endpoint.clone()).await?;
            let mut locks = LockClient::connect(endpoint.clone()).await?;
            let lease = leases
                .lease_grant(LeaseGrantRequest { ttl: 10, id: 0 })
                .await?
                .into_inner()
                .id;
            let held = locks
                .lock(LockRequest {
                    name: b"contended".to_vec(),
                    lease,
                })
                .await?
                .into_inner();
            let at = held.header.map_or(0, |h| h.revision);
            tally.lock().await.acquired.push(Acquired {
                key: held.key.clone(),
                at,
            });
            // The critical section: long enough for others to queue behind it.
            tokio::time::sleep(Duration::from_millis(10)).await;
            locks.unlock(UnlockRequest { key: held.key }).await?;
            leases
                .lease_revoke(LeaseRevokeRequest { id: lease })
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await;
        match round {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tally.lock().await.errors.push(e.to_string());
                member += 1;
            }
            Err(_) => panic!("a lock round on {endpoint} gave no answer within 30 s"),
        }
    }
}

/// Create and delete revisions of every key under `prefix`, from history up to `last` (the
/// revision of the last change under it).
async fn key_history(endpoint: &str, prefix: &[u8], last: i64) -> HashMap<Vec<u8>, (i64, i64)> {
    let mut watch = WatchClient::connect(endpoint.to_string()).await.unwrap();
    let mut end = prefix.to_vec();
    *end.last_mut().unwrap() += 1;
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: prefix.to_vec(),
            range_end: end,
            start_revision: 1,
            ..Default::default()
        })),
    };
    let requests = futures::stream::iter([create]).chain(futures::stream::pending());
    let mut responses = watch.watch(requests).await.unwrap().into_inner();
    let mut keys: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
    let mut seen = 0;
    while seen < last {
        let answer = tokio::time::timeout(Duration::from_secs(20), responses.next())
            .await
            .expect("history within 20 s")
            .expect("the watch stays open")
            .expect("a watch answer");
        for e in answer.events {
            let kv = e.kv.unwrap_or_default();
            seen = seen.max(kv.mod_revision);
            let entry = keys.entry(kv.key).or_insert((0, i64::MAX));
            if e.r#type == 1 {
                entry.1 = kv.mod_revision;
            } else {
                entry.0 = kv.create_revision;
            }
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contending_clients_never_hold_the_lock_at_once_across_a_leader_kill() {
    let secs = env_or("ETCR_LOCK_TEST_SECS", 60);
    let clients = env_or("ETCR_LOCK_TEST_CLIENTS", 20) as usize;
    let mut cluster = Cluster::start(3, &[]);
    let endpoints = cluster.endpoints();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(contend(endpoints.clone(), i, until, tally.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(secs / 2)).await;
    let leader = cluster.leader(Duration::from_secs(10)).await;
    cluster.members[leader].kill9();
    for t in tasks {
        t.await.expect("a client task");
    }
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let endpoint = cluster.members[survivor].endpoint();
    let mut kv = cluster.members[survivor].kv().await;
    let last = kv
        .range(RangeRequest {
            key: b"contended/".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    let history = key_history(&endpoint, b"contended/", last).await;

    let tally = tally.lock().await;
    assert!(
        tally.acquired.len() > clients,
        "too few acquisitions to judge: {} (errors: {:?})",
        tally.acquired.len(),
        tally.errors
    );
    assert!(!history.is_empty());
    // At the revision a holder was told it held the lock, its key existed and every key
    // created before it was gone.
    for a in &tally.acquired {
        let (created, deleted) = history[&a.key];
        assert!(
            created <= a.at && a.at < deleted,
            "{:?} was told it held at {} but lived {created}..{deleted}",
            String::from_utf8_lossy(&a.key),
            a.at
        );
        for (other, (c, d)) in &history {
            if *c < created {
                assert!(
                    *d <= a.at,
                    "{:?} held at {} while older {:?} ({c}..{d}) still existed",
                    String::from_utf8_lossy(&a.key),
                    a.at,
                    String::from_utf8_lossy(other)
                );
            }
        }
    }
    eprintln!(
        "{} acquisitions by {clients} clients in {secs} s, {} clear errors",
        tally.acquired.len(),
        tally.errors.len()
    );
}
