//! An acknowledged write survives `kill -9` of the server.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::{PutRequest, RangeRequest};
use common::Etcr;

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcr = Etcr::start(dir.path(), &[]);
    let acked = Arc::new(AtomicU64::new(0));

    // Several concurrent writers, so that batches of many commands are in flight at the kill.
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let mut kv = etcr.kv().await;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0.. {
                let key = format!("w{w}/{i:06}");
                let req = PutRequest {
                    key: key.clone().into(),
                    value: key.clone().into(),
                    ..Default::default()
                };
                match kv.put(req).await {
                    Ok(_) => {
                        done.push(key);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => break,
                }
            }
            done
        }));
    }
    // Kill once a good number of writes has been acknowledged (bounded wait, no blind sleep).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::SeqCst) < 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes are not being acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    etcr.kill9();
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(acknowledged.len() >= 500);

    etcr.restart();
    let mut kv = etcr.kv().await;
    for key in &acknowledged {
        let r = kv
            .range(RangeRequest {
                key: key.clone().into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.kvs.len(), 1, "acknowledged key {key} lost after kill -9");
        assert_eq!(r.kvs[0].value, key.as_bytes());
    }
}
