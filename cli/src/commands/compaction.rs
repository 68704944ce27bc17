//! `compaction [--physical] <revision>`.

use api::etcdserverpb::CompactionRequest;

use super::Ctx;
use crate::error::{exit, CliError, Result};

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
