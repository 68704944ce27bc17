//! `etcdserverpb.Watch` on the gateway: one HTTP request is one watch stream.

use std::sync::Arc;

use axum::Router;

use super::call::MessageLimit;
use super::stream::bidirectional;
use crate::watch::WatchService;

pub fn routes(w: Arc<WatchService>, limit: MessageLimit) -> Router {
    Router::new().route(
        "/watch",
        bidirectional(limit, w, |s, requests| s.watch(requests)),
    )
}
