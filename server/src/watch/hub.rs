//! The hub: every watcher of the member, owned by one thread.
//!
//! Its shape is etcd's watchable store, in messages instead of locks:
//!
//! - **Synced** watchers have been handed every change up to `synced_rev`. When the apply
//!   thread commits, it wakes the hub ([`CommitNotifier`]); the hub reads the new revisions
//!   from history once, for all synced watchers together, asking the [`Group`] index which
//!   watchers want each change, and shares each event (an `Arc`) between them. Reading after
//!   the commit is what keeps a watcher from seeing a revision a read cannot see yet, and
//!   commits that pile up while the hub is busy are read in one go.
//! - **Unsynced** watchers (a start revision in the past, or victims) catch up from history
//!   in batches shared by all of them, and join the synced ones when they reach `synced_rev`.
//! - **Victims**: each stream has a bounded [`Outbox`]. A watcher whose outbox refuses its
//!   events keeps only the revision it got to and becomes unsynced; its stream is left alone
//!   until the client has read half the outbox, then it catches up from history. The apply
//!   thread never waits for a client and no client makes memory grow: a watcher costs its
//!   key range and a few counters, a stream its outbox.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mvcc::{EventKind, Store, Wanted};
use tracing::warn;

use super::group::{Filter, Group, Span, Wid, WidMap, WidSet};
use super::outbox::{Change, EventBatch, Outbox, Reply, Round, SharedEvent};

/// History rows one read looks at, at most, before the hub turns to its messages again.
const SCAN_ROWS: usize = 16 * 1024;

/// Rows one read looks at, at least.
const MIN_SCAN_ROWS: usize = 64;

/// (change, watcher) pairs one read should produce: each costs two pointers until it is
/// queued, so the rows per read shrink as the watchers per change grow (a thousand watchers
/// of one prefix), and grow back.
const MATCH_BUDGET: usize = 64 * 1024;

/// Revisions one catch-up batch covers at most (etcd's `watchBatchMaxRevs`).
const CATCH_UP_REVISIONS: i64 = 1000;

/// Messages handled per turn before the hub reads history again.
const MESSAGES_PER_TURN: usize = 1024;

/// etcd's shortest progress notification interval.
const MIN_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

pub const CANCEL_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
pub const CANCEL_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
pub const CANCEL_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

#[derive(Clone, Debug)]
pub struct HubSettings {
    /// `--experimental-watch-progress-notify-interval`.
    pub progress_interval: Duration,
    /// Bytes of events one stream may have queued.
    pub stream_bytes: usize,
}

/// A create request, with etcd's key conventions resolved.
#[derive(Clone, Debug, Default)]
pub struct CreateSpec {
    /// `None` when `range_end` is not above `key`.
    pub span: Option<Span>,
    pub start_revision: i64,
    /// 0: the hub chooses.
    pub watch_id: i64,
    pub progress_notify: bool,
    pub prev_kv: bool,
    pub fragment: bool,
    pub no_put: bool,
    pub no_delete: bool,
}

#[derive(Clone, Debug)]
pub enum Request {
    Create(CreateSpec),
    Cancel(i64),
    Progress,
}

enum Msg {
    Open { stream: u64, outbox: Arc<Outbox> },
    Request { stream: u64, request: Request },
    Room { stream: u64 },
    Close { stream: u64 },
}

/// Counts the hub keeps for metrics and tests.
#[derive(Default)]
struct Counts {
    streams: AtomicUsize,
    watchers: AtomicUsize,
    unsynced: AtomicUsize,
}

/// The handle streams talk to the hub through. Cheap to clone; the hub thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Hub {
    tx: Sender<Msg>,
    next_stream: Arc<AtomicU64>,
    /// Read by tests; `/metrics` could show them as etcd's `watcher_total` gauges.
    #[cfg(test)]
    counts: Arc<Counts>,
    settings: HubSettings,
}

/// What the apply thread tells the hub.
#[derive(Clone)]
pub struct CommitNotifier {
    wake: Sender<()>,
    answered: Arc<AtomicI64>,
    watched: Arc<AtomicBool>,
}

