//! `snapshot save <file>`: the server's backend, streamed to a file, checked against the
//! SHA-256 digest the server appends.

use std::io::Write;
use std::time::Instant;

use api::etcdserverpb::{maintenance_client::MaintenanceClient, SnapshotRequest};

use super::Ctx;
use crate::error::{exit, CliError, Result};
use crate::gofmt::json_string;
use crate::help::{Group, Spec};
use crate::sha256::Sha256;

pub const GROUP: Group = Group {
    name: "snapshot",
    summary: "copies of a member's backend",
};

pub const SAVE: Spec = Spec {
    name: "snapshot save",
    args: "<file>",
    summary: "write a member's backend to <file>",
    about: "Asks the single endpoint in --endpoints for its backend, writes it to <file>.part,
checks the SHA-256 digest that ends it, then renames the file to <file>. Without an
explicit --command-timeout there is no time limit. Exits 5 if the copy failed.",
    flags: &[],
};

pub const STATUS: Spec = Spec {
    name: "snapshot status",
    args: "<file>",
    summary: "show the hash, revision, key count and size of a snapshot file",
    about:
        "Reads a snapshot that etcd (3.4 or later) wrote, a bbolt file, or one saved from etcr, a
copy of its LMDB store. With -w simple, prints one line: the CRC-32C of every bucket (table) and
key (hex), the revision, the number of keys and the size.",
    flags: &[],
};

/// CRC-32C (Castagnoli), as Go's `crc32.MakeTable(crc32.Castagnoli)` computes it.
#[derive(Default)]
struct Crc32c {
    crc: u32,
}

impl Crc32c {
    fn update(&mut self, data: &[u8]) {
        let mut crc = !self.crc;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        self.crc = !crc;
    }
}

/// What `snapshot status` reports (etcd's `snapshot.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// etcd's `Status`: a CRC-32C over every bucket's name and its keys and values in order;
/// the revision of the last key of the `key` bucket.
fn db_status(db: &crate::bolt::Db) -> std::result::Result<DbStatus, String> {
    let mut h = Crc32c::default();
    let mut status = DbStatus {
        hash: 0,
        revision: 0,
        total_key: 0,
        total_size: db.size(),
    };
    for root in db.roots()? {
        if !root.is_bucket {
            return Err(format!(
                "cannot get hash of bucket {}",
                String::from_utf8_lossy(root.key)
            ));
        }
        h.update(root.key);
        for e in db.bucket(&root)? {
            h.update(e.key);
            if !e.is_bucket {
                h.update(e.value);
            }
            if root.key == b"key" {
                if let Some(main) = e.key.get(..8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(main);
                    status.revision = i64::from_be_bytes(b);
                }
            }
            status.total_key += 1;
        }
    }
    status.hash = h.crc;
    Ok(status)
}

pub async fn status(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args(
            "snapshot status requires exactly one argument",
        ));
    }
    let printer = ctx.configure()?;
    let path = &ctx.parsed.args[0];
    let fail = |m: String| CliError::exit(exit::ERROR, m);
    std::fs::metadata(path).map_err(|e| fail(os_error("stat", path, &e)))?;
    let data = std::fs::read(path).map_err(|e| fail(os_error("open", path, &e)))?;
    let status = match crate::bolt::Db::open(data) {
        Ok(db) => db_status(&db).map_err(fail)?,
        // Not etcd's bbolt: etcr's snapshots are a copy of its LMDB store. A file that is
        // neither gets bbolt's complaint, as from etcdctl.
        Err(not_bolt) => match mvcc::snapshot_status(path) {
            Ok(s) => DbStatus {
                hash: s.hash,
                revision: s.revision,
                total_key: s.total_keys,
                total_size: s.size,
            },
            Err(_) => return Err(fail(not_bolt)),
        },
    };
    super::emit(&printer.db_status(&status)?);
    Ok(())
}

