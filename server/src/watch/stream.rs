//! One client's Watch stream: its requests to the hub, its outbox to the wire.
//!
//! [`Responses`] is the response stream the gRPC layer polls; it is also what reads the
//! client's requests, so a stream is one future on its connection's task, with no task of
//! its own. It reads a request only while it holds credit for it (the hub's answers to
//! earlier requests have been taken), and it closes its hub side when dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use api::etcdserverpb as pb;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream};
use prost::Message;
use tonic::Status;

use super::group::Span;
use super::hub::{CreateSpec, Hub, Request};
use super::outbox::{EventBatch, Item, Outbox, Reply, Taken};
use crate::convert::HeaderInfo;
use crate::errors::EtcdError;

/// Where the response headers' cluster, member and term come from (the term changes).
pub type HeaderSource = Arc<dyn Fn() -> HeaderInfo + Send + Sync>;

/// Decides whether a create request may watch its range; on refusal, the store's current
/// revision for the answer's header.
pub type Permit = Arc<dyn Fn(&pb::WatchCreateRequest) -> Result<(), i64> + Send + Sync>;

/// Requests a client may have unanswered before its stream stops reading more: etcd's
/// `ctrlStreamBufLen`.
const REQUEST_CREDIT: usize = 128;

pub struct Responses {
    id: u64,
    hub: Hub,
    outbox: Arc<Outbox>,
    requests: Option<BoxStream<'static, Result<pb::WatchRequest, Status>>>,
    header: HeaderSource,
    fragment_limit: usize,
    /// Encoded responses still to send (fragments of a large one, a refusal).
    fragments: VecDeque<Bytes>,
    ended: bool,
    permit: Option<Permit>,
}

impl Responses {
    pub fn open(
        hub: Hub,
        requests: BoxStream<'static, Result<pb::WatchRequest, Status>>,
        header: HeaderSource,
        fragment_limit: usize,
        permit: Option<Permit>,
    ) -> Responses {
        let outbox = Outbox::new(hub.stream_bytes(), REQUEST_CREDIT);
        let id = hub.open(outbox.clone());
        Responses {
            id,
            hub,
            outbox,
            requests: Some(requests),
            header,
            fragment_limit,
            fragments: VecDeque::new(),
            ended: false,
            permit,
        }
    }

    /// Whether `r` creates a watcher the client may not have; if so, queues etcd 3.4's
    /// answer: created and canceled at once, watch id -1, permission denied.
    fn denied(&mut self, r: &pb::WatchRequest) -> bool {
        let (Some(permit), Some(pb::watch_request::RequestUnion::CreateRequest(c))) =
            (&self.permit, &r.request_union)
        else {
            return false;
        };
        let Err(revision) = permit(c) else {
            return false;
        };
        let denied = Status::from(EtcdError::PermissionDenied);
        let response = pb::WatchResponse {
            header: (self.header)().at(revision),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: format!(
                "rpc error: code = {:?} desc = {}",
                denied.code(),
                denied.message()
            ),
            ..Default::default()
        };
        self.fragments
            .push_back(Bytes::from(response.encode_to_vec()));
        true
    }

    /// Hands the hub every request that has arrived, as far as credit allows.
    fn read_requests(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        loop {
            let Some(requests) = self.requests.as_mut() else {
                return Ok(());
            };
            if !self.outbox.take_credit() {
                return Ok(());
            }
            match requests.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(r))) if self.denied(&r) => self.outbox.refund_credit(),
                Poll::Ready(Some(Ok(r))) => match parse(r) {
                    Some(request) => {
                        if !self.hub.request(self.id, request) {
                            return Err(EtcdError::Stopped.into());
                        }
                    }
                    // etcd ignores a request without a body.
                    None => self.outbox.refund_credit(),
                },
                Poll::Ready(Some(Err(status))) => return Err(status),
                // A client that closes its side still gets events, as from etcd.
                Poll::Ready(None) => {
                    self.outbox.refund_credit();
                    self.requests = None;
                }
                Poll::Pending => {
                    self.outbox.refund_credit();
                    return Ok(());
                }
            }
        }
    }
}

