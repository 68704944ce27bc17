//! More writes than a member can take: each is answered (done, or etcd's `too many requests`
//! when the member refuses to queue more), every acknowledged write is there afterwards, and
//! the member stays healthy.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{PutRequest, RangeRequest};
use common::{healthy, Etcr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_member_answers_every_write_and_keeps_what_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let member = Etcr::start(&dir.path().join("m"), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..32 {
        let kv = KvClient::connect(member.endpoint()).await.expect("connect");
        for s in 0..32 {
            let (mut kv, stop, acked, refused) =
                (kv.clone(), stop.clone(), acked.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let key = format!("c{c}/s{s}/{i}");
                    let put = PutRequest {
                        key: key.clone().into(),
                        value: vec![b'v'; 512],
                        ..Default::default()
                    };
                    match kv.put(put).await {
                        Ok(_) => acked.lock().unwrap().push(key),
                        Err(status) => refused.lock().unwrap().push(status.message().to_string()),
                    }
                }
            }));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        assert!(
            healthy(member.client_port),
            "the member went unhealthy under load"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a write got no answer")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    eprintln!(
        "{} writes acknowledged, {} refused",
        acked.len(),
        refused.len()
    );
    assert!(!acked.is_empty());
    assert!(
        refused.iter().all(|m| m == "etcdserver: too many requests"),
        "writes failed otherwise than by backpressure: {:?}",
        &refused[..refused.len().min(5)]
    );
    let mut kv = KvClient::connect(member.endpoint()).await.unwrap();
    let r = kv
        .range(RangeRequest {
            key: b"c".to_vec(),
            range_end: b"d".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.count as usize,
        acked.len(),
        "an acknowledged write is missing"
    );
}
