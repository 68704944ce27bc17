//! The gateway paths of services etcr does not serve yet (Watch, Lease, Auth). They answer
//! as etcd's gateway does when its gRPC server lacks the service. Each service, once it
//! exists, gets its own file like `kv.rs` whose routes replace its entries here.

use axum::Router;

use super::call::{missing_stream, missing_unary};

const WATCH: &str = "etcdserverpb.Watch";
const LEASE: &str = "etcdserverpb.Lease";
const AUTH: &str = "etcdserverpb.Auth";

pub fn routes() -> Router {
    let mut router = Router::new()
        .route("/watch", missing_stream(WATCH))
        .route("/lease/keepalive", missing_stream(LEASE));
    // etcd 3.4 serves revoke, timetolive and leases under `/kv/lease/` as well.
    for path in [
        "/lease/grant",
        "/lease/revoke",
        "/kv/lease/revoke",
        "/lease/timetolive",
        "/kv/lease/timetolive",
        "/lease/leases",
        "/kv/lease/leases",
    ] {
        router = router.route(path, missing_unary(LEASE));
    }
    for path in [
        "/auth/enable",
        "/auth/disable",
        "/auth/authenticate",
        "/auth/user/add",
        "/auth/user/get",
        "/auth/user/list",
        "/auth/user/delete",
        "/auth/user/changepw",
        "/auth/user/grant",
        "/auth/user/revoke",
        "/auth/role/add",
        "/auth/role/get",
        "/auth/role/list",
        "/auth/role/delete",
        "/auth/role/grant",
        "/auth/role/revoke",
    ] {
        router = router.route(path, missing_unary(AUTH));
    }
    router
}
