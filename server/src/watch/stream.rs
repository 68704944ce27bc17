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
use api::mvccpb;
use futures::stream::{BoxStream, Stream};
use prost::Message;
use tonic::Status;

use super::group::Span;
use super::hub::{CreateSpec, Hub, Request};
use super::outbox::{EventBatch, Item, Outbox, Reply, Taken};
use crate::convert::{key_value, HeaderInfo};
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
    /// Fragments of a large response still to send.
    fragments: VecDeque<pb::WatchResponse>,
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
        self.fragments.push_back(pb::WatchResponse {
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
        });
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

impl Stream for Responses {
    type Item = Result<pb::WatchResponse, Status>;

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
            Item::Control { reply, .. } => reply_response(&reply, &header),
            Item::Events(batch) => {
                let fragment = batch.fragment;
                let response = events_response(batch, &header);
                if !fragment {
                    response
                } else {
                    let (first, rest) = fragments(response, this.fragment_limit);
                    this.fragments = rest;
                    first
                }
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

fn events_response(batch: EventBatch, h: &HeaderInfo) -> pb::WatchResponse {
    let events = batch
        .events
        .iter()
        .map(|e| mvccpb::Event {
            r#type: match e.kind {
                mvcc::EventKind::Put => mvccpb::event::EventType::Put as i32,
                mvcc::EventKind::Delete => mvccpb::event::EventType::Delete as i32,
            },
            kv: Some(key_value(e.kv.clone())),
            prev_kv: if batch.prev_kv {
                e.prev_kv.clone().map(key_value)
            } else {
                None
            },
        })
        .collect();
    pb::WatchResponse {
        header: h.at(batch.revision),
        watch_id: batch.watch_id,
        events,
        ..Default::default()
    }
}

/// etcd's fragmenting: a response of two or more events whose encoding reaches `limit` goes
/// out in pieces below it (a piece of one event may be larger), all but the last marked
/// `fragment`. Returns the first piece and the others.
fn fragments(
    response: pb::WatchResponse,
    limit: usize,
) -> (pb::WatchResponse, VecDeque<pb::WatchResponse>) {
    if response.encoded_len() < limit || response.events.len() < 2 {
        return (response, VecDeque::new());
    }
    let mut base = response;
    let events = std::mem::take(&mut base.events);
    base.fragment = true;
    let base_len = base.encoded_len();
    let mut out = VecDeque::new();
    let mut cur = base.clone();
    let mut cur_len = base_len;
    for ev in events {
        let len = prost::encoding::message::encoded_len(11, &ev);
        if !cur.events.is_empty() && cur_len + len >= limit {
            out.push_back(std::mem::replace(&mut cur, base.clone()));
            cur_len = base_len;
        }
        cur_len += len;
        cur.events.push(ev);
    }
    cur.fragment = false;
    match out.pop_front() {
        Some(first) => {
            out.push_back(cur);
            (first, out)
        }
        None => (cur, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_stay_below_the_limit_and_only_the_last_is_unmarked() {
        let ev = |n: u8| mvccpb::Event {
            kv: Some(mvccpb::KeyValue {
                key: vec![n],
                value: vec![n; 100],
                mod_revision: 5,
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = pb::WatchResponse {
            watch_id: 3,
            events: (0..10).map(ev).collect(),
            ..Default::default()
        };
        let whole = response.encoded_len();
        let (first, rest) = fragments(response.clone(), 350);
        let parts: Vec<_> = std::iter::once(first).chain(rest).collect();
        assert!(parts.len() > 2);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.encoded_len() < 350);
            assert_eq!(p.fragment, i + 1 < parts.len());
            assert_eq!(p.watch_id, 3);
        }
        let events: Vec<_> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(events, response.events);
        assert!(fragments(response, whole + 1).1.is_empty());
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
