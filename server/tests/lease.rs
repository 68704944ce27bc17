//! Leases against 3 real members: etcdctl 3.4's lease commands and output, keys that go with
//! their lease on every member at one revision, expiry by the leader only, keep-alives
//! through a follower and across a leader kill -9, and leases across restarts.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use api::etcdserverpb::{
    lease_client::LeaseClient, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    PutRequest, RangeRequest,
};
use common::Cluster;
use tonic::transport::Channel;

const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Runs etcdctl 3.4 against `endpoint`; returns (exit ok, stdout, stderr).
fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("run etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn lease_client(endpoint: String) -> LeaseClient<Channel> {
    LeaseClient::connect(endpoint).await.expect("connect")
}

async fn grant(endpoint: String, id: i64, ttl: i64) -> i64 {
    let g = lease_client(endpoint)
        .await
        .lease_grant(LeaseGrantRequest { id, ttl })
        .await
        .expect("grant")
        .into_inner();
    g.id
}

/// One keep-alive on its own stream (one request, then the client closes its side); the
/// TTL the leader answers.
async fn keep_alive(endpoint: String, id: i64) -> Result<i64, tonic::Status> {
    let mut client = LeaseClient::connect(endpoint)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let requests = futures::stream::iter([LeaseKeepAliveRequest { id }]);
    let mut answers = client.lease_keep_alive(requests).await?.into_inner();
    match answers.message().await? {
        Some(a) => Ok(a.ttl),
        None => Err(tonic::Status::internal("no answer")),
    }
}

async fn put(endpoint: String, key: &str, lease: i64) -> i64 {
    let mut kv = api::etcdserverpb::kv_client::KvClient::connect(endpoint)
        .await
        .expect("connect");
    let r = kv
        .put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    r.header.expect("header").revision
}

