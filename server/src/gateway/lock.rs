//! `v3lockpb.Lock` on the gateway (`/v3/lock/lock`, `/v3/lock/unlock`), as etcd 3.4 serves it.

use std::sync::Arc;

use axum::Router;

use super::call::{unary, MessageLimit};
use crate::lock::LockService;

pub fn routes(l: Arc<LockService>, limit: MessageLimit) -> Router {
    Router::new()
        .route(
            "/lock/lock",
            unary(limit, l.clone(), |s, r| async move { s.lock(r).await }),
        )
        .route(
            "/lock/unlock",
            unary(limit, l, |s, r| async move { s.unlock(r).await }),
        )
}
