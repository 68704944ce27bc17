//! One module per command, each with its help [`Spec`] next to its code. Each follows
//! etcdctl's order of checks: arguments first, then the client (environment, output
//! format), then the request, then printing.
//!
//! A new command is a module with a `SPEC` and a `run`, a [`Command`] variant listed in
//! [`Command::ALL`], and its arms in [`Command::spec`] and [`run`]; a new group word
//! (`lease`, `snapshot`) also goes into [`GROUPS`]. The parser and the help pages follow.

pub mod alarm;
pub mod auth;
pub mod compaction;
pub mod defrag;
pub mod del;
pub mod elect;
pub mod endpoint;
pub mod get;
pub mod lease;
pub mod lock;
pub mod member;
pub mod move_leader;
pub mod put;
mod range;
pub mod restore;
pub mod role;
pub mod snapshot;
pub mod txn;
pub mod user;
pub mod version;
pub mod watch;

use std::io::Write;

use crate::args::{Flag, Parsed};
use crate::client::Client;
use crate::error::Result;
use crate::help::{Group, Spec};
use crate::printer::{Format, Output, Printer};

/// The commands etcrctl has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Get,
    Put,
    Del,
    Txn,
    Compaction,
    Watch,
    LeaseGrant,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseList,
    LeaseKeepAlive,
    Lock,
    Elect,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    EndpointHealth,
    EndpointStatus,
    EndpointHashKv,
    MoveLeader,
    AlarmDisarm,
    AlarmList,
    AuthEnable,
    AuthDisable,
    AuthStatus,
    UserAdd,
    UserDelete,
    UserGet,
    UserList,
    UserPasswd,
    UserGrantRole,
    UserRevokeRole,
    RoleAdd,
    RoleDelete,
    RoleGet,
    RoleList,
    RoleGrantPermission,
    RoleRevokePermission,
    Defrag,
    SnapshotSave,
    SnapshotStatus,
    SnapshotRestore,
    Version,
}

impl Command {
    /// Every command, in the order the help lists them.
    pub const ALL: &'static [Command] = &[
        Command::Get,
        Command::Put,
        Command::Del,
        Command::Txn,
        Command::Compaction,
        Command::Watch,
        Command::LeaseGrant,
        Command::LeaseRevoke,
        Command::LeaseTimeToLive,
        Command::LeaseList,
        Command::LeaseKeepAlive,
        Command::Lock,
        Command::Elect,
        Command::MemberAdd,
        Command::MemberRemove,
        Command::MemberUpdate,
        Command::MemberList,
        Command::MemberPromote,
        Command::EndpointHealth,
        Command::EndpointStatus,
        Command::EndpointHashKv,
        Command::MoveLeader,
        Command::AlarmDisarm,
        Command::AlarmList,
        Command::AuthEnable,
        Command::AuthDisable,
        Command::AuthStatus,
        Command::UserAdd,
        Command::UserDelete,
        Command::UserGet,
        Command::UserList,
        Command::UserPasswd,
        Command::UserGrantRole,
        Command::UserRevokeRole,
        Command::RoleAdd,
        Command::RoleDelete,
        Command::RoleGet,
        Command::RoleList,
        Command::RoleGrantPermission,
        Command::RoleRevokePermission,
        Command::Defrag,
        Command::SnapshotSave,
        Command::SnapshotStatus,
        Command::SnapshotRestore,
        Command::Version,
    ];

    pub fn spec(self) -> &'static Spec {
        match self {
            Command::Get => &get::SPEC,
            Command::Put => &put::SPEC,
            Command::Del => &del::SPEC,
            Command::Txn => &txn::SPEC,
            Command::Compaction => &compaction::SPEC,
            Command::Watch => &watch::SPEC,
            Command::LeaseGrant => &lease::GRANT,
            Command::LeaseRevoke => &lease::REVOKE,
            Command::LeaseTimeToLive => &lease::TIME_TO_LIVE,
            Command::LeaseList => &lease::LIST,
            Command::LeaseKeepAlive => &lease::KEEP_ALIVE,
            Command::Lock => &lock::SPEC,
            Command::Elect => &elect::SPEC,
            Command::MemberAdd => &member::ADD,
            Command::MemberRemove => &member::REMOVE,
            Command::MemberUpdate => &member::UPDATE,
            Command::MemberList => &member::LIST,
            Command::MemberPromote => &member::PROMOTE,
            Command::EndpointHealth => &endpoint::HEALTH,
            Command::EndpointStatus => &endpoint::STATUS,
            Command::EndpointHashKv => &endpoint::HASHKV,
            Command::MoveLeader => &move_leader::SPEC,
            Command::AlarmDisarm => &alarm::DISARM,
            Command::AlarmList => &alarm::LIST,
            Command::AuthEnable => &auth::ENABLE,
            Command::AuthDisable => &auth::DISABLE,
            Command::AuthStatus => &auth::STATUS,
            Command::UserAdd => &user::ADD,
            Command::UserDelete => &user::DELETE,
            Command::UserGet => &user::GET,
            Command::UserList => &user::LIST,
            Command::UserPasswd => &user::PASSWD,
            Command::UserGrantRole => &user::GRANT_ROLE,
            Command::UserRevokeRole => &user::REVOKE_ROLE,
            Command::RoleAdd => &role::ADD,
            Command::RoleDelete => &role::DELETE,
            Command::RoleGet => &role::GET,
            Command::RoleList => &role::LIST,
            Command::RoleGrantPermission => &role::GRANT_PERMISSION,
            Command::RoleRevokePermission => &role::REVOKE_PERMISSION,
            Command::Defrag => &defrag::SPEC,
            Command::SnapshotSave => &snapshot::SAVE,
            Command::SnapshotStatus => &snapshot::STATUS,
            Command::SnapshotRestore => &restore::SPEC,
            Command::Version => &version::SPEC,
        }
    }

    pub fn flags(self) -> &'static [Flag] {
        self.spec().flags
    }
}

