//! Replication through real 3-member clusters on 127.0.0.1: forwarding, linearizable reads on
//! every member, leader failure, whole-cluster crash, and catch-up by snapshot.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{PutRequest, RangeRequest};
use common::{Cluster, Net};
use tonic::transport::Channel;

async fn kv(endpoint: String) -> KvClient<Channel> {
    KvClient::connect(endpoint).await.expect("connect")
}

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

fn get(k: &str, serializable: bool) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        serializable,
        ..Default::default()
    }
}

/// Writers that put unique keys through the given endpoints until stopped, recording every
/// acknowledged key.
struct Writers {
    acked: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(endpoints: Vec<String>, per_endpoint: usize) -> Writers {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (e, endpoint) in endpoints.into_iter().enumerate() {
            for w in 0..per_endpoint {
                let (acked, count, stop, endpoint) =
                    (acked.clone(), count.clone(), stop.clone(), endpoint.clone());
                tasks.push(tokio::spawn(async move {
                    let mut client = kv(endpoint).await;
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let key = format!("e{e}w{w}/{i:06}");
                        i += 1;
                        // Errors (no leader, timeouts) are expected while a leader is down.
                        if client.put(put(&key, &key)).await.is_ok() {
                            acked.lock().unwrap().push(key);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }));
            }
        }
        Writers {
            acked,
            count,
            stop,
            tasks,
        }
    }

    async fn wait_for(&self, n: u64, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes acknowledged within {within:?}",
                self.count.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        Arc::try_unwrap(self.acked)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    }
}

/// Every member holds the same keyspace: equal HashKV at one revision, reached by all.
async fn assert_replicas_agree(cluster: &Cluster) {
    use api::etcdserverpb::{maintenance_client::MaintenanceClient, HashKvRequest};
    let mut first = kv(cluster.members[0].endpoint()).await;
    let rev = first
        .range(get("any", false))
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    let mut hashes = Vec::new();
    for endpoint in cluster.endpoints() {
        // A linearizable read first: the member has then applied at least `rev`.
        kv(endpoint.clone())
            .await
            .range(get("any", false))
            .await
            .unwrap();
        let mut m = MaintenanceClient::connect(endpoint).await.unwrap();
        hashes.push(
            m.hash_kv(HashKvRequest { revision: rev })
                .await
                .unwrap()
                .into_inner()
                .hash,
        );
    }
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "replicas differ at revision {rev}: {hashes:?}"
    );
}

/// Every key reads back, linearizably, from every member.
async fn assert_all_readable(cluster: &Cluster, keys: &[String]) {
    for endpoint in cluster.endpoints() {
        let mut c = kv(endpoint.clone()).await;
        for key in keys {
            let r = c.range(get(key, false)).await.unwrap().into_inner();
            assert_eq!(
                r.kvs.len(),
                1,
                "acknowledged key {key} missing on {endpoint}"
            );
            assert_eq!(r.kvs[0].value, key.as_bytes());
        }
    }
}

