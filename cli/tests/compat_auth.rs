//! `--user` and `--password` against a server with auth enabled: etcdctl 3.4 on etcd 3.4 is
//! the reference; etcrctl on etcd, and etcdctl and etcrctl on etcr, must print the same
//! (masked) stdout, stderr and exit code at every step. The users and roles are made with
//! etcdctl (etcrctl has no `user` or `role` commands yet).

mod common;

use std::path::Path;

use common::*;

/// root (without the root role: `auth enable` grants it), and alice, who may read `foo/`
/// and write `w`.
fn set_up(server: &Server) {
    let endpoint = format!("--endpoints={}", server.endpoint());
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:apw"],
        &["role", "add", "reader"],
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "foo/",
            "--prefix=true",
        ],
        &["role", "grant-permission", "reader", "write", "w"],
        &["user", "grant-role", "alice", "reader"],
    ] {
        let mut full = vec![endpoint.clone()];
        full.extend(args.iter().map(|s| s.to_string()));
        let (_, err, code) = run_client(Path::new(ETCDCTL), &full, "", &[]);
        assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&err));
    }
}

fn steps() -> Vec<Step> {
    vec![
        action("set up users", set_up),
        step(&["auth", "enable", "now"]),
        step(&["auth", "enable"]),
        step(&["--user=root:rootpw", "put", "foo/a", "1"]),
        step(&["--user=root:rootpw", "put", "bar", "2"]),
        step(&["get", "foo/a"]),
        step(&["--user=root:rootpw", "get", "foo/a"]),
        step(&[
            "--user=root",
            "--password=rootpw",
            "get",
            "bar",
            "--print-value-only",
        ]),
        with_env(&["get", "bar"], &[("ETCDCTL_USER", "root:rootpw")]),
        step(&["--user=root:wrong", "get", "foo/a"]),
        step(&["--user=nobody:x", "put", "k", "v"]),
        step(&["--user=alice:apw", "get", "foo/a"]),
        step(&["--user=alice:apw", "get", "foo/", "--prefix", "-w", "json"]),
        step(&["--user=alice:apw", "get", "bar"]),
        step(&["--user=alice:apw", "get", "", "--from-key"]),
        step(&["--user=alice:apw", "put", "foo/a", "x"]),
        step(&["--user=alice:apw", "put", "w", "x"]),
        step(&["--user=alice:apw", "put", "w", "x", "--prev-kv"]),
        step(&["--user=alice:apw", "del", "w"]),
        with_stdin(
            &["--user=alice:apw", "txn"],
            "value(\"foo/a\") = \"1\"\n\nput w y\n\nget bar\n\n",
        ),
        with_stdin(
            &["--user=alice:apw", "txn"],
            "value(\"foo/a\") = \"1\"\n\nput w y\n\nget foo/a\n\n",
        ),
        step(&["--user=root:rootpw", "lease", "grant", "600"]),
        step(&["--user=root:rootpw", "put", "foo/l", "v", "--lease={lease}"]),
        step(&["--user=alice:apw", "lease", "revoke", "{lease}"]),
        step(&["--user=root:rootpw", "lease", "revoke", "{lease}"]),
        step(&["--user=alice:apw", "endpoint", "hashkv"]),
        step(&["--user=root:rootpw", "compaction", "2"]),
        step(&["auth", "enable"]),
        step(&["--user=alice:apw", "auth", "disable"]),
        step(&["--user=root:rootpw", "auth", "disable"]),
        step(&["auth", "disable"]),
        step(&["get", "bar", "--print-value-only"]),
    ]
}

#[test]
fn etcdctl_and_etcrctl_agree_with_auth_enabled() {
    let failures = four_ways("auth", &steps());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
