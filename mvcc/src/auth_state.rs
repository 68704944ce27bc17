//! Replicated auth state: users, roles, their key permissions, whether auth is enabled, and
//! the auth revision that every change to them bumps (etcd's auth store).
//!
//! It is one row of the `cluster` table (`A`), written in the transaction that records the
//! applied index, so snapshots and restarts keep it, and changed only by [`AuthCommand`]s
//! applied from the log ([`crate::Writer::apply_auth`]). Every refusal is decided here, from
//! the state at the entry's index, so every member gives the same answer. Password hashes
//! arrive already computed: hashing is the proposer's work, never the apply thread's.

use std::collections::{BTreeMap, BTreeSet};

use heed::{RoTxn, RwTxn};
use serde::{Deserialize, Serialize};

use crate::codec::corrupt;
use crate::error::Result;
use crate::tables::Table;

const AUTH: &[u8] = b"A";

/// The user and the role that may enable auth and bypass every permission check.
pub const ROOT: &str = "root";

/// What a permission allows, numbered as etcd's `authpb.Permission.Type`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermKind {
    /// Range, and the reads of a txn, and watches.
    Read,
    /// Put, delete-range, and the writes of a txn.
    Write,
    /// Both.
    ReadWrite,
}

impl PermKind {
    /// Whether it allows reading.
    pub fn reads(self) -> bool {
        matches!(self, PermKind::Read | PermKind::ReadWrite)
    }

    /// Whether it allows writing.
    pub fn writes(self) -> bool {
        matches!(self, PermKind::Write | PermKind::ReadWrite)
    }
}

/// A role's permission on `key` (empty `range_end`), or on `[key, range_end)` (`[0]`: to the
/// end of the keyspace).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    /// What it allows.
    pub kind: PermKind,
    /// The key, or the range's start.
    pub key: Vec<u8>,
    /// Empty for one key.
    pub range_end: Vec<u8>,
}

/// A user: how it authenticates and which roles it has.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    /// The bcrypt hash; `None` for a user added with `no_password`, who cannot authenticate.
    pub password_hash: Option<String>,
    /// Its roles' names.
    pub roles: BTreeSet<String>,
}

/// A role: the key permissions it grants.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Role {
    /// Ordered by key, then range end, as etcd keeps them.
    pub permissions: Vec<Permission>,
}

/// The whole auth state at one applied index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuthState {
    /// Whether requests are checked.
    pub enabled: bool,
    /// etcd's numbering, which `auth status` shows: 1 in a new store, bumped by every
    /// applied change except enabling (refusals change nothing).
    pub revision: u64,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

impl AuthState {
    /// Whether `user` exists and has the root role, which bypasses every check.
    pub fn has_root_role(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.contains(ROOT))
    }
}

/// A change to the auth state, as etcd's internal auth requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are named as etcd's request fields
pub enum AuthCommand {
    /// Turn checking on (needs `root` with the root role).
    Enable,
    /// Turn checking off.
    Disable,
    /// Add a user; no hash: `no_password`.
    UserAdd {
        name: String,
        password_hash: Option<String>,
    },
    /// Delete a user.
    UserDelete(String),
    /// Replace a user's password hash.
    UserChangePassword {
        name: String,
        password_hash: Option<String>,
    },
    /// Give a user a role.
    UserGrantRole { user: String, role: String },
    /// Take a role from a user.
    UserRevokeRole { user: String, role: String },
    /// Add a role.
    RoleAdd(String),
    /// Delete a role (and take it from every user).
    RoleDelete(String),
    /// Grant a permission to a role, or change the kind of one on the same range.
    RoleGrantPermission {
        role: String,
        permission: Permission,
    },
    /// Revoke the permission on exactly this range.
    RoleRevokePermission {
        role: String,
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
    /// Hands out a token to `name`, whose password the proposer checked against the state at
    /// `checked_revision`; refused if the state changed since.
    Authenticate { name: String, checked_revision: u64 },
}

/// Why an [`AuthCommand`] was refused: etcd's auth errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each is the etcd error of the same name
pub enum AuthRefusal {
    UserEmpty,
    UserAlreadyExists,
    UserNotFound,
    RoleEmpty,
    RoleAlreadyExists,
    RoleNotFound,
    RoleNotGranted,
    PermissionNotGranted,
    RootUserNotExist,
    RootRoleNotExist,
    InvalidAuthMgmt,
    AuthNotEnabled,
    AuthFailed,
    OldRevision,
}

/// What an applied [`AuthCommand`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Applied; the state after it.
    Done(AuthState),
    /// Refused; nothing changed.
    Refused(AuthRefusal),
    /// The entry was at or below the applied index: already applied before.
    Skipped,
}

