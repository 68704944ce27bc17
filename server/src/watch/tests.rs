//! The Watch service in process: a real mvcc store, the hub thread, and streams fed from
//! channels, the way the gRPC layer feeds them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb as pb;
use api::mvccpb;
use futures::stream::{BoxStream, StreamExt};
use pb::watch_request::RequestUnion;
use tonic::Status;

use super::hub::{CANCEL_COMPACTED, CANCEL_DUPLICATE_ID, CANCEL_EMPTY_RANGE};
use super::{CommitNotifier, Hub, HubSettings, WatchService};
use crate::convert::HeaderInfo;

const WAIT: Duration = Duration::from_secs(10);

const HEADER: HeaderInfo = HeaderInfo {
    cluster_id: 11,
    member_id: 22,
    raft_term: 3,
};

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<mvcc::Store>,
    hub: Hub,
    commits: CommitNotifier,
    service: WatchService,
    index: u64,
}

fn settings() -> HubSettings {
    HubSettings {
        progress_interval: Duration::from_secs(600),
        stream_bytes: super::STREAM_BYTES,
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with(settings(), 1 << 20)
    }

    fn with(settings: HubSettings, fragment_limit: usize) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let options = mvcc::StoreOptions {
            durability: mvcc::Durability::None,
            apply_events: false,
            ..Default::default()
        };
        let store = Arc::new(mvcc::Store::open(dir.path(), options).unwrap());
        let (hub, commits) = Hub::start(store.clone(), settings).unwrap();
        let service = WatchService::with_header(hub.clone(), Arc::new(|| HEADER), fragment_limit);
        Harness {
            _dir: dir,
            store,
            hub,
            commits,
            service,
            index: 0,
        }
    }

    /// Applies and commits one command, as the apply thread does, and wakes the hub.
    fn apply(&mut self, cmd: mvcc::Command) -> i64 {
        self.index += 1;
        self.store.apply(&[(self.index, cmd)]).unwrap();
        self.commits.notify();
        self.store.current_revision()
    }

    fn put(&mut self, key: &str, value: &str) -> i64 {
        self.apply(mvcc::Command::Put(mvcc::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }))
    }

    fn delete(&mut self, key: &str) -> i64 {
        self.apply(mvcc::Command::DeleteRange(mvcc::DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        }))
    }

    fn compact(&mut self, revision: i64) {
        self.apply(mvcc::Command::Compact(mvcc::CompactRequest {
            revision,
            physical: true,
        }));
    }

    fn open(&self) -> Client {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let requests: BoxStream<'static, Result<pb::WatchRequest, Status>> =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
                .boxed();
        Client {
            tx,
            responses: self.service.watch(requests, None),
        }
    }

    async fn until(&self, what: &str, cond: impl Fn(&Hub) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond(&self.hub) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Client {
    tx: tokio::sync::mpsc::UnboundedSender<Result<pb::WatchRequest, Status>>,
    responses: BoxStream<'static, Result<pb::WatchResponse, Status>>,
}

fn create(key: &[u8], range_end: &[u8]) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        ..Default::default()
    }
}

impl Client {
    fn send(&self, r: RequestUnion) {
        self.tx
            .send(Ok(pb::WatchRequest {
                request_union: Some(r),
            }))
            .unwrap();
    }