impl CommitNotifier {
    /// After each store commit. Never blocks: wake-ups that find the hub already woken
    /// merge into one.
    pub fn notify(&self) {
        let _ = self.wake.try_send(());
    }

    /// Callers have been answered up to `revision`, which the store commits shortly: a
    /// watch "from now" created meanwhile starts after it, as it would on etcd, whose
    /// answers follow the commit.
    pub fn answered(&self, revision: i64) {
        self.answered.fetch_max(revision, Relaxed);
    }

    /// Some watcher waits for the next change: the apply thread commits at once instead of
    /// lingering for more batches, since a watcher sees a change only after its commit.
    pub fn watched(&self) -> bool {
        self.watched.load(Relaxed)
    }
}

impl Hub {
    pub fn start(
        store: Arc<Store>,
        mut settings: HubSettings,
    ) -> std::io::Result<(Hub, CommitNotifier)> {
        settings.progress_interval = settings.progress_interval.max(MIN_PROGRESS_INTERVAL);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (wake, woken) = crossbeam_channel::bounded(1);
        let counts = Arc::new(Counts::default());
        let answered = Arc::new(AtomicI64::new(0));
        let watched = Arc::new(AtomicBool::new(false));
        let state = State {
            answered: answered.clone(),
            watched: watched.clone(),
            synced_rev: store.current_revision(),
            store,
            interval: settings.progress_interval,
            watchers: WidMap::default(),
            synced: Group::default(),
            unsynced: WidSet::default(),
            streams: HashMap::new(),
            progress_waiting: HashSet::new(),
            next_wid: 0,
            counts: counts.clone(),
            storage_failing: false,
            scan_rows: SCAN_ROWS,
            rounds: 0,
        };
        std::thread::Builder::new()
            .name("etcr-watch".into())
            .spawn(move || state.run(rx, woken))?;
        let hub = Hub {
            tx,
            next_stream: Arc::new(AtomicU64::new(1)),
            #[cfg(test)]
            counts,
            settings,
        };
        Ok((
            hub,
            CommitNotifier {
                wake,
                answered,
                watched,
            },
        ))
    }

    pub fn stream_bytes(&self) -> usize {
        self.settings.stream_bytes
    }

    /// Registers a stream; its answers and events go to `outbox`.
    pub fn open(&self, outbox: Arc<Outbox>) -> u64 {
        let stream = self.next_stream.fetch_add(1, Relaxed);
        let _ = self.tx.send(Msg::Open { stream, outbox });
        stream
    }

    /// False when the hub has stopped.
    pub fn request(&self, stream: u64, request: Request) -> bool {
        self.tx.send(Msg::Request { stream, request }).is_ok()
    }

    pub fn room(&self, stream: u64) {
        let _ = self.tx.send(Msg::Room { stream });
    }

    pub fn close(&self, stream: u64) {
        let _ = self.tx.send(Msg::Close { stream });
    }

    #[cfg(test)]
    pub fn streams(&self) -> usize {
        self.counts.streams.load(Relaxed)
    }

    #[cfg(test)]
    pub fn watchers(&self) -> usize {
        self.counts.watchers.load(Relaxed)
    }

    /// Watchers catching up from history (behind, or victims of a slow stream).
    #[cfg(test)]
    pub fn unsynced(&self) -> usize {
        self.counts.unsynced.load(Relaxed)
    }
}

struct Watcher {
    stream: u64,
    watch_id: i64,
    span: Span,
    /// The start revision asked for (0: from now).
    start: i64,
    /// The first revision it wants.
    min_rev: i64,
    /// While unsynced: the first revision not yet queued for it.
    next_rev: i64,
    synced: bool,
    prev_kv: bool,
    fragment: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    /// Events went out since the last progress tick (which then has nothing to say).
    sent_since_tick: bool,
}

impl Watcher {
    /// Its filter from `from` on.
    fn filter(&self, from: i64) -> Filter {
        Filter {
            min_rev: self.min_rev.max(from),
            no_put: self.no_put,
            no_delete: self.no_delete,
            prev_kv: self.prev_kv,
        }
    }
}

