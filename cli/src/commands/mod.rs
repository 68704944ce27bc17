//! One module per command, each with its help [`Spec`] next to its code. Each follows
//! etcdctl's order of checks: arguments first, then the client (environment, output
//! format), then the request, then printing.
//!
//! A new command is a module with a `SPEC` and a `run`, a [`Command`] variant listed in
//! [`Command::ALL`], and its arms in [`Command::spec`] and [`run`]; a new group word
//! (`lease`, `snapshot`) also goes into [`GROUPS`]. The parser and the help pages follow.

pub mod compaction;
pub mod del;
pub mod endpoint;
pub mod get;
pub mod member;
pub mod put;
mod range;
pub mod txn;
pub mod version;

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
    EndpointHealth,
    EndpointStatus,
    MemberList,
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
        Command::EndpointHealth,
        Command::EndpointStatus,
        Command::MemberList,
        Command::Version,
    ];

    pub fn spec(self) -> &'static Spec {
        match self {
            Command::Get => &get::SPEC,
            Command::Put => &put::SPEC,
            Command::Del => &del::SPEC,
            Command::Txn => &txn::SPEC,
            Command::Compaction => &compaction::SPEC,
            Command::EndpointHealth => &endpoint::HEALTH,
            Command::EndpointStatus => &endpoint::STATUS,
            Command::MemberList => &member::LIST,
            Command::Version => &version::SPEC,
        }
    }

    pub fn flags(self) -> &'static [Flag] {
        self.spec().flags
    }
}

/// The words that group commands.
pub const GROUPS: &[Group] = &[endpoint::GROUP, member::GROUP];

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
            Command::EndpointStatus | Command::EndpointHealth => endpoint::FLAGS,
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

    /// A client over `endpoints` with the global timeouts.
    pub fn client_for(&self, endpoints: &[String]) -> Result<Client> {
        Client::new(
            endpoints,
            self.parsed.duration("dial-timeout"),
            self.parsed.duration("command-timeout"),
        )
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
        Command::Version => version::run(),
        Command::MemberList => member::list(ctx).await,
        Command::EndpointStatus => endpoint::status(ctx).await,
        Command::EndpointHealth => endpoint::health(ctx).await,
    }
}
