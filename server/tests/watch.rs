//! Debian's etcdctl 3.4 watching a 3-member etcr cluster while its leader is killed: every
//! change arrives once, in revision order, on a follower and on a client that had to
//! reconnect.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use api::etcdserverpb::PutRequest;
use common::Cluster;

const ETCDCTL: &str = "/usr/bin/etcdctl";

/// `etcdctl watch --prefix <prefix> --rev <rev> -w json`, its response lines sent to a
/// channel.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(endpoints: &str, prefix: &str, rev: i64) -> Watcher {
        let mut child = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .args(["watch", "--prefix", prefix, "-w", "json"])
            .arg(format!("--rev={rev}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run etcdctl");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher { child, lines }
    }

    /// Mod revisions of every event received, until one at `last` or the deadline.
    fn revisions_until(&self, last: i64, within: Duration) -> Vec<i64> {
        let deadline = Instant::now() + within;
        let mut revs = Vec::new();
        while revs.last().is_none_or(|r| *r < last) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("no event at revision {last} within {within:?}; got {revs:?}");
            };
            let Ok(response) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            for e in response["Events"].as_array().into_iter().flatten() {
                revs.push(e["kv"]["mod_revision"].as_i64().expect("mod_revision"));
            }
        }
        revs
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts `key` through any running member until one answers; returns the revision.
async fn put(cluster: &Cluster, key: String) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for m in cluster.members.iter().filter(|m| m.is_running()) {
            let Ok(mut kv) = api::etcdserverpb::kv_client::KvClient::connect(m.endpoint()).await
            else {
                continue;
            };
            let req = PutRequest {
                key: key.clone().into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            };
            if let Ok(r) = kv.put(req).await {
                return r.into_inner().header.expect("header").revision;
            }
        }
        assert!(Instant::now() < deadline, "no member took a put of {key}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watchers_miss_nothing_across_a_leader_kill() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing: `cargo xtask test` installs Debian's etcd-client"
    );
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let first = put(&cluster, "w/first".into()).await;
    // One watcher on a follower; one that starts on the leader and must reconnect.
    let on_follower = Watcher::start(&cluster.members[follower].endpoint(), "w/", first);
    let order = [leader, follower, (leader + 2) % 3];
    let all: Vec<String> = order
        .iter()
        .map(|i| cluster.members[*i].endpoint())
        .collect();
    let reconnecting = Watcher::start(&all.join(","), "w/", first);
    // The watches run once they have replayed the first put.
    let mut last = first;
    on_follower.revisions_until(last, Duration::from_secs(20));
    reconnecting.revisions_until(last, Duration::from_secs(20));
    let from = last + 1;
    for i in 0..50 {
        last = put(&cluster, format!("w/before/{i}")).await;
    }
    cluster.members[leader].kill9();
    for i in 0..50 {
        last = put(&cluster, format!("w/after/{i}")).await;
    }
    for (name, w) in [("follower", &on_follower), ("reconnecting", &reconnecting)] {
        let revs = w.revisions_until(last, Duration::from_secs(30));
        // Each put is one revision (a put retried after a lost answer is one more):
        // consecutive revisions, none twice, none missing.
        assert_eq!(
            revs,
            (from..=last).collect::<Vec<_>>(),
            "{name} watcher's revisions"
        );
    }
}

/// etcd answers a compaction once the compacted revisions are gone for every reader, so a
/// watch from one of them, created after the answer, is canceled with the compaction's
/// revision rather than sent the compacted events. The window is short (the store commits
/// a moment after the answer), so the test tries many times.
#[tokio::test]
async fn a_watch_created_after_a_compaction_was_answered_is_canceled() {
    use api::etcdserverpb::kv_client::KvClient;
    use api::etcdserverpb::watch_client::WatchClient;
    use api::etcdserverpb::watch_request::RequestUnion;
    use api::etcdserverpb::{CompactionRequest, WatchCreateRequest, WatchRequest};
    use futures::StreamExt;

    let dir = tempfile::tempdir().unwrap();
    let etcr = common::Etcr::start(&dir.path().join("m"), &[]);
    let mut kv = KvClient::connect(etcr.endpoint()).await.unwrap();
    let mut watch = WatchClient::connect(etcr.endpoint()).await.unwrap();
    for round in 0..50 {
        let key = format!("k{round}").into_bytes();
        let put = |value: &str| PutRequest {
            key: key.clone(),
            value: value.into(),
            ..Default::default()
        };
        let first = kv.put(put("a")).await.unwrap().into_inner();
        let first = first.header.unwrap().revision;
        let last = kv.put(put("b")).await.unwrap().into_inner();
        let last = last.header.unwrap().revision;
        kv.compact(CompactionRequest {
            revision: last,
            physical: false,
        })
        .await
        .unwrap();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: key.clone(),
                start_revision: first,
                ..Default::default()
            })),
        };
        let (tx, rx) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(create).unwrap();
        let mut responses = watch.watch(rx).await.unwrap().into_inner();
        let created = responses.next().await.unwrap().unwrap();
        assert!(created.created, "{created:?}");
        let next = tokio::time::timeout(Duration::from_secs(10), responses.next())
            .await
            .expect("an answer after the creation")
            .unwrap()
            .unwrap();
        assert!(
            next.canceled && next.compact_revision == last && next.events.is_empty(),
            "round {round}: a watch from compacted revision {first} got {next:?}"
        );
        drop(tx);
    }
}