/// Yields each `WatchResponse` encoded: events are encoded once per change, not once per
/// watcher (see [`super::outbox::Change`]).
impl Stream for Responses {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if let Err(status) = this.read_requests(cx) {
            this.ended = true;
            return Poll::Ready(Some(Err(status)));
        }
        if let Some(r) = this.fragments.pop_front() {
            return Poll::Ready(Some(Ok(r)));
        }
        let Poll::Ready(Taken { item, room_again }) = this.outbox.poll_take(cx) else {
            return Poll::Pending;
        };
        if room_again {
            this.hub.room(this.id);
        }
        let header = (this.header)();
        let response = match item {
            Item::Control { reply, .. } => {
                Bytes::from(reply_response(&reply, &header).encode_to_vec())
            }
            Item::Events(batch) => {
                let limit = batch.fragment.then_some(this.fragment_limit);
                let mut pieces = events_responses(&batch, &header, limit);
                let first = pieces.pop_front().unwrap_or_default();
                this.fragments = pieces;
                first
            }
        };
        Poll::Ready(Some(Ok(response)))
    }
}

impl Drop for Responses {
    fn drop(&mut self) {
        self.hub.close(self.id);
    }
}

/// A request in the hub's terms, with etcd's conventions: an empty key is `\0` (the
/// smallest key), an empty `range_end` watches one key, `\0` every key from `key` on.
fn parse(r: pb::WatchRequest) -> Option<Request> {
    use pb::watch_request::RequestUnion;
    Some(match r.request_union? {
        RequestUnion::CreateRequest(c) => {
            let key = if c.key.is_empty() { vec![0] } else { c.key };
            let span = match c.range_end.as_slice() {
                [] => Some(Span::Key(key)),
                [0] => Some(Span::Range(key, None)),
                end if key.as_slice() < end => Some(Span::Range(key, Some(c.range_end))),
                _ => None,
            };
            let filter = |f: pb::watch_create_request::FilterType| c.filters.contains(&(f as i32));
            Request::Create(CreateSpec {
                span,
                start_revision: c.start_revision,
                watch_id: c.watch_id,
                progress_notify: c.progress_notify,
                prev_kv: c.prev_kv,
                fragment: c.fragment,
                no_put: filter(pb::watch_create_request::FilterType::Noput),
                no_delete: filter(pb::watch_create_request::FilterType::Nodelete),
            })
        }
        RequestUnion::CancelRequest(c) => Request::Cancel(c.watch_id),
        RequestUnion::ProgressRequest(_) => Request::Progress,
    })
}

fn reply_response(r: &Reply, h: &HeaderInfo) -> pb::WatchResponse {
    pb::WatchResponse {
        header: h.at(r.revision),
        watch_id: r.watch_id,
        created: r.created,
        canceled: r.canceled,
        compact_revision: r.compact_revision,
        cancel_reason: r.cancel_reason.to_string(),
        fragment: false,
        events: Vec::new(),
    }
}

/// A watcher's batch as encoded responses: one, or with `fragment_limit`, etcd's
/// fragmenting: a response of two or more events whose encoding reaches the limit goes out
/// in pieces below it (a piece of one event may be larger), all but the last marked
/// `fragment`.
fn events_responses(
    batch: &EventBatch,
    h: &HeaderInfo,
    fragment_limit: Option<usize>,
) -> VecDeque<Bytes> {
    let events: Vec<&Bytes> = batch
        .events
        .iter()
        .map(|e| e.encoded(batch.prev_kv))
        .collect();
    let mut base = pb::WatchResponse {
        header: h.at(batch.revision),
        watch_id: batch.watch_id,
        ..Default::default()
    };
    let whole_len = base.encoded_len() + events.iter().map(|e| e.len()).sum::<usize>();
    let mut out = VecDeque::new();
    let Some(limit) = fragment_limit.filter(|l| whole_len >= *l && events.len() >= 2) else {
        out.push_back(response_bytes(&base, &events));
        return out;
    };
    base.fragment = true;
    let base_len = base.encoded_len();
    let (mut start, mut cur_len) = (0, base_len);
    for (i, e) in events.iter().enumerate() {
        if i > start && cur_len + e.len() >= limit {
            out.push_back(response_bytes(&base, &events[start..i]));
            (start, cur_len) = (i, base_len);
        }
        cur_len += e.len();
    }
    base.fragment = false;
    out.push_back(response_bytes(&base, &events[start..]));
    out
}

