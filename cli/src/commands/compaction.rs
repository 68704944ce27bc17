//! `compaction [--physical] <revision>`.

use api::etcdserverpb::CompactionRequest;

use super::Ctx;
use crate::args::{flag, Kind};
use crate::error::{exit, CliError, Result};
use crate::help::Spec;

pub const SPEC: Spec = Spec {
    name: "compaction",
    args: "[flags] <revision>",
    summary: "discard the history older than a revision",
    about: "Keeps, of every key, its versions from <revision> on and the one current at
<revision>; older versions are discarded, and a read at a revision before <revision> then
fails with \"etcdserver: mvcc: required revision has been compacted\".",
    flags: &[flag(
        "physical",
        None,
        Kind::Bool,
        "false",
        "return only once the discarded versions are gone from the backend",
    )],
};

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args("compaction command needs 1 argument"));
    }
    let revision = crate::gofmt::parse_int(&ctx.parsed.args[0], 10)
        .map_err(|e| CliError::exit(exit::ERROR, e))?;
    let physical = ctx.parsed.bool("physical");
    let (client, _) = ctx.connect()?;
    client
        .unary(|ch| async move {
            crate::client::kv(ch)
                .compact(CompactionRequest { revision, physical })
                .await
        })
        .await?;
    println!("compacted revision {revision}");
    Ok(())
}
