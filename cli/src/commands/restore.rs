//! `snapshot restore <file>`: a new member's data directory from a snapshot saved from etcr,
//! with etcdctl 3.4's flags, checks, log lines and errors. The store is the snapshot's
//! database reset for the new member set (`mvcc::restore_store`); there is no raft log, so
//! each member started on its directory with the same `--name`, `--initial-cluster` and
//! `--initial-cluster-token` bootstraps a new cluster that has every key and revision.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::Ctx;
use crate::args::{flag, Kind};
use crate::error::{exit, CliError, Result};
use crate::gofmt::json_string;
use crate::help::Spec;
use crate::sha256::Sha256;

pub const SPEC: Spec = Spec {
    name: "snapshot restore",
    args: "<file>",
    summary: "make a new member's data directory from a snapshot saved from etcr",
    about: "Writes --data-dir (which must not exist) for the member --name of the new cluster
--initial-cluster: the snapshot's keys, revisions, leases and alarms, and the new member set.
Start each member on its directory with the same --name, --initial-cluster and
--initial-cluster-token. The SHA-256 that `snapshot save` appends is checked unless
--skip-hash-check (needed for a copy of a store's data.mdb). etcd's bbolt snapshots are refused.",
    flags: &[
        flag(
            "data-dir",
            None,
            Kind::Str,
            "",
            "Path to the data directory",
        ),
        flag(
            "wal-dir",
            None,
            Kind::Str,
            "",
            "refused: etcr keeps its log in the data directory",
        ),
        flag(
            "initial-cluster",
            None,
            Kind::Str,
            "default=http://localhost:2380",
            "Initial cluster configuration for restore bootstrap",
        ),
        flag(
            "initial-cluster-token",
            None,
            Kind::Str,
            "etcd-cluster",
            "Initial cluster token for the etcd cluster during restore bootstrap",
        ),
        flag(
            "initial-advertise-peer-urls",
            None,
            Kind::Str,
            "http://localhost:2380",
            "List of this member's peer URLs to advertise to the rest of the cluster",
        ),
        flag(
            "name",
            None,
            Kind::Str,
            "default",
            "Human-readable name for this member",
        ),
        flag(
            "skip-hash-check",
            None,
            Kind::Bool,
            "false",
            "Ignore snapshot integrity hash value (required if copied from data directory)",
        ),
    ],
};

const SHA256_LEN: u64 = 32;

fn fail(message: impl Into<String>) -> CliError {
    CliError::exit(exit::ERROR, message)
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    if ctx.parsed.args.len() != 1 {
        return Err(CliError::bad_args(
            "snapshot restore requires exactly one argument",
        ));
    }
    if !ctx.parsed.str("wal-dir").is_empty() {
        return Err(CliError::bad_feature(
            "--wal-dir is refused: etcr keeps its log in the data directory",
        ));
    }
    let snapshot = ctx.parsed.args[0].clone();
    let name = ctx.parsed.str("name");
    let members = initial_cluster(&ctx.parsed.str("initial-cluster"))?;
    verify_bootstrap(
        &name,
        &members,
        &ctx.parsed.str("initial-advertise-peer-urls"),
    )?;
    let set = mvcc::new_member_set(&members, &ctx.parsed.str("initial-cluster-token"));
    let data_dir = match ctx.parsed.str("data-dir") {
        d if d.is_empty() => format!("{name}.etcd"),
        d => d,
    };
    if Path::new(&data_dir).exists() {
        return Err(fail(format!("data-dir {} exists", go_quote(&data_dir))));
    }
    let member = Path::new(&data_dir).join("member");
    let dirs = [
        ("path", json_string(snapshot.as_bytes())),
        (
            "wal-dir",
            json_string(member.join("wal").display().to_string().as_bytes()),
        ),
        ("data-dir", json_string(data_dir.as_bytes())),
        (
            "kv-dir",
            json_string(member.join("kv").display().to_string().as_bytes()),
        ),
    ];
    super::snapshot::log("snapshot/v3_snapshot.go:296", "restoring snapshot", &dirs);
    let db_len = checked_db_len(&snapshot, ctx.parsed.bool("skip-hash-check"))?;
    let written = mvcc::restore_store(Path::new(&snapshot), db_len, &member.join("kv"), &set);
    if let Err(e) = written {
        // Unlike etcdctl, which leaves what it wrote, so that a second try is not refused.
        let _ = std::fs::remove_dir_all(&data_dir);
        return Err(fail(format!("cannot restore {snapshot}: {e}")));
    }
    for m in &set.members {
        let urls: Vec<String> = m
            .peer_urls
            .iter()
            .map(|u| json_string(u.as_bytes()))
            .collect();
        super::snapshot::log(
            "membership/cluster.go:392",
            "added member",
            &[
                ("cluster-id", format!("\"{:x}\"", set.cluster_id)),
                ("local-member-id", "\"0\"".to_string()),
                ("added-peer-id", format!("\"{:x}\"", m.id)),
                ("added-peer-peer-urls", format!("[{}]", urls.join(","))),
            ],
        );
    }
    super::snapshot::log("snapshot/v3_snapshot.go:309", "restored snapshot", &dirs);
    Ok(())
}

/// etcd's `types.NewURLsMap`: `name=url` pairs separated by commas, a name once per URL.
fn initial_cluster(spec: &str) -> Result<Vec<mvcc::NewMember>> {
    let mut members: Vec<mvcc::NewMember> = Vec::new();
    for part in spec.split(',') {
        let (name, url) = part.split_once('=').unwrap_or((part, ""));
        let url = peer_url(url)?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url),
            None => members.push(mvcc::NewMember {
                name: name.to_string(),
                peer_urls: vec![url],
            }),
        }
    }
    for m in &mut members {
        m.peer_urls.sort();
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members)
}

