//! etcd's Watch service: every committed change, in order, once, to any number of watchers.
//!
//! - [`hub`]: the one thread that owns every watcher (synced, unsynced, victims) and reads
//!   history after each store commit;
//! - [`group`]: the key index that finds a change's watchers;
//! - [`outbox`]: one stream's bounded queue between the hub and the wire;
//! - [`stream`]: one client stream's protocol (requests in, responses out, fragments).
//!
//! Guarantees, as etcd gives them: events in revision order, none twice, none missing, all
//! events of one revision in one response (unless fragmented on request), and only revisions
//! a read on this member can already see.

mod group;
mod hub;
mod outbox;
mod stream;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use api::etcdserverpb as pb;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{BoxStream, StreamExt};
use prost::Message;
use tonic::Status;

use crate::context::Context;

pub use hub::{CommitNotifier, Hub, HubSettings};
pub use stream::{HeaderSource, Permit};

/// Bytes of events one stream may have queued for a slow client before its watchers fall
/// back to catching up from history.
pub const STREAM_BYTES: usize = 1 << 20;

/// Waits until the store has committed what this member has answered.
pub type Barrier = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

pub struct WatchService {
    hub: Hub,
    header: HeaderSource,
    fragment_limit: usize,
    barrier: Option<Barrier>,
}

impl WatchService {
    pub fn new(ctx: Arc<Context>, hub: Hub) -> Self {
        // etcd fragments at its request limit plus the gRPC overhead it allows.
        let fragment_limit = ctx.limits.max_request_bytes + crate::GRPC_OVERHEAD_BYTES;
        let barrier_ctx = ctx.clone();
        let header: HeaderSource = Arc::new(move || ctx.header_info());
        // A compaction is answered before the store commits it; a watch created after that
        // answer must see the compaction (and be canceled), as a serializable read would.
        let barrier: Barrier = Arc::new(move || {
            let ctx = barrier_ctx.clone();
            async move {
                // A barrier that fails (a halted member, a timeout) leaves the request as
                // it was: the hub answers it from what the store holds.
                let _ = ctx.raft.local_barrier().await;
            }
            .boxed()
        });
        WatchService {
            barrier: Some(barrier),
            ..Self::with_header(hub, header, fragment_limit)
        }
    }

    /// A service whose headers come from `header`: no raft or membership needed.
    pub fn with_header(hub: Hub, header: HeaderSource, fragment_limit: usize) -> Self {
        WatchService {
            hub,
            header,
            fragment_limit,
            barrier: None,
        }
    }

    /// One Watch call, for callers in process: [`WatchService::watch_encoded`] with the
    /// responses decoded.
    pub fn watch(
        &self,
        requests: BoxStream<'static, Result<pb::WatchRequest, Status>>,
        permit: Option<stream::Permit>,
    ) -> BoxStream<'static, Result<pb::WatchResponse, Status>> {
        self.watch_encoded(requests, permit)
            .map(|r| {
                r.and_then(|bytes| {
                    pb::WatchResponse::decode(bytes)
                        .map_err(|e| Status::internal(format!("watch response: {e}")))
                })
            })
            .boxed()
    }

    /// One Watch call: the client's requests in, the responses out, encoded; `permit`
    /// checks each create (the caller's permissions, with auth). Dropping the response
    /// stream ends the call and its watchers.
    pub fn watch_encoded(
        &self,
        requests: BoxStream<'static, Result<pb::WatchRequest, Status>>,
        permit: Option<stream::Permit>,
    ) -> BoxStream<'static, Result<Bytes, Status>> {
        let requests = match self.barrier.clone() {
            None => requests,
            Some(barrier) => requests
                .then(move |r| {
                    let wait = matches!(
                        &r,
                        Ok(pb::WatchRequest {
                            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(_))
                        })
                    )
                    .then(|| barrier());
                    async move {
                        if let Some(wait) = wait {
                            wait.await;
                        }
                        r
                    }
                })
                .boxed(),
        };
        stream::Responses::open(
            self.hub.clone(),
            requests,
            self.header.clone(),
            self.fragment_limit,
            permit,
        )
        .boxed()
    }
}
