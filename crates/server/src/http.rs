//! Plain HTTP on the client port, beside gRPC: `/health`, `/metrics` (Prometheus text) and
//! `/version`, as etcd serves them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::context::{Context, ETCD_API_VERSION};

pub fn routes(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/version", get(version))
        .with_state(ctx)
}

async fn health(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let healthy = ctx.leader().is_some();
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = format!("{{\"health\":\"{healthy}\"}}");
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let text = ctx.metrics.render(&ctx.store_gauges(), ctx.leader().is_some());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn version() -> impl IntoResponse {
    let body = format!(
        "{{\"etcdserver\":\"{ETCD_API_VERSION}\",\"etcdcluster\":\"{}\",\"etcr\":\"{}\"}}",
        ETCD_API_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}
