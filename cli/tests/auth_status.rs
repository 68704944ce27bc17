//! `auth status`, etcd 3.5's command, which etcdctl 3.4 lacks: the answers below are those of
//! etcdctl 3.5.1 against etcd 3.5.1 (captured by hand), given by etcrctl against etcr; against
//! etcd 3.4 the command fails with etcd's own Unimplemented error.

mod common;

use std::path::{Path, PathBuf};

use common::{ensure_reference_etcd, etcr_binary, run_client, Server, ETCD};

struct Answer {
    out: String,
    err: String,
    code: i32,
}

fn etcrctl(server: &Server, args: &[&str]) -> Answer {
    let mut full = vec![format!("--endpoints={}", server.endpoint())];
    full.extend(args.iter().map(|s| s.to_string()));
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_etcrctl"));
    let (out, err, code) = run_client(&binary, &full, "", &[]);
    Answer {
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
        code,
    }
}

fn ok(server: &Server, args: &[&str]) -> String {
    let a = etcrctl(server, args);
    assert_eq!(a.code, 0, "{args:?}: {}", a.err);
    a.out
}

/// The last line of stderr (etcdctl logs the retried call's warning above it) and the code.
fn refusal(server: &Server, args: &[&str]) -> (String, i32) {
    let a = etcrctl(server, args);
    assert_eq!(a.out, "", "{args:?}");
    (a.err.lines().last().unwrap_or_default().to_string(), a.code)
}

#[test]
fn auth_status_answers_as_etcd_3_5_does() {
    let etcr = etcr_binary().expect("the etcr binary");
    let server = Server::start(&etcr, &[]);
    assert_eq!(
        ok(&server, &["auth", "status"]),
        "Authentication Status: false\nAuthRevision: 1\n"
    );
    ok(&server, &["user", "add", "root:rootpw"]);
    ok(&server, &["user", "grant-role", "root", "root"]);
    ok(&server, &["auth", "enable"]);
    let root = ["--user=root:rootpw", "auth", "status"];
    assert_eq!(
        ok(&server, &root),
        "Authentication Status: true\nAuthRevision: 3\n"
    );
    let json = ok(&server, &[&root[..], &["-w", "json"]].concat());
    let shape = regex::Regex::new(
        r#"^\{"header":\{"cluster_id":\d+,"member_id":\d+,"revision":1,"raft_term":\d+\},"enabled":true,"authRevision":3\}\n$"#,
    )
    .unwrap();
    assert!(shape.is_match(&json), "{json}");
    for format in ["fields", "table"] {
        assert_eq!(
            refusal(&server, &[&root[..], &["-w", format]].concat()),
            (format!("Error: {format} not supported as output format"), 4)
        );
    }
    assert_eq!(
        refusal(&server, &["auth", "status", "now"]),
        (
            "Error: auth status command does not accept any arguments".into(),
            128
        )
    );
    // Only root may ask while auth is on; a user that is not root is refused.
    assert_eq!(
        refusal(&server, &["auth", "status"]),
        ("Error: etcdserver: user name is empty".into(), 1)
    );
    ok(&server, &["--user=root:rootpw", "user", "add", "bob:bobpw"]);
    assert_eq!(
        refusal(&server, &["--user=bob:bobpw", "auth", "status"]),
        ("Error: etcdserver: permission denied".into(), 1)
    );
    // Disabling counts, as every change but enabling does.
    ok(&server, &["--user=root:rootpw", "auth", "disable"]);
    assert_eq!(
        ok(&server, &["auth", "status"]),
        "Authentication Status: false\nAuthRevision: 5\n"
    );
}

#[test]
fn auth_status_against_etcd_3_4_reports_its_unimplemented_error() {
    ensure_reference_etcd();
    let server = Server::start(Path::new(ETCD), &[]);
    assert_eq!(
        refusal(&server, &["auth", "status"]),
        (
            "Error: rpc error: code = Unimplemented desc = unknown method AuthStatus for service etcdserverpb.Auth".into(),
            1
        )
    );
}
