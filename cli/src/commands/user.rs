//! `user add|delete|get|list|passwd|grant-role|revoke-role`.

use std::io::Read;

use api::authpb::UserAddOptions;
use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::{
    AuthRoleGetRequest, AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest,
    AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest,
};
use prost::Message;

use super::{emit, Ctx};
use crate::args::{flag, Flag, Kind};
use crate::error::{CliError, Result};
use crate::help::{Group, Spec};

pub const GROUP: Group = Group {
    name: "user",
    summary: "the users who may authenticate, and the roles they hold",
};

const INTERACTIVE: Flag = flag(
    "interactive",
    None,
    Kind::Bool,
    "true",
    "ask for the password on the terminal; false: read its first word from stdin",
);

pub const ADD: Spec = Spec {
    name: "user add",
    args: "<name, or name:password> [flags]",
    summary: "create a user",
    about: "The password comes from the argument after a colon, from --new-user-password
(then the whole argument is the name), or else from stdin with --interactive=false.
etcrctl does not read passwords from the terminal. A user made with --no-password cannot
authenticate with a password; it is for client certificates, whose common name names it.",
    flags: &[
        INTERACTIVE,
        flag(
            "new-user-password",
            None,
            Kind::Str,
            "",
            "the password (the argument is then only the name)",
        ),
        flag(
            "no-password",
            None,
            Kind::Bool,
            "false",
            "a user without a password, for client certificate authentication",
        ),
    ],
};

pub const DELETE: Spec = Spec {
    name: "user delete",
    args: "<name>",
    summary: "remove a user (its tokens stop working)",
    about: "",
    flags: &[],
};

pub const GET: Spec = Spec {
    name: "user get",
    args: "<name> [flags]",
    summary: "show the roles a user holds",
    about: "",
    flags: &[flag(
        "detail",
        None,
        Kind::Bool,
        "false",
        "also show each role's permissions",
    )],
};

pub const LIST: Spec = Spec {
    name: "user list",
    args: "",
    summary: "list every user's name",
    about: "",
    flags: &[],
};

pub const PASSWD: Spec = Spec {
    name: "user passwd",
    args: "<name> [flags]",
    summary: "set a user's password (its tokens stop working)",
    about: "The new password is the first word on stdin with --interactive=false; etcrctl
does not read passwords from the terminal.",
    flags: &[INTERACTIVE],
};

pub const GRANT_ROLE: Spec = Spec {
    name: "user grant-role",
    args: "<user name> <role name>",
    summary: "give a user a role's permissions",
    about: "",
    flags: &[],
};

pub const REVOKE_ROLE: Spec = Spec {
    name: "user revoke-role",
    args: "<user name> <role name>",
    summary: "take a role from a user",
    about: "",
    flags: &[],
};

/// etcdctl's `fmt.Scanf("%s")`: the first word of stdin's first line, "" when there is none.
fn password_from_stdin(ctx: &Ctx) -> Result<String> {
    if ctx.parsed.bool("interactive") {
        return Err(CliError::bad_feature(
            "etcrctl does not read passwords from the terminal: give --interactive=false and the password on stdin",
        ));
    }
    let mut input = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut input);
    let line = input.split(|b| *b == b'\n').next().unwrap_or_default();
    let word = line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(word).into_owned())
}

fn one_name(ctx: &Ctx, what: &str) -> Result<String> {
    match ctx.parsed.args.as_slice() {
        [name] => Ok(name.clone()),
        _ => Err(CliError::bad_args(format!(
            "user {what} command requires user name as its argument"
        ))),
    }
}

