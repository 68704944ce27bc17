//! `Maintenance.Snapshot`: the store as one file, streamed in chunks, as etcd streams its
//! backend: 32 KiB blobs with the bytes still to come, then the SHA-256 of everything sent
//! as a last blob (etcdctl checks it when restoring).

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use api::etcdserverpb as pb;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::mpsc;

use crate::context::Context;
use crate::errors::EtcdError;

/// etcd's chunk size for snapshot blobs.
const CHUNK: usize = 32 << 10;

/// Chunks read ahead of the client.
const READ_AHEAD: usize = 4;

/// Tells apart the temporary copies of snapshots taken at the same time.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Streams a consistent copy of the store to the holder of `token` (root alone while auth
/// is on, as in etcd). The copy and the reads run on a blocking thread; a client that stops
/// reading stops them (the channel fills), one that goes away ends them.
pub fn snapshot(
    ctx: Arc<Context>,
    token: Option<&str>,
    _request: pb::SnapshotRequest,
) -> BoxStream<'static, Result<pb::SnapshotResponse, tonic::Status>> {
    if let Err(e) = ctx.auth.check_admin(token) {
        let refused = crate::auth::unmapped(e);
        return futures::stream::once(async move { Err(refused) }).boxed();
    }
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = send_snapshot(&ctx, &tx) {
            let _ = tx.blocking_send(Err(e.into()));
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

type Sender = mpsc::Sender<Result<pb::SnapshotResponse, tonic::Status>>;

fn send_snapshot(ctx: &Context, tx: &Sender) -> Result<(), EtcdError> {
    let store_dir = ctx.store.path();
    let dir = store_dir.parent().unwrap_or(&store_dir);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("snapshot-{}-{n}.tmp", std::process::id()));
    let made = ctx.store.snapshot_to(&path);
    let opened = made.map_err(EtcdError::from).and_then(|()| {
        File::open(&path).map_err(|e| EtcdError::Internal(format!("snapshot: {e}")))
    });
    // Unlinked at once: the open file stays readable, and nothing is left behind.
    let _ = std::fs::remove_file(&path);
    let mut file = opened?;
    let io = |e: std::io::Error| EtcdError::Internal(format!("snapshot: {e}"));
    let total = file.metadata().map_err(io)?.len();
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut sent = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while sent < total {
        let want = CHUNK.min((total - sent) as usize);
        file.read_exact(&mut buf[..want]).map_err(io)?;
        sha.update(&buf[..want]);
        sent += want as u64;
        let chunk = pb::SnapshotResponse {
            header: None,
            remaining_bytes: total - sent,
            blob: buf[..want].to_vec(),
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            // The client went away.
            return Ok(());
        }
    }
    let digest = pb::SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: sha.finish().as_ref().to_vec(),
    };
    let _ = tx.blocking_send(Ok(digest));
    Ok(())
}
