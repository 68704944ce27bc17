//! `etcdserverpb.Auth`: user and role management, enabling auth, and `Authenticate`.
//!
//! Changes go through the log as `Payload::Auth` entries, refused or applied by every member
//! alike (mvcc's `auth_state`); passwords are hashed here, before proposing, on the blocking
//! pool. Reads (get, list) answer from this member's view after a read barrier.

use std::sync::Arc;

use api::authpb;
use api::etcdserverpb as pb;
use tonic::Status;

use super::permissions::{kind_of, number_of};
use super::{new_prefix, AuthStore};
use crate::context::Context;
use crate::errors::EtcdError;

/// Authenticate checks the password against the state it read; a change applied meanwhile
/// makes it check again, this many times at most.
const AUTHENTICATE_TRIES: usize = 3;

pub struct AuthService {
    ctx: Arc<Context>,
}

type Answer<T> = Result<T, Status>;

impl AuthService {
    pub fn new(ctx: Arc<Context>) -> Self {
        AuthService { ctx }
    }

    fn auth(&self) -> &AuthStore {
        &self.ctx.auth
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        self.ctx.header_info().at(self.ctx.store.current_revision())
    }

    async fn change(&self, command: mvcc::AuthCommand) -> Result<(), EtcdError> {
        self.ctx.raft.change_auth(command, None).await.map(|_| ())
    }

    /// An admin's change: etcd refuses it to anyone but root while auth is enabled.
    async fn admin_change(
        &self,
        token: Option<&str>,
        command: mvcc::AuthCommand,
    ) -> Answer<Option<pb::ResponseHeader>> {
        self.auth().check_admin(token)?;
        self.change(command).await?;
        Ok(self.header())
    }

    async fn hash_unless(
        &self,
        no_password: bool,
        password: String,
    ) -> Result<Option<String>, EtcdError> {
        if no_password {
            return Ok(None);
        }
        self.auth().hash(password).await.map(Some)
    }

    pub async fn auth_enable(
        &self,
        token: Option<&str>,
        _r: pb::AuthEnableRequest,
    ) -> Answer<pb::AuthEnableResponse> {
        let header = self.admin_change(token, mvcc::AuthCommand::Enable).await?;
        Ok(pb::AuthEnableResponse { header })
    }

    pub async fn auth_disable(
        &self,
        token: Option<&str>,
        _r: pb::AuthDisableRequest,
    ) -> Answer<pb::AuthDisableResponse> {
        let header = self.admin_change(token, mvcc::AuthCommand::Disable).await?;
        Ok(pb::AuthDisableResponse { header })
    }

    /// etcd 3.5's `AuthStatus`: an admin's read, behind a read barrier like the other reads.
    pub async fn auth_status(
        &self,
        token: Option<&str>,
        _r: pb::AuthStatusRequest,
    ) -> Answer<pb::AuthStatusResponse> {
        self.auth().check_admin(token)?;
        self.ctx.read_barrier(false).await?;
        let view = self.auth().view();
        Ok(pb::AuthStatusResponse {
            header: self.header(),
            enabled: view.state.enabled,
            auth_revision: view.state.revision,
        })
    }

