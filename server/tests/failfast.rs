//! Requests waiting on a follower when the leader goes: they fail with etcd's `leader changed`
//! as soon as the follower learns of the change, not at their time-outs (5 s for reads, 7 s for
//! writes), and writes through the follower work again once a new leader is elected.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use common::{http, Cluster};

/// One call a client made: when it was sent and answered (since the test began), and how.
#[derive(Clone, Debug)]
struct Call {
    sent: Duration,
    answered: Duration,
    write: bool,
    outcome: Result<(), String>,
}

/// Clients that read (linearizably) and write through one endpoint until stopped, recording
/// every call.
struct Clients {
    calls: Arc<Mutex<Vec<Call>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    fn start(endpoint: String, n: usize, t0: Instant) -> Clients {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|c| {
                let (endpoint, calls, stop) = (endpoint.clone(), calls.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut kv = KvClient::connect(endpoint).await.expect("connect");
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let write = (i + c as u64).is_multiple_of(2);
                        let sent = t0.elapsed();
                        let outcome = if write {
                            kv.put(PutRequest {
                                key: format!("k{c}").into(),
                                value: i.to_string().into(),
                                ..Default::default()
                            })
                            .await
                            .map(|_| ())
                        } else {
                            kv.range(RangeRequest {
                                key: format!("k{c}").into(),
                                ..Default::default()
                            })
                            .await
                            .map(|_| ())
                        }
                        .map_err(|s| s.message().to_string());
                        let failed = outcome.is_err();
                        calls.lock().unwrap().push(Call {
                            sent,
                            answered: t0.elapsed(),
                            write,
                            outcome,
                        });
                        if failed {
                            // No leader is answered at once: do not spin.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                })
            })
            .collect();
        Clients { calls, stop, tasks }
    }

    async fn wait_for(&self, ok: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.outcome.is_ok())
            .count()
            < ok
        {
            assert!(Instant::now() < deadline, "clients made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        let calls = self.calls.lock().unwrap().clone();
        calls
    }
}

/// Checks the calls made around a leader failure at `fault`: every call that was waiting on
/// the old leader ended within `bound`, some with `leader changed`, none with `server
/// stopped`; and a write sent after the fault succeeded within `resume`. Returns when the
/// first write after the fault succeeded, from the fault.
fn check_calls(calls: &[Call], fault: Duration, bound: Duration, resume: Duration) -> Duration {
    let stopped: Vec<_> = calls
        .iter()
        .filter(|c| {
            c.outcome
                .as_ref()
                .is_err_and(|e| e.contains("server stopped"))
        })
        .collect();
    assert!(
        stopped.is_empty(),
        "a running member said it stopped: {stopped:?}"
    );
    // Calls sent before the fault, and those sent to the old leader before the follower
    // learned it was gone.
    let waiting: Vec<&Call> = calls
        .iter()
        .filter(|c| c.sent < fault + bound && c.answered > fault)
        .collect();
    let slowest = waiting
        .iter()
        .map(|c| c.answered.saturating_sub(fault.max(c.sent)))
        .max()
        .unwrap_or_default();
    let changed = waiting
        .iter()
        .filter(|c| {
            c.outcome
                .as_ref()
                .is_err_and(|e| e == "etcdserver: leader changed")
        })
        .count();
    let first_write = calls
        .iter()
        .filter(|c| c.write && c.sent > fault && c.outcome.is_ok())
        .map(|c| c.answered - fault)
        .min()
        .expect("no write succeeded after the fault");
    eprintln!(
        "calls waiting at the fault: {}; leader changed: {changed}; slowest answer after the fault: {slowest:?}; first write after it: {first_write:?}",
        waiting.len()
    );
    assert!(
        changed > 0,
        "no waiting call failed with leader changed: {waiting:?}"
    );
    let late: Vec<_> = waiting
        .iter()
        .filter(|c| c.answered.saturating_sub(fault.max(c.sent)) > bound)
        .collect();
    assert!(
        late.is_empty(),
        "calls waited past {bound:?} after the fault: {late:?}"
    );
    assert!(
        first_write < resume,
        "writes through the follower resumed only {first_write:?} after the fault"
    );
    first_write
}

/// The bound on a waiting call: an election (the test members' election timeout is 500 ms, so
/// 0.5 to 1 s after the last heartbeat) and a heartbeat round, with room for a loaded test
/// machine; the time-outs it replaces are 5 s for reads and 6 s for writes.
const WAITING_BOUND: Duration = Duration::from_millis(2_000);
const RESUME_BOUND: Duration = Duration::from_millis(2_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_follower_fail_fast_when_the_leader_is_killed() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let t0 = Instant::now();
    let clients = Clients::start(cluster.members[follower].endpoint(), 8, t0);
    clients.wait_for(100, Duration::from_secs(20)).await;

    cluster.members[leader].kill9();
    let fault = t0.elapsed();
    // Run on until writes have worked for a while after the fault.
    tokio::time::sleep(WAITING_BOUND + Duration::from_secs(1)).await;
    let calls = clients.stop().await;
    check_calls(&calls, fault, WAITING_BOUND, RESUME_BOUND);
}

async fn leader_seen_by(endpoint: String) -> Option<u64> {
    let mut c = MaintenanceClient::connect(endpoint).await.ok()?;
    let s = c.status(StatusRequest {}).await.ok()?.into_inner();
    Some(s.leader).filter(|l| *l != 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_of_the_leader_elects_a_new_one_as_fast_as_a_kill() {
    let cluster = Cluster::start(3, &["--experimental-fault-injection"]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let ids = cluster.member_ids().await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let t0 = Instant::now();
    let clients = Clients::start(cluster.members[followers[0]].endpoint(), 8, t0);
    clients.wait_for(100, Duration::from_secs(20)).await;

    // The leader still hears everyone, but nothing it sends arrives.
    let fault = t0.elapsed();
    for f in &followers {
        http(
            cluster.members[leader].client_port,
            "POST",
            &format!("/debug/faults/cut/{:x}", ids[*f]),
        )
        .expect("cut");
    }
    let elected = loop {
        let mut seen = Vec::new();
        for f in &followers {
            seen.push(leader_seen_by(cluster.members[*f].endpoint()).await);
        }
        if seen[0].is_some() && seen[0] == seen[1] && seen[0] != Some(ids[leader]) {
            break t0.elapsed() - fault;
        }
        assert!(
            t0.elapsed() - fault < Duration::from_secs(10),
            "no new leader after the cut"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("a new leader {elected:?} after the one-way cut");
    tokio::time::sleep(WAITING_BOUND + Duration::from_secs(1)).await;
    let calls = clients.stop().await;
    check_calls(&calls, fault, WAITING_BOUND, RESUME_BOUND);
    assert!(
        elected < Duration::from_millis(1_500),
        "a new leader took {elected:?} after a one-way cut"
    );
    cluster.heal();
}
