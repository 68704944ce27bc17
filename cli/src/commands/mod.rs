//! One module per etcdctl command. Each follows etcdctl's order of checks: arguments first,
//! then the client (environment, output format), then the request, then printing.

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

use crate::args::{Command, Parsed};
use crate::client::Client;
use crate::error::Result;
use crate::printer::{Format, Output, Printer};

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
        let inherited: &[&'static str] = match self.command {
            Command::EndpointStatus | Command::EndpointHealth => &["cluster"],
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
