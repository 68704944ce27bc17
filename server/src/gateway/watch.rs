//! `etcdserverpb.Watch` on the gateway: one HTTP request is one watch stream.

use std::sync::Arc;

use axum::Router;

use super::call::MessageLimit;
use super::stream::bidirectional;
use crate::context::Context;
use crate::watch::WatchService;

pub fn routes(ctx: Arc<Context>, w: Arc<WatchService>, limit: MessageLimit) -> Router {
    Router::new().route(
        "/watch",
        bidirectional(limit, w, move |s, token, requests| {
            s.watch(
                requests,
                Some(crate::auth::watch_permit(ctx.clone(), token)),
            )
        }),
    )
}
