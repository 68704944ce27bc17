//! `member list`.

use api::etcdserverpb::{cluster_client::ClusterClient, MemberListRequest};

use super::{emit, Ctx};
use crate::error::Result;

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
