//! `del [options] <key> [range_end]`.

use api::etcdserverpb::DeleteRangeRequest;

use super::{emit, Ctx};
use crate::args::{flag, Kind, Parsed};
use crate::error::{CliError, Result};
use crate::help::Spec;

pub const SPEC: Spec = Spec {
    name: "del",
    args: "[flags] <key> [range_end]",
    summary: "delete a key, or the keys of a range",
    about: "Deletes <key>, or every key from <key> up to but not including [range_end], and
prints how many keys it deleted. --prefix and --from-key choose keys as for 'etcrctl get'.",
    flags: &[
        flag(
            "from-key",
            None,
            Kind::Bool,
            "false",
            "delete every key from <key> on",
        ),
        flag(
            "prefix",
            None,
            Kind::Bool,
            "false",
            "delete every key that starts with <key>",
        ),
        flag(
            "prev-kv",
            None,
            Kind::Bool,
            "false",
            "also print the keys and values deleted",
        ),
    ],
};

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
