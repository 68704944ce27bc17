//! `member list`.

use api::etcdserverpb::{cluster_client::ClusterClient, MemberListRequest};

use super::{emit, Ctx};
use crate::error::Result;
use crate::help::{Group, Spec};

pub const GROUP: Group = Group {
    name: "member",
    summary: "the members of the cluster",
};

pub const LIST: Spec = Spec {
    name: "member list",
    args: "[flags]",
    summary: "list the members of the cluster",
    about: "With -w simple, each member is one line of comma-separated fields: ID (hex),
status (started, or unstarted for a member that has not joined yet), name,
peer URLs, client URLs, is learner.",
    flags: &[],
};

pub async fn list(ctx: &mut Ctx) -> Result<()> {
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move {
            ClusterClient::new(ch)
                .member_list(MemberListRequest {
                    linearizable: false,
                })
                .await
        })
        .await?;
    emit(&printer.member_list(&resp)?);
    Ok(())
}
