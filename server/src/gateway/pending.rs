//! The gateway paths of services etcr does not serve yet (Auth). They answer as etcd's
//! gateway does when its gRPC server lacks the service. Each service, once it exists, gets
//! its own file like `kv.rs` whose routes replace its entries here.

use axum::Router;

use super::call::missing_unary;

const AUTH: &str = "etcdserverpb.Auth";

pub fn routes() -> Router {
    let mut router = Router::new();
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