    fn create(&self, c: pb::WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(c));
    }

    fn cancel(&self, watch_id: i64) {
        self.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id,
        }));
    }

    fn progress(&self) {
        self.send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}));
    }

    async fn next(&mut self) -> pb::WatchResponse {
        match tokio::time::timeout(WAIT, self.responses.next()).await {
            Ok(Some(Ok(r))) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Creates a watcher and returns its id, checking the created response.
    async fn watch(&mut self, c: pb::WatchCreateRequest) -> i64 {
        self.create(c);
        let r = self.next().await;
        assert!(r.created && !r.canceled, "{r:?}");
        r.watch_id
    }

    /// Events of watcher `id` until one at `last_rev`, checking order and atomicity.
    async fn events_until(&mut self, id: i64, last_rev: i64) -> Vec<mvccpb::Event> {
        let mut out: Vec<mvccpb::Event> = Vec::new();
        while out.last().map_or(0, rev) < last_rev {
            let r = self.next().await;
            assert_eq!(r.watch_id, id, "{r:?}");
            assert!(!r.events.is_empty(), "{r:?}");
            let h = r.header.unwrap();
            assert_eq!((h.cluster_id, h.member_id, h.raft_term), (11, 22, 3));
            assert!(h.revision >= rev(r.events.last().unwrap()));
            out.extend(r.events);
        }
        out
    }
}

fn rev(e: &mvccpb::Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

fn keys(events: &[mvccpb::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.kv.as_ref().unwrap().key).into_owned())
        .collect()
}

fn is_delete(e: &mvccpb::Event) -> bool {
    e.r#type == mvccpb::event::EventType::Delete as i32
}

#[tokio::test]
async fn one_key_from_now_in_order_with_etcd_headers() {
    let mut h = Harness::new();
    h.put("foo", "before");
    let mut c = h.open();
    c.create(create(b"foo", b""));
    let created = c.next().await;
    assert!(created.created);
    assert_eq!(created.watch_id, 0, "server-chosen ids start at 0");
    assert_eq!(created.header.unwrap().revision, 2);
    h.put("bar", "x");
    h.put("foo", "1");
    let last = h.delete("foo");
    let events = c.events_until(0, last).await;
    assert_eq!(keys(&events), ["foo", "foo"]);
    assert_eq!(events[0].kv.as_ref().unwrap().value, b"1");
    assert_eq!(events[0].kv.as_ref().unwrap().version, 2);
    assert!(events[0].prev_kv.is_none(), "prev_kv was not asked for");
    assert!(is_delete(&events[1]));
    assert_eq!(rev(&events[1]), last);
}

#[tokio::test]
async fn prefixes_ranges_and_every_key_on_one_stream() {
    let mut h = Harness::new();
    let mut c = h.open();
    let prefix = c.watch(create(b"a/", b"a0")).await;
    let range = c.watch(create(b"b", b"d")).await;
    let all = c.watch(create(b"", b"\0")).await;
    assert_eq!((prefix, range, all), (0, 1, 2));
    for k in ["a/1", "a0", "b", "c", "d", "a/2"] {
        h.put(k, "v");
    }
    let mut got: std::collections::HashMap<i64, Vec<String>> = Default::default();
    while got.values().map(Vec::len).sum::<usize>() < 2 + 2 + 6 {
        let r = c.next().await;
        got.entry(r.watch_id).or_default().extend(keys(&r.events));
    }
    assert_eq!(got[&prefix], ["a/1", "a/2"]);
    assert_eq!(got[&range], ["b", "c"]);
    assert_eq!(got[&all], ["a/1", "a0", "b", "c", "d", "a/2"]);
}

#[tokio::test]
async fn filters_and_prev_kv_per_watcher_on_shared_events() {
    let mut h = Harness::new();
    let mut c = h.open();
    let no_put = c
        .watch(pb::WatchCreateRequest {
            filters: vec![pb::watch_create_request::FilterType::Noput as i32],
            ..create(b"k", b"")
        })
        .await;
    let with_prev = c
        .watch(pb::WatchCreateRequest {
            prev_kv: true,
            filters: vec![pb::watch_create_request::FilterType::Nodelete as i32],
            ..create(b"k", b"")
        })
        .await;
    let plain = c.watch(create(b"k", b"")).await;
    h.put("k", "1");
    h.put("k", "2");
    let last = h.delete("k");
    let mut got: std::collections::HashMap<i64, Vec<mvccpb::Event>> = Default::default();
    while got.values().map(Vec::len).sum::<usize>() < 1 + 2 + 3 {
        let r = c.next().await;
        got.entry(r.watch_id).or_default().extend(r.events);
    }
    assert_eq!(got[&no_put].len(), 1);
    assert!(is_delete(&got[&no_put][0]));
    assert!(got[&no_put][0].prev_kv.is_none());
    let prevs: Vec<_> = got[&with_prev]
        .iter()
        .map(|e| e.prev_kv.as_ref().map(|p| p.value.clone()))
        .collect();
    assert_eq!(
        prevs,
        [None, Some(b"1".to_vec())],
        "a creation has no prev_kv"
    );
    assert!(got[&plain].iter().all(|e| e.prev_kv.is_none()));
    assert_eq!(rev(got[&plain].last().unwrap()), last);
}

#[tokio::test]
async fn replays_history_then_goes_live_without_gaps_or_duplicates() {
    let mut h = Harness::new();
    for i in 0..50 {
        h.put(&format!("k{}", i % 3), "v");
    }
    let mut c = h.open();
    let id = c
        .watch(pb::WatchCreateRequest {
            start_revision: 10,
            ..create(b"k", b"l")
        })
        .await;
    let mid = h.put("k1", "live");
    let events = c.events_until(id, mid).await;
    let revs: Vec<i64> = events.iter().map(rev).collect();
    assert_eq!(revs, (10..=mid).collect::<Vec<_>>());
    // A client that reconnects from the last revision it saw plus one misses nothing.
    drop(c);
    let last = h.put("k2", "after");
    let mut again = h.open();
    let id = again
        .watch(pb::WatchCreateRequest {
            start_revision: mid + 1,
            ..create(b"k", b"l")
        })
        .await;
    let events = again.events_until(id, last).await;
    assert_eq!(events.iter().map(rev).collect::<Vec<_>>(), [last]);
}

#[tokio::test]
async fn a_revision_comes_whole_in_one_response() {
    let mut h = Harness::new();
    let mut c = h.open();
    let id = c.watch(create(b"t/", b"t0")).await;
    let put = |k: &str| {
        mvcc::RequestOp::Put(mvcc::PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        })
    };
    let rev = h.apply(mvcc::Command::Txn(mvcc::TxnRequest {
        success: vec![put("t/1"), put("t/2"), put("t/3")],
        ..Default::default()
    }));
    let r = c.next().await;
    assert_eq!(r.watch_id, id);
    assert_eq!(keys(&r.events), ["t/1", "t/2", "t/3"]);
    assert_eq!(r.header.unwrap().revision, rev);
}

