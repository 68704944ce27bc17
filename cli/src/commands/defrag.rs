//! `defrag [--cluster]`.

use api::etcdserverpb::{maintenance_client::MaintenanceClient, DefragmentRequest};

use super::Ctx;
use crate::args::{flag, Kind};
use crate::error::{exit, CliError, Result};
use crate::help::Spec;

pub const SPEC: Spec = Spec {
    name: "defrag",
    args: "[flags]",
    summary: "give each endpoint's free backend space back to the file system",
    about: "Rewrites each member's backend without the space that compaction freed. An etcr
member serves reads and writes meanwhile; an etcd member does not, so defragment etcd one
member at a time. Exits 1 if any endpoint failed.",
    flags: &[
        flag(
            "cluster",
            None,
            Kind::Bool,
            "false",
            "defragment every member, at the client URLs of the member list",
        ),
        flag(
            "data-dir",
            None,
            Kind::Str,
            "",
            "refused: etcrctl does not defragment a data directory offline",
        ),
    ],
};

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    if !ctx.parsed.str("data-dir").is_empty() {
        return Err(CliError::bad_feature(
            "--data-dir is refused: etcrctl does not defragment a data directory offline",
        ));
    }
    ctx.configure()?;
    let mut failures = 0;
    for ep in super::endpoint::endpoints(ctx).await? {
        let client = ctx.client_for(std::slice::from_ref(&ep))?.passthrough(&ep);
        let done = client
            .unary(|ch| async move {
                MaintenanceClient::new(ch)
                    .defragment(DefragmentRequest {})
                    .await
            })
            .await;
        match done {
            Ok(_) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(CliError::Exit { message, .. }) => {
                failures += 1;
                eprintln!("Failed to defragment etcd member[{ep}] ({message})");
            }
            Err(other) => return Err(other),
        }
    }
    if failures > 0 {
        return Err(CliError::Silent { code: exit::ERROR });
    }
    Ok(())
}
