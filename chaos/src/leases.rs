//! Lease holders. Keepers grant a lease, attach a key and keep the lease alive over a
//! LeaseKeepAlive stream, moving to another member when theirs stops answering, as etcd's
//! clients do; they look at their key now and then and at the end. Unkept leases are
//! granted with a key and left alone; their key is polled until it goes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::lease_check::{KeptLease, Poll, Renewal, UnkeptLease};
use crate::workload::Shared;

/// Deadline of one call of a lease holder.
const CALL: Duration = Duration::from_secs(1);
/// How often a keeper reads its key while it keeps the lease.
const LOOK_EVERY: Duration = Duration::from_secs(3);
/// How often an unkept lease's key is polled.
const POLL_EVERY: Duration = Duration::from_millis(250);

fn channel(endpoint: &str) -> Option<Channel> {
    Some(
        Endpoint::from_shared(endpoint.to_string())
            .ok()?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy(),
    )
}

/// Grants a lease of `ttl` seconds on member after member; the first answer, with when its
/// request was sent.
async fn grant(
    endpoints: &[String],
    rng: &mut fastrand::Rng,
    shared: &Shared,
    ttl: i64,
    stop: &AtomicBool,
) -> Option<(u64, api::etcdserverpb::LeaseGrantResponse)> {
    while !stop.load(Ordering::Relaxed) {
        let member = rng.usize(0..endpoints.len());
        let mut lease = LeaseClient::new(channel(&endpoints[member])?);
        let sent = shared.now();
        let call = lease.lease_grant(LeaseGrantRequest { ttl, id: 0 });
        if let Ok(Ok(r)) = tokio::time::timeout(CALL, call).await {
            return Some((sent, r.into_inner()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Puts `key` with the lease until an answer: `Some(true)` put, `Some(false)` refused (the
/// lease is gone).
async fn attach(
    endpoints: &[String],
    rng: &mut fastrand::Rng,
    key: &str,
    value: &str,
    id: i64,
    stop: &AtomicBool,
) -> Option<bool> {
    while !stop.load(Ordering::Relaxed) {
        let member = rng.usize(0..endpoints.len());
        let mut kv = KvClient::new(channel(&endpoints[member])?);
        let call = kv.put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease: id,
            ..Default::default()
        });
        match tokio::time::timeout(CALL, call).await {
            Ok(Ok(_)) => return Some(true),
            Ok(Err(s)) if s.message().contains("lease not found") => return Some(false),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

/// Reads `key` on `endpoint`: whether it is there with lease `id`, the answer's raft term.
async fn look(endpoint: &str, key: &str, id: i64) -> Option<(bool, u64)> {
    let mut kv = KvClient::new(channel(endpoint)?);
    let call = kv.range(RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    });
    let r = tokio::time::timeout(CALL, call)
        .await
        .ok()?
        .ok()?
        .into_inner();
    let present = r.kvs.first().is_some_and(|kv| kv.lease == id);
    Some((present, r.header.map(|h| h.raft_term).unwrap_or_default()))
}

/// One keeper: keeps its lease alive until `stop`, then looks at it once more.
pub async fn keeper(
    idx: usize,
    endpoints: Vec<String>,
    shared: Arc<Shared>,
    ttl: i64,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Option<KeptLease> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (granted, g) = grant(&endpoints, &mut rng, &shared, ttl, &stop).await?;
    let key = format!("{}lease/{idx}", shared.prefix);
    let mut lease = KeptLease {
        id: g.id,
        key: key.clone(),
        ttl_secs: g.ttl,
        granted,
        ..Default::default()
    };
    if !attach(
        &endpoints,
        &mut rng,
        &key,
        &format!("kept-{idx}"),
        g.id,
        &stop,
    )
    .await?
    {
        lease
            .gone
            .push((shared.now(), "the put of its key: lease not found".into()));
        return Some(lease);
    }
    let every = Duration::from_millis((g.ttl.max(1) as u64 * 1000) / 3);
    let mut member = rng.usize(0..endpoints.len());
    let mut looked = Instant::now();
    'streams: while !stop.load(Ordering::Relaxed) {
        let Some(ch) = channel(&endpoints[member]) else {
            break;
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut client = LeaseClient::new(ch);
        let opened = client.lease_keep_alive(ReceiverStream::new(rx));
        let _ = tx.try_send(LeaseKeepAliveRequest { id: g.id });
        let mut sent = shared.now();
        let mut answers = match tokio::time::timeout(CALL, opened).await {
            Ok(Ok(s)) => s.into_inner(),
            _ => {
                member = (member + 1) % endpoints.len();
                continue;
            }
        };
        loop {
            match tokio::time::timeout(CALL, answers.message()).await {
                Ok(Ok(Some(r))) if r.ttl > 0 => lease.renewals.push(Renewal {
                    sent,
                    answered: shared.now(),
                }),
                Ok(Ok(Some(_))) => {
                    lease
                        .gone
                        .push((shared.now(), "a keep-alive answered TTL 0".into()));
                    break 'streams;
                }
                // Broken, ended or silent: another member, at once.
                _ => {
                    member = (member + 1) % endpoints.len();
                    continue 'streams;
                }
            }
            if looked.elapsed() >= LOOK_EVERY {
                looked = Instant::now();
                if let Some((false, _)) = look(&endpoints[member], &key, g.id).await {
                    lease.gone.push((shared.now(), "its key absent".into()));
                    break 'streams;
                }
            }
            tokio::time::sleep(every).await;
            if stop.load(Ordering::Relaxed) {
                break 'streams;
            }
            sent = shared.now();
            if tx.send(LeaseKeepAliveRequest { id: g.id }).await.is_err() {
                continue 'streams;
            }
        }
    }
    final_look(&endpoints, &mut lease, &shared).await;
    Some(lease)
}

/// The lease's remaining TTL and its key, on the first member that answers within 30 s.
async fn final_look(endpoints: &[String], lease: &mut KeptLease, shared: &Shared) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for member in (0..endpoints.len()).cycle() {
        if Instant::now() > deadline {
            lease
                .gone
                .push((shared.now(), "no member answered at the end".into()));
            return;
        }
        let Some(ch) = channel(&endpoints[member]) else {
            return;
        };
        let mut client = LeaseClient::new(ch);
        let call = client.lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease.id,
            keys: true,
        });
        let Ok(Ok(r)) = tokio::time::timeout(CALL, call).await else {
            continue;
        };
        let r = r.into_inner();
        if r.ttl <= 0 {
            lease
                .gone
                .push((shared.now(), format!("TimeToLive {}", r.ttl)));
            return;
        }
        match look(&endpoints[member], &lease.key, lease.id).await {
            Some((true, _)) => return,
            Some((false, _)) => {
                lease
                    .gone
                    .push((shared.now(), "its key absent at the end".into()));
                return;
            }
            None => {}
        }
    }
}

/// A lease granted with a key and left alone; its key polled until it goes or is overdue.
pub async fn unkept(
    idx: usize,
    endpoints: Vec<String>,
    shared: Arc<Shared>,
    ttl: i64,
    election: u64,
    slack: u64,
    seed: u64,
) -> Option<UnkeptLease> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let never = AtomicBool::new(false);
    let (grant_sent, g) = grant(&endpoints, &mut rng, &shared, ttl, &never).await?;
    let mut lease = UnkeptLease {
        id: g.id,
        key: format!("{}unkept/{idx}", shared.prefix),
        ttl_secs: g.ttl,
        grant_sent,
        grant_answered: shared.now(),
        grant_term: g.header.map(|h| h.raft_term).unwrap_or_default(),
        ..Default::default()
    };
    let value = format!("unkept-{idx}");
    if !attach(&endpoints, &mut rng, &lease.key, &value, g.id, &never).await? {
        // Gone before its key could be put (a long outage): nothing to judge.
        return None;
    }
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        let member = rng.usize(0..endpoints.len());
        let sent = shared.now();
        if let Some((present, term)) = look(&endpoints[member], &lease.key, g.id).await {
            lease.polls.push(Poll {
                sent,
                answered: shared.now(),
                term,
                present,
            });
            if !present {
                break;
            }
        }
        if shared.now() > lease.deadline(election, slack) + slack || Instant::now() > give_up {
            break;
        }
    }
    Some(lease)
}
