//! Streaming calls through a real member: `Maintenance.Snapshot` streams the store in
//! chunks ending with its SHA-256, to tonic's client and to etcdctl 3.4; and a large range
//! does not hold up the other calls of its connection.

mod common;

use std::time::{Duration, Instant};

use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{PutRequest, RangeRequest, SnapshotRequest};
use common::Etcr;
use futures::StreamExt;

const ETCDCTL: &str = "/usr/bin/etcdctl";

async fn put_many(etcr: &Etcr, n: usize, value_len: usize) {
    let kv = etcr.kv().await;
    let puts = (0..n).map(|i| {
        let mut kv = kv.clone();
        async move {
            let put = PutRequest {
                key: format!("key/{i:06}").into(),
                value: vec![b'v'; value_len],
                ..Default::default()
            };
            kv.put(put).await.unwrap();
        }
    });
    // A few hundred in flight at a time.
    let mut puts = futures::stream::iter(puts).buffer_unordered(200);
    while puts.next().await.is_some() {}
}

#[tokio::test]
async fn snapshot_streams_the_store_in_chunks_ending_with_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &[]);
    put_many(&etcr, 200, 1000).await;

    let mut maintenance = MaintenanceClient::connect(etcr.endpoint()).await.unwrap();
    let mut stream = maintenance
        .snapshot(SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    let (digest, data) = chunks.split_last().expect("at least the digest");
    assert!(
        data.len() > 1,
        "a store with 200 KB of values comes in several chunks"
    );
    let mut blob = Vec::new();
    for c in data {
        assert!(c.blob.len() <= 32 << 10, "etcd's 32 KiB chunks");
        blob.extend_from_slice(&c.blob);
        assert_eq!(c.remaining_bytes as usize + blob.len(), data_len(data));
    }
    assert_eq!(data.last().unwrap().remaining_bytes, 0);
    assert_eq!(digest.remaining_bytes, 0);
    let sha = ring::digest::digest(&ring::digest::SHA256, &blob);
    assert_eq!(
        digest.blob,
        sha.as_ref(),
        "the last blob is the SHA-256 of the rest"
    );
    // An LMDB file holds its meta pages first, with the magic 0xBEEFC0DE.
    assert!(
        blob.windows(4)
            .take(8192)
            .any(|w| w == 0xBEEF_C0DEu32.to_le_bytes()),
        "the snapshot is an LMDB environment"
    );
}

fn data_len(chunks: &[api::etcdserverpb::SnapshotResponse]) -> usize {
    chunks.iter().map(|c| c.blob.len()).sum()
}

#[tokio::test]
async fn etcdctl_saves_a_snapshot_of_etcr() {
    if !std::path::Path::new(ETCDCTL).exists() {
        eprintln!("SKIPPED: {ETCDCTL} is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    put_many(&etcr, 50, 100).await;
    let file = dir.path().join("snap.db");
    let out = std::process::Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcr.endpoint()))
        .args(["snapshot", "save"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "etcdctl snapshot save failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Snapshot saved at"), "{stdout}");
    let saved = std::fs::read(&file).unwrap();
    let (data, sha) = saved.split_at(saved.len() - 32);
    assert_eq!(
        sha,
        ring::digest::digest(&ring::digest::SHA256, data).as_ref()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_range_does_not_hold_up_its_connections_other_calls() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &[]);
    // About 20 MB: reading and encoding it all takes a while.
    put_many(&etcr, 2000, 10_000).await;
    let kv = etcr.kv().await.max_decoding_message_size(usize::MAX);
    let ranges: Vec<_> = (0..4)
        .map(|_| {
            let mut big = kv.clone();
            tokio::spawn(async move {
                let all = RangeRequest {
                    key: b"key/".to_vec(),
                    range_end: b"key0".to_vec(),
                    serializable: true,
                    ..Default::default()
                };
                big.range(all).await.unwrap();
            })
        })
        .collect();
    // Small reads on the same connection meanwhile.
    let mut small = kv.clone();
    let mut slowest = Duration::ZERO;
    let mut reads = 0;
    while ranges.iter().any(|r| !r.is_finished()) {
        let get = RangeRequest {
            key: b"key/000001".to_vec(),
            serializable: true,
            ..Default::default()
        };
        let started = Instant::now();
        small.range(get).await.unwrap();
        slowest = slowest.max(started.elapsed());
        reads += 1;
    }
    // Read on the connection's task, the large ranges let 3 to 6 through here; served off
    // it, 15 to 30 here and 9 on a slower machine, where moving the 80 MB (a connection
    // holds at most 8 MiB unsent) sets the pace more than reading them does.
    assert!(
        reads >= 8,
        "{reads} small reads (the slowest {slowest:?}) while 4 large ranges ran"
    );
    for r in ranges {
        r.await.unwrap();
    }
}
