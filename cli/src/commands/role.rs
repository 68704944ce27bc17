//! `role add|delete|get|list|grant-permission|revoke-permission`.

use api::authpb::Permission;
use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGrantPermissionRequest,
    AuthRoleListRequest, AuthRoleRevokePermissionRequest,
};
use prost::Message;

use super::{emit, Ctx};
use crate::args::{flag, Flag, Kind, Parsed};
use crate::error::{CliError, Result};
use crate::help::{Group, Spec};

pub const GROUP: Group = Group {
    name: "role",
    summary: "roles: named sets of permissions on keys, granted to users",
};

const RANGE_FLAGS: &[Flag] = &[
    flag(
        "from-key",
        None,
        Kind::Bool,
        "false",
        "the permission covers every key from <key> on (byte order)",
    ),
    flag(
        "prefix",
        None,
        Kind::Bool,
        "false",
        "the permission covers every key starting with <key>",
    ),
];

pub const ADD: Spec = Spec {
    name: "role add",
    args: "<role name>",
    summary: "create a role without permissions",
    about: "",
    flags: &[],
};

pub const DELETE: Spec = Spec {
    name: "role delete",
    args: "<role name>",
    summary: "remove a role, and take it from every user holding it",
    about: "",
    flags: &[],
};

pub const GET: Spec = Spec {
    name: "role get",
    args: "<role name>",
    summary: "show a role's permissions",
    about: "With -w simple, the keys a role may read, then those it may write: a key, or a
range as [start, end) (\"<open ended>\" when it has no end), marked when it is a prefix.",
    flags: &[],
};

pub const LIST: Spec = Spec {
    name: "role list",
    args: "",
    summary: "list every role's name",
    about: "",
    flags: &[],
};

pub const GRANT_PERMISSION: Spec = Spec {
    name: "role grant-permission",
    args: "[flags] <role name> <read|write|readwrite> <key> [end key]",
    summary: "let a role read or write a key or a range of keys",
    about: "A range is [key, end key), or what --prefix or --from-key make of <key>; an
empty <key> with either flag is the whole key space.",
    flags: RANGE_FLAGS,
};

pub const REVOKE_PERMISSION: Spec = Spec {
    name: "role revoke-permission",
    args: "[flags] <role name> <key> [end key]",
    summary: "take a permission from a role",
    about: "The key or range must be exactly one the role was granted.",
    flags: RANGE_FLAGS,
};

fn one_role(ctx: &Ctx, what: &str) -> Result<String> {
    match ctx.parsed.args.as_slice() {
        [name] => Ok(name.clone()),
        _ => Err(CliError::bad_args(format!(
            "role {what} command requires role name as its argument"
        ))),
    }
}

fn exclusive() -> CliError {
    CliError::bad_args("--from-key and --prefix flags are mutually exclusive")
}

/// etcdctl's `permRange`: the `(key, range_end)` of `<key> [end key]` and the flags. The
/// empty key becomes `\0`, the lowest key, since the server reads an empty key as none.
fn perm_range(p: &Parsed, args: &[String]) -> Result<(Vec<u8>, Vec<u8>)> {
    let (prefix, from_key) = (p.bool("prefix"), p.bool("from-key"));
    let key = args[0].as_bytes().to_vec();
    if key.is_empty() {
        if prefix && from_key {
            return Err(exclusive());
        }
        let end = if prefix || from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    let end = match args.get(1) {
        None if prefix && from_key => return Err(exclusive()),
        None if prefix => api::prefix_range_end(&key),
        None if from_key => vec![0],
        None => Vec::new(),
        Some(_) if prefix => {
            return Err(CliError::bad_args(
                "unexpected endkey argument with --prefix flag",
            ))
        }
        Some(_) if from_key => {
            return Err(CliError::bad_args(
                "unexpected endkey argument with --from-key flag",
            ))
        }
        Some(end) => end.as_bytes().to_vec(),
    };
    Ok((key, end))
}

/// clientv3's `StrToPermissionType`: authpb's names in any case.
fn perm_type(word: &str) -> Result<i32> {
    match word.to_uppercase().as_str() {
        "READ" => Ok(0),
        "WRITE" => Ok(1),
        "READWRITE" => Ok(2),
        _ => Err(CliError::bad_args(format!(
            "invalid permission type: {word}"
        ))),
    }
}

pub async fn add(ctx: &mut Ctx) -> Result<()> {
    let name = one_role(ctx, "add")?;
    let (client, printer) = ctx.connect()?;
    let req = AuthRoleAddRequest { name: name.clone() };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).role_add(req).await }
        })
        .await?;
    let text = format!("Role {name} created\n");
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}

