//! `put [options] <key> <value>` (the value from stdin when omitted).

use std::io::Read;

use api::etcdserverpb::PutRequest;

use super::{emit, Ctx};
use crate::args::Parsed;
use crate::error::{CliError, Result};

const NEEDS_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";

/// etcdctl's `getPutOp`; `stdin` supplies the value when only the key is given.
pub fn op(p: &Parsed, stdin: &mut dyn Read) -> Result<PutRequest> {
    let args = &p.args;
    if args.is_empty() {
        return Err(CliError::bad_args(NEEDS_ARGS));
    }
    let ignore_value = p.bool("ignore-value");
    if ignore_value && args.len() > 1 {
        return Err(CliError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let mut value = Vec::new();
    if !ignore_value {
        if let Some(v) = args.get(1) {
            value = v.clone().into_bytes();
        } else {
            let _ = stdin.read_to_end(&mut value);
            if value.is_empty() {
                return Err(CliError::bad_args(NEEDS_ARGS));
            }
        }
    }
    let lease = crate::gofmt::parse_int(&p.str("lease"), 16)
        .map_err(|e| CliError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: args[0].clone().into_bytes(),
        value,
        lease,
        prev_kv: p.bool("prev-kv"),
        ignore_value,
        ignore_lease: p.bool("ignore-lease"),
    })
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let req = op(&ctx.parsed, &mut std::io::stdin())?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { crate::client::kv(ch).put(req).await }
        })
        .await?;
    emit(&printer.put(&resp)?);
    Ok(())
}
