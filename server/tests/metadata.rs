//! Request metadata reaches the services: etcd's `hasleader` makes a member without a leader
//! refuse the call instead of answering it.

mod common;

use std::time::{Duration, Instant};

use api::etcdserverpb::RangeRequest;
use common::Cluster;
use tonic::Code;

fn serializable_get(require_leader: bool) -> tonic::Request<RangeRequest> {
    let mut request = tonic::Request::new(RangeRequest {
        key: b"k".to_vec(),
        serializable: true,
        ..Default::default()
    });
    if require_leader {
        request
            .metadata_mut()
            .insert("hasleader", "true".parse().unwrap());
    }
    request
}

#[tokio::test]
async fn a_member_without_a_leader_refuses_calls_that_require_one() {
    let mut cluster = Cluster::start(3, &[]);
    let mut kv = cluster.members[0].kv().await;
    kv.range(serializable_get(true)).await.unwrap();

    cluster.members[1].kill9();
    cluster.members[2].kill9();
    // The survivor loses its leader within an election timeout or two.
    let give_up = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        match kv.range(serializable_get(true)).await {
            Err(status) => break status,
            Ok(_) => {
                assert!(Instant::now() < give_up, "the survivor kept a leader");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(refused.message(), "etcdserver: no leader");
    // Without the metadata a serializable read is still answered from the local store.
    kv.range(serializable_get(false)).await.unwrap();
}