pub async fn add(ctx: &mut Ctx) -> Result<()> {
    let arg = one_name(ctx, "add")?;
    let no_password = ctx.parsed.bool("no-password");
    let from_flag = ctx.parsed.str("new-user-password");
    let (name, password) = if no_password {
        (arg, String::new())
    } else if !from_flag.is_empty() {
        (arg, from_flag)
    } else if let Some((name, password)) = arg.split_once(':') {
        if name.is_empty() {
            return Err(CliError::bad_args("empty user name is not allowed"));
        }
        (name.to_string(), password.to_string())
    } else {
        let password = password_from_stdin(ctx)?;
        (arg, password)
    };
    let (client, printer) = ctx.connect()?;
    let req = AuthUserAddRequest {
        name: name.clone(),
        password,
        options: Some(UserAddOptions { no_password }),
    };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).user_add(req).await }
        })
        .await?;
    let text = format!("User {name} created\n");
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}

pub async fn delete(ctx: &mut Ctx) -> Result<()> {
    let name = one_name(ctx, "delete")?;
    let (client, printer) = ctx.connect()?;
    let req = AuthUserDeleteRequest { name: name.clone() };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).user_delete(req).await }
        })
        .await?;
    let text = format!("User {name} deleted\n");
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}

pub async fn get(ctx: &mut Ctx) -> Result<()> {
    let name = one_name(ctx, "get")?;
    let (client, printer) = ctx.connect()?;
    let req = AuthUserGetRequest { name: name.clone() };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).user_get(req).await }
        })
        .await?;
    if !ctx.parsed.bool("detail") {
        emit(&printer.user_get(&name, &resp)?);
        return Ok(());
    }
    // etcdctl prints this line itself, whatever the output format.
    println!("User: {name}");
    for role in resp.roles {
        println!();
        let req = AuthRoleGetRequest { role: role.clone() };
        let role_resp = client
            .unary(|ch| {
                let req = req.clone();
                async move { AuthClient::new(ch).role_get(req).await }
            })
            .await?;
        emit(&printer.role_get(&role, &role_resp)?);
    }
    Ok(())
}

pub async fn list(ctx: &mut Ctx) -> Result<()> {
    if !ctx.parsed.args.is_empty() {
        return Err(CliError::bad_args(
            "user list command requires no arguments",
        ));
    }
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move { AuthClient::new(ch).user_list(AuthUserListRequest {}).await })
        .await?;
    emit(&printer.user_list(&resp)?);
    Ok(())
}

pub async fn passwd(ctx: &mut Ctx) -> Result<()> {
    let name = one_name(ctx, "passwd")?;
    let password = password_from_stdin(ctx)?;
    let (client, printer) = ctx.connect()?;
    let req = AuthUserChangePasswordRequest { name, password };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).user_change_password(req).await }
        })
        .await?;
    let text = "Password updated\n".to_string();
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}

fn user_and_role(ctx: &Ctx, refusal: &str) -> Result<(String, String)> {
    match ctx.parsed.args.as_slice() {
        [user, role] => Ok((user.clone(), role.clone())),
        _ => Err(CliError::bad_args(refusal)),
    }
}

pub async fn grant_role(ctx: &mut Ctx) -> Result<()> {
    let (user, role) = user_and_role(
        ctx,
        "user grant command requires user name and role name as its argument",
    )?;
    let (client, printer) = ctx.connect()?;
    let req = AuthUserGrantRoleRequest {
        user: user.clone(),
        role: role.clone(),
    };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).user_grant_role(req).await }
        })
        .await?;
    let text = format!("Role {role} is granted to user {user}\n");
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}

pub async fn revoke_role(ctx: &mut Ctx) -> Result<()> {
    let (user, role) = user_and_role(
        ctx,
        "user revoke-role requires user name and role name as its argument",
    )?;
    let (client, printer) = ctx.connect()?;
    let req = AuthUserRevokeRoleRequest {
        name: user.clone(),
        role: role.clone(),
    };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { AuthClient::new(ch).user_revoke_role(req).await }
        })
        .await?;
    let text = format!("Role {role} is revoked from user {user}\n");
    emit(&printer.auth_change(text, &resp.header, resp.encode_to_vec())?);
    Ok(())
}
