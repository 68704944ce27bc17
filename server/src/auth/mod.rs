//! etcd's auth: users, roles, key-range permissions and tokens.
//!
//! The state itself is replicated (mvcc's `auth_state`, changed by `Payload::Auth` entries);
//! this member keeps a [`View`] of it, published by the apply thread after each change, with
//! every user's permissions merged once per auth revision so that a check costs a token
//! lookup and a binary search. Checks run where the request arrives, before it is proposed
//! or read.

mod es512;
mod jwt;
mod permissions;
mod service;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use jwt::{token_kind, Jwt, TokenKind};
pub use permissions::Need;
use permissions::UserPerms;
pub use service::AuthService;
pub use tokens::{new_prefix, Tokens};

use crate::errors::EtcdError;

/// Authenticate's bcrypt comparisons running at once; more wait. They run on the blocking
/// pool, off the raft loop and the connection tasks.
const CONCURRENT_COMPARES: usize = 2;

/// The auth state at one auth revision, with each user's merged permissions.
pub struct View {
    pub state: mvcc::AuthState,
    perms: HashMap<String, UserPerms>,
}

impl View {
    fn new(state: mvcc::AuthState) -> View {
        let perms = state
            .users
            .keys()
            .filter_map(|u| Some((u.clone(), UserPerms::of(&state, u)?)))
            .collect();
        View { state, perms }
    }
}

pub struct AuthSettings {
    pub bcrypt_cost: u32,
    pub token_ttl: Duration,
}

pub struct AuthStore {
    view: RwLock<Arc<View>>,
    pub tokens: Tokens,
    /// Set with `--auth-token jwt,...`: tokens are then signed claims, not `tokens`.
    jwt: Option<Box<Jwt>>,
    /// A secret of this process: a call's credential that starts with it names the user of
    /// the call's verified client certificate (see [`AuthStore::credential`]).
    cert_marker: String,
    pub bcrypt_cost: u32,
    compares: tokio::sync::Semaphore,
}

impl AuthStore {
    pub fn new(state: mvcc::AuthState, settings: AuthSettings) -> Self {
        AuthStore {
            view: RwLock::new(Arc::new(View::new(state))),
            tokens: Tokens::new(settings.token_ttl),
            jwt: None,
            cert_marker: format!("{}{}.", new_prefix(), new_prefix()),
            bcrypt_cost: settings.bcrypt_cost,
            compares: tokio::sync::Semaphore::new(CONCURRENT_COMPARES),
        }
    }

    /// Makes tokens `kind`'s way.
    pub fn with_tokens(mut self, kind: TokenKind) -> Self {
        self.jwt = match kind {
            TokenKind::Simple => None,
            TokenKind::Jwt(j) => Some(j),
        };
        self
    }

    /// With JWT tokens, a token signed for `user` at `revision`, the auth revision whose
    /// state its password was checked against; `None` with simple tokens.
    pub fn sign_jwt(&self, user: &str, revision: u64) -> Option<Result<String, EtcdError>> {
        let jwt = self.jwt.as_ref()?;
        Some(jwt.sign(user, revision).map_err(EtcdError::Internal))
    }

    /// What a call authenticates with: its token, else (etcd's rule) the common name of the
    /// client certificate its connection verified, passed on where tokens go. That form
    /// starts with a secret no client is told, so no token a client sends can pose as it.
    pub fn credential(&self, token: Option<String>, common_name: Option<&str>) -> Option<String> {
        token.or_else(|| common_name.map(|cn| format!("{}{cn}", self.cert_marker)))
    }

