//! `move-leader <member ID>`.

use api::etcdserverpb::{maintenance_client::MaintenanceClient, MoveLeaderRequest, StatusRequest};

use super::{emit, Ctx};
use crate::error::{CliError, Result};
use crate::help::Spec;

pub const SPEC: Spec = Spec {
    name: "move-leader",
    args: "<member ID>",
    summary: "hand the leadership to another member",
    about: "Finds the leader among --endpoints (one of them must be it) and asks it to hand
over to the member <member ID> (hex, as member list prints it).",
    flags: &[],
};

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args("move-leader command needs 1 argument"));
    }
    let target = crate::gofmt::parse_uint(&ctx.parsed.args[0], 16).map_err(CliError::bad_args)?;
    let printer = ctx.configure()?;
    let endpoints = ctx.endpoints();
    let mut leader = None;
    for ep in &endpoints {
        let status = ctx
            .client_for(std::slice::from_ref(ep))?
            .passthrough(ep)
            .unary(|ch| async move { MaintenanceClient::new(ch).status(StatusRequest {}).await })
            .await?;
        let member = status.header.as_ref().map_or(0, |h| h.member_id);
        if member == status.leader {
            leader = Some((ctx.client_for(std::slice::from_ref(ep))?, status.leader));
            break;
        }
    }
    let Some((client, leader_id)) = leader else {
        return Err(CliError::bad_args(format!(
            "no leader endpoint given at [{}]",
            endpoints.join(" ")
        )));
    };
    let resp = client
        .unary(|ch| async move {
            MaintenanceClient::new(ch)
                .move_leader(MoveLeaderRequest { target_id: target })
                .await
        })
        .await?;
    emit(&printer.move_leader(leader_id, target, &resp)?);
    Ok(())
}
