//! `lock <lockname> [exec-command arg1 arg2 ...]`: holds a named lock through the Lock
//! service, for as long as a command runs or until interrupted.

use api::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, RangeRequest};
use api::v3lockpb::lock_client::LockClient;
use api::v3lockpb::{LockRequest, UnlockRequest};

use super::{emit, Ctx};
use crate::args::{flag, Kind};
use crate::client::Client;
use crate::error::{exit, CliError, Result};
use crate::help::Spec;

pub const SPEC: Spec = Spec {
    name: "lock",
    args: "<lockname> [exec-command arg1 arg2 ...] [flags]",
    summary: "hold a named lock",
    about: "Waits until no other client holds <lockname>, then holds it with a lease of its own.
With a command, runs it while holding the lock (its environment gets ETCD_LOCK_KEY and
ETCD_LOCK_REV) and releases the lock when it exits. Without one, prints the lock's key and
holds the lock until interrupted. The lock also ends if the lease cannot be kept alive.",
    flags: &[flag(
        "ttl",
        None,
        Kind::Int,
        "10",
        "seconds the lock outlives this process if it dies without releasing it",
    )],
};

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let Some((name, command)) = ctx.parsed.args.split_first() else {
        return Err(CliError::bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let (name, command) = (name.clone(), command.to_vec());
    let ttl = ctx.parsed.int("ttl");
    let (client, printer) = ctx.connect()?;
    let lease = client
        .unary(|ch| async move {
            super::lease::client(ch)
                .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                .await
        })
        .await?
        .id;
    let keeping = tokio::spawn(super::lease::keep_alive_quietly(client_clone(ctx)?, lease));
    let held = client
        .open(None, |ch| {
            let name = name.clone().into_bytes();
            async move { LockClient::new(ch).lock(LockRequest { name, lease }).await }
        })
        .await
        .map_err(|s| CliError::exit(exit::ERROR, crate::client::etcd_error_string(&s)))?;
    let outcome = if command.is_empty() {
        hold_until_interrupted(&client, &printer, &held.key).await
    } else {
        let vars = [
            (
                "ETCD_LOCK_KEY",
                String::from_utf8_lossy(&held.key).into_owned(),
            ),
            (
                "ETCD_LOCK_REV",
                held.header.as_ref().map_or(0, |h| h.revision).to_string(),
            ),
        ];
        super::watch::run_command(&command, &ctx.env, &vars)
            .map_err(|why| CliError::exit(exit::ERROR, why))
    };
    let key = held.key.clone();
    let unlocked = client
        .unary(|ch| {
            let key = key.clone();
            async move { LockClient::new(ch).unlock(UnlockRequest { key }).await }
        })
        .await;
    keeping.abort();
    let _ = client
        .unary(|ch| async move {
            super::lease::client(ch)
                .lease_revoke(LeaseRevokeRequest { id: lease })
                .await
        })
        .await;
    outcome?;
    unlocked.map(|_| ())
}

fn client_clone(ctx: &Ctx) -> Result<Client> {
    ctx.client_for(&ctx.endpoints())
}

/// Prints the lock's key as `get` prints it, then waits for SIGINT or SIGTERM.
async fn hold_until_interrupted(
    client: &Client,
    printer: &crate::printer::Printer,
    key: &[u8],
) -> Result<()> {
    let read = key.to_vec();
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
    if resp.kvs.is_empty() {
        return Err(CliError::exit(exit::ERROR, "lock lost on init"));
    }
    emit(&printer.get(&resp, false)?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::exit(exit::ERROR, e.to_string()))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
