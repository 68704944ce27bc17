//! A new cluster started from a snapshot of another: every key with its revisions, and the
//! revision counter going on from there. The data directories are made as `snapshot restore`
//! makes them: the snapshot's database (its SHA-256 checked and cut off) as the store, reset
//! for a new cluster (`mvcc::Store::reset_for_new_cluster`), no raft log, no membership file.

mod common;

use std::path::Path;
use std::time::Duration;

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, SnapshotRequest};
use common::{Cluster, Net};

async fn all_keys(endpoint: String) -> (i64, Vec<(Vec<u8>, Vec<u8>, i64, i64, i64)>) {
    let mut kv = KvClient::connect(endpoint).await.expect("connect");
    let r = kv
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    let kvs = r
        .kvs
        .into_iter()
        .map(|k| (k.key, k.value, k.create_revision, k.mod_revision, k.version))
        .collect();
    (r.header.expect("header").revision, kvs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restored_from_a_snapshot_has_every_key_and_revision() {
    let old = Cluster::start(3, &[]);
    let leader = old.leader(Duration::from_secs(10)).await;
    let mut kv = KvClient::connect(old.members[leader].endpoint())
        .await
        .unwrap();
    for i in 0..30 {
        for v in 0..(i % 3 + 1) {
            kv.put(PutRequest {
                key: format!("key{i:02}").into(),
                value: format!("v{v}").into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
    kv.delete_range(DeleteRangeRequest {
        key: b"key07".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let before = all_keys(old.members[leader].endpoint()).await;

    let mut m = MaintenanceClient::connect(old.members[(leader + 1) % 3].endpoint())
        .await
        .unwrap();
    let mut stream = m.snapshot(SnapshotRequest {}).await.unwrap().into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&chunk.blob);
    }
    drop(old);
    let (db, digest) = bytes.split_at(bytes.len() - 32);
    assert_eq!(
        ring::digest::digest(&ring::digest::SHA256, db).as_ref(),
        digest,
        "the snapshot's SHA-256"
    );

    let restore = |data_dir: &Path| {
        let kv_dir = data_dir.join("member").join("kv");
        std::fs::create_dir_all(&kv_dir).unwrap();
        std::fs::write(kv_dir.join("data.mdb"), db).unwrap();
        mvcc::Store::reset_for_new_cluster(&kv_dir).unwrap();
    };
    let new = Cluster::start_prepared(Net::Tcp, 3, &[], &restore);
    let leader = new.leader(Duration::from_secs(10)).await;
    for m in &new.members {
        assert_eq!(all_keys(m.endpoint()).await, before, "{}", m.name);
    }
    // Writes go on from the snapshot's revision, and replicate.
    let mut kv = KvClient::connect(new.members[(leader + 2) % 3].endpoint())
        .await
        .unwrap();
    let put = kv
        .put(PutRequest {
            key: b"after".to_vec(),
            value: b"restore".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.header.unwrap().revision, before.0 + 1);
    for m in &new.members {
        let (rev, kvs) = all_keys(m.endpoint()).await;
        assert_eq!(rev, before.0 + 1, "{}", m.name);
        assert_eq!(kvs.len(), before.1.len() + 1, "{}", m.name);
    }
}
