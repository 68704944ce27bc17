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
use futures::stream::{BoxStream, StreamExt};
use tonic::Status;

use crate::context::Context;

pub use hub::{CommitNotifier, Hub, HubSettings};
pub use stream::{HeaderSource, Permit};

/// Bytes of events one stream may have queued for a slow client before its watchers fall
/// back to catching up from history.
pub const STREAM_BYTES: usize = 1 << 20;

pub struct WatchService {
    hub: Hub,
    header: HeaderSource,
    fragment_limit: usize,
}

impl WatchService {
    pub fn new(ctx: Arc<Context>, hub: Hub) -> Self {
        // etcd fragments at its request limit plus the gRPC overhead it allows.
        let fragment_limit = ctx.limits.max_request_bytes + crate::GRPC_OVERHEAD_BYTES;
        let header: HeaderSource = Arc::new(move || ctx.header_info());
        Self::with_header(hub, header, fragment_limit)
    }

    /// A service whose headers come from `header`: no raft or membership needed.
    pub fn with_header(hub: Hub, header: HeaderSource, fragment_limit: usize) -> Self {
        WatchService {
            hub,
            header,
            fragment_limit,
        }
    }

    /// One Watch call: the client's requests in, the responses out; `permit` checks each
    /// create (the caller's permissions, with auth). Dropping the response stream ends the
    /// call and its watchers.
    pub fn watch(
        &self,
        requests: BoxStream<'static, Result<pb::WatchRequest, Status>>,
        permit: Option<stream::Permit>,
    ) -> BoxStream<'static, Result<pb::WatchResponse, Status>> {
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
