//! [`Outbox`]: what one client stream has yet to send, bounded in bytes.
//!
//! The hub fills it without waiting (it must never block on a client); the stream's
//! response side empties it when the gRPC layer polls, which it does only when the client's
//! HTTP/2 window has room. A refused push makes the watcher a victim in the hub; the first
//! take that frees half the room tells the hub to try again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use api::mvccpb;
use bytes::Bytes;

use crate::convert::key_value;

/// One change, read from history once and shared by every watcher that gets it.
pub type SharedEvent = Arc<Change>;

/// A change and its wire form, encoded once by the first stream that sends it (with and
/// without `prev_kv`, each on demand), so that a thousand watchers of it cost a thousand
/// copies of its bytes and not a thousand encodings.
#[derive(Debug)]
pub struct Change {
    pub event: mvcc::Event,
    /// What it counts for in an outbox's bound, per watcher.
    bytes: usize,
    plain: OnceLock<Bytes>,
    with_prev: OnceLock<Bytes>,
}

/// `WatchResponse.events`.
const EVENTS_FIELD: u32 = 11;

impl Change {
    pub fn new(event: mvcc::Event) -> Change {
        Change {
            bytes: event_bytes(&event),
            event,
            plain: OnceLock::new(),
            with_prev: OnceLock::new(),
        }
    }

    pub fn revision(&self) -> i64 {
        self.event.kv.mod_revision
    }

    /// What it counts for in an outbox's bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The event as one `WatchResponse.events` entry (field tag, length, message): a
    /// repeated message field is the concatenation of its entries, so a response is its
    /// other fields followed by these bytes.
    pub fn encoded(&self, prev_kv: bool) -> &Bytes {
        let prev = prev_kv && self.event.prev_kv.is_some();
        let cell = if prev { &self.with_prev } else { &self.plain };
        cell.get_or_init(|| {
            let e = &self.event;
            let message = mvccpb::Event {
                r#type: match e.kind {
                    mvcc::EventKind::Put => mvccpb::event::EventType::Put as i32,
                    mvcc::EventKind::Delete => mvccpb::event::EventType::Delete as i32,
                },
                kv: Some(key_value(e.kv.clone())),
                prev_kv: if prev {
                    e.prev_kv.clone().map(key_value)
                } else {
                    None
                },
            };
            let mut buf = Vec::with_capacity(prost::encoding::message::encoded_len(
                EVENTS_FIELD,
                &message,
            ));
            prost::encoding::message::encode(EVENTS_FIELD, &message, &mut buf);
            Bytes::from(buf)
        })
    }
}

/// A response the hub composed whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub watch_id: i64,
    /// The header revision.
    pub revision: i64,
    pub created: bool,
    pub canceled: bool,
    pub compact_revision: i64,
    pub cancel_reason: &'static str,
}

/// What the stream sends next.
#[derive(Debug)]
pub enum Item {
    /// `answers_request` gives the client's request credit back once taken.
    Control { reply: Reply, answers_request: bool },
    /// A watcher's changes of one or more whole revisions, in order.
    Events(EventBatch),
}

#[derive(Debug)]
pub struct EventBatch {
    pub watch_id: i64,
    /// Every change up to this revision has been queued for the watcher.
    pub revision: i64,
    pub events: Vec<SharedEvent>,
    pub prev_kv: bool,
    pub fragment: bool,
}

/// The bytes an event accounts for in the bound: its data plus framing, twice (the event
/// and its wire form).
fn event_bytes(e: &mvcc::Event) -> usize {
    let prev = e
        .prev_kv
        .as_ref()
        .map_or(0, |p| p.key.len() + p.value.len() + 32);
    2 * (e.kv.key.len() + e.kv.value.len() + prev + 48)
}

/// Room a progress notification takes, so that a client that never reads cannot pile
/// them up.
const PROGRESS_BYTES: usize = 64;

pub struct Outbox {
    inner: Mutex<Inner>,
    limit: usize,
}

/// What a queued (watcher, change) pair costs beside the change: its pointer, with room.
const SHARE_BYTES: usize = 16;

/// One hub delivery whose changes some queued items still point to: their data counts once
/// for the stream, however many of its watchers got them, until the last such item is taken.
struct RoundCharge {
    id: u64,
    /// The data of the shares queued so far, summed.
    shares: usize,
    /// What the round counts for: its shares, at most the data of all its changes.
    charged: usize,
    /// The sequence number of its last item.
    last_seq: u64,
}