/// etcd's `types.NewURLs` checks of one URL, and the form etcr's server gives it (no
/// trailing slash), so that the ids derived here are the ones the members derive.
fn peer_url(url: &str) -> Result<String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if !["http", "https", "unix", "unixs"].contains(&scheme) {
        return Err(fail(format!(
            "URL scheme must be http, https, unix, or unixs: {url}"
        )));
    }
    let host_port = rest.trim_end_matches('/');
    if host_port.contains('/') {
        return Err(fail(format!("URL must not contain a path: {url}")));
    }
    if !host_port.contains(':') {
        return Err(fail(format!(
            "URL address does not have the form \"host:port\": {url}"
        )));
    }
    Ok(format!("{scheme}://{host_port}"))
}

/// etcd's `ServerConfig.VerifyBootstrap` for a restore: the member is in the initial
/// cluster with the peer URLs it advertises, and no URL is given twice.
fn verify_bootstrap(name: &str, members: &[mvcc::NewMember], advertise: &str) -> Result<()> {
    let Some(local) = members.iter().find(|m| m.name == name) else {
        return Err(fail(format!(
            "couldn't find local name {} in the initial cluster configuration",
            go_quote(name)
        )));
    };
    let mut advertised = advertise
        .split(',')
        .map(peer_url)
        .collect::<Result<Vec<_>>>()?;
    advertised.sort();
    if advertised != local.peer_urls {
        let pairs: Vec<String> = local
            .peer_urls
            .iter()
            .map(|u| format!("{name}={u}"))
            .collect();
        let why = if advertised.len() != local.peer_urls.len() {
            format!(
                "len({}) != len({})",
                go_strings(&advertised),
                go_strings(&local.peer_urls)
            )
        } else {
            format!(
                "resolved urls: {} != {}",
                go_quote(&advertised.join(",")),
                go_quote(&local.peer_urls.join(","))
            )
        };
        return Err(fail(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({why})",
            pairs.join(","),
            advertised.join(",")
        )));
    }
    let mut urls: Vec<&String> = members.iter().flat_map(|m| &m.peer_urls).collect();
    let all = urls.len();
    urls.sort();
    urls.dedup();
    if urls.len() != all {
        let map: Vec<String> = members
            .iter()
            .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name)))
            .collect();
        return Err(fail(format!(
            "initial cluster {} has duplicate url",
            map.join(",")
        )));
    }
    Ok(())
}