/// A zap production log line on stderr, as clientv3's snapshot code writes them.
pub(super) fn log(caller: &str, msg: &str, fields: &[(&str, String)]) {
    let mut line = format!(
        "{{\"level\":\"info\",\"ts\":{},\"caller\":\"{caller}\",\"msg\":{}",
        crate::clock::epoch_seconds(),
        json_string(msg.as_bytes())
    );
    for (k, v) in fields {
        line.push_str(&format!(",\"{k}\":{v}"));
    }
    eprintln!("{line}}}");
}

/// The same, from clientv3's own logger (ISO 8601 times).
fn log_client(caller: &str, msg: &str) {
    eprintln!(
        "{{\"level\":\"info\",\"ts\":\"{}\",\"caller\":\"{caller}\",\"msg\":{}}}",
        crate::clock::zap_timestamp(),
        json_string(msg.as_bytes())
    );
}

/// clientv3's warning when the snapshot stream fails, and the error etcdctl then prints.
fn receive_failed(status: &tonic::Status) -> CliError {
    eprintln!(
        "{{\"level\":\"warn\",\"ts\":\"{}\",\"caller\":\"clientv3/maintenance.go:210\",\"msg\":\"failed to receive from snapshot stream; closing\",\"error\":{}}}",
        crate::clock::zap_timestamp(),
        json_string(crate::client::grpc_error_string(status).as_bytes())
    );
    interrupted(crate::client::etcd_error_string(status))
}

fn interrupted(message: impl Into<String>) -> CliError {
    CliError::exit(exit::INTERRUPTED, message)
}

/// The error text of Go's `os` operations: `open <path>: <errno text>`.
pub(super) fn os_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    let lower: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{op} {path}: {lower}")
}

/// The SHA-256 digest etcd appends to a snapshot, checked as the bytes stream by: it
/// covers everything before its own 32 bytes, which come last.
#[derive(Default)]
struct TrailingDigest {
    hasher: Sha256,
    tail: Vec<u8>,
    size: u64,
}

impl TrailingDigest {
    fn push(&mut self, blob: &[u8]) {
        self.size += blob.len() as u64;
        self.tail.extend_from_slice(blob);
        if self.tail.len() > 32 {
            let keep = self.tail.split_off(self.tail.len() - 32);
            self.hasher.update(&self.tail);
            self.tail = keep;
        }
    }

    /// The snapshot's size, if it ends with the digest of what precedes it. etcdctl 3.4
    /// checks only that the size leaves room for a digest (a whole number of 512-byte
    /// sectors plus 32 bytes); etcrctl also checks the digest itself.
    fn check(self) -> std::result::Result<u64, String> {
        let size = self.size;
        if size % 512 != 32 {
            return Err(format!("sha256 checksum not found [bytes: {size}]"));
        }
        if self.hasher.finish()[..] != self.tail[..] {
            return Err(format!(
                "sha256 checksum mismatch: the snapshot is corrupt [bytes: {size}]"
            ));
        }
        Ok(size)
    }
}

pub async fn save(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args("snapshot save expects one argument"));
    }
    ctx.configure()?;
    let endpoints = ctx.endpoints();
    if endpoints.len() != 1 {
        return Err(interrupted(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            endpoints.join(" ")
        )));
    }
    let path = ctx.parsed.args[0].clone();
    let part = format!("{path}.part");
    let result = fetch(ctx, &endpoints[0], &path, &part).await;
    // etcdctl removes the partial file however the copy ended.
    let _ = std::fs::remove_file(&part);
    result?;
    println!("Snapshot saved at {path}");
    Ok(())
}

