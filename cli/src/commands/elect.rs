//! `elect <election-name> [proposal]` and `elect -l <election-name>`: campaigns through the
//! Election service and holds leadership until interrupted, or prints each leader in turn.

use api::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, RangeRequest, RangeResponse};
use api::v3electionpb::election_client::ElectionClient;
use api::v3electionpb::{CampaignRequest, LeaderRequest, ResignRequest};

use super::{emit, Ctx};
use crate::args::{flag, Kind};
use crate::client::{etcd_error_string, Client};
use crate::error::{exit, CliError, Result};
use crate::help::Spec;
use crate::printer::Printer;

pub const SPEC: Spec = Spec {
    name: "elect",
    args: "<election-name> [proposal] [flags]",
    summary: "campaign in a named election, or observe its leaders",
    about: "With a proposal, waits to lead the election, then prints the leader's key and
value (the proposal) and leads until interrupted, when it resigns. With --listen, prints
the key and value of each leader in turn, until interrupted.",
    flags: &[flag(
        "listen",
        Some('l'),
        Kind::Bool,
        "false",
        "observe the election's leaders instead of campaigning",
    )],
};

/// clientv3's default session TTL, which etcdctl's elect keeps.
const SESSION_TTL: i64 = 60;

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let args = ctx.parsed.args.clone();
    if args.is_empty() || args.len() > 2 {
        return Err(CliError::bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    if args.len() == 1 && !ctx.parsed.bool("listen") {
        return Err(CliError::bad_args("no proposal argument but -l not set"));
    }
    let keep_alive_client = ctx.client_for(&ctx.endpoints())?;
    let (client, printer) = ctx.connect()?;
    let name = args[0].clone().into_bytes();
    match args.get(1) {
        None => observe(&client, &printer, name).await,
        Some(proposal) => {
            campaign(
                &client,
                keep_alive_client,
                &printer,
                name,
                proposal.clone().into_bytes(),
            )
            .await
        }
    }
}

fn one_kv(
    header: Option<api::etcdserverpb::ResponseHeader>,
    kv: api::mvccpb::KeyValue,
) -> RangeResponse {
    RangeResponse {
        header,
        kvs: vec![kv],
        more: false,
        count: 1,
    }
}

async fn observe(client: &Client, printer: &Printer, name: Vec<u8>) -> Result<()> {
    let mut leaders = client
        .open(None, |ch| {
            let name = name.clone();
            async move {
                ElectionClient::new(ch)
                    .observe(LeaderRequest { name })
                    .await
            }
        })
        .await
        .map_err(|s| CliError::exit(exit::ERROR, etcd_error_string(&s)))?;
    let printing = async {
        while let Ok(Some(leader)) = leaders.message().await {
            let Some(kv) = leader.kv else { continue };
            emit(&printer.get(&one_kv(leader.header, kv), false)?);
        }
        Err(CliError::exit(exit::ERROR, "elect: observer lost"))
    };
    tokio::select! {
        r = printing => r,
        r = interrupted() => r,
    }
}

async fn campaign(
    client: &Client,
    keep_alive_client: Client,
    printer: &Printer,
    name: Vec<u8>,
    value: Vec<u8>,
) -> Result<()> {
    let lease = client
        .unary(|ch| async move {
            super::lease::client(ch)
                .lease_grant(LeaseGrantRequest {
                    ttl: SESSION_TTL,
                    id: 0,
                })
                .await
        })
        .await?
        .id;
    let keeping = tokio::spawn(super::lease::keep_alive_quietly(keep_alive_client, lease));
    let won = async {
        let won = client
            .open(None, |ch| {
                let (name, value) = (name.clone(), value.clone());
                async move {
                    ElectionClient::new(ch)
                        .campaign(CampaignRequest { name, lease, value })
                        .await
                }
            })
            .await
            .map_err(|s| CliError::exit(exit::ERROR, etcd_error_string(&s)))?;
        let leader = won.leader.unwrap_or_default();
        let read = leader.key.clone();
        let resp = client
            .unary(|ch| {
                let key = read.clone();
                async move {
                    crate::client::kv(ch)
                        .range(RangeRequest {
                            key,
                            ..Default::default()
                        })
                        .await
                }
            })
            .await?;
        emit(&printer.get(&resp, false)?);
        interrupted().await?;
        let resign = client
            .unary(|ch| {
                let leader = leader.clone();
                async move {
                    ElectionClient::new(ch)
                        .resign(ResignRequest {
                            leader: Some(leader),
                        })
                        .await
                }
            })
            .await;
        resign.map(|_| ())
    };
    // Interrupted before winning: the candidacy goes with the lease.
    let outcome = tokio::select! {
        r = won => r,
        r = interrupted() => r,
    };
    keeping.abort();
    let _ = client
        .unary(|ch| async move {
            super::lease::client(ch)
                .lease_revoke(LeaseRevokeRequest { id: lease })
                .await
        })
        .await;
    outcome
}

/// SIGINT or SIGTERM.
async fn interrupted() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::exit(exit::ERROR, e.to_string()))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