/// The length of the database in the snapshot file: less the SHA-256 that ends a saved
/// snapshot, which is checked unless `skip_hash_check`. etcd's rule for whether a digest is
/// there: the size is a whole number of 512-byte sectors plus 32 bytes.
fn checked_db_len(snapshot: &str, skip_hash_check: bool) -> Result<u64> {
    let io = |e: std::io::Error| fail(super::snapshot::os_error("open", snapshot, &e));
    let mut file = File::open(snapshot).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let has_hash = size % 512 == SHA256_LEN;
    if !has_hash && !skip_hash_check {
        return Err(fail("snapshot missing hash but --skip-hash-check=false"));
    }
    let db_len = if has_hash { size - SHA256_LEN } else { size };
    let mut head = [0u8; 20];
    if file.read_exact(&mut head).is_ok() && head[16..20] == [0xed, 0xda, 0x0c, 0xed] {
        return Err(fail(format!(
            "{snapshot} is an etcd (bbolt) snapshot; etcr restores only snapshots saved from etcr"
        )));
    }
    if has_hash && !skip_hash_check {
        let read = |e: std::io::Error| fail(super::snapshot::os_error("read", snapshot, &e));
        file.seek(SeekFrom::Start(db_len)).map_err(read)?;
        let mut expected = [0u8; SHA256_LEN as usize];
        file.read_exact(&mut expected).map_err(read)?;
        file.seek(SeekFrom::Start(0)).map_err(read)?;
        let mut sha = Sha256::default();
        let mut left = db_len;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let want = buf.len().min(left as usize);
            file.read_exact(&mut buf[..want]).map_err(read)?;
            sha.update(&buf[..want]);
            left -= want as u64;
        }
        let got = sha.finish();
        if got != expected {
            return Err(fail(format!(
                "expected sha256 {}, got {}",
                go_bytes(&expected),
                go_bytes(&got)
            )));
        }
    }
    Ok(db_len)
}

/// Go's `%v` of a byte slice: `[1 2 3]`.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

/// Go's `%q` of a string.
fn go_quote(s: &str) -> String {
    json_string(s.as_bytes())
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_strings(v: &[String]) -> String {
    let parts: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_etcds_for_the_same_initial_cluster() {
        // etcdctl 3.4's restore of this cluster logged these ids.
        let members = initial_cluster("m1=http://127.0.0.1:1,m2=http://127.0.0.1:2").unwrap();
        let set = mvcc::new_member_set(&members, "etcd-cluster");
        assert_eq!(format!("{:x}", set.cluster_id), "3d93f952f49292c8");
        let ids: Vec<String> = set.members.iter().map(|m| format!("{:x}", m.id)).collect();
        assert_eq!(ids, ["43ccf13c9d84d8d2", "58a88bf978398f80"]);
    }

    #[test]
    fn bootstrap_checks_give_etcdctls_errors() {
        let text = |r: Result<()>| r.unwrap_err().render().0;
        let two = initial_cluster("m1=http://127.0.0.1:1,m2=http://127.0.0.1:2").unwrap();
        assert_eq!(
            text(verify_bootstrap("x", &two, "http://127.0.0.1:1")),
            "Error: couldn't find local name \"x\" in the initial cluster configuration\n"
        );
        assert_eq!(
            text(verify_bootstrap("m1", &two, "http://localhost:2380")),
            "Error: --initial-cluster has m1=http://127.0.0.1:1 but missing from \
             --initial-advertise-peer-urls=http://localhost:2380 (resolved urls: \
             \"http://localhost:2380\" != \"http://127.0.0.1:1\")\n"
        );
        let dup = initial_cluster("m1=http://127.0.0.1:1,m2=http://127.0.0.1:1").unwrap();
        assert_eq!(
            text(verify_bootstrap("m1", &dup, "http://127.0.0.1:1")),
            "Error: initial cluster m1=http://127.0.0.1:1,m2=http://127.0.0.1:1 has duplicate url\n"
        );
        assert_eq!(
            initial_cluster("garbage").unwrap_err().render().0,
            "Error: URL scheme must be http, https, unix, or unixs: \n"
        );
        assert!(verify_bootstrap("m2", &two, "http://127.0.0.1:2/").is_ok());
    }
}
