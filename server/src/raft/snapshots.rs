//! Snapshots between members: the leader streams a compacted copy of its store; a follower
//! writes the stream to a file and installs it when raft hands the snapshot out.

use crossbeam_channel::Sender;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use raft_core::Message;
use tracing::{info, warn};
use transport::IncomingSnapshot;

use super::driver::Input;
use super::shared::Shared;
use super::PeerTransport;

#[derive(Clone)]
pub struct Snapshots {
    pub store: Arc<mvcc::Store>,
    pub dir: PathBuf,
    pub rt: tokio::runtime::Handle,
    pub inputs: Sender<Input>,
    pub shared: Arc<Shared>,
    /// Members a snapshot is being sent to: one transfer per member at a time.
    pub sending: Arc<Mutex<HashSet<u64>>>,
    /// Makes every snapshot file name unique, so two transfers never share a file.
    pub seq: Arc<AtomicU64>,
}

impl Snapshots {
    /// Sends the store to `msg.to` behind the snapshot message, in the background.
    pub fn send(&self, msg: Message, transport: PeerTransport) {
        let to = msg.to;
        if !self
            .sending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(to)
        {
            // The transfer under way reports its outcome to raft; a second copy would only
            // compete with it for bandwidth.
            return;
        }
        let this = self.clone();
        self.rt.spawn(async move {
            let ok = match this.send_inner(msg, transport).await {
                Ok(bytes) => {
                    info!(to = %format!("{to:x}"), bytes, "snapshot sent");
                    true
                }
                Err(e) => {
                    warn!(to = %format!("{to:x}"), "sending a snapshot failed: {e}");
                    false
                }
            };
            this.sending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&to);
            let _ = this.inputs.send(Input::SnapshotSent { to, ok });
        });
    }

    async fn send_inner(&self, msg: Message, transport: PeerTransport) -> Result<u64, String> {
        let index = msg.snapshot.as_ref().map(|s| s.metadata.index).unwrap_or(0);
        // The copy must cover the snapshot's index: the follower skips what it claims to hold.
        self.shared
            .wait_applied(index, Duration::from_secs(60))
            .await
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let file = self
            .dir
            .join(format!("send-{:x}-{index}-{seq}.mdb", msg.to));
        let store = self.store.clone();
        let path = file.clone();
        tokio::task::spawn_blocking(move || store.snapshot_to(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let data = tokio::fs::File::open(&file)
            .await
            .map_err(|e| e.to_string())?;
        let result = transport.send_snapshot(msg.to, msg, Box::new(data)).await;
        let _ = tokio::fs::remove_file(&file).await;
        result.map_err(|e| e.to_string())
    }

    /// Writes an incoming snapshot to disk, then hands its message to raft.
    pub async fn receive(&self, mut incoming: IncomingSnapshot<Message>) {
        let index = incoming
            .meta
            .snapshot
            .as_ref()
            .map(|s| s.metadata.index)
            .unwrap_or(0);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let file = self
            .dir
            .join(format!("recv-{:x}-{index}-{seq}.mdb", incoming.from));
        let written = async {
            tokio::fs::create_dir_all(&self.dir).await?;
            let mut out = tokio::fs::File::create(&file).await?;
            let bytes = tokio::io::copy(&mut incoming.data, &mut out).await?;
            out.sync_all().await?;
            Ok::<u64, std::io::Error>(bytes)
        }
        .await;
        match written {
            Ok(bytes) => {
                info!(from = %format!("{:x}", incoming.from), index, bytes, "snapshot received");
                let _ = self.inputs.send(Input::PeerSnapshot {
                    msg: incoming.meta,
                    file,
                });
            }
            Err(e) => {
                warn!("receiving a snapshot failed: {e}");
                let _ = tokio::fs::remove_file(&file).await;
            }
        }
    }
}