/// `base` (without events) followed by the encoded events.
fn response_bytes(base: &pb::WatchResponse, events: &[&Bytes]) -> Bytes {
    let len = base.encoded_len() + events.iter().map(|e| e.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(len);
    // Cannot fail: the buffer grows.
    let _ = base.encode(&mut buf);
    for e in events {
        buf.extend_from_slice(e);
    }
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_stay_below_the_limit_and_only_the_last_is_unmarked() {
        let change = |n: u8| {
            std::sync::Arc::new(super::super::outbox::Change::new(mvcc::Event {
                kind: mvcc::EventKind::Put,
                kv: mvcc::KeyValue {
                    key: vec![n],
                    value: vec![n; 100],
                    mod_revision: 5,
                    ..Default::default()
                },
                prev_kv: Some(mvcc::KeyValue {
                    key: vec![n],
                    value: b"old".to_vec(),
                    ..Default::default()
                }),
            }))
        };
        let batch = |prev_kv| EventBatch {
            watch_id: 3,
            revision: 5,
            events: (0..10).map(change).collect(),
            prev_kv,
            fragment: true,
        };
        let header = HeaderInfo {
            cluster_id: 1,
            member_id: 2,
            raft_term: 3,
        };
        let decode = |b: &Bytes| pb::WatchResponse::decode(b.clone()).unwrap();
        let whole = events_responses(&batch(false), &header, None);
        assert_eq!(whole.len(), 1);
        let whole = decode(&whole[0]);
        assert_eq!((whole.watch_id, whole.fragment), (3, false));
        assert_eq!(whole.header.as_ref().map(|h| h.revision), Some(5));
        assert_eq!(whole.events.len(), 10);
        assert!(whole.events.iter().all(|e| e.prev_kv.is_none()));
        let with_prev = decode(&events_responses(&batch(true), &header, None)[0]);
        assert!(with_prev
            .events
            .iter()
            .all(|e| e.prev_kv.as_ref().is_some_and(|p| p.value == b"old")));

        let parts = events_responses(&batch(false), &header, Some(350));
        assert!(parts.len() > 2);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.len() < 350);
            let p = decode(p);
            assert_eq!(p.fragment, i + 1 < parts.len());
            assert_eq!(p.watch_id, 3);
        }
        let events: Vec<_> = parts.iter().flat_map(|p| decode(p).events).collect();
        assert_eq!(events, whole.events);
        let unsplit = events_responses(&batch(false), &header, Some(whole.encoded_len() + 1));
        assert_eq!(unsplit.len(), 1);
    }

    #[test]
    fn create_requests_follow_etcd_key_conventions() {
        let create = |key: &[u8], end: &[u8]| {
            let r = pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: key.to_vec(),
                        range_end: end.to_vec(),
                        filters: vec![1],
                        ..Default::default()
                    },
                )),
            };
            match parse(r) {
                Some(Request::Create(c)) => {
                    assert!(c.no_delete && !c.no_put);
                    c.span
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(create(b"", b""), Some(Span::Key(vec![0])));
        assert_eq!(create(b"", b"\0"), Some(Span::Range(vec![0], None)));
        assert_eq!(
            create(b"a", b"b"),
            Some(Span::Range(b"a".to_vec(), Some(b"b".to_vec())))
        );
        assert_eq!(create(b"b", b"a"), None);
        assert_eq!(create(b"a", b"a"), None);
        assert!(parse(pb::WatchRequest::default()).is_none());
    }
}