/// The committed (or, inside a write transaction, pending) auth state.
pub(crate) fn load(table: &Table, txn: &RoTxn) -> Result<AuthState> {
    match table.get(txn, AUTH)? {
        None => Ok(AuthState::default()),
        Some(b) => bincode::serde::decode_from_slice(b, bincode::config::standard())
            .map(|(s, _)| s)
            .map_err(|_| corrupt("auth state")),
    }
}

/// Applies `cmd` in `txn`; a refusal leaves the state as it was.
pub(crate) fn apply(table: &Table, txn: &mut RwTxn, cmd: &AuthCommand) -> Result<AuthOutcome> {
    let mut state = load(table, txn)?;
    match change(&mut state, cmd) {
        Err(refusal) => Ok(AuthOutcome::Refused(refusal)),
        Ok(changed) => {
            if changed {
                let bytes = bincode::serde::encode_to_vec(&state, bincode::config::standard())
                    .map_err(|e| {
                        crate::error::Error::Storage(format!("encoding auth state: {e}"))
                    })?;
                table.put(txn, AUTH, &bytes)?;
            }
            Ok(AuthOutcome::Done(state))
        }
    }
}

/// Changes `state` as `cmd` asks; `Ok(false)` when nothing changed (enabling twice, ...).
fn change(state: &mut AuthState, cmd: &AuthCommand) -> std::result::Result<bool, AuthRefusal> {
    use AuthRefusal::*;
    match cmd {
        AuthCommand::Enable => {
            if state.enabled {
                return Ok(false);
            }
            let root = state.users.get(ROOT).ok_or(RootUserNotExist)?;
            if !root.roles.contains(ROOT) {
                return Err(RootRoleNotExist);
            }
            state.enabled = true;
        }
        AuthCommand::Disable => {
            if !state.enabled {
                return Ok(false);
            }
            state.enabled = false;
        }
        AuthCommand::UserAdd {
            name,
            password_hash,
        } => {
            if name.is_empty() {
                return Err(UserEmpty);
            }
            if state.users.contains_key(name) {
                return Err(UserAlreadyExists);
            }
            state.users.insert(
                name.clone(),
                User {
                    password_hash: password_hash.clone(),
                    roles: BTreeSet::new(),
                },
            );
        }
        AuthCommand::UserDelete(name) => {
            if state.enabled && name == ROOT {
                return Err(InvalidAuthMgmt);
            }
            state.users.remove(name).ok_or(UserNotFound)?;
        }
        AuthCommand::UserChangePassword {
            name,
            password_hash,
        } => {
            let user = state.users.get_mut(name).ok_or(UserNotFound)?;
            user.password_hash = password_hash.clone();
        }
        AuthCommand::UserGrantRole { user, role } => {
            if role != ROOT && !state.roles.contains_key(role) {
                // etcd looks the user up first.
                if !state.users.contains_key(user) {
                    return Err(UserNotFound);
                }
                return Err(RoleNotFound);
            }
            let u = state.users.get_mut(user).ok_or(UserNotFound)?;
            if !u.roles.insert(role.clone()) {
                return Ok(false);
            }
        }
        AuthCommand::UserRevokeRole { user, role } => {
            if state.enabled && user == ROOT && role == ROOT {
                return Err(InvalidAuthMgmt);
            }
            let u = state.users.get_mut(user).ok_or(UserNotFound)?;
            if !u.roles.remove(role) {
                return Err(RoleNotGranted);
            }
        }
        AuthCommand::RoleAdd(name) => {
            if name.is_empty() {
                return Err(RoleEmpty);
            }
            if state.roles.contains_key(name) {
                return Err(RoleAlreadyExists);
            }
            state.roles.insert(name.clone(), Role::default());
        }
        AuthCommand::RoleDelete(name) => {
            if state.enabled && name == ROOT {
                return Err(InvalidAuthMgmt);
            }
            state.roles.remove(name).ok_or(RoleNotFound)?;
            for u in state.users.values_mut() {
                u.roles.remove(name);
            }
        }
        AuthCommand::RoleGrantPermission { role, permission } => {
            let r = state.roles.get_mut(role).ok_or(RoleNotFound)?;
            let at = r.permissions.binary_search_by(|p| {
                (&p.key, &p.range_end).cmp(&(&permission.key, &permission.range_end))
            });
            match at {
                Ok(i) => r.permissions[i].kind = permission.kind,
                Err(i) => r.permissions.insert(i, permission.clone()),
            }
        }
        AuthCommand::RoleRevokePermission {
            role,
            key,
            range_end,
        } => {
            let r = state.roles.get_mut(role).ok_or(RoleNotFound)?;
            let at = r
                .permissions
                .iter()
                .position(|p| p.key == *key && p.range_end == *range_end)
                .ok_or(PermissionNotGranted)?;
            r.permissions.remove(at);
        }
        AuthCommand::Authenticate {
            name,
            checked_revision,
        } => {
            if !state.enabled {
                return Err(AuthNotEnabled);
            }
            let user = state.users.get(name).ok_or(AuthFailed)?;
            if user.password_hash.is_none() {
                return Err(AuthFailed);
            }
            if *checked_revision != state.revision {
                return Err(OldRevision);
            }
            return Ok(false);
        }
    }
    // etcd's numbering, which clients see in `auth status`.
    if *cmd != AuthCommand::Enable {
        state.revision += 1;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut AuthState, cmd: AuthCommand) -> std::result::Result<bool, AuthRefusal> {
        change(state, &cmd)
    }

    fn root_ready() -> AuthState {
        let mut s = AuthState::default();
        run(
            &mut s,
            AuthCommand::UserAdd {
                name: ROOT.into(),
                password_hash: Some("h".into()),
            },
        )
        .unwrap();
        s
    }

    #[test]
    fn enabling_needs_a_root_user_with_the_root_role() {
        let mut s = AuthState::default();
        assert_eq!(
            run(&mut s, AuthCommand::Enable),
            Err(AuthRefusal::RootUserNotExist)
        );
        let mut s = root_ready();
        assert_eq!(
            run(&mut s, AuthCommand::Enable),
            Err(AuthRefusal::RootRoleNotExist)
        );
        run(
            &mut s,
            AuthCommand::UserGrantRole {
                user: ROOT.into(),
                role: ROOT.into(),
            },
        )
        .unwrap();
        assert_eq!(run(&mut s, AuthCommand::Enable), Ok(true));
        assert_eq!(run(&mut s, AuthCommand::Enable), Ok(false));
        assert_eq!(
            run(&mut s, AuthCommand::UserDelete(ROOT.into())),
            Err(AuthRefusal::InvalidAuthMgmt)
        );
    }

    #[test]
    fn revisions_count_as_etcd_counts_them() {
        assert_eq!(AuthState::default().revision, 1);
        let mut s = root_ready();
        assert_eq!(s.revision, 2);
        let grant = AuthCommand::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        };
        run(&mut s, grant).unwrap();
        assert_eq!(s.revision, 3);
        run(&mut s, AuthCommand::Enable).unwrap();
        assert_eq!((s.enabled, s.revision), (true, 3));
        run(&mut s, AuthCommand::RoleAdd("r".into())).unwrap();
        run(&mut s, AuthCommand::Disable).unwrap();
        assert_eq!((s.enabled, s.revision), (false, 5));
        // Nothing changed, nothing counted.
        run(&mut s, AuthCommand::Disable).unwrap();
        assert!(run(&mut s, AuthCommand::RoleAdd("r".into())).is_err());
        assert_eq!(s.revision, 5);
    }

    #[test]
    fn refusals_name_what_is_missing_or_duplicated() {
        let mut s = root_ready();
        assert_eq!(
            run(
                &mut s,
                AuthCommand::UserAdd {
                    name: ROOT.into(),
                    password_hash: None
                }
            ),
            Err(AuthRefusal::UserAlreadyExists)
        );
        assert_eq!(
            run(
                &mut s,
                AuthCommand::UserAdd {
                    name: String::new(),
                    password_hash: None
                }
            ),
            Err(AuthRefusal::UserEmpty)
        );
        assert_eq!(
            run(
                &mut s,
                AuthCommand::UserGrantRole {
                    user: ROOT.into(),
                    role: "r".into()
                }
            ),
            Err(AuthRefusal::RoleNotFound)
        );
        run(&mut s, AuthCommand::RoleAdd("r".into())).unwrap();
        assert_eq!(
            run(&mut s, AuthCommand::RoleAdd("r".into())),
            Err(AuthRefusal::RoleAlreadyExists)
        );
        assert_eq!(
            run(
                &mut s,
                AuthCommand::RoleRevokePermission {
                    role: "r".into(),
                    key: b"k".to_vec(),
                    range_end: Vec::new()
                }
            ),
            Err(AuthRefusal::PermissionNotGranted)
        );
        assert_eq!(
            run(
                &mut s,
                AuthCommand::UserRevokeRole {
                    user: ROOT.into(),
                    role: "r".into()
                }
            ),
            Err(AuthRefusal::RoleNotGranted)
        );
    }

    #[test]
    fn granting_the_same_range_again_changes_its_kind() {
        let mut s = root_ready();
        run(&mut s, AuthCommand::RoleAdd("r".into())).unwrap();
        for kind in [PermKind::Read, PermKind::Write] {
            run(
                &mut s,
                AuthCommand::RoleGrantPermission {
                    role: "r".into(),
                    permission: Permission {
                        kind,
                        key: b"a".to_vec(),
                        range_end: b"b".to_vec(),
                    },
                },
            )
            .unwrap();
        }
        let perms = &s.roles["r"].permissions;
        assert_eq!(perms.len(), 1);
        assert_eq!(perms[0].kind, PermKind::Write);
    }
}
