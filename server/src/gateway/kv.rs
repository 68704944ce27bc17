//! `etcdserverpb.KV` on the gateway.

use std::sync::Arc;

use api::etcdserverpb::kv_server::Kv;
use axum::Router;

use super::call::{unary, MessageLimit};
use crate::kv::KvService;

pub fn routes(kv: Arc<KvService>, limit: MessageLimit) -> Router {
    Router::new()
        .route(
            "/kv/range",
            unary(limit, kv.clone(), |s, r| async move { s.range(r).await }),
        )
        .route(
            "/kv/put",
            unary(limit, kv.clone(), |s, r| async move { s.put(r).await }),
        )
        .route(
            "/kv/deleterange",
            unary(
                limit,
                kv.clone(),
                |s, r| async move { s.delete_range(r).await },
            ),
        )
        .route(
            "/kv/txn",
            unary(limit, kv.clone(), |s, r| async move { s.txn(r).await }),
        )
        .route(
            "/kv/compaction",
            unary(limit, kv, |s, r| async move { s.compact(r).await }),
        )
}