pub async fn delete(ctx: &mut Ctx) -> Result<()> {
    let role = one_role(ctx, "delete")?;
    let (client, printer) = ctx.connect()?;
    let req = AuthRoleDeleteRequest { role: role.clone() };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).role_delete(req).await }
        })
        .await?;
    let text = format!("Role {role} deleted\n");
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}

pub async fn get(ctx: &mut Ctx) -> Result<()> {
    let role = one_role(ctx, "get")?;
    let (client, printer) = ctx.connect()?;
    let req = AuthRoleGetRequest { role: role.clone() };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).role_get(req).await }
        })
        .await?;
    emit(&printer.role_get(&role, &resp)?);
    Ok(())
}

pub async fn list(ctx: &mut Ctx) -> Result<()> {
    if !ctx.parsed.args.is_empty() {
        return Err(CliError::bad_args(
            "role list command requires no arguments",
        ));
    }
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move { AuthClient::new(ch).role_list(AuthRoleListRequest {}).await })
        .await?;
    emit(&printer.role_list(&resp)?);
    Ok(())
}

pub async fn grant_permission(ctx: &mut Ctx) -> Result<()> {
    let args = ctx.parsed.args.clone();
    if args.len() < 3 {
        return Err(CliError::bad_args(
            "role grant command requires role name, permission type, and key [endkey] as its argument",
        ));
    }
    let perm_type = perm_type(&args[1])?;
    let (key, range_end) = perm_range(&ctx.parsed, &args[2..])?;
    let (client, printer) = ctx.connect()?;
    let req = AuthRoleGrantPermissionRequest {
        name: args[0].clone(),
        perm: Some(Permission {
            perm_type,
            key,
            range_end,
        }),
    };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).role_grant_permission(req).await }
        })
        .await?;
    let text = format!("Role {} updated\n", args[0]);
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}

pub async fn revoke_permission(ctx: &mut Ctx) -> Result<()> {
    let args = ctx.parsed.args.clone();
    if args.len() < 2 {
        return Err(CliError::bad_args(
            "role revoke-permission command requires role name and key [endkey] as its argument",
        ));
    }
    let (key, range_end) = perm_range(&ctx.parsed, &args[1..])?;
    let (client, printer) = ctx.connect()?;
    let req = AuthRoleRevokePermissionRequest {
        role: args[0].clone(),
        key,
        range_end: range_end.clone(),
    };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).role_revoke_permission(req).await }
        })
        .await?;
    // etcdctl names the key as typed, and the range's end as sent.
    let (role, typed) = (&args[0], &args[1]);
    let mut text = Vec::new();
    if range_end.is_empty() {
        text.extend_from_slice(
            format!("Permission of key {typed} is revoked from role {role}\n").as_bytes(),
        );
    } else {
        text.extend_from_slice(format!("Permission of range [{typed}, ").as_bytes());
        if range_end == b"\0" {
            text.extend_from_slice(b"<open ended>");
        } else {
            text.extend_from_slice(&range_end);
            text.push(b')');
        }
        text.extend_from_slice(format!(" is revoked from role {role}\n").as_bytes());
    }
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}
