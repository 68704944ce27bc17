//! Members' names and client URLs are replicated state in the store: a member that starts
//! from an empty data directory and catches up by snapshot, long after the other members
//! published themselves, still lists every member.

mod common;

use std::time::{Duration, Instant};

use api::etcdserverpb::cluster_client::ClusterClient;
use api::etcdserverpb::{MemberListRequest, PutRequest};
use common::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restored_from_a_snapshot_lists_every_members_name_and_client_urls() {
    let mut cluster = Cluster::start(3, &["--snapshot-count", "20"]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let expected: Vec<(String, Vec<String>)> = cluster
        .members
        .iter()
        .map(|m| (m.name.clone(), vec![m.endpoint()]))
        .collect();

    // The wiped member comes back with the same identity (ids derive from the flags) and no
    // log; the others' Publish entries are compacted away by then.
    let down = (leader + 1) % 3;
    cluster.members[down].kill9();
    std::fs::remove_dir_all(&cluster.members[down].data_dir).unwrap();
    let mut kv = cluster.members[leader].kv().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..200 {
        let put = PutRequest {
            key: format!("k{i}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        // An election on a loaded machine fails a put now and then: retry it.
        while let Err(e) = kv.put(put.clone()).await {
            assert!(Instant::now() < deadline, "put k{i}: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cluster.members[down].restart();
    let log =
        std::fs::read_to_string(cluster.members[down].data_dir.with_extension("log")).unwrap();
    assert!(
        log.contains("installing a snapshot"),
        "the member caught up without a snapshot"
    );

    let mut c = ClusterClient::connect(cluster.members[down].endpoint())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let members = c
            .member_list(MemberListRequest::default())
            .await
            .unwrap()
            .into_inner()
            .members;
        let mut got: Vec<(String, Vec<String>)> = members
            .into_iter()
            .map(|m| (m.name, m.client_ur_ls))
            .collect();
        got.sort();
        if got == expected {
            break;
        }
        assert!(Instant::now() < deadline, "member list: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
