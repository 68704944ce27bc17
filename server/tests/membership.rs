//! Membership at run time against real etcr processes, driven by etcdctl 3.4: members added
//! (voters and learners) join with `--initial-cluster-state existing` and catch up, learners
//! are promoted once in sync, members (the leader included) are removed, peer URLs updated,
//! and leadership moved.

mod common;

use std::time::{Duration, Instant};

use api::etcdserverpb::cluster_client::ClusterClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{MemberListRequest, MoveLeaderRequest, PutRequest};
use common::{free_port, run_etcdctl, Cluster};

const WAIT: Duration = Duration::from_secs(30);

/// Every member's log tail, for failure messages.
fn logs(c: &Cluster) -> String {
    c.members
        .iter()
        .map(|m| format!("--- {}\n{}", m.name, m.log_tail()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn etcdctl(c: &Cluster, via: usize, args: &[&str]) -> (bool, String, String) {
    run_etcdctl(&c.members[via].endpoint(), args, b"")
}

/// Retries `f` until it answers `Some`, failing after `WAIT`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `etcdctl member add` printed: the new member's id and its ETCD_* lines.
struct Added {
    id: String,
    initial_cluster: String,
}

fn member_add(c: &Cluster, via: usize, name: &str, peer_port: u16, learner: bool) -> Added {
    let url = format!("--peer-urls=http://127.0.0.1:{peer_port}");
    let mut args = vec!["member", "add", name, &url];
    if learner {
        args.push("--learner");
    }
    let (ok, out, err) = etcdctl(c, via, &args);
    assert!(ok, "member add failed: {err}\n{}", logs(c));
    let first = out.lines().next().unwrap_or_default();
    let id = first
        .strip_prefix("Member ")
        // etcdctl pads the id to 16 places with spaces (`%16x`).
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected member add output: {out}"))
        .to_string();
    assert!(
        first.contains(" added to cluster "),
        "unexpected first line: {first}"
    );
    let line = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no {key} in: {out}"))
            .to_string()
    };
    assert_eq!(line("ETCD_NAME"), name);
    assert_eq!(
        line("ETCD_INITIAL_ADVERTISE_PEER_URLS"),
        format!("http://127.0.0.1:{peer_port}")
    );
    assert_eq!(line("ETCD_INITIAL_CLUSTER_STATE"), "existing");
    let initial_cluster = line("ETCD_INITIAL_CLUSTER");
    // Every running member, and the new one, under its name.
    for m in &c.members {
        if m.is_running() {
            let entry = format!("{}=http://127.0.0.1:{}", m.name, m.peer_port);
            assert!(
                initial_cluster.split(',').any(|e| e == entry),
                "{entry} missing from {initial_cluster}"
            );
        }
    }
    assert!(initial_cluster
        .split(',')
        .any(|e| e == format!("{name}=http://127.0.0.1:{peer_port}")));
    Added {
        id,
        initial_cluster,
    }
}

/// `member list` as (id, status, name, is_learner).
fn member_list(c: &Cluster, via: usize) -> Vec<(String, String, String, bool)> {
    let (ok, out, err) = etcdctl(c, via, &["member", "list"]);
    assert!(ok, "member list failed: {err}");
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].to_string(),
                f[5] == "true",
            )
        })
        .collect()
}

type Listed = Vec<(String, String, String, bool)>;

