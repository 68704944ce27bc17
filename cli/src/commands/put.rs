//! `put [options] <key> <value>` (the value from stdin when omitted).

use std::io::Read;

use api::etcdserverpb::PutRequest;

use super::{emit, Ctx};
use crate::args::{flag, Kind, Parsed};
use crate::error::{CliError, Result};
use crate::help::Spec;

pub const SPEC: Spec = Spec {
    name: "put",
    args: "[flags] <key> [value]",
    summary: "write a value to a key",
    about: "Stores [value] under <key> and prints OK. Without [value] (and without
--ignore-value) the value is all of standard input, which must not be empty:
  cat config.json | etcrctl put /app/config
A key or value that starts with '-' would be read as a flag; put '--' before it:
  etcrctl put -- <key> -1",
    flags: &[
        flag(
            "ignore-lease",
            None,
            Kind::Bool,
            "false",
            "keep the lease the key has now",
        ),
        flag(
            "ignore-value",
            None,
            Kind::Bool,
            "false",
            "keep the value the key has now (give no [value])",
        ),
        flag(
            "lease",
            None,
            Kind::Str,
            "0",
            "attach the key to this lease, its ID in hex (0: no lease)",
        ),
        flag(
            "prev-kv",
            None,
            Kind::Bool,
            "false",
            "also print the key and value as they were before",
        ),
    ],
};

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
