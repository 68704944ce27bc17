//! The gateway paths of services etcr does not serve yet (Watch, Lease). They answer
//! as etcd's gateway does when its gRPC server lacks the service. Each service, once it
//! exists, gets its own file like `kv.rs` whose routes replace its entries here.

use axum::Router;

use super::call::{missing_stream, missing_unary};

const WATCH: &str = "etcdserverpb.Watch";
const LEASE: &str = "etcdserverpb.Lease";

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
    router
}
