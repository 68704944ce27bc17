//! `etcrctl snapshot restore`: a new 3-member cluster started from another's snapshot has
//! every key with its revisions and leases, the new member set, and goes on from the
//! snapshot's revision; a corrupted snapshot and an existing data directory are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use api::etcdserverpb::cluster_client::ClusterClient;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::{DeleteRangeRequest, LeaseGrantRequest, MemberListRequest, PutRequest};
use common::{all_keys, Cluster, Etcr, Net};

/// The etcrctl binary of this build: `<target>/<profile>/etcrctl`, built first (the server's
/// tests do not depend on the client's crate).
fn etcrctl() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>");
    let target_dir = profile_dir.parent().expect("target dir");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-q", "-p", "etcrctl", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build -p etcrctl");
    assert!(status.success(), "cargo build -p etcrctl: {status}");
    profile_dir.join("etcrctl")
}

/// Runs etcrctl; its exit code, stdout and stderr.
fn run(etcrctl: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(etcrctl)
        .args(args)
        .output()
        .expect("run etcrctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn restore_args<'a>(snapshot: &'a str, m: &'a Etcr, peer: &'a str) -> Vec<&'a str> {
    let data_dir = m.data_dir.to_str().expect("utf-8 path");
    vec![
        "snapshot",
        "restore",
        snapshot,
        "--data-dir",
        data_dir,
        "--name",
        &m.name,
        "--initial-cluster",
        &m.initial_cluster,
        "--initial-advertise-peer-urls",
        peer,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restored_by_etcrctl_has_every_key_revision_and_the_new_members() {
    let etcrctl = etcrctl();
    let old = Cluster::start(3, &[]);
    let leader = old.leader(Duration::from_secs(10)).await;
    let endpoint = old.members[leader].endpoint();
    let mut kv = KvClient::connect(endpoint.clone()).await.unwrap();
    let lease = LeaseClient::connect(endpoint.clone())
        .await
        .unwrap()
        .lease_grant(LeaseGrantRequest { ttl: 3600, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    for i in 0..30 {
        for v in 0..(i % 3 + 1) {
            kv.put(PutRequest {
                key: format!("key{i:02}").into(),
                value: format!("v{v}").into(),
                lease: if i == 5 { lease } else { 0 },
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
    kv.delete_range(DeleteRangeRequest {
        key: b"key07".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let before = all_keys(endpoint).await;

    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("s.db").display().to_string();
    let follower = old.members[(leader + 1) % 3].endpoint();
    let (code, out, err) = run(
        &etcrctl,
        &["--endpoints", &follower, "snapshot", "save", &snapshot],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("Snapshot saved at {snapshot}\n"));
    drop(old);

    // One flipped byte: refused, and nothing is left behind.
    let corrupt = dir.path().join("corrupt.db").display().to_string();
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&corrupt, bytes).unwrap();
    let target = dir.path().join("refused");
    let target_s = target.display().to_string();
    let (code, _, err) = run(
        &etcrctl,
        &["snapshot", "restore", &corrupt, "--data-dir", &target_s],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Error: expected sha256 ["), "{err}");
    assert!(!target.exists());

    let restore = |m: &Etcr| {
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let (code, out, err) = run(&etcrctl, &restore_args(&snapshot, m, &peer));
        assert_eq!((code, out.as_str()), (0, ""), "{err}");
        assert_eq!(err.matches("\"msg\":\"added member\"").count(), 3, "{err}");
        assert!(err.contains("\"msg\":\"restored snapshot\""), "{err}");
    };
    let new = Cluster::start_prepared(Net::Tcp, 3, &[], &restore);
    let leader = new.leader(Duration::from_secs(10)).await;
    for m in &new.members {
        assert_eq!(all_keys(m.endpoint()).await, before, "{}", m.name);
    }
    // The member set is the one restore was given.
    let mut listed = ClusterClient::connect(new.members[leader].endpoint())
        .await
        .unwrap()
        .member_list(MemberListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members
        .into_iter()
        .map(|m| (m.id, m.peer_ur_ls))
        .collect::<Vec<_>>();
    listed.sort();
    let mut expected: Vec<(u64, Vec<String>)> = new
        .members
        .iter()
        .map(|m| {
            let urls = vec![format!("http://127.0.0.1:{}", m.peer_port)];
            (mvcc::ids::member_id(&urls, "etcd-cluster"), urls)
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    let mut ids = new.member_ids().await;
    ids.sort_unstable();
    assert_eq!(ids, expected.iter().map(|e| e.0).collect::<Vec<_>>());

    // Writes go on from the snapshot's revision, and replicate.
    let mut kv = KvClient::connect(new.members[(leader + 2) % 3].endpoint())
        .await
        .unwrap();
    let put = kv
        .put(PutRequest {
            key: b"after".to_vec(),
            value: b"restore".to_vec(),
            lease,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.header.unwrap().revision, before.0 + 1);
    for m in &new.members {
        let (rev, kvs) = all_keys(m.endpoint()).await;
        assert_eq!(rev, before.0 + 1, "{}", m.name);
        assert_eq!(kvs.len(), before.1.len() + 1, "{}", m.name);
    }

    // A data directory that exists is refused, as etcdctl refuses it.
    let m = &new.members[0];
    let peer = format!("http://127.0.0.1:{}", m.peer_port);
    let (code, _, err) = run(&etcrctl, &restore_args(&snapshot, m, &peer));
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("Error: data-dir \"{}\" exists\n", m.data_dir.display())
    );
}
