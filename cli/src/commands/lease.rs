//! `lease grant|revoke|timetolive|list|keep-alive`.

use std::time::{Duration, Instant};

use crate::client::Conn;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest,
};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use super::{emit, Ctx};
use crate::args::{flag, Kind};
use crate::client::{stream_error, Client};
use crate::error::{exit, CliError, Result};
use crate::help::{Group, Spec};
use crate::printer::{Format, Printer};

pub const GROUP: Group = Group {
    name: "lease",
    summary: "leases: keys that disappear when their lease ends",
};

pub const GRANT: Spec = Spec {
    name: "lease grant",
    args: "<ttl>",
    summary: "create a lease that ends after <ttl> seconds without a keep-alive",
    about: "Prints the new lease's ID in hex; give it to put --lease=<ID> to attach keys. The
server may raise a short <ttl> to its minimum.",
    flags: &[],
};

pub const REVOKE: Spec = Spec {
    name: "lease revoke",
    args: "<lease ID>",
    summary: "end a lease now, deleting its keys",
    about: "",
    flags: &[],
};

pub const TIME_TO_LIVE: Spec = Spec {
    name: "lease timetolive",
    args: "<lease ID> [flags]",
    summary: "show a lease's granted and remaining TTL",
    about: "A lease that has ended (or never existed) is reported as already expired.",
    flags: &[flag(
        "keys",
        None,
        Kind::Bool,
        "false",
        "also list the keys attached to the lease",
    )],
};

pub const LIST: Spec = Spec {
    name: "lease list",
    args: "",
    summary: "list the IDs of the live leases",
    about: "",
    flags: &[],
};

pub const KEEP_ALIVE: Spec = Spec {
    name: "lease keep-alive",
    args: "[flags] <lease ID>",
    summary: "keep a lease alive until interrupted, or once with --once",
    about: "Renews the lease about every third of its TTL, printing each renewal, until the
lease ends (it is revoked, or a renewal did not arrive in time) or etcrctl is stopped.",
    flags: &[flag(
        "once",
        None,
        Kind::Bool,
        "false",
        "renew the lease once, then exit",
    )],
};

/// etcdctl's `leaseFromArgs`: a lease ID in hex.
fn lease_id(arg: &str) -> Result<i64> {
    crate::gofmt::parse_int(arg, 16)
        .map_err(|e| CliError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

fn lease(ch: Conn) -> LeaseClient<Conn> {
    LeaseClient::new(ch)
}

pub async fn grant(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args("lease grant command needs TTL argument"));
    }
    let ttl = crate::gofmt::parse_int(&ctx.parsed.args[0], 10)
        .map_err(|e| CliError::bad_args(format!("bad TTL ({e})")))?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move {
            lease(ch)
                .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                .await
        })
        .await
        .map_err(|e| e.wrapped("failed to grant lease"))?;
    emit(&printer.lease_grant(&resp)?);
    Ok(())
}

pub async fn revoke(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args("lease revoke command needs 1 argument"));
    }
    let id = lease_id(&ctx.parsed.args[0])?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move { lease(ch).lease_revoke(LeaseRevokeRequest { id }).await })
        .await
        .map_err(|e| e.wrapped("failed to revoke lease"))?;
    emit(&printer.lease_revoke(id, &resp)?);
    Ok(())
}

pub async fn time_to_live(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args(
            "lease timetolive command needs lease ID as argument",
        ));
    }
    let keys = ctx.parsed.bool("keys");
    let id = lease_id(&ctx.parsed.args[0])?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move {
            lease(ch)
                .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
                .await
        })
        .await
        .map_err(|e| e.with_code(exit::BAD_CONNECTION))?;
    emit(&printer.lease_time_to_live(&resp, keys)?);
    Ok(())
}

pub async fn list(ctx: &mut Ctx) -> Result<()> {
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move { lease(ch).lease_leases(LeaseLeasesRequest {}).await })
        .await
        .map_err(|e| e.with_code(exit::BAD_CONNECTION))?;
    emit(&printer.lease_leases(&resp)?);
    Ok(())
}

/// clientv3's `ErrLeaseNotFound`, for a keep-alive answered with TTL <= 0.
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

pub async fn keep_alive(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args(
            "lease keep-alive command needs lease ID as argument",
        ));
    }
    let id = lease_id(&ctx.parsed.args[0])?;
    let once = ctx.parsed.bool("once");
    let (client, printer) = ctx.connect()?;
    if once {
        let resp = match KeepAlive::open(&client, id, Some(client.deadline())).await {
            Ok(mut stream) => stream.next(Some(client.deadline())).await,
            Err(e) => Err(e),
        };
        return match resp {
            Ok(Some(r)) if r.ttl > 0 => {
                emit(&printer.lease_keep_alive(&r)?);
                Ok(())
            }
            Ok(_) => Err(CliError::exit(exit::BAD_CONNECTION, LEASE_NOT_FOUND)),
            Err(e) => Err(e.with_code(exit::BAD_CONNECTION)),
        };
    }
    keep_alive_until_gone(&client, &printer, id).await?;
    if printer.format == Format::Simple {
        println!("lease {id:016x} expired or revoked.");
    }
    Ok(())
}

/// Renews every third of the TTL, as clientv3 does, until the lease is gone: answered with
/// TTL <= 0, or not answered within its TTL.
async fn keep_alive_until_gone(client: &Client, printer: &Printer, id: i64) -> Result<()> {
    let mut stream = KeepAlive::open(client, id, None)
        .await
        .map_err(|e| e.with_code(exit::BAD_CONNECTION))?;
    let mut deadline: Option<Instant> = None;
    loop {
        let Ok(Some(resp)) = stream.next(deadline).await else {
            return Ok(());
        };
        if resp.ttl <= 0 {
            return Ok(());
        }
        emit(&printer.lease_keep_alive(&resp)?);
        let ttl = Duration::from_secs(resp.ttl as u64);
        deadline = Some(Instant::now() + ttl);
        tokio::time::sleep(ttl / 3).await;
        if !stream.send().await {
            return Ok(());
        }
    }
}

/// A keep-alive stream for one lease.
struct KeepAlive {
    id: i64,
    requests: tokio::sync::mpsc::Sender<LeaseKeepAliveRequest>,
    responses: tonic::Streaming<LeaseKeepAliveResponse>,
}

impl KeepAlive {
    /// Opens the stream with the first renewal already queued: the server answers the
    /// call only once it has something to say.
    async fn open(client: &Client, id: i64, deadline: Option<Instant>) -> Result<KeepAlive> {
        let sender = std::sync::Mutex::new(None);
        let responses = client
            .open(deadline, |ch| {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let _ = tx.try_send(LeaseKeepAliveRequest { id });
                if let Ok(mut slot) = sender.lock() {
                    *slot = Some(tx);
                }
                async move { lease(ch).lease_keep_alive(ReceiverStream::new(rx)).await }
            })
            .await
            .map_err(|s| stream_error(&s))?;
        let requests = sender
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| CliError::exit(exit::ERROR, "keep-alive stream lost"))?;
        Ok(KeepAlive {
            id,
            requests,
            responses,
        })
    }

    async fn send(&self) -> bool {
        self.requests
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .is_ok()
    }

    /// The next answer, waiting until `deadline` if any; `None` when the stream ended or
    /// the deadline passed.
    async fn next(&mut self, deadline: Option<Instant>) -> Result<Option<LeaseKeepAliveResponse>> {
        let next = self.responses.message();
        let got = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), next).await {
                Ok(got) => got,
                Err(_) => return Ok(None),
            },
            None => next.await,
        };
        got.map_err(|s| stream_error(&s))
    }
}