async fn fetch(ctx: &Ctx, endpoint: &str, path: &str, part: &str) -> Result<()> {
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(part)
            .map_err(|e| {
                interrupted(format!(
                    "could not open {part} ({})",
                    os_error("open", part, &e)
                ))
            })?
    };
    log(
        "snapshot/v3_snapshot.go:119",
        "created temporary db file",
        &[("path", json_string(part.as_bytes()))],
    );
    let client = ctx.client_for(&[endpoint.to_string()])?;
    let deadline = ctx
        .parsed
        .changed("command-timeout")
        .then(|| client.deadline());
    let started = Instant::now();
    let stream = client
        .open(deadline, |ch| async move {
            MaintenanceClient::new(ch)
                .max_decoding_message_size(usize::MAX)
                .snapshot(SnapshotRequest {})
                .await
        })
        .await;
    // clientv3 sees a refusal only when it first reads the stream it has opened.
    if let Err(status) = &stream {
        if status.message() == crate::client::deadline_exceeded().message() {
            return Err(interrupted(crate::client::stream_error_string(status)));
        }
    }
    log_client(
        "clientv3/maintenance.go:200",
        "opened snapshot stream; downloading",
    );
    log(
        "snapshot/v3_snapshot.go:127",
        "fetching snapshot",
        &[("endpoint", json_string(endpoint.as_bytes()))],
    );
    let mut stream = stream.map_err(|status| receive_failed(&status))?;
    let mut digest = TrailingDigest::default();
    loop {
        let next = stream.message();
        let got = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), next)
                .await
                .map_err(|_| interrupted("context deadline exceeded"))?,
            None => next.await,
        };
        let blob = match got {
            Ok(Some(resp)) => resp.blob,
            Ok(None) => break,
            Err(status) => return Err(receive_failed(&status)),
        };
        file.write_all(&blob)
            .map_err(|e| interrupted(os_error("write", part, &e)))?;
        digest.push(&blob);
    }
    log_client(
        "clientv3/maintenance.go:208",
        "completed snapshot read; closing",
    );
    let size = digest.check().map_err(interrupted)?;
    file.sync_all()
        .map_err(|e| interrupted(os_error("sync", part, &e)))?;
    drop(file);
    log(
        "snapshot/v3_snapshot.go:142",
        "fetched snapshot",
        &[
            ("endpoint", json_string(endpoint.as_bytes())),
            (
                "size",
                json_string(crate::gofmt::humanize_bytes(size).as_bytes()),
            ),
            ("took", started.elapsed().as_secs_f64().to_string()),
        ],
    );
    std::fs::rename(part, path).map_err(|e| {
        interrupted(format!(
            "could not rename {part} to {path} ({})",
            os_error("rename", &format!("{part} {path}"), &e)
        ))
    })?;
    log(
        "snapshot/v3_snapshot.go:152",
        "saved",
        &[("path", json_string(path.as_bytes()))],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot as etcd sends it: `data`, then its SHA-256, in blobs of `chunk` bytes.
    fn stream(data: &[u8], chunk: usize) -> TrailingDigest {
        let mut h = Sha256::default();
        h.update(data);
        let mut all = data.to_vec();
        all.extend_from_slice(&h.finish());
        let mut d = TrailingDigest::default();
        for blob in all.chunks(chunk) {
            d.push(blob);
        }
        d
    }

    #[test]
    fn crc32c_matches_castagnoli() {
        let mut h = Crc32c::default();
        h.update(b"123456");
        h.update(b"789");
        assert_eq!(h.crc, 0xe306_9283);
    }

    #[test]
    fn the_trailing_digest_is_checked() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        for chunk in [1, 31, 32, 33, 1000, 5000] {
            assert_eq!(stream(&data, chunk).check(), Ok(4128), "chunk {chunk}");
        }
        // One flipped bit of the data, with the digest of the original.
        let mut flipped = data.clone();
        flipped[10] ^= 1;
        let mut d = TrailingDigest::default();
        d.push(&flipped);
        d.push(&stream(&data, 5000).tail);
        assert!(d
            .check()
            .unwrap_err()
            .starts_with("sha256 checksum mismatch"));
        assert_eq!(
            stream(&data[..100], 64).check(),
            Err("sha256 checksum not found [bytes: 132]".to_string())
        );
    }
}