#[tokio::test]
async fn large_responses_fragment_only_when_asked() {
    let mut h = Harness::with(settings(), 1000);
    let mut c = h.open();
    let whole = c.watch(create(b"f/", b"f0")).await;
    let pieces = c
        .watch(pb::WatchCreateRequest {
            fragment: true,
            ..create(b"f/", b"f0")
        })
        .await;
    let ops = (0..10)
        .map(|i| {
            mvcc::RequestOp::Put(mvcc::PutRequest {
                key: format!("f/{i}").into(),
                value: vec![b'x'; 300],
                ..Default::default()
            })
        })
        .collect();
    h.apply(mvcc::Command::Txn(mvcc::TxnRequest {
        success: ops,
        ..Default::default()
    }));
    let (mut whole_responses, mut fragments) = (Vec::new(), Vec::new());
    while whole_responses.is_empty()
        || fragments
            .last()
            .is_none_or(|f: &pb::WatchResponse| f.fragment)
    {
        let r = c.next().await;
        if r.watch_id == whole {
            whole_responses.push(r);
        } else {
            assert_eq!(r.watch_id, pieces);
            fragments.push(r);
        }
    }
    assert_eq!(whole_responses[0].events.len(), 10);
    assert!(fragments.len() > 2);
    assert_eq!(fragments.iter().map(|f| f.events.len()).sum::<usize>(), 10);
    assert!(fragments[..fragments.len() - 1].iter().all(|f| f.fragment));
}

