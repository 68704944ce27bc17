//! `Maintenance.Defragment` through `etcdctl defrag`: the file shrinks after deleting and
//! compacting, every key, revision, lease and member survives, writes made while it runs
//! are kept, and the member restarts on the defragmented store.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::cluster_client::ClusterClient;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{
    CompactionRequest, LeaseGrantRequest, LeaseTimeToLiveRequest, MemberListRequest, PutRequest,
    StatusRequest,
};
use common::{all_keys, delete_prefix, run_etcdctl, Cluster, Row};

async fn db_size(endpoint: String) -> i64 {
    MaintenanceClient::connect(endpoint)
        .await
        .expect("connect")
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .db_size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defrag_shrinks_the_store_while_writes_go_on_and_keeps_everything() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let endpoint = cluster.members[leader].endpoint();
    let lease = LeaseClient::connect(endpoint.clone())
        .await
        .unwrap()
        .lease_grant(LeaseGrantRequest { ttl: 3600, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    // About 24 MB of values, most of them deleted and compacted away below.
    let mut writers = Vec::new();
    for w in 0..8 {
        let endpoint = endpoint.clone();
        writers.push(tokio::spawn(async move {
            let mut kv = KvClient::connect(endpoint).await.unwrap();
            for i in 0..375 {
                let key = if i % 25 == 0 { "keep" } else { "big" };
                kv.put(PutRequest {
                    key: format!("{key}/{w}/{i:04}").into(),
                    value: vec![b'x'; 8 << 10],
                    lease: if i % 50 == 0 { lease } else { 0 },
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut kv = KvClient::connect(endpoint.clone()).await.unwrap();
    let deleted = delete_prefix(&mut kv, b"big/").await;
    assert_eq!(deleted.deleted, 8 * 360);
    kv.compact(CompactionRequest {
        revision: deleted.header.unwrap().revision,
        physical: true,
    })
    .await
    .unwrap();
    let before = all_keys(endpoint.clone()).await;
    let target = cluster.members[0].endpoint();
    let size_before = db_size(target.clone()).await;

    // A writer all along the defragmentation; every put it got an answer for must stay.
    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let (stop, endpoint) = (stop.clone(), endpoint.clone());
        tokio::spawn(async move {
            let mut kv = KvClient::connect(endpoint).await.unwrap();
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) || i < 20 {
                let key = format!("during/{i:05}");
                kv.put(PutRequest {
                    key: key.clone().into(),
                    value: b"v".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap();
                acked.push(key.into_bytes());
                i += 1;
            }
            acked
        })
    };
    let (ok, out, err) = tokio::task::spawn_blocking({
        let target = target.clone();
        move || run_etcdctl(&target, &["defrag"], b"")
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    let acked = during.await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!("Finished defragmenting etcd member[{target}]\n")
    );
    let size_after = db_size(target.clone()).await;
    assert!(
        size_after * 2 < size_before,
        "db size {size_before} -> {size_after}"
    );

    let check = |name: String, (rev, kvs): (i64, Vec<Row>)| {
        assert_eq!(rev, before.0 + acked.len() as i64, "{name}");
        let kept: Vec<&Row> = kvs
            .iter()
            .filter(|r| !r.0.starts_with(b"during/"))
            .collect();
        assert!(
            kept.iter().copied().eq(before.1.iter()),
            "{name}: a key or revision changed"
        );
        let written: Vec<&Vec<u8>> = kvs
            .iter()
            .filter(|r| r.0.starts_with(b"during/"))
            .map(|r| &r.0)
            .collect();
        assert!(written.iter().copied().eq(acked.iter()), "{name}");
    };
    for m in &cluster.members {
        check(m.name.clone(), all_keys(m.endpoint()).await);
    }
    let ttl = LeaseClient::connect(target.clone())
        .await
        .unwrap()
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.keys.len(), 8 * 8, "keys of the lease");

    // The defragmented member restarts on its new file, with everything.
    cluster.members[0].restart();
    let m = &cluster.members[0];
    check(m.name.clone(), all_keys(m.endpoint()).await);
    assert!(db_size(m.endpoint()).await * 2 < size_before);
    let members = ClusterClient::connect(m.endpoint())
        .await
        .unwrap()
        .member_list(MemberListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(members.len(), 3);
}
