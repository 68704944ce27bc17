//! etcd's gRPC gateway: the v3 API as JSON over HTTP/1 on the client port
//! (`POST /v3/kv/range` and the rest), for clients without gRPC such as curl and
//! OpenStack's `etcd3gw`. Each path runs the same service method as the gRPC call.

mod auth;
mod call;
mod cluster;
mod election;
mod json;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod stream;
mod watch;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::cluster::ClusterService;
use crate::context::Context;
use crate::kv::KvService;
use crate::maintenance::MaintenanceService;

/// etcd 3.4 serves the gateway under `/v3` and `/v3beta`; 3.3 served `/v3beta` and
/// `/v3alpha`, which older clients still ask for, so etcr answers all three.
const PREFIXES: &[&str] = &["/v3", "/v3beta", "/v3alpha"];

/// The Lease, Watch, Lock and Election services are the gRPC port's own (`dispatch`'s): one lease id
/// generator and one watch hub per member.
pub fn routes(ctx: Arc<Context>, dispatch: &crate::grpc::Dispatch) -> Router {
    let limit = call::MessageLimit::new(ctx.limits.max_request_bytes + crate::GRPC_OVERHEAD_BYTES);
    let waiting = ctx.clone();
    let api = Router::new()
        .merge(kv::routes(Arc::new(KvService::new(ctx.clone())), limit))
        .merge(maintenance::routes(
            Arc::new(MaintenanceService::new(ctx.clone())),
            ctx.clone(),
            limit,
        ))
        .merge(cluster::routes(
            Arc::new(ClusterService::new(ctx.clone())),
            limit,
        ))
        .merge(auth::routes(
            Arc::new(crate::auth::AuthService::new(ctx.clone())),
            limit,
        ))
        .merge(lease::routes(dispatch.lease(), limit))
        .merge(watch::routes(ctx, dispatch.watch(), limit))
        .merge(lock::routes(dispatch.lock(), limit))
        .merge(election::routes(dispatch.election(), limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            token_ready(waiting.clone(), req, next)
        }));
    PREFIXES
        .iter()
        .fold(Router::new(), |router, prefix| {
            router.nest(prefix, api.clone())
        })
        .fallback(not_found)
}

/// A call with a fresh simple token waits until this member has applied the entry that
/// assigned it, as on the gRPC port (`auth::CallToken`), so the token works here at once.
async fn token_ready(
    ctx: Arc<Context>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = call::authorization(req.headers()).map(str::to_owned);
    crate::auth::CallToken::new(&ctx, token).ready().await;
    next.run(req).await
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