    pub async fn authenticate(
        &self,
        _token: Option<&str>,
        r: pb::AuthenticateRequest,
    ) -> Answer<pb::AuthenticateResponse> {
        for _ in 0..AUTHENTICATE_TRIES {
            let view = self.auth().view();
            if !view.state.enabled {
                return Err(EtcdError::AuthNotEnabled.into());
            }
            let user = view.state.users.get(&r.name).ok_or(EtcdError::AuthFailed)?;
            let hash = user
                .password_hash
                .clone()
                .ok_or(EtcdError::NoPasswordUser)?;
            if !self.auth().password_matches(r.password.clone(), hash).await {
                return Err(EtcdError::AuthFailed.into());
            }
            // A JWT needs no entry: any change to the state after the one checked makes it
            // old on every member.
            if let Some(token) = self.auth().sign_jwt(&r.name, view.state.revision) {
                return Ok(pb::AuthenticateResponse {
                    header: self.header(),
                    token: token?,
                });
            }
            let command = mvcc::AuthCommand::Authenticate {
                name: r.name.clone(),
                checked_revision: view.state.revision,
            };
            match self.ctx.raft.change_auth(command, Some(new_prefix())).await {
                Ok(token) => {
                    return Ok(pb::AuthenticateResponse {
                        header: self.header(),
                        token: token.unwrap_or_default(),
                    })
                }
                // The user changed between the check and the apply: check again.
                Err(EtcdError::AuthOldRevision) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EtcdError::AuthOldRevision.into())
    }

    pub async fn user_add(
        &self,
        token: Option<&str>,
        r: pb::AuthUserAddRequest,
    ) -> Answer<pb::AuthUserAddResponse> {
        self.auth().check_admin(token)?;
        if r.name.is_empty() {
            return Err(EtcdError::UserEmpty.into());
        }
        let no_password = r.options.is_some_and(|o| o.no_password);
        let password_hash = self.hash_unless(no_password, r.password).await?;
        let header = self
            .admin_change(
                token,
                mvcc::AuthCommand::UserAdd {
                    name: r.name,
                    password_hash,
                },
            )
            .await?;
        Ok(pb::AuthUserAddResponse { header })
    }

    pub async fn user_get(
        &self,
        token: Option<&str>,
        r: pb::AuthUserGetRequest,
    ) -> Answer<pb::AuthUserGetResponse> {
        // etcd lets a user read itself.
        if let Err(e) = self.auth().check_admin(token) {
            if self.auth().user(token)?.as_deref() != Some(r.name.as_str()) {
                return Err(e.into());
            }
        }
        self.ctx.read_barrier(false).await?;
        let view = self.auth().view();
        let user = view
            .state
            .users
            .get(&r.name)
            .ok_or(EtcdError::UserNotFound)?;
        Ok(pb::AuthUserGetResponse {
            header: self.header(),
            roles: user.roles.iter().cloned().collect(),
        })
    }

    pub async fn user_list(
        &self,
        token: Option<&str>,
        _r: pb::AuthUserListRequest,
    ) -> Answer<pb::AuthUserListResponse> {
        self.auth().check_admin(token)?;
        self.ctx.read_barrier(false).await?;
        Ok(pb::AuthUserListResponse {
            header: self.header(),
            users: self.auth().view().state.users.keys().cloned().collect(),
        })
    }

    pub async fn user_delete(
        &self,
        token: Option<&str>,
        r: pb::AuthUserDeleteRequest,
    ) -> Answer<pb::AuthUserDeleteResponse> {
        let header = self
            .admin_change(token, mvcc::AuthCommand::UserDelete(r.name))
            .await?;
        Ok(pb::AuthUserDeleteResponse { header })
    }

    pub async fn user_change_password(
        &self,
        token: Option<&str>,
        r: pb::AuthUserChangePasswordRequest,
    ) -> Answer<pb::AuthUserChangePasswordResponse> {
        self.auth().check_admin(token)?;
        let password_hash = self.hash_unless(false, r.password).await?;
        let header = self
            .admin_change(
                token,
                mvcc::AuthCommand::UserChangePassword {
                    name: r.name,
                    password_hash,
                },
            )
            .await?;
        Ok(pb::AuthUserChangePasswordResponse { header })
    }

    pub async fn user_grant_role(
        &self,
        token: Option<&str>,
        r: pb::AuthUserGrantRoleRequest,
    ) -> Answer<pb::AuthUserGrantRoleResponse> {
        let header = self
            .admin_change(
                token,
                mvcc::AuthCommand::UserGrantRole {
                    user: r.user,
                    role: r.role,
                },
            )
            .await?;
        Ok(pb::AuthUserGrantRoleResponse { header })
    }

    pub async fn user_revoke_role(
        &self,
        token: Option<&str>,
        r: pb::AuthUserRevokeRoleRequest,
    ) -> Answer<pb::AuthUserRevokeRoleResponse> {
        let header = self
            .admin_change(
                token,
                mvcc::AuthCommand::UserRevokeRole {
                    user: r.name,
                    role: r.role,
                },
            )
            .await?;
        Ok(pb::AuthUserRevokeRoleResponse { header })
    }

    pub async fn role_add(
        &self,
        token: Option<&str>,
        r: pb::AuthRoleAddRequest,
    ) -> Answer<pb::AuthRoleAddResponse> {
        let header = self
            .admin_change(token, mvcc::AuthCommand::RoleAdd(r.name))
            .await?;
        Ok(pb::AuthRoleAddResponse { header })
    }

    pub async fn role_get(
        &self,
        token: Option<&str>,
        r: pb::AuthRoleGetRequest,
    ) -> Answer<pb::AuthRoleGetResponse> {
        // etcd lets a user read its own roles.
        if let Err(e) = self.auth().check_admin(token) {
            let view = self.auth().view();
            let has_role = self.auth().user(token)?.is_some_and(|u| {
                view.state
                    .users
                    .get(&*u)
                    .is_some_and(|u| u.roles.contains(&r.role))
            });
            if !has_role {
                return Err(e.into());
            }
        }
        self.ctx.read_barrier(false).await?;
        let view = self.auth().view();
        let role = view
            .state
            .roles
            .get(&r.role)
            .ok_or(EtcdError::RoleNotFound)?;
        Ok(pb::AuthRoleGetResponse {
            header: self.header(),
            perm: role
                .permissions
                .iter()
                .map(|p| authpb::Permission {
                    perm_type: number_of(p.kind),
                    key: p.key.clone(),
                    range_end: p.range_end.clone(),
                })
                .collect(),
        })
    }

    pub async fn role_list(
        &self,
        token: Option<&str>,
        _r: pb::AuthRoleListRequest,
    ) -> Answer<pb::AuthRoleListResponse> {
        self.auth().check_admin(token)?;
        self.ctx.read_barrier(false).await?;
        Ok(pb::AuthRoleListResponse {
            header: self.header(),
            roles: self.auth().view().state.roles.keys().cloned().collect(),
        })
    }

    pub async fn role_delete(
        &self,
        token: Option<&str>,
        r: pb::AuthRoleDeleteRequest,
    ) -> Answer<pb::AuthRoleDeleteResponse> {
        let header = self
            .admin_change(token, mvcc::AuthCommand::RoleDelete(r.role))
            .await?;
        Ok(pb::AuthRoleDeleteResponse { header })
    }

    pub async fn role_grant_permission(
        &self,
        token: Option<&str>,
        r: pb::AuthRoleGrantPermissionRequest,
    ) -> Answer<pb::AuthRoleGrantPermissionResponse> {
        // etcd refuses a grant without a permission before anything else.
        let perm = r
            .perm
            .ok_or_else(|| Status::invalid_argument("etcdserver: permission not given"))?;
        let kind = kind_of(perm.perm_type)
            .ok_or_else(|| Status::invalid_argument("etcdserver: invalid permission type"))?;
        let permission = mvcc::Permission {
            kind,
            key: perm.key,
            range_end: perm.range_end,
        };
        let header = self
            .admin_change(
                token,
                mvcc::AuthCommand::RoleGrantPermission {
                    role: r.name,
                    permission,
                },
            )
            .await?;
        Ok(pb::AuthRoleGrantPermissionResponse { header })
    }

    pub async fn role_revoke_permission(
        &self,
        token: Option<&str>,
        r: pb::AuthRoleRevokePermissionRequest,
    ) -> Answer<pb::AuthRoleRevokePermissionResponse> {
        let header = self
            .admin_change(
                token,
                mvcc::AuthCommand::RoleRevokePermission {
                    role: r.role,
                    key: r.key,
                    range_end: r.range_end,
                },
            )
            .await?;
        Ok(pb::AuthRoleRevokePermissionResponse { header })
    }
}
