//! `del [options] <key> [range_end]`.

use api::etcdserverpb::{kv_client::KvClient, DeleteRangeRequest};

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
    let (prefix, from_key) = (p.bool("prefix"), p.bool("from-key"));
    if prefix && from_key {
        return Err(CliError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut req = DeleteRangeRequest::default();
    let mut key = args[0].clone().into_bytes();
    if args.len() > 1 {
        if prefix || from_key {
            return Err(CliError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        req.range_end = args[1].clone().into_bytes();
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            req.range_end = vec![0];
        } else {
            req.range_end = api::prefix_range_end(&key);
        }
    }
    req.prev_kv = p.bool("prev-kv");
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        req.range_end = vec![0];
    }
    req.key = key;
    Ok(req)
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let req = op(&ctx.parsed)?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { KvClient::new(ch).delete_range(req).await }
        })
        .await?;
    emit(&printer.del(&resp)?);
    Ok(())
}
