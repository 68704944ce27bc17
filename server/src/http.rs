//! Plain HTTP on the client port, beside gRPC: `/health`, `/metrics` (Prometheus text),
//! `/version` and the JSON gateway (`/v3/...`, in `gateway/`), as etcd serves them.

use std::sync::Arc;

use axum::extract::Path;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::context::{Context, ETCD_API_VERSION};

pub fn routes(ctx: Arc<Context>, dispatch: &crate::grpc::Dispatch) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/version", get(version))
        .route("/debug/faults/cut/{to}", post(cut))
        .route("/debug/faults/heal", post(heal))
        .with_state(ctx.clone())
        .merge(crate::gateway::routes(ctx, dispatch))
}

/// etcd 3.4's `/health`: `{"health":"true"}`, or 503 with `{"health":"false"}` and a
/// newline (Go's `http.Error`) while an alarm is raised, no leader is known or this member
/// does not apply the log.
async fn health(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    const TEXT: &str = "text/plain; charset=utf-8";
    if ctx.is_healthy() {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, TEXT)],
            "{\"health\":\"true\"}",
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, TEXT),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            "{\"health\":\"false\"}\n",
        )
            .into_response()
    }
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let mut text = ctx
        .metrics
        .render(&ctx.store_gauges(), ctx.raft.leader().is_some());
    text.push_str(&ctx.metrics.render_peers(&ctx.raft.peer_stats()));
    ctx.metrics.grpc.render(&mut text);
    ctx.quota.render(&mut text);
    if let Some(process) = crate::process_metrics::ProcessStats::read() {
        process.render(&mut text);
    }
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

/// Drops every message from this member to member `to` (hex id) until healed.
async fn cut(State(ctx): State<Arc<Context>>, Path(to): Path<String>) -> (StatusCode, String) {
    let Some(rules) = &ctx.faults else {
        return (
            StatusCode::NOT_FOUND,
            "fault injection is off; start etcr with --experimental-fault-injection\n".into(),
        );
    };
    match u64::from_str_radix(&to, 16) {
        Ok(to) => {
            rules.cut(ctx.member_id, to);
            (
                StatusCode::OK,
                format!("cut {:x} -> {to:x}\n", ctx.member_id),
            )
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            format!("{to:?} is not a member id in hex\n"),
        ),
    }
}

async fn heal(State(ctx): State<Arc<Context>>) -> (StatusCode, String) {
    match &ctx.faults {
        Some(rules) => {
            rules.clear();
            (StatusCode::OK, "healed\n".into())
        }
        None => (
            StatusCode::NOT_FOUND,
            "fault injection is off; start etcr with --experimental-fault-injection\n".into(),
        ),
    }
}
