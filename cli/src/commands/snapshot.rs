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

/// A zap production log line on stderr, as clientv3's snapshot code writes them.
fn log(caller: &str, msg: &str, fields: &[(&str, String)]) {
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

fn interrupted(message: impl Into<String>) -> CliError {
    CliError::exit(exit::INTERRUPTED, message)
}

/// The error text of Go's `os` operations: `open <path>: <errno text>`.
fn os_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    let lower: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{op} {path}: {lower}")
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
    let mut stream = client
        .open(deadline, |ch| async move {
            MaintenanceClient::new(ch)
                .max_decoding_message_size(usize::MAX)
                .snapshot(SnapshotRequest {})
                .await
        })
        .await
        .map_err(|e| e.with_code(exit::INTERRUPTED))?;
    log_client(
        "clientv3/maintenance.go:200",
        "opened snapshot stream; downloading",
    );
    log(
        "snapshot/v3_snapshot.go:127",
        "fetching snapshot",
        &[("endpoint", json_string(endpoint.as_bytes()))],
    );
    let mut size: u64 = 0;
    // The digest covers everything but its own last 32 bytes, which arrive last.
    let mut hasher = Sha256::default();
    let mut tail: Vec<u8> = Vec::with_capacity(64);
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
            Err(status) => {
                return Err(interrupted(crate::client::etcd_error_string(&status)));
            }
        };
        file.write_all(&blob)
            .map_err(|e| interrupted(os_error("write", part, &e)))?;
        size += blob.len() as u64;
        tail.extend_from_slice(&blob);
        if tail.len() > 32 {
            let keep = tail.split_off(tail.len() - 32);
            hasher.update(&tail);
            tail = keep;
        }
    }
    log_client(
        "clientv3/maintenance.go:208",
        "completed snapshot read; closing",
    );
    if size % 512 != 32 {
        return Err(interrupted(format!(
            "sha256 checksum not found [bytes: {size}]"
        )));
    }
    if hasher.finish()[..] != tail[..] {
        return Err(interrupted(format!(
            "sha256 checksum mismatch: the snapshot is corrupt [bytes: {size}]"
        )));
    }
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