/// The member's own view (a serializable read): keys under `prefix`, with the member's
/// revision.
async fn local_keys(endpoint: String, prefix: &str, revision: i64) -> (Vec<String>, i64) {
    let mut kv = api::etcdserverpb::kv_client::KvClient::connect(endpoint)
        .await
        .expect("connect");
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let r = kv
        .range(RangeRequest {
            key: prefix.into(),
            range_end: end,
            revision,
            serializable: true,
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    let keys = r
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    (keys, r.header.expect("header").revision)
}

/// Waits until `check` holds, failing with `what` after `within`.
async fn wait_for<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lease_hex(line: &str) -> String {
    line.split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_grant_put_timetolive_revoke_delete_keys_on_every_member_at_one_revision() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let (on_leader, on_follower) = (
        cluster.members[leader].endpoint(),
        cluster.members[follower].endpoint(),
    );

    let (ok, out, err) = etcdctl(&on_follower, &["lease", "grant", "30"]);
    assert!(ok, "{err}");
    let hex = lease_hex(&out);
    assert_eq!(out, format!("lease {hex} granted with TTL(30s)\n"));
    assert_eq!(hex.len(), 16, "{out}");
    for key in ["lk/b", "lk/a"] {
        let (ok, out, err) = etcdctl(&on_leader, &["put", "--lease", &hex, key, "v"]);
        assert!(ok && out == "OK\n", "{out}{err}");
    }
    // A follower asks the leader for the remaining TTL.
    let (ok, out, err) = etcdctl(&on_follower, &["lease", "timetolive", "--keys", &hex]);
    assert!(ok, "{err}");
    let remaining_ok = ["30", "29", "28"].iter().any(|r| {
        out == format!(
            "lease {hex} granted with TTL(30s), remaining({r}s), attached keys([lk/a lk/b])\n"
        )
    });
    assert!(remaining_ok, "{out}");
    let (ok, list, _) = etcdctl(&on_follower, &["lease", "list"]);
    assert!(
        ok && list.starts_with("found 1 leases\n") && list.contains(&hex),
        "{list}"
    );

    let id = i64::from_str_radix(&hex, 16).expect("hex id");
    let revoked = lease_client(on_follower.clone())
        .await
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .expect("revoke")
        .into_inner()
        .header
        .expect("header")
        .revision;
    for m in &cluster.members {
        let ep = m.endpoint();
        wait_for(
            Duration::from_secs(10),
            "the revoke applied on every member",
            || {
                let ep = ep.clone();
                async move { local_keys(ep, "lk/", 0).await.1 >= revoked }
            },
        )
        .await;
        // Both keys went at the revoke's revision, on every member.
        assert_eq!(
            local_keys(ep.clone(), "lk/", revoked).await.0,
            Vec::<String>::new()
        );
        assert_eq!(
            local_keys(ep, "lk/", revoked - 1).await.0,
            vec!["lk/a".to_string(), "lk/b".to_string()]
        );
    }
    assert_eq!(
        etcdctl(&on_leader, &["lease", "revoke", &hex])
            .2
            .lines()
            .last(),
        Some("Error: failed to revoke lease (etcdserver: requested lease not found)")
    );
    assert_eq!(
        etcdctl(&on_follower, &["lease", "timetolive", &hex]).1,
        format!("lease {hex} already expired\n")
    );

    // Bad input, as etcd answers it.
    let (ok, _, err) = etcdctl(&on_follower, &["lease", "grant", "9000000001"]);
    assert!(!ok);
    assert_eq!(
        err.lines().last(),
        Some("Error: failed to grant lease (etcdserver: too large lease TTL)")
    );
    let (ok, _, err) = etcdctl(&on_follower, &["put", "--lease", "1234", "k", "v"]);
    assert!(!ok);
    assert_eq!(
        err.lines().last(),
        Some("Error: etcdserver: requested lease not found")
    );
    let mut client = lease_client(on_follower.clone()).await;
    // Below the minimum TTL (here 1 s: 1.5 election timeouts of 500 ms, rounded up).
    let small = client
        .lease_grant(LeaseGrantRequest { id: 0, ttl: -5 })
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(small.ttl, 1);
    let chosen = client
        .lease_grant(LeaseGrantRequest { id: 77, ttl: 30 })
        .await
        .expect("grant with an id")
        .into_inner();
    assert_eq!((chosen.id, chosen.ttl), (77, 30));
    let dup = client
        .lease_grant(LeaseGrantRequest { id: 77, ttl: 30 })
        .await
        .expect_err("duplicate id");
    assert_eq!(
        (dup.code(), dup.message()),
        (
            tonic::Code::FailedPrecondition,
            "etcdserver: lease already exists"
        )
    );
    assert_eq!(
        keep_alive(on_follower.clone(), 4242)
            .await
            .expect("keep-alive"),
        0
    );
    assert_eq!(
        keep_alive(on_follower.clone(), 77)
            .await
            .expect("keep-alive"),
        30
    );

    // --ignore-lease keeps the key's lease; a put without a lease detaches the key (etcd).
    let hex77 = format!("{:016x}", 77);
    for args in [
        &["put", "--lease", &hex77, "lk2/a", "v"][..],
        &["put", "--ignore-lease", "lk2/a", "v2"],
        &["put", "--lease", &hex77, "lk2/b", "v"],
        &["put", "lk2/b", "v2"],
    ] {
        let (ok, out, err) = etcdctl(&on_follower, args);
        assert!(ok && out == "OK\n", "{args:?}: {out}{err}");
    }
    let (_, out, _) = etcdctl(&on_leader, &["lease", "timetolive", "--keys", &hex77]);
    assert!(out.ends_with("attached keys([lk2/a])\n"), "{out}");
    // A txn's put checks its lease too.
    let put_op = |lease| api::etcdserverpb::RequestOp {
        request: Some(api::etcdserverpb::request_op::Request::RequestPut(
            PutRequest {
                key: b"lk2/c".to_vec(),
                value: b"v".to_vec(),
                lease,
                ..Default::default()
            },
        )),
    };
    let mut kv = api::etcdserverpb::kv_client::KvClient::connect(on_follower.clone())
        .await
        .expect("connect");
    let txn = |lease| api::etcdserverpb::TxnRequest {
        success: vec![put_op(lease)],
        ..Default::default()
    };
    let refused = kv.txn(txn(4242)).await.expect_err("unknown lease");
    assert_eq!(
        (refused.code(), refused.message()),
        (
            tonic::Code::NotFound,
            "etcdserver: requested lease not found"
        )
    );
    assert!(kv.txn(txn(77)).await.expect("txn").into_inner().succeeded);
    let (_, out, _) = etcdctl(&on_leader, &["lease", "timetolive", "--keys", &hex77]);
    assert!(out.ends_with("attached keys([lk2/a lk2/c])\n"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_keys_on_every_member_once_even_when_the_leader_dies_meanwhile() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let ep = cluster.members[follower].endpoint();

    let mut ids = Vec::new();
    for i in 0..20 {
        let id = grant(ep.clone(), 0, 2).await;
        put(ep.clone(), &format!("ex/{i:02}"), id).await;
        ids.push(id);
    }
    let base = local_keys(ep.clone(), "ex/", 0).await.1;
    // Kill the leader while the leases run out: the next leader expires them, each once.
    cluster.members[leader].kill9();
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    for ep in &survivors {
        wait_for(Duration::from_secs(15), "every leased key expired", || {
            let ep = ep.clone();
            async move { local_keys(ep, "ex/", 0).await.0.is_empty() }
        })
        .await;
    }
    let settled = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settled {
        for ep in &survivors {
            // One revision per lease (each had one key): no lease was revoked twice.
            assert_eq!(local_keys(ep.clone(), "ex/", 0).await.1, base + 20);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        keep_alive(survivors[0].clone(), ids[0])
            .await
            .expect("keep-alive"),
        0
    );
    let (ok, list, _) = etcdctl(&survivors[1], &["lease", "list"]);
    assert!(ok && list == "found 0 leases\n", "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_through_a_follower_keep_a_lease_past_its_ttl_and_across_a_leader_kill() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let ep = cluster.members[follower].endpoint();
    let id = grant(ep.clone(), 0, 2).await;
    put(ep.clone(), "ka/key", id).await;

    // Two TTLs of keep-alives through the follower, then the leader dies, then two more.
    let keep = |ep: String, for_how_long: Duration| async move {
        let until = Instant::now() + for_how_long;
        while Instant::now() < until {
            // Answers fail while there is no leader; the next attempt comes soon enough.
            if let Ok(ttl) = keep_alive(ep.clone(), id).await {
                assert_eq!(ttl, 2, "the lease was lost");
            }
            assert_eq!(local_keys(ep.clone(), "ka/", 0).await.0.len(), 1);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    keep(ep.clone(), Duration::from_secs(4)).await;
    cluster.members[leader].kill9();
    keep(ep.clone(), Duration::from_secs(5)).await;
    let new_leader = cluster.leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader, leader);
    for i in (0..3).filter(|i| *i != leader) {
        let keys = local_keys(cluster.members[i].endpoint(), "ka/", 0).await.0;
        assert_eq!(keys, vec!["ka/key".to_string()], "member {i}");
    }
    // Without keep-alives it goes.
    wait_for(
        Duration::from_secs(10),
        "the lease expired once left alone",
        || {
            let ep = ep.clone();
            async move { local_keys(ep, "ka/", 0).await.0.is_empty() }
        },
    )
    .await;

    // A keep-alive that comes after the TTL, while the revoke may still be on its way, is
    // answered once the revoke is through: TTL 0, and the key already gone on the leader.
    let on_leader = cluster.members[new_leader].endpoint();
    let id = grant(on_leader.clone(), 0, 1).await;
    put(on_leader.clone(), "ka/late", id).await;
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        keep_alive(on_leader.clone(), id).await.expect("keep-alive"),
        0
    );
    assert!(local_keys(on_leader, "ka/", 0).await.0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_their_keys_survive_a_restart_of_every_member() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.leader(Duration::from_secs(10)).await;
    let ep = cluster.members[0].endpoint();
    let id = grant(ep.clone(), 0, 60).await;
    put(ep.clone(), "rs/key", id).await;
    // Every member has applied the put before the restart.
    for m in &cluster.members {
        let ep = m.endpoint();
        wait_for(
            Duration::from_secs(10),
            "the put applied everywhere",
            || {
                let ep = ep.clone();
                async move { local_keys(ep, "rs/", 0).await.0.len() == 1 }
            },
        )
        .await;
    }
    for m in &mut cluster.members {
        m.kill9();
    }
    for m in &mut cluster.members {
        m.start_again();
    }
    for m in &mut cluster.members {
        m.wait_healthy();
    }
    cluster.leader(Duration::from_secs(10)).await;
    let hex = format!("{id:016x}");
    for m in &cluster.members {
        let (ok, out, err) = etcdctl(&m.endpoint(), &["lease", "timetolive", "--keys", &hex]);
        assert!(ok, "{err}");
        assert!(
            out.starts_with(&format!("lease {hex} granted with TTL(60s), remaining("))
                && out.ends_with("s), attached keys([rs/key])\n"),
            "{out}"
        );
    }
    assert_eq!(keep_alive(ep, id).await.expect("keep-alive"), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_catches_up_by_snapshot_knows_the_leases_granted_meanwhile() {
    let mut cluster = Cluster::start(3, &["--snapshot-count", "100"]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let down = (leader + 1) % 3;
    cluster.members[down].kill9();
    let ep = cluster.members[leader].endpoint();
    // The grant sits between enough entries that neither messages queued for `down` before
    // it died nor the leader's log (compacted to 100 entries behind) bring it: only a
    // snapshot does.
    for i in 0..300 {
        put(ep.clone(), &format!("sn/{i:03}"), 0).await;
    }
    let id = grant(ep.clone(), 0, 60).await;
    put(ep.clone(), "sn/leased", id).await;
    for i in 300..600 {
        put(ep.clone(), &format!("sn/{i:03}"), 0).await;
    }
    cluster.members[down].restart();
    let restarted = cluster.members[down].endpoint();
    wait_for(Duration::from_secs(30), "the member caught up", || {
        let ep = restarted.clone();
        async move { local_keys(ep, "sn/", 0).await.0.len() == 601 }
    })
    .await;
    let log = std::fs::read_to_string(cluster.members[down].data_dir.with_extension("log"))
        .unwrap_or_default();
    assert!(
        log.contains("installing a snapshot from the leader"),
        "the member caught up from the log, not a snapshot"
    );
    // The member lists the leases it knows itself.
    let (ok, list, err) = etcdctl(&restarted, &["lease", "list"]);
    assert!(ok, "{err}");
    assert_eq!(list, format!("found 1 leases\n{id:016x}\n"));
}

/// A new leader restarts every lease's TTL at once, so all of them then run out together:
/// none goes before its full TTL after the kill, and the expiry loop clears them all quickly
/// (etcd, at 1,000 revokes a second, takes a second per thousand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_restarted_together_by_a_new_leader_expire_together_soon_after_their_ttl() {
    const LEASES: usize = 2000;
    const WRITERS: usize = 50;
    const TTL: i64 = 10;
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let ep = cluster.members[leader].endpoint();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let ep = ep.clone();
        writers.push(tokio::spawn(async move {
            let mut leases = lease_client(ep.clone()).await;
            let mut kv = api::etcdserverpb::kv_client::KvClient::connect(ep)
                .await
                .expect("connect");
            for i in (w..LEASES).step_by(WRITERS) {
                let g = leases.lease_grant(LeaseGrantRequest { id: 0, ttl: TTL });
                let id = g.await.expect("grant").into_inner().id;
                let p = PutRequest {
                    key: format!("mx/{i:05}").into(),
                    value: b"v".to_vec(),
                    lease: id,
                    ..Default::default()
                };
                kv.put(p).await.expect("put");
            }
        }));
    }
    let started = Instant::now();
    for w in writers {
        w.await.expect("writer");
    }
    let granting = started.elapsed();
    assert!(
        granting < Duration::from_secs(TTL as u64 / 2),
        "granting took {granting:?}: too slow for this test's TTL"
    );
    cluster.members[leader].kill9();
    let killed = Instant::now();
    let ep = cluster.members[(leader + 1) % 3].endpoint();
    let count = |ep: String| async move { local_keys(ep, "mx/", 0).await.0.len() };
    let deadline = killed + Duration::from_secs(TTL as u64 + 15);
    while count(ep.clone()).await == LEASES {
        assert!(Instant::now() < deadline, "no lease expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = Instant::now();
    assert!(
        first - killed >= Duration::from_secs(TTL as u64),
        "a lease expired {:?} after its leader died, before its TTL",
        first - killed
    );
    while count(ep.clone()).await > 0 {
        assert!(Instant::now() < deadline, "leases left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = first.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "{LEASES} leases took {took:?} to expire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_keep_alive_streams_through_a_follower_past_the_ttl() {
    use std::io::{BufRead, BufReader};
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = cluster.members[(leader + 1) % 3].endpoint();
    let id = grant(follower.clone(), 0, 2).await;
    put(follower.clone(), "eka/key", id).await;
    let hex = format!("{id:016x}");
    let (ok, out, err) = etcdctl(&follower, &["lease", "keep-alive", "--once", &hex]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("lease {hex} keepalived with TTL(2)\n"));

    // etcdctl renews every TTL/3 on one stream; three TTLs later the key is still there.
    let mut child = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={follower}"))
        .args(["lease", "keep-alive", &hex])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run etcdctl");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(9)
            .collect::<Vec<_>>()
    });
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_eq!(local_keys(follower.clone(), "eka/", 0).await.0.len(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.join().expect("reader");
    assert!(lines.len() >= 5, "{lines:?}");
    for l in &lines {
        assert_eq!(l, &format!("lease {hex} keepalived with TTL(2)"));
    }
    wait_for(
        Duration::from_secs(10),
        "the lease expired once left alone",
        || {
            let ep = follower.clone();
            async move { local_keys(ep, "eka/", 0).await.0.is_empty() }
        },
    )
    .await;
    let (ok, _, err) = etcdctl(&follower, &["lease", "keep-alive", "--once", &hex]);
    assert!(!ok);
    assert_eq!(
        err.lines().last(),
        Some("Error: etcdserver: requested lease not found")
    );
}