/// One hub delivery, as [`Outbox::push_events`] is told of it.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    /// Distinct for every delivery.
    pub id: u64,
    /// The data of all the changes of the delivery (each counted once).
    pub bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Each item with what it counts for itself and its sequence number (0 for control).
    items: VecDeque<(Item, usize, u64)>,
    bytes: usize,
    seq: u64,
    rounds: VecDeque<RoundCharge>,
    waker: Option<Waker>,
    /// A push was refused: the hub waits for room.
    refused: bool,
    /// Requests the stream may still hand the hub before it has answered the earlier ones:
    /// answers (created, canceled) cannot pile up for a client that never reads either.
    credit: usize,
}

/// What [`Outbox::poll_take`] hands the response side.
pub struct Taken {
    pub item: Item,
    /// The hub was refused and there is room again: tell it.
    pub room_again: bool,
}

impl Outbox {
    pub fn new(limit: usize, credit: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            inner: Mutex::new(Inner {
                credit,
                ..Inner::default()
            }),
            limit,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_locked(mut inner: MutexGuard<'_, Inner>, item: Item, bytes: usize, seq: u64) {
        inner.items.push_back((item, bytes, seq));
        inner.bytes += bytes;
        let waker = inner.waker.take();
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Queues a control response; these are never refused (their number is bounded by the
    /// client's requests and watchers).
    pub fn push_control(&self, reply: Reply, answers_request: bool) {
        let item = Item::Control {
            reply,
            answers_request,
        };
        Self::push_locked(self.lock(), item, 0, 0);
    }

    /// Queues a progress notification if there is room; a full stream skips it, as etcd's
    /// does.
    pub fn push_progress(&self, reply: Reply) -> bool {
        let inner = self.lock();
        if inner.bytes + PROGRESS_BYTES > self.limit {
            return false;
        }
        let item = Item::Control {
            reply,
            answers_request: false,
        };
        Self::push_locked(inner, item, PROGRESS_BYTES, 0);
        true
    }

    /// Queues as many whole revisions of `batch.events` as fit (the first revision always
    /// fits an empty outbox, however large). Returns the first revision it left out, if any;
    /// the hub is then told once there is room again. A change counts [`SHARE_BYTES`] per
    /// watcher that gets it, and its data once per `round` (see [`RoundCharge`]).
    pub fn push_events(&self, mut batch: EventBatch, round: Round) -> Option<i64> {
        let mut inner = self.lock();
        let room = self.limit.saturating_sub(inner.bytes);
        let (mut shares, mut charged) = match inner.rounds.back() {
            Some(r) if r.id == round.id => (r.shares, r.charged),
            _ => (0, 0),
        };
        let charged_before = charged;
        let (mut taken, mut taken_bytes, mut pointers) = (0, 0, 0);
        let events = &batch.events;
        while taken < events.len() {
            let rev = events[taken].revision();
            let end = taken
                + events[taken..]
                    .iter()
                    .take_while(|e| e.revision() == rev)
                    .count();
            let data: usize = events[taken..end].iter().map(|e| e.bytes).sum();
            let more_pointers = (end - taken) * SHARE_BYTES;
            let now_charged = (shares + data).min(round.bytes).max(charged);
            let bytes = more_pointers + now_charged - charged;
            let first = taken == 0 && inner.bytes == 0;
            if taken_bytes + bytes > room && !first {
                break;
            }
            taken = end;
            taken_bytes += bytes;
            pointers += more_pointers;
            shares += data;
            charged = now_charged;
        }
        let mut left_out = None;
        if taken < batch.events.len() {
            inner.refused = true;
            left_out = Some(batch.events[taken].revision());
            if taken == 0 {
                return left_out;
            }
            batch.events.truncate(taken);
            batch.revision = batch.events[taken - 1].revision();
        }
        inner.seq += 1;
        let seq = inner.seq;
        match inner.rounds.back_mut() {
            Some(r) if r.id == round.id => {
                (r.shares, r.charged, r.last_seq) = (shares, charged, seq);
            }
            _ => inner.rounds.push_back(RoundCharge {
                id: round.id,
                shares,
                charged,
                last_seq: seq,
            }),
        }
        inner.bytes += charged - charged_before;
        Self::push_locked(inner, Item::Events(batch), pointers, seq);
        left_out
    }

    /// Takes the credit for handing the hub one request, if any is left.
    pub fn take_credit(&self) -> bool {
        let mut inner = self.lock();
        let some = inner.credit > 0;
        if some {
            inner.credit -= 1;
        }
        some
    }

    /// The hub handled a request without answering it (an unknown watch id, a progress
    /// request it answers later): its credit comes back at once.
    pub fn give_credit(&self) {
        let mut inner = self.lock();
        inner.credit += 1;
        let waker = inner.waker.take();
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Gives back credit the stream took without using it (no wake-up: the stream is the
    /// one running).
    pub fn refund_credit(&self) {
        self.lock().credit += 1;
    }

    /// The next item, or `Pending` (waking `cx` on the next push or returned credit).
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Taken> {
        let mut inner = self.lock();
        let Some((item, bytes, seq)) = inner.items.pop_front() else {
            inner.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        inner.bytes -= bytes;
        while seq > 0 && inner.rounds.front().is_some_and(|r| r.last_seq <= seq) {
            if let Some(r) = inner.rounds.pop_front() {
                inner.bytes -= r.charged;
            }
        }
        let room_again = inner.refused && inner.bytes <= self.limit / 2;
        if room_again {
            inner.refused = false;
        }
        if let Item::Control {
            answers_request: true,
            ..
        } = item
        {
            inner.credit += 1;
        }
        Poll::Ready(Taken { item, room_again })
    }

    /// Bytes queued (for tests and the bound's checks).
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rev: i64, value_len: usize) -> SharedEvent {
        Arc::new(Change::new(mvcc::Event {
            kind: mvcc::EventKind::Put,
            kv: mvcc::KeyValue {
                key: b"k".to_vec(),
                mod_revision: rev,
                value: vec![b'v'; value_len],
                ..Default::default()
            },
            prev_kv: None,
        }))
    }

    fn batch(events: Vec<SharedEvent>) -> EventBatch {
        EventBatch {
            watch_id: 0,
            revision: events.last().map_or(0, |e| e.revision()),
            events,
            prev_kv: false,
            fragment: false,
        }
    }

    /// A push that is its own delivery.
    fn push(o: &Outbox, b: EventBatch) -> Option<i64> {
        static ROUNDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let round = Round {
            id: ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            bytes: b.events.iter().map(|e| e.bytes()).sum(),
        };
        o.push_events(b, round)
    }

    fn take(o: &Outbox) -> Option<(Item, bool)> {
        let waker = futures::task::noop_waker();
        match o.poll_take(&mut Context::from_waker(&waker)) {
            Poll::Ready(Taken { item, room_again }) => Some((item, room_again)),
            Poll::Pending => None,
        }
    }

    #[test]
    fn takes_whole_revisions_up_to_the_bound_and_calls_back_at_half() {
        let o = Outbox::new(1000, 8);
        // Revision 2 has two events; the bound admits revision 2 and not revision 3.
        let evs = vec![event(2, 150), event(2, 150), event(3, 150)];
        assert_eq!(push(&o, batch(evs)), Some(3));
        assert!(o.queued_bytes() <= 1000);
        assert_eq!(push(&o, batch(vec![event(3, 150)])), Some(3), "full");
        let (item, room_again) = take(&o).unwrap();
        match item {
            Item::Events(b) => {
                assert_eq!(b.events.len(), 2);
                assert_eq!(b.revision, 2, "the header says how far it got");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(room_again);
        assert!(take(&o).is_none());
    }

    #[test]
    fn a_revision_larger_than_the_bound_still_goes_out_alone() {
        let o = Outbox::new(100, 8);
        assert_eq!(push(&o, batch(vec![event(2, 500), event(3, 1)])), Some(3));
        assert_eq!(push(&o, batch(vec![event(3, 1)])), Some(3));
    }

    #[test]
    fn a_delivery_counts_its_changes_once_however_many_watchers_share_them() {
        let evs = vec![event(2, 300), event(3, 300)];
        let data: usize = evs.iter().map(|e| e.bytes()).sum();
        let o = Outbox::new(data + 10 * 2 * SHARE_BYTES, 8);
        let round = Round { id: 7, bytes: data };
        for _ in 0..10 {
            assert_eq!(o.push_events(batch(evs.clone()), round), None);
        }
        assert_eq!(o.queued_bytes(), data + 10 * 2 * SHARE_BYTES);
        // Counted per watcher, as a new delivery, the same changes no longer fit.
        assert_eq!(push(&o, batch(evs.clone())), Some(2));
        for left in (0..10).rev() {
            take(&o).unwrap();
            let expected = if left == 0 {
                0
            } else {
                data + left * 2 * SHARE_BYTES
            };
            assert_eq!(
                o.queued_bytes(),
                expected,
                "the data goes with the last item"
            );
        }
    }

    #[test]
    fn progress_is_skipped_when_full_and_replies_return_request_credit() {
        let o = Outbox::new(100, 1);
        assert!(o.push_progress(Reply::default()));
        assert!(!o.push_progress(Reply::default()));
        assert!(o.take_credit());
        assert!(!o.take_credit());
        o.push_control(Reply::default(), true);
        take(&o).unwrap();
        take(&o).unwrap();
        assert!(o.take_credit());
        o.give_credit();
        assert!(o.take_credit());
    }
}
