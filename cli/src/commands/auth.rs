//! `auth enable`, `auth disable` and `auth status`.

use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthStatusRequest,
    AuthUserGrantRoleRequest,
};

use super::Ctx;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::help::{Group, Spec};

pub const GROUP: Group = Group {
    name: "auth",
    summary: "turn the checking of users' permissions on or off, or show whether it is on",
};

pub const ENABLE: Spec = Spec {
    name: "auth enable",
    args: "",
    summary: "require every request to come from a user with the permission it needs",
    about: "Needs a user named root. If root lacks the root role, the role is made and
granted to it first. From then on, requests need --user.",
    flags: &[],
};

pub const DISABLE: Spec = Spec {
    name: "auth disable",
    args: "",
    summary: "stop checking users and permissions (root only while checking is on)",
    about: "Users and roles are kept, and apply again at the next auth enable.",
    flags: &[],
};

pub const STATUS: Spec = Spec {
    name: "auth status",
    args: "",
    summary: "show whether permissions are checked, and the auth revision",
    about: "The auth revision counts the changes made to users, roles and permissions.
Needs a member of etcd 3.5 or later, or etcr; while checking is on, only root may ask.",
    flags: &[],
};

fn no_arguments(ctx: &Ctx, name: &str) -> Result<()> {
    if ctx.parsed.args.is_empty() {
        Ok(())
    } else {
        Err(CliError::bad_args(format!(
            "auth {name} command does not accept any arguments"
        )))
    }
}

/// What the server answered, as etcdctl compares it.
fn message(e: &CliError) -> &str {
    match e {
        CliError::Exit { message, .. } => message,
        _ => "",
    }
}

async fn enable_once(client: &Client) -> Result<()> {
    client
        .unary(|ch| async move { AuthClient::new(ch).auth_enable(AuthEnableRequest {}).await })
        .await
        .map(|_| ())
}

pub async fn enable(ctx: &mut Ctx) -> Result<()> {
    no_arguments(ctx, "enable")?;
    let (client, _) = ctx.connect()?;
    // etcdctl's way: a root user without the root role gets it, then enabling is tried again.
    if let Err(e) = enable_once(&client).await {
        if message(&e) != "etcdserver: root user does not have root role" {
            return Err(e);
        }
        let add = client
            .unary(|ch| async move {
                AuthClient::new(ch)
                    .role_add(AuthRoleAddRequest {
                        name: "root".into(),
                    })
                    .await
            })
            .await;
        if let Err(e) = add {
            if message(&e) != "etcdserver: role name already exists" {
                return Err(e);
            }
        }
        client
            .unary(|ch| async move {
                AuthClient::new(ch)
                    .user_grant_role(AuthUserGrantRoleRequest {
                        user: "root".into(),
                        role: "root".into(),
                    })
                    .await
            })
            .await?;
        enable_once(&client).await?;
    }
    println!("Authentication Enabled");
    Ok(())
}

pub async fn disable(ctx: &mut Ctx) -> Result<()> {
    no_arguments(ctx, "disable")?;
    let (client, _) = ctx.connect()?;
    client
        .unary(|ch| async move {
            AuthClient::new(ch)
                .auth_disable(AuthDisableRequest {})
                .await
        })
        .await?;
    println!("Authentication Disabled");
    Ok(())
}

pub async fn status(ctx: &mut Ctx) -> Result<()> {
    no_arguments(ctx, "status")?;
    let (client, printer) = ctx.connect()?;
    let r = client
        .unary(|ch| async move { AuthClient::new(ch).auth_status(AuthStatusRequest {}).await })
        .await?;
    super::emit(&printer.auth_status(&r)?);
    Ok(())
}