/// The words that group commands.
pub const GROUPS: &[Group] = &[
    lease::GROUP,
    member::GROUP,
    endpoint::GROUP,
    alarm::GROUP,
    auth::GROUP,
    user::GROUP,
    role::GROUP,
    snapshot::GROUP,
];

/// A command's parsed flags and the process environment (for `ETCDCTL_*`).
pub struct Ctx {
    pub command: Command,
    pub parsed: Parsed,
    pub env: Vec<(String, String)>,
}

impl Ctx {
    /// etcdctl's `clientConfigFromCmd`: applies `ETCDCTL_*` variables, then picks the
    /// output format; both happen only for commands that talk to the cluster.
    pub fn configure(&mut self) -> Result<Printer> {
        let inherited: &[Flag] = match self.command {
            Command::EndpointStatus | Command::EndpointHealth | Command::EndpointHashKv => {
                endpoint::FLAGS
            }
            Command::Watch => watch::ENV_FLAGS,
            _ => &[],
        };
        let warnings = self.parsed.apply_env(&self.env, inherited)?;
        eprint!("{warnings}");
        Ok(Printer {
            format: Format::parse(&self.parsed.str("write-out"))?,
            hex: self.parsed.bool("hex"),
        })
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.parsed.slice("endpoints")
    }

    /// A client over `endpoints` with the global timeouts and TLS flags.
    pub fn client_for(&self, endpoints: &[String]) -> Result<Client> {
        let security = crate::tls::security(&crate::tls::TlsFlags {
            cacert: self.parsed.str("cacert"),
            cert: self.parsed.str("cert"),
            key: self.parsed.str("key"),
            insecure_skip_verify: self.parsed.bool("insecure-skip-tls-verify"),
            insecure_transport: self.parsed.bool("insecure-transport"),
        })?;
        let credentials =
            crate::auth::credentials(&self.parsed.str("user"), &self.parsed.str("password"))?;
        Ok(Client::new(
            endpoints,
            self.parsed.duration("dial-timeout"),
            self.parsed.duration("command-timeout"),
            &security,
        )?
        .with_credentials(credentials))
    }

    /// etcdctl's `mustClientFromCmd`.
    pub fn connect(&mut self) -> Result<(Client, Printer)> {
        let printer = self.configure()?;
        let client = self.client_for(&self.endpoints())?;
        Ok((client, printer))
    }
}

/// Writes a printer's output to the process's stdout and stderr.
pub fn emit(out: &Output) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out.stdout);
    let _ = stdout.flush();
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(&out.stderr);
    let _ = stderr.flush();
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    match ctx.command {
        Command::Get => get::run(ctx).await,
        Command::Put => put::run(ctx).await,
        Command::Del => del::run(ctx).await,
        Command::Txn => txn::run(ctx).await,
        Command::Compaction => compaction::run(ctx).await,
        Command::Watch => watch::run(ctx).await,
        Command::LeaseGrant => lease::grant(ctx).await,
        Command::LeaseRevoke => lease::revoke(ctx).await,
        Command::LeaseTimeToLive => lease::time_to_live(ctx).await,
        Command::LeaseList => lease::list(ctx).await,
        Command::LeaseKeepAlive => lease::keep_alive(ctx).await,
        Command::Lock => lock::run(ctx).await,
        Command::Elect => elect::run(ctx).await,
        Command::MemberAdd => member::add(ctx).await,
        Command::MemberRemove => member::remove(ctx).await,
        Command::MemberUpdate => member::update(ctx).await,
        Command::MemberList => member::list(ctx).await,
        Command::MemberPromote => member::promote(ctx).await,
        Command::EndpointStatus => endpoint::status(ctx).await,
        Command::EndpointHealth => endpoint::health(ctx).await,
        Command::EndpointHashKv => endpoint::hashkv(ctx).await,
        Command::MoveLeader => move_leader::run(ctx).await,
        Command::AlarmDisarm => alarm::disarm(ctx).await,
        Command::AlarmList => alarm::list(ctx).await,
        Command::AuthEnable => auth::enable(ctx).await,
        Command::AuthDisable => auth::disable(ctx).await,
        Command::AuthStatus => auth::status(ctx).await,
        Command::UserAdd => user::add(ctx).await,
        Command::UserDelete => user::delete(ctx).await,
        Command::UserGet => user::get(ctx).await,
        Command::UserList => user::list(ctx).await,
        Command::UserPasswd => user::passwd(ctx).await,
        Command::UserGrantRole => user::grant_role(ctx).await,
        Command::UserRevokeRole => user::revoke_role(ctx).await,
        Command::RoleAdd => role::add(ctx).await,
        Command::RoleDelete => role::delete(ctx).await,
        Command::RoleGet => role::get(ctx).await,
        Command::RoleList => role::list(ctx).await,
        Command::RoleGrantPermission => role::grant_permission(ctx).await,
        Command::RoleRevokePermission => role::revoke_permission(ctx).await,
        Command::Defrag => defrag::run(ctx).await,
        Command::SnapshotSave => snapshot::save(ctx).await,
        Command::SnapshotStatus => snapshot::status(ctx).await,
        Command::SnapshotRestore => restore::run(ctx).await,
        Command::Version => version::run(),
    }
}