struct StreamState {
    outbox: Arc<Outbox>,
    ids: HashMap<i64, Wid>,
    next_id: i64,
    /// Its outbox refused events; catching up waits for room.
    blocked: bool,
}

struct State {
    store: Arc<Store>,
    interval: Duration,
    /// Synced watchers have been handed every change up to here.
    synced_rev: i64,
    /// The highest revision callers have been told of (see [`CommitNotifier::answered`]).
    answered: Arc<AtomicI64>,
    /// Whether any watcher is synced (see [`CommitNotifier::watched`]).
    watched: Arc<AtomicBool>,
    watchers: WidMap<Watcher>,
    synced: Group,
    unsynced: WidSet,
    streams: HashMap<u64, StreamState>,
    /// Streams whose progress request waits for all their watchers to be synced.
    progress_waiting: HashSet<u64>,
    next_wid: Wid,
    counts: Arc<Counts>,
    storage_failing: bool,
    /// Rows the next history read looks at (see [`MATCH_BUDGET`]).
    scan_rows: usize,
    /// Deliveries so far (each is an outbox [`Round`]).
    rounds: u64,
}

impl State {
    fn run(mut self, rx: Receiver<Msg>, woken: Receiver<()>) {
        let never = crossbeam_channel::never();
        let mut woken = Some(woken);
        let mut next_tick = Instant::now() + self.interval;
        let mut busy = false;
        let mut msgs = Vec::new();
        loop {
            let wait = if busy {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            crossbeam_channel::select! {
                recv(rx) -> m => match m {
                    Ok(m) => msgs.push(m),
                    Err(_) => return,
                },
                recv(woken.as_ref().unwrap_or(&never)) -> w => {
                    if w.is_err() {
                        woken = None;
                    }
                }
                default(wait) => {}
            }
            while msgs.len() < MESSAGES_PER_TURN {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            self.advance();
            for m in msgs.drain(..) {
                self.handle(m);
            }
            busy = self.catch_up();
            self.answer_waiting_progress();
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + self.interval;
            }
            self.watched.store(!self.synced.is_empty(), Relaxed);
            self.counts.watchers.store(self.watchers.len(), Relaxed);
            self.counts.streams.store(self.streams.len(), Relaxed);
            self.counts.unsynced.store(self.unsynced.len(), Relaxed);
        }
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Open { stream, outbox } => {
                self.streams.insert(
                    stream,
                    StreamState {
                        outbox,
                        ids: HashMap::new(),
                        next_id: 0,
                        blocked: false,
                    },
                );
            }
            Msg::Request { stream, request } => match request {
                Request::Create(spec) => self.create(stream, spec),
                Request::Cancel(id) => self.cancel(stream, id),
                Request::Progress => self.progress(stream),
            },
            Msg::Room { stream } => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.blocked = false;
                }
            }
            Msg::Close { stream } => {
                if let Some(s) = self.streams.remove(&stream) {
                    for wid in s.ids.into_values() {
                        self.remove(wid);
                    }
                }
                self.progress_waiting.remove(&stream);
            }
        }
    }

    fn create(&mut self, stream: u64, spec: CreateSpec) {
        let rev = self.synced_rev.max(self.answered.load(Relaxed));
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let refuse = |reason| Reply {
            watch_id: -1,
            revision: rev,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Reply::default()
        };
        if spec.start_revision < 0 {
            s.outbox.push_control(refuse(CANCEL_COMPACTED), true);
            return;
        }
        let Some(span) = spec.span else {
            s.outbox.push_control(refuse(CANCEL_EMPTY_RANGE), true);
            return;
        };
        let watch_id = if spec.watch_id == 0 {
            while s.ids.contains_key(&s.next_id) {
                s.next_id += 1;
            }
            s.next_id += 1;
            s.next_id - 1
        } else if s.ids.contains_key(&spec.watch_id) {
            s.outbox.push_control(refuse(CANCEL_DUPLICATE_ID), true);
            return;
        } else {
            spec.watch_id
        };
        let wid = self.next_wid;
        self.next_wid += 1;
        s.ids.insert(watch_id, wid);
        s.outbox.push_control(
            Reply {
                watch_id,
                revision: rev,
                created: true,
                ..Reply::default()
            },
            true,
        );
        let min_rev = if spec.start_revision == 0 {
            rev + 1
        } else {
            spec.start_revision
        };
        let synced = min_rev > self.synced_rev;
        let watcher = Watcher {
            stream,
            watch_id,
            span,
            start: spec.start_revision,
            min_rev,
            next_rev: min_rev,
            synced,
            prev_kv: spec.prev_kv,
            fragment: spec.fragment,
            no_put: spec.no_put,
            no_delete: spec.no_delete,
            progress_notify: spec.progress_notify,
            sent_since_tick: false,
        };
        if synced {
            self.synced.insert(wid, watcher.filter(0), &watcher.span);
        } else {
            self.unsynced.insert(wid);
        }
        self.watchers.insert(wid, watcher);
    }

    fn cancel(&mut self, stream: u64, watch_id: i64) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let Some(wid) = s.ids.remove(&watch_id) else {
            // etcd ignores a cancel of a watch id it does not know.
            s.outbox.give_credit();
            return;
        };
        s.outbox.push_control(
            Reply {
                watch_id,
                revision: self.synced_rev,
                canceled: true,
                ..Reply::default()
            },
            true,
        );
        self.remove(wid);
    }

    /// A progress request is answered (watch id -1, for every watcher of the stream) once
    /// all the stream's watchers are synced, as in etcd 3.5; a stream without watchers gets
    /// no answer.
    fn progress(&mut self, stream: u64) {
        let Some(s) = self.streams.get(&stream) else {
            return;
        };
        if !s.ids.is_empty() && self.all_synced(stream) {
            s.outbox.push_control(self.progress_reply(-1), true);
        } else {
            s.outbox.give_credit();
            if !s.ids.is_empty() {
                self.progress_waiting.insert(stream);
            }
        }
    }

    fn progress_reply(&self, watch_id: i64) -> Reply {
        Reply {
            watch_id,
            revision: self.synced_rev,
            ..Reply::default()
        }
    }

    fn all_synced(&self, stream: u64) -> bool {
        let Some(s) = self.streams.get(&stream) else {
            return false;
        };
        s.ids.values().all(|wid| {
            self.watchers
                .get(wid)
                .is_some_and(|w| w.synced && self.synced_rev >= w.start)
        })
    }

    fn answer_waiting_progress(&mut self) {
        if self.progress_waiting.is_empty() {
            return;
        }
        let ready: Vec<u64> = self
            .progress_waiting
            .iter()
            .copied()
            .filter(|s| self.all_synced(*s))
            .collect();
        for stream in ready {
            self.progress_waiting.remove(&stream);
            if let Some(s) = self.streams.get(&stream) {
                s.outbox.push_control(self.progress_reply(-1), false);
            }
        }
    }

    /// Progress notifications for `progress_notify` watchers that are synced and got no
    /// events since the last tick.
    fn tick(&mut self) {
        let rev = self.synced_rev;
        for w in self.watchers.values_mut() {
            if !w.progress_notify {
                continue;
            }
            if w.synced && rev >= w.start && !w.sent_since_tick {
                if let Some(s) = self.streams.get(&w.stream) {
                    s.outbox.push_progress(Reply {
                        watch_id: w.watch_id,
                        revision: rev,
                        ..Reply::default()
                    });
                }
            }
            w.sent_since_tick = false;
        }
    }

    fn remove(&mut self, wid: Wid) {
        let Some(w) = self.watchers.remove(&wid) else {
            return;
        };
        if w.synced {
            self.synced.remove(wid, &w.span);
        } else {
            self.unsynced.remove(&wid);
        }
    }

    fn storage_error(&mut self, e: mvcc::Error) {
        if !self.storage_failing {
            warn!("watch: reading history failed: {e}; retrying at the next commit");
            self.storage_failing = true;
        }
    }

    /// Hands synced watchers every change committed since `synced_rev`.
    fn advance(&mut self) {
        loop {
            let current = self.store.current_revision();
            if self.synced_rev >= current {
                return;
            }
            if self.synced.is_empty() {
                self.synced_rev = current;
                return;
            }
            let from = self.synced_rev + 1;
            let mut matched: Vec<Vec<Wid>> = Vec::new();
            let mut rows = 0;
            let synced = &self.synced;
            let read = self
                .store
                .history(from, current, self.scan_rows, |key, rev, kind| {
                    rows += 1;
                    want(synced, key, rev, kind, &mut matched)
                });
            self.adapt_scan(rows, &matched);
            match read {
                Ok(batch) if batch.next > from => {
                    self.storage_failing = false;
                    let upto = batch.next - 1;
                    self.deliver(batch.events, matched, upto);
                    self.synced_rev = upto;
                }
                Ok(_) => return,
                Err(mvcc::Error::Compacted) => {
                    // Only a snapshot from the leader compacts past what synced watchers
                    // were handed: they catch up, and learn of the compaction, from history.
                    let wids: Vec<Wid> = self
                        .watchers
                        .iter()
                        .filter(|(_, w)| w.synced)
                        .map(|(wid, _)| *wid)
                        .collect();
                    for wid in wids {
                        self.unsync(wid, from);
                    }
                    self.synced_rev = current;
                    return;
                }
                Err(e) => return self.storage_error(e),
            }
        }
    }

    /// Unsynced watchers whose stream has room: one shared batch from history, from the
    /// earliest of them. Returns whether such watchers remain.
    fn catch_up(&mut self) -> bool {
        let ready: Vec<Wid> = self
            .unsynced
            .iter()
            .copied()
            .filter(|wid| {
                self.watchers
                    .get(wid)
                    .is_some_and(|w| self.streams.get(&w.stream).is_some_and(|s| !s.blocked))
            })
            .collect();
        if ready.is_empty() {
            return false;
        }
        let compacted = self.store.compacted_revision();
        let mut behind = Vec::with_capacity(ready.len());
        for wid in ready {
            let Some(next_rev) = self.watchers.get(&wid).map(|w| w.next_rev) else {
                continue;
            };
            if next_rev < compacted {
                self.compacted(wid, compacted);
            } else if next_rev > self.synced_rev {
                self.sync(wid);
            } else {
                behind.push(wid);
            }
        }
        let ready = behind;
        let Some(from) = ready
            .iter()
            .filter_map(|wid| self.watchers.get(wid).map(|w| w.next_rev))
            .min()
        else {
            return false;
        };
        let to = self.synced_rev.min(from + CATCH_UP_REVISIONS - 1);
        let mut group = Group::default();
        for wid in &ready {
            if let Some(w) = self.watchers.get(wid) {
                group.insert(*wid, w.filter(w.next_rev), &w.span);
            }
        }
        let mut matched: Vec<Vec<Wid>> = Vec::new();
        let mut rows = 0;
        let read = self
            .store
            .history(from, to, self.scan_rows, |key, rev, kind| {
                rows += 1;
                want(&group, key, rev, kind, &mut matched)
            });
        self.adapt_scan(rows, &matched);
        let batch = match read {
            Ok(batch) => batch,
            // Compacted meanwhile: the next turn cancels whom it concerns.
            Err(mvcc::Error::Compacted) => return true,
            Err(e) => {
                self.storage_error(e);
                return false;
            }
        };
        self.storage_failing = false;
        let upto = batch.next - 1;
        let victims = self.deliver(batch.events, matched, upto);
        for wid in ready {
            if victims.contains(&wid) {
                continue;
            }
            let Some(w) = self.watchers.get_mut(&wid) else {
                continue;
            };
            // The stretch read covers the watcher's next revision: it had no change there,
            // or got them all.
            if w.next_rev <= upto {
                w.next_rev = batch.next;
            }
            if w.next_rev > self.synced_rev {
                self.sync(wid);
            }
        }
        !self.unsynced.is_empty()
    }

    /// Sizes the next read so that it yields about [`MATCH_BUDGET`] pairs, judging by this
    /// one's `rows` and `matched`.
    fn adapt_scan(&mut self, rows: usize, matched: &[Vec<Wid>]) {
        let pairs: usize = matched.iter().map(Vec::len).sum();
        let per_row = pairs.div_ceil(rows.max(1)).max(1);
        self.scan_rows = (MATCH_BUDGET / per_row).clamp(MIN_SCAN_ROWS, SCAN_ROWS);
    }

    /// Queues each watcher's share of `events` (`matched[i]` are the watchers of
    /// `events[i]`), which cover every change up to `upto`. Returns the watchers whose
    /// outbox refused part of their share: they are now unsynced.
    fn deliver(&mut self, events: Vec<mvcc::Event>, matched: Vec<Vec<Wid>>, upto: i64) -> WidSet {
        let mut shares: WidMap<Vec<SharedEvent>> = WidMap::default();
        let events: Vec<SharedEvent> = events
            .into_iter()
            .map(|e| Arc::new(Change::new(e)))
            .collect();
        self.rounds += 1;
        let round = Round {
            id: self.rounds,
            bytes: events.iter().map(|e| e.bytes()).sum(),
        };
        // Consecutive changes with the same watchers (every change, for watchers of one
        // prefix) are handed out as one run: a lookup per watcher per run, not per change.
        let mut start = 0;
        while start < events.len() {
            let wids = &matched[start];
            let end = start + matched[start..].iter().take_while(|m| *m == wids).count();
            for wid in wids {
                shares
                    .entry(*wid)
                    .or_default()
                    .extend(events[start..end].iter().cloned());
            }
            start = end;
        }
        let mut victims = WidSet::default();
        for (wid, events) in shares {
            let Some(w) = self.watchers.get_mut(&wid) else {
                continue;
            };
            let Some(s) = self.streams.get_mut(&w.stream) else {
                continue;
            };
            let left_out = s.outbox.push_events(
                EventBatch {
                    watch_id: w.watch_id,
                    revision: upto,
                    events,
                    prev_kv: w.prev_kv,
                    fragment: w.fragment,
                },
                round,
            );
            w.sent_since_tick = true;
            match left_out {
                None => w.next_rev = upto + 1,
                Some(rev) => {
                    s.blocked = true;
                    self.unsync(wid, rev);
                    victims.insert(wid);
                }
            }
        }
        victims
    }

    /// The watcher has everything before `next_rev` and catches up from there.
    fn unsync(&mut self, wid: Wid, next_rev: i64) {
        let Some(w) = self.watchers.get_mut(&wid) else {
            return;
        };
        w.next_rev = next_rev;
        if w.synced {
            w.synced = false;
            self.synced.remove(wid, &w.span);
            self.unsynced.insert(wid);
        }
    }

    fn sync(&mut self, wid: Wid) {
        let Some(w) = self.watchers.get_mut(&wid) else {
            return;
        };
        if !w.synced {
            w.synced = true;
            self.unsynced.remove(&wid);
            self.synced.insert(wid, w.filter(0), &w.span);
        }
    }

    /// etcd's answer to a watcher whose next revision was compacted: the compaction
    /// revision, and the watcher is gone.
    fn compacted(&mut self, wid: Wid, compacted: i64) {
        let Some(w) = self.watchers.get(&wid) else {
            return;
        };
        if let Some(s) = self.streams.get_mut(&w.stream) {
            s.outbox.push_control(
                Reply {
                    watch_id: w.watch_id,
                    canceled: true,
                    compact_revision: compacted,
                    ..Reply::default()
                },
                false,
            );
            s.ids.remove(&w.watch_id);
        }
        self.remove(wid);
    }
}

/// Decides, for one change, which watchers of `group` get it, and records them in
/// `matched`.
fn want(
    group: &Group,
    key: &[u8],
    rev: i64,
    kind: EventKind,
    matched: &mut Vec<Vec<Wid>>,
) -> Wanted {
    // As many as the previous change had: the same watchers, most often.
    let mut wids = Vec::with_capacity(matched.last().map_or(0, Vec::len));
    let mut prev = false;
    group.for_each_match(key, |wid, filter| {
        if filter.wants(rev, kind) {
            prev |= filter.prev_kv;
            wids.push(wid);
        }
    });
    if wids.is_empty() {
        return Wanted::Skip;
    }
    matched.push(wids);
    if prev {
        Wanted::EventWithPrev
    } else {
        Wanted::Event
    }
}
