//! `etcdserverpb.Auth` on the gateway: the token comes from the `Authorization` header.

use std::sync::Arc;

use axum::Router;

use super::call::{unary, MessageLimit};
use crate::auth::{token_of, AuthService};

/// One Auth method at `path`: the service method takes the token beside the request.
macro_rules! auth_route {
    ($router:expr, $service:expr, $limit:expr, $path:literal, $method:ident) => {
        $router.route(
            $path,
            unary($limit, $service.clone(), |s, r| async move {
                let token = token_of(&r).map(str::to_owned);
                s.$method(token.as_deref(), r.into_inner())
                    .await
                    .map(tonic::Response::new)
            }),
        )
    };
}

pub fn routes(a: Arc<AuthService>, limit: MessageLimit) -> Router {
    let r = Router::new();
    let r = auth_route!(r, a, limit, "/auth/enable", auth_enable);
    let r = auth_route!(r, a, limit, "/auth/disable", auth_disable);
    let r = auth_route!(r, a, limit, "/auth/status", auth_status);
    let r = auth_route!(r, a, limit, "/auth/authenticate", authenticate);
    let r = auth_route!(r, a, limit, "/auth/user/add", user_add);
    let r = auth_route!(r, a, limit, "/auth/user/get", user_get);
    let r = auth_route!(r, a, limit, "/auth/user/list", user_list);
    let r = auth_route!(r, a, limit, "/auth/user/delete", user_delete);
    let r = auth_route!(r, a, limit, "/auth/user/changepw", user_change_password);
    let r = auth_route!(r, a, limit, "/auth/user/grant", user_grant_role);
    let r = auth_route!(r, a, limit, "/auth/user/revoke", user_revoke_role);
    let r = auth_route!(r, a, limit, "/auth/role/add", role_add);
    let r = auth_route!(r, a, limit, "/auth/role/get", role_get);
    let r = auth_route!(r, a, limit, "/auth/role/list", role_list);
    let r = auth_route!(r, a, limit, "/auth/role/delete", role_delete);
    let r = auth_route!(r, a, limit, "/auth/role/grant", role_grant_permission);
    auth_route!(r, a, limit, "/auth/role/revoke", role_revoke_permission)
}
