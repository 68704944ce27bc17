//! `get [options] <key> [range_end]`.

use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::RangeRequest;

use super::{emit, Ctx};
use crate::args::{flag, Kind, Parsed};
use crate::error::{CliError, Result};
use crate::help::Spec;

pub const SPEC: Spec = Spec {
    name: "get",
    args: "[flags] <key> [range_end]",
    summary: "read a key, or the keys of a range",
    about: "Prints <key> and its value, or every key from <key> up to but not including
[range_end], in byte order. --prefix reads the keys that start with <key>, --from-key
the keys from <key> on; with either, an empty <key> means every key.",
    flags: &[
        flag(
            "consistency",
            None,
            Kind::Str,
            "l",
            "l: a linearizable read, through the leader; s: a serializable read, from the member asked",
        ),
        flag(
            "from-key",
            None,
            Kind::Bool,
            "false",
            "read every key from <key> on",
        ),
        flag(
            "keys-only",
            None,
            Kind::Bool,
            "false",
            "print the keys without their values",
        ),
        flag(
            "limit",
            None,
            Kind::Int,
            "0",
            "return at most this many keys (0: all of them)",
        ),
        flag(
            "order",
            None,
            Kind::Str,
            "",
            "ASCEND or DESCEND (ascending when empty)",
        ),
        flag(
            "prefix",
            None,
            Kind::Bool,
            "false",
            "read every key that starts with <key>",
        ),
        flag(
            "print-value-only",
            None,
            Kind::Bool,
            "false",
            "print only the values (with -w simple)",
        ),
        flag(
            "rev",
            None,
            Kind::Int,
            "0",
            "read the keys as they were at this revision (0: the latest)",
        ),
        flag(
            "sort-by",
            None,
            Kind::Str,
            "",
            "sort by CREATE, KEY, MODIFY, VALUE or VERSION (KEY when empty)",
        ),
    ],
};

/// etcdctl's `getGetOp`: validates the arguments and builds the request.
pub fn op(p: &Parsed) -> Result<RangeRequest> {
    let args = &p.args;
    if args.is_empty() {
        return Err(CliError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    super::range::check_exclusive(p)?;
    let mut req = RangeRequest::default();
    match p.str("consistency").as_str() {
        "s" => req.serializable = true,
        "l" => {}
        other => {
            return Err(CliError::bad_feature(format!(
                "unknown consistency flag {}",
                crate::gofmt::quote(other.as_bytes())
            )))
        }
    }
    let (key, range_end) = super::range::key_range(p)?;
    req.range_end = range_end;
    req.limit = p.int("limit");
    if p.int("rev") > 0 {
        req.revision = p.int("rev");
    }
    let order_flag = p.str("order");
    let mut order = match order_flag.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(CliError::bad_feature(format!(
                "bad sort order {order_flag}"
            )))
        }
    };
    let target_flag = p.str("sort-by");
    let target = match target_flag.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CliError::bad_feature(format!(
                "bad sort target {target_flag}"
            )))
        }
    };
    // clientv3.WithSort: the server already returns keys in ascending order.
    if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    req.sort_order = order as i32;
    req.sort_target = target as i32;
    req.keys_only = p.bool("keys-only");
    req.key = key;
    Ok(req)
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let req = op(&ctx.parsed)?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { crate::client::kv(ch).range(req).await }
        })
        .await?;
    let value_only = ctx.parsed.bool("print-value-only");
    if value_only && printer.format != crate::printer::Format::Simple {
        return Err(CliError::bad_args(
            "print-value-only is only for `--write-out=simple`",
        ));
    }
    emit(&printer.get(&resp, value_only)?);
    Ok(())
}