/// `member list` once it satisfies `ok`: members apply a change each at their own pace.
fn wait_list(c: &Cluster, via: usize, ok: impl Fn(&Listed) -> bool) -> Listed {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = member_list(c, via);
        if ok(&last) {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "member list via {} never matched: {last:?}",
            c.members[via].name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serializable_get(c: &Cluster, via: usize, key: &str) -> Option<String> {
    let (ok, out, _) = etcdctl(
        c,
        via,
        &["get", key, "--consistency=s", "--print-value-only"],
    );
    (ok && !out.trim().is_empty()).then(|| out.trim().to_string())
}

fn put(c: &Cluster, via: usize, key: &str, value: &str) {
    let (ok, _, err) = etcdctl(c, via, &["put", key, value]);
    assert!(ok, "put {key} via {}: {err}", c.members[via].name);
}

fn wait_removed(c: &Cluster, i: usize) {
    wait_for("the removed member says why", || {
        c.members[i]
            .log_tail()
            .contains("the member has been permanently removed from the cluster")
            .then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_three_to_five_and_back_to_three() {
    let mut c = Cluster::start(3, &[]);
    for i in 0..20 {
        put(&c, 0, &format!("k{i}"), &format!("v{i}"));
    }
    let mut added = Vec::new();
    for name in ["m4", "m5"] {
        let port = free_port();
        let a = member_add(&c, 0, name, port, false);
        let i = c.join(name, port, &a.initial_cluster, &[]);
        c.members[i].wait_healthy();
        // Data written before the member existed reaches it.
        let got = wait_for("the new member holds the old data", || {
            serializable_get(&c, i, "k19")
        });
        assert_eq!(got, "v19");
        added.push((i, a.id));
    }
    wait_list(&c, 4, |l| {
        l.len() == 5 && l.iter().all(|m| m.1 == "started" && !m.3)
    });
    // The joined members learned the cluster id from the log.
    let cluster_of = |i: usize| {
        let endpoint = c.members[i].endpoint();
        async move {
            let mut client = ClusterClient::connect(endpoint).await.expect("connect");
            let r = client
                .member_list(MemberListRequest::default())
                .await
                .expect("member list")
                .into_inner();
            (r.header.expect("header").cluster_id, r.members.len())
        }
    };
    assert_eq!(cluster_of(4).await, cluster_of(0).await);
    // The joined members' writes are everyone's.
    put(&c, 4, "from-m5", "yes");
    assert_eq!(
        wait_for("m1 sees m5's write", || serializable_get(&c, 0, "from-m5")),
        "yes"
    );

    for (i, id) in added {
        // A change proposed while a new leader has not yet committed in its term is dropped
        // (etcd answers a timeout, too); the operator retries.
        let out = wait_for("member remove", || {
            let (ok, out, err) = etcdctl(&c, 0, &["member", "remove", &id]);
            assert!(
                ok || err.contains("deadline exceeded") || err.contains("request timed out"),
                "member remove: {err}"
            );
            ok.then_some(out)
        });
        // etcdctl pads the id to 16 places (`%16x`): an id with a leading zero gets a space.
        assert!(
            out.contains(&format!("Member {id:>16} removed from cluster")),
            "{out}"
        );
        wait_removed(&c, i);
        c.members[i].kill9();
    }
    // A removed member started again still refuses to serve, and says why.
    c.members[3].start_again();
    let log = c.members[3].data_dir.with_extension("log");
    wait_for("the restarted removed member says why", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.matches("permanently removed from the cluster").count() >= 2).then_some(())
    });
    assert!(!common::healthy(c.members[3].client_port));
    c.members[3].kill9();
    wait_list(&c, 1, |l| l.len() == 3);
    put(&c, 2, "after", "shrink");
    assert_eq!(
        wait_for("m1 sees the write", || serializable_get(&c, 0, "after")),
        "shrink"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_is_promoted_once_in_sync_and_leadership_moves() {
    let mut c = Cluster::start(3, &[]);
    for i in 0..20 {
        put(&c, 0, &format!("k{i}"), &format!("v{i}"));
    }
    let leader = c.leader(WAIT).await;
    let port = free_port();
    let a = member_add(&c, leader, "m4", port, true);
    // Not started yet: far behind the leader.
    let (ok, _, err) = etcdctl(&c, leader, &["member", "promote", &a.id]);
    assert!(!ok);
    assert!(
        err.contains("etcdserver: can only promote a learner member which is in sync with leader"),
        "{err}"
    );
    let (ok, _, err) = etcdctl(&c, leader, &["move-leader", &a.id]);
    assert!(!ok);
    assert!(err.contains("etcdserver: bad leader transferee"), "{err}");
    let other = format!("--peer-urls=http://127.0.0.1:{}", free_port());
    let (ok, _, err) = etcdctl(&c, leader, &["member", "add", "m5", &other, "--learner"]);
    assert!(!ok);
    assert!(
        err.contains("etcdserver: too many learner members in cluster"),
        "{err}"
    );
    let (ok, _, err) = etcdctl(
        &c,
        leader,
        &[
            "member",
            "add",
            "m1",
            &format!("--peer-urls=http://127.0.0.1:{}", c.members[0].peer_port),
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("etcdserver: Peer URLs already exists"),
        "{err}"
    );

    let l = c.join("m4", port, &a.initial_cluster, &[]);
    c.members[l].wait_healthy();
    assert_eq!(
        wait_for(
            "the learner serves serializable reads",
            || serializable_get(&c, l, "k19")
        ),
        "v19"
    );
    wait_list(&c, leader, |l| l.iter().any(|m| m.0 == a.id && m.3));
    // Through a follower, which forwards it to the leader.
    let follower = (0..3).find(|i| *i != leader).unwrap_or(0);
    wait_for("promote accepted once the learner caught up", || {
        etcdctl(&c, follower, &["member", "promote", &a.id])
            .0
            .then_some(())
    });
    wait_list(&c, 0, |l| l.iter().all(|m| !m.3));
    let (ok, _, err) = etcdctl(&c, leader, &["member", "promote", &a.id]);
    assert!(!ok);
    assert!(
        err.contains("etcdserver: can only promote a learner member"),
        "{err}"
    );

    // Leadership moves to a follower; only the leader can move it.
    let ids = c.member_ids().await;
    let target = (0..4).find(|i| *i != leader && *i != l).unwrap_or(0);
    let mut follower = MaintenanceClient::connect(c.members[target].endpoint())
        .await
        .expect("connect");
    let refused = follower
        .move_leader(MoveLeaderRequest {
            target_id: ids[leader],
        })
        .await
        .expect_err("a follower cannot move leadership");
    assert_eq!(refused.message(), "etcdserver: not leader");
    let (ok, out, err) = etcdctl(&c, leader, &["move-leader", &format!("{:x}", ids[target])]);
    assert!(ok, "move-leader: {err}");
    assert!(out.contains("Leadership transferred"), "{out}");
    assert_eq!(c.leader(WAIT).await, target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_leader_steps_down_and_peer_urls_update() {
    let mut c = Cluster::start(3, &[]);
    put(&c, 0, "before", "1");
    let leader = c.leader(WAIT).await;
    let ids = c.member_ids().await;
    let via = (leader + 1) % 3;
    let (ok, _, err) = etcdctl(
        &c,
        via,
        &["member", "remove", &format!("{:x}", ids[leader])],
    );
    assert!(ok, "removing the leader: {err}");
    wait_removed(&c, leader);
    c.members[leader].kill9();
    let new_leader = c.leader(WAIT).await;
    assert_ne!(new_leader, leader);
    put(&c, via, "after", "2");

    // Move a follower to a new peer port: the others reach it there.
    let moved = (0..3)
        .find(|i| *i != leader && *i != new_leader)
        .unwrap_or(via);
    let port = free_port();
    let (ok, _, err) = etcdctl(
        &c,
        new_leader,
        &[
            "member",
            "update",
            &format!("{:x}", ids[moved]),
            &format!("--peer-urls=http://127.0.0.1:{port}"),
        ],
    );
    assert!(ok, "member update: {err}");
    c.members[moved].kill9();
    c.members[moved].peer_port = port;
    c.members[moved].start_again();
    c.members[moved].wait_healthy();
    put(&c, new_leader, "moved", "3");
    assert_eq!(
        wait_for("the moved member gets new writes", || serializable_get(
            &c, moved, "moved"
        )),
        "3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_down_refuses_voter_add_then_change_survives_a_kill() {
    let mut c = Cluster::start(3, &[]);
    put(&c, 0, "k", "v");
    // With a voter down, a new voter would raise the quorum past the members that run.
    c.members[2].kill9();
    let url = format!("--peer-urls=http://127.0.0.1:{}", free_port());
    wait_for("the add is refused while m3 is down", || {
        let (ok, _, err) = etcdctl(&c, 0, &["member", "add", "m4", &url]);
        (!ok && err.contains("etcdserver: unhealthy cluster")).then_some(())
    });
    // Removing a running voter would leave 1 of 2 reachable.
    let m2 = member_list(&c, 0)
        .into_iter()
        .find(|m| m.2 == "m2")
        .map(|m| m.0)
        .expect("m2 is listed");
    let (ok, _, err) = etcdctl(&c, 0, &["member", "remove", &m2]);
    assert!(!ok);
    assert!(err.contains("etcdserver: unhealthy cluster"), "{err}");
    c.members[2].start_again();
    c.members[2].wait_healthy();

    // The new member is killed while it catches up, then restarted: it still joins.
    let port = free_port();
    wait_for("the add is accepted once m3 is back", || {
        let url = format!("--peer-urls=http://127.0.0.1:{port}");
        let (ok, _, _) = etcdctl(&c, 0, &["member", "add", "--learner", "m4", &url]);
        ok.then_some(())
    });
    let list = wait_list(&c, 0, |l| l.iter().any(|m| m.3));
    let id = list
        .iter()
        .find(|m| m.3)
        .map(|m| m.0.clone())
        .expect("the learner is listed");
    let initial = format!(
        "m1=http://127.0.0.1:{},m2=http://127.0.0.1:{},m3=http://127.0.0.1:{},m4=http://127.0.0.1:{port}",
        c.members[0].peer_port, c.members[1].peer_port, c.members[2].peer_port
    );
    let l = c.join("m4", port, &initial, &[]);
    c.members[l].kill9();
    c.members[l].start_again();
    c.members[l].wait_healthy();
    assert_eq!(
        wait_for("the restarted learner catches up", || serializable_get(
            &c, l, "k"
        )),
        "v"
    );
    wait_list(&c, l, |list| {
        list.iter().any(|m| m.0 == id && m.1 == "started")
    });
    // Writes are not stuck behind the change.
    let mut kv = c.members[0].kv().await;
    kv.put(PutRequest {
        key: b"still".to_vec(),
        value: b"writable".to_vec(),
        ..Default::default()
    })
    .await
    .expect("put after the change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_by_snapshot_learns_the_members_from_it() {
    // The log is compacted far past its start: the new member gets the store itself.
    let flags = ["--snapshot-count", "50"];
    let mut c = Cluster::start(3, &flags);
    for i in 0..300 {
        put(&c, i % 3, &format!("k{i}"), &format!("v{i}"));
    }
    let port = free_port();
    let a = member_add(&c, 0, "m4", port, false);
    let i = c.join("m4", port, &a.initial_cluster, &flags);
    c.members[i].wait_healthy();
    assert_eq!(
        wait_for("the new member holds the data", || serializable_get(
            &c, i, "k299"
        )),
        "v299"
    );
    assert!(
        c.members[i]
            .log_tail()
            .contains("installing a snapshot from the leader")
            || std::fs::read_to_string(c.members[i].data_dir.with_extension("log"))
                .unwrap_or_default()
                .contains("installing a snapshot from the leader"),
        "m4 caught up without a snapshot:\n{}",
        c.members[i].log_tail()
    );
    wait_list(&c, i, |l| {
        l.len() == 4 && l.iter().all(|m| m.1 == "started")
    });
    // It takes part: with one old member down, the other two and m4 still commit.
    c.members[0].kill9();
    // A write forwarded to a dead leader is lost until the others elect a new one.
    c.leader(WAIT).await;
    put(&c, i, "after", "snapshot");
    assert_eq!(
        wait_for("m2 sees m4's write", || serializable_get(&c, 1, "after")),
        "snapshot"
    );
}

/// The path `cargo xtask cluster add` takes: a learner first, promoted once caught up, so a
/// one-member cluster grows without ever needing a member that is not running yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_grows_through_a_learner() {
    let mut c = Cluster::start(1, &[]);
    put(&c, 0, "k", "v");
    let port = free_port();
    let a = member_add(&c, 0, "m2", port, true);
    let i = c.join("m2", port, &a.initial_cluster, &[]);
    c.members[i].wait_healthy();
    wait_for("the learner is promoted", || {
        let (ok, _, err) = etcdctl(&c, 0, &["member", "promote", &a.id]);
        if !ok {
            // Shown if the wait fails.
            eprintln!("promote refused: {err}");
        }
        ok.then_some(())
    });
    wait_list(&c, i, |l| {
        l.len() == 2 && l.iter().all(|m| !m.3 && m.1 == "started")
    });
    put(&c, i, "k2", "v2");
    assert_eq!(
        wait_for("m1 sees m2's write", || serializable_get(&c, 0, "k2")),
        "v2"
    );
}

/// A voter added to a lone member is needed for the new quorum: etcd answers the add once the
/// old membership holds it, and so does etcr; the cluster writes again once the member runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_adds_a_voter_it_then_needs() {
    let mut c = Cluster::start(1, &[]);
    put(&c, 0, "k", "v");
    let port = free_port();
    let a = member_add(&c, 0, "m2", port, false);
    let i = c.join("m2", port, &a.initial_cluster, &[]);
    c.members[i].wait_healthy();
    wait_list(&c, 0, |l| {
        l.len() == 2 && l.iter().all(|m| !m.3 && m.1 == "started")
    });
    put(&c, i, "k2", "v2");
    assert_eq!(
        wait_for("m1 sees m2's write", || serializable_get(&c, 0, "k2")),
        "v2"
    );
}
