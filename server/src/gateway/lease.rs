//! `etcdserverpb.Lease` on the gateway. etcd 3.4 serves revoke, time-to-live and leases
//! under `/kv/lease/` as well.

use std::sync::Arc;

use axum::Router;

use super::call::{unary, MessageLimit};
use super::stream::bidirectional;
use crate::lease::LeaseService;

pub fn routes(l: Arc<LeaseService>, limit: MessageLimit) -> Router {
    let mut router = Router::new()
        .route(
            "/lease/grant",
            unary(
                limit,
                l.clone(),
                |s, r| async move { s.lease_grant(r).await },
            ),
        )
        .route(
            "/lease/keepalive",
            bidirectional(limit, l.clone(), |s, _token, requests| {
                s.lease_keep_alive(requests)
            }),
        );
    for prefix in ["", "/kv"] {
        router = router
            .route(
                &format!("{prefix}/lease/revoke"),
                unary(
                    limit,
                    l.clone(),
                    |s, r| async move { s.lease_revoke(r).await },
                ),
            )
            .route(
                &format!("{prefix}/lease/timetolive"),
                unary(limit, l.clone(), |s, r| async move {
                    s.lease_time_to_live(r).await
                }),
            )
            .route(
                &format!("{prefix}/lease/leases"),
                unary(
                    limit,
                    l.clone(),
                    |s, r| async move { s.lease_leases(r).await },
                ),
            );
    }
    router
}
