//! The Election and Lock services over gRPC, compared with etcd 3.4's on the same calls: a
//! fresh etcd and a fresh etcr give the same answers (revisions included) once lease ids,
//! which each server picks, are masked.

mod common;

use std::time::Duration;

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::{LeaseGrantRequest, RangeRequest};
use api::v3electionpb::election_client::ElectionClient;
use api::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ResignRequest,
};
use api::v3lockpb::lock_client::LockClient;
use api::v3lockpb::{LockRequest, UnlockRequest};
use common::{Etcd, Etcr};
use futures::StreamExt;
use tonic::transport::Channel;

fn masked(key: &[u8]) -> String {
    let key = String::from_utf8_lossy(key);
    match key.split_once('/') {
        Some((name, lease)) if u64::from_str_radix(lease, 16).is_ok() => format!("{name}/<lease>"),
        _ => key.into_owned(),
    }
}

fn leader(r: &LeaderResponse) -> String {
    let kv = r.kv.clone().unwrap_or_default();
    format!(
        "leader {} {:?} created {} modified {} at {}",
        masked(&kv.key),
        String::from_utf8_lossy(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        r.header.as_ref().map_or(0, |h| h.revision)
    )
}

fn key(k: &LeaderKey) -> String {
    format!(
        "{} {} rev {}",
        String::from_utf8_lossy(&k.name),
        masked(&k.key),
        k.rev
    )
}

fn status(s: tonic::Status) -> String {
    format!("error {:?} {:?}", s.code(), s.message())
}

async fn next_observed(observed: &mut tonic::Streaming<LeaderResponse>) -> String {
    let r = tokio::time::timeout(Duration::from_secs(10), observed.next())
        .await
        .expect("an observation within 10 s")
        .unwrap()
        .unwrap();
    format!("observed {}", leader(&r))
}

async fn grant(endpoint: &str) -> i64 {
    let mut leases = LeaseClient::connect(endpoint.to_string()).await.unwrap();
    leases
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn scenario(endpoint: String) -> Vec<String> {
    let channel = Channel::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut election = ElectionClient::new(channel.clone());
    let mut seen = Vec::new();
    let (a, b) = (grant(&endpoint).await, grant(&endpoint).await);
    let name = b"e".to_vec();
    let ask = |name: &[u8]| LeaderRequest {
        name: name.to_vec(),
    };
    seen.push(match election.leader(ask(&name)).await {
        Ok(r) => leader(&r.into_inner()),
        Err(s) => status(s),
    });
    let first = election
        .campaign(CampaignRequest {
            name: name.clone(),
            lease: a,
            value: b"one".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let first_key = first.leader.clone().unwrap();
    seen.push(format!(
        "campaign {} at {}",
        key(&first_key),
        first.header.unwrap().revision
    ));
    seen.push(leader(
        &election.leader(ask(&name)).await.unwrap().into_inner(),
    ));
    let mut observed = election.observe(ask(&name)).await.unwrap().into_inner();
    seen.push(next_observed(&mut observed).await);

    let mut second_client = ElectionClient::new(channel.clone());
    let second = tokio::spawn(async move {
        second_client
            .campaign(CampaignRequest {
                name: b"e".to_vec(),
                lease: b,
                value: b"two".to_vec(),
            })
            .await
            .map(|r| r.into_inner())
    });
    // The second candidacy is queued before the first leader proclaims.
    let mut kv = KvClient::new(channel.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let candidates = kv
            .range(RangeRequest {
                key: b"e/".to_vec(),
                range_end: b"e0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .count;
        if candidates == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second candidacy never queued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let proclaimed = election
        .proclaim(ProclaimRequest {
            leader: Some(first_key.clone()),
            value: b"uno".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(format!(
        "proclaimed at {}",
        proclaimed.header.unwrap().revision
    ));
    seen.push(next_observed(&mut observed).await);
    assert!(
        !second.is_finished(),
        "a second candidate won while the first led"
    );
    let resigned = election
        .resign(ResignRequest {
            leader: Some(first_key.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(format!("resigned at {}", resigned.header.unwrap().revision));
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second candidate wins once the first resigns")
        .unwrap()
        .unwrap();
    seen.push(format!(
        "campaign {} at {}",
        key(&second.leader.unwrap()),
        second.header.unwrap().revision
    ));
    seen.push(next_observed(&mut observed).await);
    seen.push(
        match election
            .proclaim(ProclaimRequest {
                leader: Some(first_key.clone()),
                value: b"late".to_vec(),
            })
            .await
        {
            Ok(_) => "a resigned leader proclaimed".to_string(),
            Err(s) => status(s),
        },
    );
    seen.push(
        match election
            .proclaim(ProclaimRequest {
                leader: None,
                value: b"x".to_vec(),
            })
            .await
        {
            Ok(_) => "proclaimed without a leader key".to_string(),
            Err(s) => status(s),
        },
    );

    let mut locks = LockClient::new(channel);
    let c = grant(&endpoint).await;
    let held = locks
        .lock(LockRequest {
            name: b"l".to_vec(),
            lease: c,
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(format!(
        "locked {} at {}",
        masked(&held.key),
        held.header.unwrap().revision
    ));
    // Locking again with the same lease is the same hold.
    let again = locks
        .lock(LockRequest {
            name: b"l".to_vec(),
            lease: c,
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(format!("locked again {}", again.key == held.key));
    let unlocked = locks
        .unlock(UnlockRequest { key: held.key })
        .await
        .unwrap()
        .into_inner();
    seen.push(format!("unlocked at {}", unlocked.header.unwrap().revision));
    seen.push(
        match locks
            .lock(LockRequest {
                name: b"l".to_vec(),
                lease: 12345,
            })
            .await
        {
            Ok(_) => "locked with no lease".to_string(),
            Err(s) => status(s),
        },
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_and_locks_answer_as_etcd_3_4_does() {
    let etcd = Etcd::start(&[]);
    let on_etcd = scenario(etcd.endpoint.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let on_etcr = scenario(etcr.endpoint()).await;
    assert_eq!(on_etcr, on_etcd);
}