    /// The certificate's user, when `credential` came from [`AuthStore::credential`]'s
    /// second form (compared in constant time, so response times tell nothing of the secret).
    fn certificate_user<'a>(&self, credential: &'a str) -> Option<&'a str> {
        let n = self.cert_marker.len();
        let head = credential.as_bytes().get(..n)?;
        let differ = head
            .iter()
            .zip(self.cert_marker.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ != 0 {
            return None;
        }
        credential.get(n..)
    }

    /// The log index a simple token names (the entry that assigned it).
    fn token_index(&self, token: &str) -> Option<u64> {
        if self.jwt.is_some() || self.certificate_user(token).is_some() {
            return None;
        }
        token.rsplit_once('.')?.1.parse().ok()
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Called by the apply thread with the state after an applied change.
    pub fn publish(&self, state: mvcc::AuthState) {
        if self.view().state == state {
            return;
        }
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(View::new(state));
    }

    /// The token's user while auth is enabled (`None` when it is not): etcd's answers for a
    /// missing or unknown token.
    pub fn user(&self, token: Option<&str>) -> Result<Option<Arc<str>>, EtcdError> {
        if !self.view().state.enabled {
            return Ok(None);
        }
        self.user_of(&self.view(), token).map(Some)
    }

    fn user_of(&self, view: &View, token: Option<&str>) -> Result<Arc<str>, EtcdError> {
        let token = token.ok_or(EtcdError::UserEmpty)?;
        if let Some(user) = self.certificate_user(token) {
            return Ok(user.into());
        }
        if let Some(jwt) = &self.jwt {
            let (user, revision) = jwt.verify(token).ok_or(EtcdError::InvalidAuthToken)?;
            if revision < view.state.revision {
                return Err(EtcdError::AuthOldRevision);
            }
            return Ok(user.into());
        }
        self.tokens
            .user_of(token)
            .ok_or(EtcdError::InvalidAuthToken)
    }

    /// Whether the token's user may do `need` on the key or range; always while auth is off.
    pub fn check(
        &self,
        token: Option<&str>,
        need: Need,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        let view = self.view();
        if !view.state.enabled {
            return Ok(());
        }
        let user = self.user_of(&view, token)?;
        match view.perms.get(&*user) {
            Some(p) if p.allows(need, key, range_end) => Ok(()),
            _ => Err(EtcdError::PermissionDenied),
        }
    }

    /// A checker for many ranges of one request, holding one view and one token lookup.
    pub fn checker(&self, token: Option<&str>) -> Result<Checker, EtcdError> {
        let view = self.view();
        if !view.state.enabled {
            return Ok(Checker(None));
        }
        let user = self.user_of(&view, token)?;
        Ok(Checker(Some((view, user))))
    }

    /// etcd's `IsAdminPermitted`: the root role, or auth disabled.
    pub fn check_admin(&self, token: Option<&str>) -> Result<(), EtcdError> {
        let view = self.view();
        if !view.state.enabled {
            return Ok(());
        }
        let user = self.user_of(&view, token)?;
        match view.perms.get(&*user) {
            None => Err(EtcdError::UserNotFound),
            Some(p) if p.root => Ok(()),
            Some(_) => Err(EtcdError::PermissionDenied),
        }
    }

    /// Compares `password` with the bcrypt `hash` on the blocking pool, a few at a time.
    pub async fn password_matches(&self, password: String, hash: String) -> bool {
        let Ok(_permit) = self.compares.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
    }

    /// Hashes `password` at `--bcrypt-cost` on the blocking pool.
    pub async fn hash(&self, password: String) -> Result<String, EtcdError> {
        let cost = self.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| EtcdError::Internal(format!("hashing a password: {e}")))?
            .map_err(|e| EtcdError::Internal(format!("hashing a password: {e}")))
    }
}

/// etcd 3.4's Maintenance service returns the auth store's own errors, which no table maps
/// to gRPC: clients see them with code Unknown and the auth package's words.
pub fn unmapped(e: EtcdError) -> tonic::Status {
    let words = match e {
        EtcdError::UserEmpty => "auth: user name is empty",
        EtcdError::UserNotFound => "auth: user name not found",
        EtcdError::PermissionDenied => "auth: permission denied",
        EtcdError::InvalidAuthToken => "auth: invalid auth token",
        other => return other.into(),
    };
    tonic::Status::unknown(words)
}

