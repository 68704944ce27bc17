//! `endpoint status` and `endpoint health`, optionally over every member (`--cluster`).

use std::time::Instant;

use api::etcdserverpb::{
    cluster_client::ClusterClient, maintenance_client::MaintenanceClient, HashKvRequest,
    MemberListRequest, RangeRequest, StatusRequest,
};

use super::{emit, Ctx};
use crate::args::{flag, Flag, Kind};
use crate::error::{exit, CliError, Result};
use crate::help::{Group, Spec};
use crate::printer::{EpHashKv, EpHealth, EpStatus};

pub const GROUP: Group = Group {
    name: "endpoint",
    summary: "ask each endpoint about itself",
};

/// The flags of every `endpoint` command (also settable as `ETCDCTL_CLUSTER`).
pub const FLAGS: &[Flag] = &[flag(
    "cluster",
    None,
    Kind::Bool,
    "false",
    "ask every member, at the client URLs of the member list, instead of --endpoints",
)];

pub const STATUS: Spec = Spec {
    name: "endpoint status",
    args: "[flags]",
    summary: "show each endpoint's member ID, version, size, leader and raft position",
    about: "With -w simple, each endpoint is one line of comma-separated fields: endpoint,
member ID, version, DB size, is leader, is learner, raft term, raft index, raft applied
index, errors. Exits 1 if an endpoint did not answer.",
    flags: FLAGS,
};

pub const HEALTH: Spec = Spec {
    name: "endpoint health",
    args: "[flags]",
    summary: "check that each endpoint serves linearizable reads",
    about: "An endpoint is healthy when it answers a linearizable read within --command-timeout
(an active alarm does not make it unhealthy). Exits 1 if any endpoint is unhealthy.",
    flags: FLAGS,
};

pub const HASHKV_FLAGS: &[Flag] = &[
    FLAGS[0],
    flag(
        "rev",
        None,
        Kind::Int,
        "0",
        "hash the history up to this revision (0: all of it)",
    ),
];

pub const HASHKV: Spec = Spec {
    name: "endpoint hashkv",
    args: "[flags]",
    summary: "show a hash of each endpoint's key-value history",
    about: "Members that applied the same history up to a revision agree on its hash; a
member that disagrees with the others has diverged. Exits 1 if an endpoint did not answer.",
    flags: HASHKV_FLAGS,
};

/// etcdctl's `endpointsFromCluster`: the flag's endpoints, or every member's client URLs.
pub async fn endpoints(ctx: &Ctx) -> Result<Vec<String>> {
    if !ctx.parsed.bool("cluster") {
        return Ok(ctx.endpoints());
    }
    let client = ctx.client_for(&ctx.endpoints())?;
    let members = client
        .unary(|ch| async move {
            ClusterClient::new(ch)
                .member_list(MemberListRequest {
                    linearizable: false,
                })
                .await
        })
        .await
        .map_err(|e| match e {
            CliError::Exit { message, .. } => CliError::exit(
                exit::ERROR,
                format!("failed to fetch endpoints from etcd cluster member list: {message}"),
            ),
            other => other,
        })?;
    Ok(members
        .members
        .into_iter()
        .flat_map(|m| m.client_ur_ls)
        .collect())
}

pub async fn status(ctx: &mut Ctx) -> Result<()> {
    let printer = ctx.configure()?;
    let mut list = Vec::new();
    let mut failed = false;
    for ep in endpoints(ctx).await? {
        let client = ctx.client_for(std::slice::from_ref(&ep))?.passthrough(&ep);
        let resp = client
            .unary(|ch| async move { MaintenanceClient::new(ch).status(StatusRequest {}).await })
            .await;
        match resp {
            Ok(status) => list.push(EpStatus {
                endpoint: ep,
                status,
            }),
            Err(CliError::Exit { message, .. }) => {
                failed = true;
                eprintln!("Failed to get the status of endpoint {ep} ({message})");
            }
            Err(other) => return Err(other),
        }
    }
    emit(&printer.endpoint_status(&list)?);
    if failed {
        return Err(CliError::Silent { code: exit::ERROR });
    }
    Ok(())
}

pub async fn hashkv(ctx: &mut Ctx) -> Result<()> {
    let printer = ctx.configure()?;
    let revision = ctx.parsed.int("rev");
    let mut list = Vec::new();
    let mut failure = None;
    for ep in endpoints(ctx).await? {
        let client = ctx.client_for(std::slice::from_ref(&ep))?.passthrough(&ep);
        let resp = client
            .unary(|ch| async move {
                MaintenanceClient::new(ch)
                    .hash_kv(HashKvRequest { revision })
                    .await
            })
            .await;
        match resp {
            Ok(resp) => list.push(EpHashKv { endpoint: ep, resp }),
            Err(CliError::Exit { message, .. }) => {
                eprintln!("Failed to get the hash of endpoint {ep} ({message})");
                failure = Some(message);
            }
            Err(other) => return Err(other),
        }
    }
    emit(&printer.endpoint_hashkv(&list)?);
    match failure {
        Some(message) => Err(CliError::exit(exit::ERROR, message)),
        None => Ok(()),
    }
}

async fn check(client: crate::client::Client, ep: String) -> Result<EpHealth> {
    let start = Instant::now();
    let got = client
        .unary(|ch| async move {
            let req = RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            };
            crate::client::kv(ch).range(req).await
        })
        .await;
    let mut h = EpHealth {
        endpoint: ep,
        took: crate::gofmt::duration_string(start.elapsed()),
        ..Default::default()
    };
    match got {
        Ok(_) => h.health = true,
        Err(CliError::Exit { message, .. }) if message == "etcdserver: permission denied" => {
            h.health = true
        }
        Err(CliError::Exit { message, .. }) => h.error = message,
        Err(other) => return Err(other),
    }
    Ok(h)
}

pub async fn health(ctx: &mut Ctx) -> Result<()> {
    let printer = ctx.configure()?;
    // Every endpoint is checked at once (each within the command timeout) and, as in
    // etcdctl, reported in the order the checks finish.
    let mut checks = tokio::task::JoinSet::new();
    for ep in endpoints(ctx).await? {
        let client = ctx.client_for(std::slice::from_ref(&ep))?;
        checks.spawn(check(client, ep));
    }
    let mut list = Vec::new();
    while let Some(done) = checks.join_next().await {
        list.push(done.map_err(|e| CliError::exit(exit::ERROR, e.to_string()))??);
    }
    emit(&printer.endpoint_health(&list)?);
    if list.iter().any(|h| !h.error.is_empty()) {
        return Err(CliError::exit(exit::ERROR, "unhealthy cluster"));
    }
    Ok(())
}
