//! `etcdserverpb.Cluster` on the gateway.

use std::sync::Arc;

use api::etcdserverpb::cluster_server::Cluster;
use axum::Router;

use super::call::{unary, MessageLimit};
use crate::cluster::ClusterService;

pub fn routes(c: Arc<ClusterService>, limit: MessageLimit) -> Router {
    Router::new()
        .route(
            "/cluster/member/add",
            unary(
                limit,
                c.clone(),
                |s, r| async move { s.member_add(r).await },
            ),
        )
        .route(
            "/cluster/member/remove",
            unary(
                limit,
                c.clone(),
                |s, r| async move { s.member_remove(r).await },
            ),
        )
        .route(
            "/cluster/member/update",
            unary(
                limit,
                c.clone(),
                |s, r| async move { s.member_update(r).await },
            ),
        )
        .route(
            "/cluster/member/list",
            unary(
                limit,
                c.clone(),
                |s, r| async move { s.member_list(r).await },
            ),
        )
        .route(
            "/cluster/member/promote",
            unary(limit, c, |s, r| async move { s.member_promote(r).await }),
        )
}