#[tokio::test]
async fn compacted_start_is_canceled_with_the_compact_revision() {
    let mut h = Harness::new();
    for _ in 0..10 {
        h.put("k", "v");
    }
    h.compact(6);
    let mut c = h.open();
    c.create(pb::WatchCreateRequest {
        start_revision: 3,
        ..create(b"k", b"")
    });
    let created = c.next().await;
    assert!(created.created && !created.canceled);
    let canceled = c.next().await;
    assert_eq!(canceled.watch_id, created.watch_id);
    assert!(canceled.canceled);
    assert_eq!(canceled.compact_revision, 6);
    assert!(canceled.events.is_empty());
    assert_eq!(canceled.cancel_reason, "");
    h.until("the compacted watcher to go", |hub| hub.watchers() == 0)
        .await;
    // The compaction revision itself can still be watched from.
    let id = c
        .watch(pb::WatchCreateRequest {
            start_revision: 6,
            ..create(b"k", b"")
        })
        .await;
    let events = c.events_until(id, 11).await;
    assert_eq!(
        events.iter().map(rev).collect::<Vec<_>>(),
        (6..=11).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bad_requests_get_etcd_answers() {
    let mut h = Harness::new();
    h.put("a", "1");
    let mut c = h.open();
    let refused = |r: &pb::WatchResponse, reason: &str| {
        assert!(r.created && r.canceled, "{r:?}");
        assert_eq!(r.watch_id, -1);
        assert_eq!(r.cancel_reason, reason);
    };
    c.create(create(b"b", b"a"));
    refused(&c.next().await, CANCEL_EMPTY_RANGE);
    c.create(create(b"a", b"a"));
    refused(&c.next().await, CANCEL_EMPTY_RANGE);
    c.create(pb::WatchCreateRequest {
        start_revision: -1,
        ..create(b"a", b"")
    });
    refused(&c.next().await, CANCEL_COMPACTED);
    // Client-chosen ids are kept; server-chosen ones skip them.
    let chosen = c
        .watch(pb::WatchCreateRequest {
            watch_id: 1,
            ..create(b"a", b"")
        })
        .await;
    assert_eq!(chosen, 1);
    c.create(pb::WatchCreateRequest {
        watch_id: 1,
        ..create(b"a", b"")
    });
    refused(&c.next().await, CANCEL_DUPLICATE_ID);
    assert_eq!(c.watch(create(b"a", b"")).await, 0);
    assert_eq!(c.watch(create(b"a", b"")).await, 2);
    // An unknown id in a cancel gets no answer: the next response is the cancel after it.
    c.cancel(42);
    c.cancel(2);
    let r = c.next().await;
    assert!(r.canceled && !r.created);
    assert_eq!(r.watch_id, 2);
    // A start revision in the future waits for it.
    let future = c
        .watch(pb::WatchCreateRequest {
            start_revision: 5,
            ..create(b"f", b"")
        })
        .await;
    let mut last = 0;
    for _ in 0..4 {
        last = h.put("f", "v");
    }
    assert_eq!(last, 6);
    let events = c.events_until(future, last).await;
    assert_eq!(events.iter().map(rev).collect::<Vec<_>>(), [5, 6]);
    // An empty request is ignored and the stream goes on.
    c.tx.send(Ok(pb::WatchRequest::default())).unwrap();
    c.cancel(future);
    assert!(c.next().await.canceled);
}

#[tokio::test]
async fn a_canceled_watcher_gets_nothing_more() {
    let mut h = Harness::new();
    let mut c = h.open();
    let gone = c.watch(create(b"k", b"")).await;
    let stays = c.watch(create(b"k", b"")).await;
    c.cancel(gone);
    let r = c.next().await;
    assert!(r.canceled);
    assert_eq!(r.watch_id, gone);
    assert_eq!(r.header.unwrap().revision, 1);
    let last = h.put("k", "v");
    let r = c.next().await;
    assert_eq!(r.watch_id, stays);
    assert_eq!(rev(&r.events[0]), last);
    h.until("one watcher", |hub| hub.watchers() == 1).await;
}

#[tokio::test]
async fn progress_requests_wait_until_every_watcher_is_synced() {
    let mut h = Harness::new();
    let mut c = h.open();
    let now = h.store.current_revision();
    let id = c
        .watch(pb::WatchCreateRequest {
            start_revision: now + 3,
            ..create(b"k", b"")
        })
        .await;
    c.progress();
    h.put("x", "1");
    h.put("x", "2");
    let rev = h.put("k", "3");
    let r = c.next().await;
    assert_eq!((r.watch_id, r.events.len()), (id, 1));
    let p = c.next().await;
    assert_eq!(p.watch_id, -1);
    assert!(p.events.is_empty() && !p.created && !p.canceled);
    assert_eq!(p.header.unwrap().revision, rev);
    // Synced already: answered at once.
    c.progress();
    let p = c.next().await;
    assert_eq!((p.watch_id, p.header.unwrap().revision), (-1, rev));
}

#[tokio::test]
async fn progress_notify_watchers_hear_of_quiet_periods() {
    let mut h = Harness::with(
        HubSettings {
            progress_interval: Duration::from_millis(100),
            ..settings()
        },
        1 << 20,
    );
    let rev = h.put("other", "v");
    let mut c = h.open();
    let _quiet = c.watch(create(b"q", b"")).await;
    let notified = c
        .watch(pb::WatchCreateRequest {
            progress_notify: true,
            ..create(b"k", b"")
        })
        .await;
    let r = c.next().await;
    assert_eq!(r.watch_id, notified);
    assert!(r.events.is_empty());
    assert_eq!(r.header.unwrap().revision, rev);
}

#[tokio::test]
async fn a_slow_stream_becomes_a_victim_and_catches_up_without_gaps() {
    let mut h = Harness::with(
        HubSettings {
            stream_bytes: 8 * 1024,
            ..settings()
        },
        1 << 20,
    );
    let mut c = h.open();
    let id = c.watch(create(b"s/", b"s0")).await;
    let mut fast = h.open();
    let fast_id = fast.watch(create(b"s/", b"s0")).await;
    let value = "v".repeat(200);
    let mut last = 0;
    for i in 0..2000 {
        last = h.put(&format!("s/{}", i % 17), &value);
        if i == 1000 {
            // The writer never waits for the streams nobody reads; their watchers are set
            // aside.
            h.until("the stalled watchers to become victims", |hub| {
                hub.unsynced() == 2
            })
            .await;
        }
    }
    let fast_events = fast.events_until(fast_id, last).await;
    assert_eq!(fast_events.len(), 2000);
    let events = c.events_until(id, last).await;
    let revs: Vec<i64> = events.iter().map(rev).collect();
    assert_eq!(revs, (2..=last).collect::<Vec<_>>(), "no gap, no duplicate");
    h.until("the victim to be synced again", |hub| hub.unsynced() == 0)
        .await;
    let live = h.put("s/live", "v");
    assert_eq!(rev(&c.events_until(id, live).await[0]), live);
}

#[tokio::test]
async fn a_victim_whose_next_revision_is_compacted_is_canceled() {
    let mut h = Harness::with(
        HubSettings {
            stream_bytes: 4 * 1024,
            ..settings()
        },
        1 << 20,
    );
    let mut c = h.open();
    let id = c.watch(create(b"k", b"")).await;
    let value = "v".repeat(200);
    for _ in 0..500 {
        h.put("k", &value);
    }
    h.until("a victim", |hub| hub.unsynced() == 1).await;
    let compact_at = h.store.current_revision() - 10;
    h.compact(compact_at);
    let mut seen = 1;
    loop {
        let r = c.next().await;
        assert_eq!(r.watch_id, id);
        if r.canceled {
            assert_eq!(r.compact_revision, compact_at);
            break;
        }
        for e in &r.events {
            assert_eq!(rev(e), seen + 1, "contiguous up to the cancel");
            seen += 1;
        }
    }
    assert!(seen + 1 < compact_at);
    h.until("no watcher", |hub| hub.watchers() == 0).await;
}

#[tokio::test]
async fn one_change_reaches_a_thousand_watchers_of_one_prefix() {
    let mut h = Harness::new();
    let mut streams = Vec::new();
    for _ in 0..10 {
        let mut c = h.open();
        for _ in 0..100 {
            c.watch(create(b"p/", b"p0")).await;
        }
        streams.push(c);
    }
    let rev = h.put("p/x", "v");
    for c in &mut streams {
        let mut got = 0;
        while got < 100 {
            let r = c.next().await;
            assert_eq!(rev_of(&r), rev);
            got += 1;
        }
    }
}

fn rev_of(r: &pb::WatchResponse) -> i64 {
    rev(&r.events[0])
}

#[tokio::test]
async fn abandoned_streams_leave_no_watchers_behind() {
    let mut h = Harness::new();
    let mut streams = Vec::new();
    for i in 0..10_000 {
        let mut c = h.open();
        c.watch(create(format!("k{}", i % 100).as_bytes(), b""))
            .await;
        streams.push(c);
    }
    h.until("every watcher", |hub| hub.watchers() == 10_000)
        .await;
    for i in 0..100 {
        h.put(&format!("k{i}"), "v");
    }
    // Some streams read a little, most never do; all go away mid-stream.
    for c in streams.iter_mut().take(100) {
        c.next().await;
    }
    drop(streams);
    h.until("no stream and no watcher", |hub| {
        hub.streams() == 0 && hub.watchers() == 0 && hub.unsynced() == 0
    })
    .await;
}

#[tokio::test]
async fn from_now_starts_after_every_answered_write_even_before_its_commit() {
    let mut h = Harness::new();
    h.index += 1;
    let store = h.store.clone();
    let mut writer = store.writer();
    let put = mvcc::Command::Put(mvcc::PutRequest {
        key: b"k".to_vec(),
        value: b"answered".to_vec(),
        ..Default::default()
    });
    // The apply thread answers the caller before the commit, telling the hub first.
    let mut answered = 0;
    writer
        .apply_then(&[(h.index, put)], |applied| {
            if let mvcc::Outcome::Done { response, .. } = &applied[0].outcome {
                answered = response.revision();
            }
        })
        .unwrap();
    h.commits.answered(answered);
    let mut c = h.open();
    c.create(create(b"k", b""));
    let created = c.next().await;
    assert_eq!(created.header.unwrap().revision, answered);
    writer.commit().unwrap();
    drop(writer);
    h.commits.notify();
    let next = h.put("k", "after");
    let events = c.events_until(created.watch_id, next).await;
    assert_eq!(events.iter().map(rev).collect::<Vec<_>>(), [next]);
}

#[tokio::test]
async fn the_apply_thread_is_told_to_commit_at_once_while_a_watcher_is_synced() {
    let h = Harness::new();
    assert!(!h.commits.watched());
    let mut c = h.open();
    let live = c.watch(create(b"k", b"")).await;
    let commits = h.commits.clone();
    h.until("a synced watcher", move |_| commits.watched())
        .await;
    c.cancel(live);
    assert!(c.next().await.canceled);
    let commits = h.commits.clone();
    h.until("no watcher", move |_| !commits.watched()).await;
}