async fn writes_replicate_and_reads_are_linearizable_everywhere(net: Net) {
    let cluster = Cluster::start_on(net, 3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    // A write to a follower is forwarded to the leader.
    let r = kv(cluster.members[follower].endpoint())
        .await
        .put(put("a", "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.header.unwrap().revision, 2);
    // A linearizable read on any member right after the acknowledgement sees the write.
    for endpoint in cluster.endpoints() {
        let r = kv(endpoint.clone())
            .await
            .range(get("a", false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.kvs[0].value, b"1",
            "stale linearizable read on {endpoint}"
        );
        assert_eq!(r.header.unwrap().revision, 2);
    }
    // Every member lists every member with its name and client URL.
    use api::etcdserverpb::{cluster_client::ClusterClient, MemberListRequest};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = ClusterClient::connect(cluster.members[follower].endpoint())
            .await
            .unwrap()
            .member_list(MemberListRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.members.len(), 3);
        if list
            .members
            .iter()
            .all(|m| !m.client_ur_ls.is_empty() && !m.name.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members did not publish their client URLs: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn leader_killed_under_writes_loses_nothing(net: Net) {
    let mut cluster = Cluster::start_on(net, 3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    let writers = Writers::start(survivors, 4);
    writers.wait_for(200, Duration::from_secs(20)).await;

    cluster.members[leader].kill9();
    let killed_at = Instant::now();
    let new_leader = cluster.leader(Duration::from_secs(5)).await;
    assert_ne!(new_leader, leader);
    assert!(
        killed_at.elapsed() < Duration::from_secs(2),
        "a new leader took {:?}",
        killed_at.elapsed()
    );
    // Writes resume.
    let before = writers.count.load(Ordering::SeqCst);
    writers
        .wait_for(before + 200, Duration::from_secs(20))
        .await;
    let acked = writers.stop().await;

    cluster.members[leader].restart();
    assert_all_readable(&cluster, &acked).await;
    assert_replicas_agree(&cluster).await;
}

async fn whole_cluster_killed_mid_writes_keeps_acknowledged_writes(net: Net) {
    let mut cluster = Cluster::start_on(net, 3, &[]);
    let writers = Writers::start(cluster.endpoints(), 3);
    writers.wait_for(300, Duration::from_secs(20)).await;
    for m in &mut cluster.members {
        m.kill9();
    }
    let acked = writers.stop().await;
    for m in &mut cluster.members {
        m.start_again();
    }
    for m in &mut cluster.members {
        m.wait_healthy();
    }
    cluster.leader(Duration::from_secs(10)).await;
    assert_all_readable(&cluster, &acked).await;
    // The log and the store agree after the restart: new writes apply and replicate.
    let mut c = kv(cluster.members[0].endpoint()).await;
    let r = c
        .put(put("after-restart", "after-restart"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.header.unwrap().revision as usize > acked.len());
    assert_all_readable(&cluster, &["after-restart".to_string()]).await;
    assert_replicas_agree(&cluster).await;
}

async fn member_down_for_many_writes_catches_up_by_snapshot(net: Net) {
    let mut cluster = Cluster::start_on(net, 3, &["--snapshot-count", "1000"]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let down = (leader + 1) % 3;
    cluster.members[down].kill9();
    let up: Vec<String> = (0..3)
        .filter(|i| *i != down)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    let writers = Writers::start(up, 8);
    writers.wait_for(10_000, Duration::from_secs(120)).await;
    let acked = writers.stop().await;

    cluster.members[down].restart();
    // The member serves the last write locally (serializable) once it has caught up.
    let last = acked.last().unwrap().clone();
    let mut c = kv(cluster.members[down].endpoint()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = match c.range(get(&last, true)).await {
            Ok(r) => r.into_inner(),
            Err(e) => panic!(
                "the restarted member failed: {e}; log:\n{}",
                cluster.members[down].log_tail()
            ),
        };
        if !r.kvs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted member did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log =
        std::fs::read_to_string(cluster.members[down].data_dir.with_extension("log")).unwrap();
    assert!(
        log.contains("installing a snapshot"),
        "the member caught up without a snapshot"
    );
    let count = |range: RangeRequest| async {
        let mut c = kv(cluster.members[down].endpoint()).await;
        c.range(range).await.unwrap().into_inner().count
    };
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        count_only: true,
        serializable: true,
        ..Default::default()
    };
    assert!(count(all).await as usize >= acked.len());
    assert_all_readable(&cluster, &acked[acked.len() - 100..]).await;
    assert_replicas_agree(&cluster).await;
}

async fn isolated_leader_steps_down_and_majority_serves(net: Net) {
    let cluster = Cluster::start_on(net, 3, &["--experimental-fault-injection"]);
    let old = cluster.leader(Duration::from_secs(10)).await;
    let mut old_kv = kv(cluster.members[old].endpoint()).await;
    old_kv.put(put("x", "v1")).await.unwrap();

    cluster.isolate(old).await;
    let majority: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    // The majority elects a new leader and keeps serving writes.
    let mut new_kv = kv(cluster.members[majority[0]].endpoint()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while new_kv.put(put("x", "v2")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the majority did not accept writes"
        );
    }
    // Within an election timeout (500 ms here) the old leader refuses writes and
    // linearizable reads; it never serves the stale value as linearizable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let write =
            tokio::time::timeout(Duration::from_secs(8), old_kv.put(put("y", "lost?"))).await;
        assert!(
            !matches!(write, Ok(Ok(_))),
            "an isolated member acknowledged a write"
        );
        match old_kv.range(get("x", false)).await {
            Ok(r) => assert_eq!(
                r.into_inner().kvs[0].value,
                b"v2",
                "stale linearizable read"
            ),
            Err(s) => {
                assert!(
                    s.message().contains("no leader") || s.message().contains("timed out"),
                    "{s:?}"
                );
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the isolated leader kept serving linearizable reads"
        );
    }
    // Serializable reads still answer locally (possibly stale), as in etcd.
    assert!(old_kv.range(get("x", true)).await.is_ok());

    cluster.heal();
    // After healing the old leader follows and converges.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = old_kv.range(get("x", false)).await {
            assert_eq!(r.into_inner().kvs[0].value, b"v2");
            break;
        }
        assert!(Instant::now() < deadline, "the old leader did not rejoin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let y = kv(cluster.members[majority[1]].endpoint())
        .await
        .range(get("y", false))
        .await
        .unwrap()
        .into_inner();
    assert!(
        y.kvs.is_empty(),
        "a write refused by the isolated leader appeared after healing"
    );
}

/// Every scenario runs on both peer transports.
macro_rules! on_both_transports {
    ($($scenario:ident),* $(,)?) => {
        mod tcp {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(Net::Tcp).await
                }
            )*
        }
        mod quic {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(Net::Quic).await
                }
            )*
        }
    };
}

on_both_transports!(
    writes_replicate_and_reads_are_linearizable_everywhere,
    leader_killed_under_writes_loses_nothing,
    whole_cluster_killed_mid_writes_keeps_acknowledged_writes,
    member_down_for_many_writes_catches_up_by_snapshot,
    isolated_leader_steps_down_and_majority_serves,
);
