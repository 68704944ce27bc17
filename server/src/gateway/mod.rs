//! etcd's gRPC gateway: the v3 API as JSON over HTTP/1 on the client port
//! (`POST /v3/kv/range` and the rest), for clients without gRPC such as curl and
//! OpenStack's `etcd3gw`. Each path runs the same service method as the gRPC call.

mod auth;
mod call;
mod cluster;
mod json;
mod kv;
mod maintenance;
mod pending;
mod stream;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::context::Context;
use crate::kv::KvService;
use crate::maintenance::{ClusterService, MaintenanceService};

/// etcd 3.4 serves the gateway under `/v3` and `/v3beta`; 3.3 served `/v3beta` and
/// `/v3alpha`, which older clients still ask for, so etcr answers all three.
const PREFIXES: &[&str] = &["/v3", "/v3beta", "/v3alpha"];

pub fn routes(ctx: Arc<Context>) -> Router {
    let limit = call::MessageLimit::new(ctx.limits.max_request_bytes + crate::GRPC_OVERHEAD_BYTES);
    let api = Router::new()
        .merge(kv::routes(Arc::new(KvService::new(ctx.clone())), limit))
        .merge(maintenance::routes(
            Arc::new(MaintenanceService::new(ctx.clone())),
            limit,
        ))
        .merge(cluster::routes(
            Arc::new(ClusterService::new(ctx.clone())),
            limit,
        ))
        .merge(auth::routes(
            Arc::new(crate::auth::AuthService::new(ctx)),
            limit,
        ))
        .merge(pending::routes());
    PREFIXES
        .iter()
        .fold(Router::new(), |router, prefix| {
            router.nest(prefix, api.clone())
        })
        .fallback(not_found)
}

/// Go's `net/http` answer for a path nobody serves, as etcd's client port gives it (to a
/// client probing `/v3alpha` on etcd 3.4, say).
async fn not_found() -> Response {
    let answer = (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    );
    json::allow_any_origin(answer.into_response())
}
