//! Lock and Election with auth enabled: the services act with the caller's token, so a user
//! needs the permissions its keys need (etcd's servers call its KV API with the caller's
//! context). The same calls against etcd 3.4 and etcr must succeed or fail alike.

mod common;

use std::time::Duration;

use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::{AuthenticateRequest, LeaseGrantRequest};
use api::v3electionpb::election_client::ElectionClient;
use api::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use api::v3lockpb::lock_client::LockClient;
use api::v3lockpb::{LockRequest, UnlockRequest};
use common::{run_etcdctl, Etcd, Etcr};
use tonic::metadata::MetadataValue;

/// root; alice may read and write `locks/`; bob may only read it.
fn set_up(endpoint: &str) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:apw"],
        &["user", "add", "bob:bpw"],
        &["role", "add", "locker"],
        &[
            "role",
            "grant-permission",
            "locker",
            "readwrite",
            "locks/",
            "--prefix",
        ],
        &["role", "add", "watcher"],
        &[
            "role",
            "grant-permission",
            "watcher",
            "read",
            "locks/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "locker"],
        &["user", "grant-role", "bob", "watcher"],
        &["auth", "enable"],
    ] {
        let (ok, _, err) = run_etcdctl(endpoint, args, b"");
        assert!(ok, "etcdctl {args:?}: {err}");
    }
}

fn call<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(5));
    if let Ok(v) = MetadataValue::try_from(token) {
        r.metadata_mut().insert("token", v);
    }
    r
}

async fn token(endpoint: &str, name: &str, password: &str) -> String {
    let mut auth = AuthClient::connect(endpoint.to_string()).await.unwrap();
    auth.authenticate(AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    })
    .await
    .expect("authenticate")
    .into_inner()
    .token
}

/// What a call came to, comparable across servers: ok (with what matters of the answer), or
/// the status code and message.
fn outcome<T>(r: Result<tonic::Response<T>, tonic::Status>, ok: impl Fn(T) -> String) -> String {
    match r {
        Ok(resp) => format!("ok {}", ok(resp.into_inner())),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

async fn session(endpoint: &str) -> Vec<String> {
    set_up(endpoint);
    let root = token(endpoint, "root", "rootpw").await;
    let alice = token(endpoint, "alice", "apw").await;
    let bob = token(endpoint, "bob", "bpw").await;
    let mut leases = LeaseClient::connect(endpoint.to_string()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let req = call(LeaseGrantRequest { ttl: 60, id: 0 }, &root);
        ids.push(
            leases
                .lease_grant(req)
                .await
                .expect("grant")
                .into_inner()
                .id,
        );
    }
    let (la, lb) = (ids[0], ids[1]);
    let mut lock = LockClient::connect(endpoint.to_string()).await.unwrap();
    let mut election = ElectionClient::connect(endpoint.to_string()).await.unwrap();
    let lock_req = |name: &str, lease| LockRequest {
        name: name.into(),
        lease,
    };
    let key_name = |key: Vec<u8>| {
        String::from_utf8_lossy(&key)
            .split('/')
            .take(2)
            .collect::<Vec<_>>()
            .join("/")
    };

    let mut seen = Vec::new();
    let held = lock.lock(call(lock_req("locks/a", la), &alice)).await;
    let held_key = held
        .as_ref()
        .map(|r| r.get_ref().key.clone())
        .unwrap_or_default();
    seen.push(outcome(held, |r| key_name(r.key)));
    for (name, lease, token) in [
        ("locks/a", lb, bob.as_str()),
        ("elsewhere", la, alice.as_str()),
        ("locks/b", la, ""),
    ] {
        let r = lock.lock(call(lock_req(name, lease), token)).await;
        seen.push(outcome(r, |r| key_name(r.key)));
    }
    let r = lock
        .unlock(call(
            UnlockRequest {
                key: held_key.clone(),
            },
            &bob,
        ))
        .await;
    seen.push(outcome(r, |_| String::new()));
    let r = lock
        .unlock(call(UnlockRequest { key: held_key }, &alice))
        .await;
    seen.push(outcome(r, |_| String::new()));

    let campaign = |lease, token: &str| {
        call(
            CampaignRequest {
                name: b"locks/e".to_vec(),
                lease,
                value: b"v1".to_vec(),
            },
            token,
        )
    };
    let won = election.campaign(campaign(la, &alice)).await;
    let leader: LeaderKey = won
        .as_ref()
        .ok()
        .and_then(|r| r.get_ref().leader.clone())
        .unwrap_or_default();
    seen.push(outcome(won, |r| key_name(r.leader.unwrap_or_default().key)));
    let r = election.campaign(campaign(lb, &bob)).await;
    seen.push(outcome(r, |_| String::new()));
    for token in [&bob, &alice] {
        let r = election
            .leader(call(
                LeaderRequest {
                    name: b"locks/e".to_vec(),
                },
                token,
            ))
            .await;
        seen.push(outcome(r, |r| {
            String::from_utf8_lossy(&r.kv.unwrap_or_default().value).into_owned()
        }));
    }
    for token in [&bob, &alice] {
        let r = election
            .proclaim(call(
                ProclaimRequest {
                    leader: Some(leader.clone()),
                    value: b"v2".to_vec(),
                },
                token,
            ))
            .await;
        seen.push(outcome(r, |_| String::new()));
    }
    for token in [&bob, &alice] {
        let r = election
            .resign(call(
                ResignRequest {
                    leader: Some(leader.clone()),
                },
                token,
            ))
            .await;
        seen.push(outcome(r, |_| String::new()));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_election_check_the_callers_permissions_as_etcd_does() {
    let etcd = Etcd::start(&[]);
    let theirs = session(&etcd.endpoint).await;
    drop(etcd);
    // The answers are the ones this test is about.
    assert_eq!(theirs[0], "ok locks/a", "{theirs:#?}");
    assert!(theirs[1].contains("permission denied"), "{theirs:#?}");

    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &["--bcrypt-cost", "4"]);
    let ours = session(&etcr.endpoint()).await;
    assert_eq!(ours, theirs);
}
