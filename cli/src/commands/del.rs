//! `del [options] <key> [range_end]`.

use api::etcdserverpb::DeleteRangeRequest;

use super::{emit, Ctx};
use crate::args::Parsed;
use crate::error::{CliError, Result};

/// etcdctl's `getDelOp`.
pub fn op(p: &Parsed) -> Result<DeleteRangeRequest> {
    let args = &p.args;
    if args.is_empty() || args.len() > 2 {
        return Err(CliError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    super::range::check_exclusive(p)?;
    let (key, range_end) = super::range::key_range(p)?;
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: p.bool("prev-kv"),
    })
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let req = op(&ctx.parsed)?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { crate::client::kv(ch).delete_range(req).await }
        })
        .await?;
    emit(&printer.del(&resp)?);
    Ok(())
}
