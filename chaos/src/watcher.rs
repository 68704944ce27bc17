//! Watch consumers: each watches the workload's prefix on a member chosen at random and, as
//! etcd's clients do, when the stream breaks or stalls (its member killed, paused or cut
//! off) watches again on another member from the revision after the last one it saw. Also
//! the history they are checked against, read by a watch from revision 1 at the end.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse};
use api::mvccpb::event::EventType;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use crate::watch_check::{Change, Seen, WatchLog};

/// A stream with no message for this long (progress is asked for every second) is stalled.
const STALL: Duration = Duration::from_secs(3);
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// When the watchers may stop: once they have seen `target` (set at the end), or at once
/// when `give_up` is set.
pub struct WatchEnd {
    pub target: AtomicI64,
    pub give_up: AtomicBool,
}

impl WatchEnd {
    pub fn new() -> WatchEnd {
        WatchEnd {
            target: AtomicI64::new(i64::MAX),
            give_up: AtomicBool::new(false),
        }
    }

    fn reached(&self, next: i64) -> bool {
        self.give_up.load(Ordering::Relaxed) || next > self.target.load(Ordering::Relaxed)
    }
}

fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy())
}

fn changes(resp: &WatchResponse) -> Vec<Change> {
    resp.events
        .iter()
        .filter_map(|e| {
            let kv = e.kv.as_ref()?;
            Some(Change {
                revision: kv.mod_revision,
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                value: (e.r#type != EventType::Delete as i32)
                    .then(|| String::from_utf8_lossy(&kv.value).into_owned()),
            })
        })
        .collect()
}

/// Opens a watch of `prefix` from `start_revision`; the sender keeps the request stream open.
async fn open(
    endpoint: &str,
    prefix: &str,
    start_revision: i64,
) -> Option<(
    tokio::sync::mpsc::Sender<WatchRequest>,
    Streaming<WatchResponse>,
)> {
    let mut client = WatchClient::new(channel(endpoint).ok()?);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: api::prefix_range_end(prefix.as_bytes()),
            start_revision,
            ..Default::default()
        })),
    })
    .await
    .ok()?;
    let stream = tokio::time::timeout(STALL, client.watch(ReceiverStream::new(rx)))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some((tx, stream))
}

fn progress() -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    }
}

/// One watcher until `end`: everything it saw.
pub async fn watcher(
    id: u32,
    endpoints: Vec<String>,
    prefix: String,
    end: Arc<WatchEnd>,
    seed: u64,
) -> WatchLog {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut log = WatchLog {
        watcher: id,
        start_revision: 1,
        seen: Vec::new(),
    };
    let mut next = 1i64;
    let mut member = rng.usize(0..endpoints.len());
    let mut created_once = false;
    while !end.reached(next) {
        if let Some((tx, mut stream)) = open(&endpoints[member], &prefix, next).await {
            // Moving now and then, not only on failures, resumes more often.
            let move_at = Instant::now() + Duration::from_millis(rng.u64(5_000..15_000));
            let mut ticks = tokio::time::interval(PROGRESS_EVERY);
            let mut heard = Instant::now();
            while !end.reached(next) && Instant::now() < move_at {
                tokio::select! {
                    msg = stream.message() => {
                        let Ok(Some(resp)) = msg else { break };
                        heard = Instant::now();
                        if resp.created {
                            if created_once {
                                log.seen.push(Seen::Resumed { start_revision: next });
                            }
                            created_once = true;
                        }
                        if resp.compact_revision > 0 {
                            log.seen.push(Seen::Compacted {
                                compact_revision: resp.compact_revision,
                            });
                            next = next.max(resp.compact_revision);
                            break;
                        }
                        if resp.canceled {
                            break;
                        }
                        let c = changes(&resp);
                        if let Some(last) = c.last() {
                            next = next.max(last.revision + 1);
                            log.seen.push(Seen::Response(c));
                        }
                    }
                    _ = ticks.tick() => {
                        if heard.elapsed() > STALL || tx.send(progress()).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        if end.reached(next) {
            break;
        }
        member = (member + 1 + rng.usize(0..endpoints.len() - 1)) % endpoints.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log
}

/// Every event under `prefix` from revision 1 through the store's current revision, read
/// on `endpoint` (a healthy member); the events and that revision.
pub async fn history(endpoint: &str, prefix: &str) -> anyhow::Result<(Vec<Change>, i64)> {
    let mut kv = crate::workload::connect(endpoint)?;
    let head = kv
        .range(api::etcdserverpb::RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: api::prefix_range_end(prefix.as_bytes()),
            count_only: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let until = crate::workload::revision(head.header);
    let (tx, mut stream) = open(endpoint, prefix, 1)
        .await
        .ok_or_else(|| anyhow::anyhow!("no watch from revision 1 on {endpoint}"))?;
    let mut out: Vec<Change> = Vec::new();
    let read = async {
        let mut ticks = tokio::time::interval(Duration::from_millis(300));
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let resp = msg?.ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
                    if resp.canceled {
                        anyhow::bail!("the watch from revision 1 was canceled: {}", resp.cancel_reason);
                    }
                    out.extend(changes(&resp));
                    let synced = resp.events.is_empty()
                        && !resp.created
                        && crate::workload::revision(resp.header) >= until;
                    if synced || out.last().is_some_and(|c| c.revision >= until) {
                        return Ok(());
                    }
                }
                _ = ticks.tick() => {
                    tx.send(progress()).await?;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .map_err(|_| anyhow::anyhow!("the watch from revision 1 did not reach {until}"))??;
    out.retain(|c| c.revision <= until);
    Ok((out, until))
}
