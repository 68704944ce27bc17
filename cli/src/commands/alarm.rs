//! `alarm list` and `alarm disarm`.

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::{
    maintenance_client::MaintenanceClient, AlarmRequest, AlarmResponse, AlarmType,
};

use super::{emit, Ctx};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::help::{Group, Spec};

pub const GROUP: Group = Group {
    name: "alarm",
    summary: "the alarms members raise (NOSPACE: the backend is full; CORRUPT)",
};

pub const LIST: Spec = Spec {
    name: "alarm list",
    args: "",
    summary: "list the active alarms",
    about: "With -w simple, each alarm is one line: the member that raised it and its type.",
    flags: &[],
};

pub const DISARM: Spec = Spec {
    name: "alarm disarm",
    args: "",
    summary: "clear every alarm, and list the ones cleared",
    about: "Clear a NOSPACE alarm only once space is free again (after compaction and
defrag); a full member raises it again at its next write.",
    flags: &[],
};

fn no_arguments(ctx: &Ctx, name: &str) -> Result<()> {
    if ctx.parsed.args.is_empty() {
        Ok(())
    } else {
        Err(CliError::bad_args(format!(
            "alarm {name} command accepts no arguments"
        )))
    }
}

async fn request(client: &Client, req: AlarmRequest) -> Result<AlarmResponse> {
    client
        .unary(|ch| async move { MaintenanceClient::new(ch).alarm(req).await })
        .await
}

fn get() -> AlarmRequest {
    AlarmRequest {
        action: AlarmAction::Get as i32,
        member_id: 0,
        alarm: AlarmType::None as i32,
    }
}

pub async fn list(ctx: &mut Ctx) -> Result<()> {
    no_arguments(ctx, "list")?;
    let (client, printer) = ctx.connect()?;
    let resp = request(&client, get()).await?;
    emit(&printer.alarm(&resp)?);
    Ok(())
}

/// clientv3's `AlarmDisarm` of every alarm: lists them, then clears each in turn; the
/// result gathers what each clearing returned (and has no header).
pub async fn disarm(ctx: &mut Ctx) -> Result<()> {
    no_arguments(ctx, "disarm")?;
    let (client, printer) = ctx.connect()?;
    let active = request(&client, get()).await?;
    let mut cleared = AlarmResponse::default();
    for a in active.alarms {
        let req = AlarmRequest {
            action: AlarmAction::Deactivate as i32,
            member_id: a.member_id,
            alarm: a.alarm,
        };
        cleared.alarms.extend(request(&client, req).await?.alarms);
    }
    emit(&printer.alarm(&cleared)?);
    Ok(())
}
