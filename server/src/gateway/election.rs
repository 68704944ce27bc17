//! `v3electionpb.Election` on the gateway (`/v3/election/...`), as etcd 3.4 serves it;
//! `observe` is a stream of `{"result":...}` lines.

use std::sync::Arc;

use axum::Router;

use super::call::{unary, MessageLimit};
use super::stream::server_stream;
use crate::election::ElectionService;

pub fn routes(e: Arc<ElectionService>, limit: MessageLimit) -> Router {
    Router::new()
        .route(
            "/election/campaign",
            unary(limit, e.clone(), |s, r| async move { s.campaign(r).await }),
        )
        .route(
            "/election/proclaim",
            unary(limit, e.clone(), |s, r| async move { s.proclaim(r).await }),
        )
        .route(
            "/election/leader",
            unary(limit, e.clone(), |s, r| async move { s.leader(r).await }),
        )
        .route(
            "/election/resign",
            unary(limit, e.clone(), |s, r| async move { s.resign(r).await }),
        )
        .route(
            "/election/observe",
            server_stream(limit, e, |s, token, r| s.observe(r, token)),
        )
}
