//! `etcdserverpb.Maintenance` on the gateway. etcd 3.4 gives `HashKV` no path.

use std::sync::Arc;

use api::etcdserverpb::maintenance_server::Maintenance;
use axum::Router;
use futures::StreamExt;
use tonic::Request;

use super::call::{unary, MessageLimit};
use super::stream::server_stream;
use crate::maintenance::MaintenanceService;

pub fn routes(m: Arc<MaintenanceService>, limit: MessageLimit) -> Router {
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
            // The service's stream once it has opened, or the error it opened with.
            server_stream(limit, m.clone(), |s, r| {
                futures::stream::once(async move { s.snapshot(Request::new(r)).await })
                    .flat_map(|answer| match answer {
                        Ok(responses) => responses.into_inner(),
                        Err(e) => futures::stream::iter([Err(e)]).boxed(),
                    })
                    .boxed()
            }),
        )
        .route(
            "/maintenance/transfer-leadership",
            unary(limit, m, |s, r| async move { s.move_leader(r).await }),
        )
}
