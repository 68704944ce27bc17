//! `etcdserverpb.Maintenance` on the gateway. etcd 3.4 gives `HashKV` no path.

use std::sync::Arc;

use api::etcdserverpb::maintenance_server::Maintenance;
use axum::Router;

use super::call::{unary, MessageLimit};
use super::stream::server_stream;
use crate::context::Context;
use crate::maintenance::MaintenanceService;

pub fn routes(m: Arc<MaintenanceService>, ctx: Arc<Context>, limit: MessageLimit) -> Router {
    Router::new()
        .route(
            "/maintenance/alarm",
            unary(limit, m.clone(), |s, r| async move { s.alarm(r).await }),
        )
        .route(
            "/maintenance/status",
            unary(limit, m.clone(), |s, r| async move { s.status(r).await }),
        )
        .route(
            "/maintenance/defragment",
            unary(
                limit,
                m.clone(),
                |s, r| async move { s.defragment(r).await },
            ),
        )
        .route(
            "/maintenance/hash",
            unary(limit, m.clone(), |s, r| async move { s.hash(r).await }),
        )
        .route(
            "/maintenance/snapshot",
            // The gRPC port's snapshot stream, chunk by chunk as `{"result":...}` lines.
            server_stream(limit, ctx, |ctx, token, r| {
                crate::snapshot::snapshot(ctx, token.as_deref(), r)
            }),
        )
        .route(
            "/maintenance/transfer-leadership",
            unary(limit, m, |s, r| async move { s.move_leader(r).await }),
        )
}