/// Permission checks for one request (see [`AuthStore::checker`]).
pub struct Checker(Option<(Arc<View>, Arc<str>)>);

impl Checker {
    /// Whether checks apply (auth is enabled).
    pub fn checks(&self) -> bool {
        self.0.is_some()
    }

    pub fn check(&self, need: Need, key: &[u8], range_end: &[u8]) -> Result<(), EtcdError> {
        let Some((view, user)) = &self.0 else {
            return Ok(());
        };
        match view.perms.get(&**user) {
            Some(p) if p.allows(need, key, range_end) => Ok(()),
            _ => Err(EtcdError::PermissionDenied),
        }
    }
}

/// The `token` metadata of a call, as the gRPC port (or the gateway's `Authorization`
/// header) handed it to the service.
pub fn token_of<T>(req: &tonic::Request<T>) -> Option<&str> {
    req.metadata().get(TOKEN).and_then(|v| v.to_str().ok())
}

/// What a watch stream of the caller holding `token` may watch: etcd checks each create
/// against the caller's permissions at that moment; a refusal carries the current revision.
pub fn watch_permit(
    ctx: std::sync::Arc<crate::context::Context>,
    token: Option<String>,
) -> crate::watch::Permit {
    std::sync::Arc::new(move |c| {
        ctx.auth
            .check(token.as_deref(), Need::Read, &c.key, &c.range_end)
            .map_err(|_| ctx.store.current_revision())
    })
}

/// A call's credential, and the log index it must wait for: a simple token names the entry
/// that assigned it (`<random>.<index>`), and a member that has not applied that entry yet
/// would not know it. As etcd does, the call waits until the member has applied it, so a
/// token works on every member as soon as `Authenticate` answers.
#[derive(Clone)]
pub struct CallToken {
    token: Option<String>,
    wait: Option<(Arc<crate::context::Context>, u64)>,
}

impl CallToken {
    pub fn new(ctx: &Arc<crate::context::Context>, token: Option<String>) -> Self {
        let wait = token
            .as_deref()
            .and_then(|t| ctx.auth.token_index(t))
            // Not applied here yet, so not assigned here yet.
            .filter(|index| *index > ctx.raft.applied_index())
            .map(|index| (ctx.clone(), index));
        CallToken { token, wait }
    }

    pub fn as_deref(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn owned(&self) -> Option<String> {
        self.token.clone()
    }

    /// Waits for the entry the token names; past the request timeout the check goes ahead
    /// (and finds the token unknown).
    pub async fn ready(&self) {
        if let Some((ctx, index)) = &self.wait {
            let _ = ctx.raft.wait_applied(*index).await;
        }
    }
}

/// The metadata key etcd's clients send their token under.
pub const TOKEN: &str = "token";

/// Puts the call's token where [`token_of`] finds it.
pub fn with_token<T>(mut req: tonic::Request<T>, token: Option<&str>) -> tonic::Request<T> {
    if let Some(v) = token.and_then(|t| t.parse().ok()) {
        req.metadata_mut().insert(TOKEN, v);
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> AuthStore {
        AuthStore::new(
            Default::default(),
            AuthSettings {
                bcrypt_cost: 4,
                token_ttl: Duration::from_secs(300),
            },
        )
    }

    #[test]
    fn only_this_process_makes_certificate_credentials() {
        let a = store();
        let c = a.credential(None, Some("alice")).unwrap();
        assert_eq!(a.certificate_user(&c), Some("alice"));
        let sent = a.credential(Some("t.1".into()), Some("alice"));
        assert_eq!(sent.as_deref(), Some("t.1"));
        assert_eq!(a.credential(None, None), None);
        assert_eq!(store().certificate_user(&c), None);
        assert_eq!(a.certificate_user("alice"), None);
        assert_eq!(a.certificate_user(""), None);
    }
}
