//! `user` and `role` commands: etcdctl 3.4 on etcd 3.4 is the reference; etcrctl on etcd,
//! and etcdctl and etcrctl on etcr, must print the same (masked) stdout, stderr and exit code
//! in every output format but protobuf (whose header ids no mask reaches), for the answers
//! and for the refusals.

mod common;

use common::*;

fn steps() -> Vec<Step> {
    let mut steps = vec![
        step(&["user", "add", "root:rootpw"]),
        step(&["user", "add", "u", "--new-user-password=p"]),
        step(&["user", "add", "a:b", "--new-user-password=c"]),
        step(&["user", "add", "cn", "--no-password"]),
        step(&["user", "add", "q", "--no-password", "--new-user-password=x"]),
        with_stdin(&["user", "add", "s1", "--interactive=false"], "pw1 more\n"),
        with_stdin(&["user", "add", "s2", "--interactive=false"], ""),
        step(&["user", "add", ":x"]),
        step(&["user", "add"]),
        step(&["user", "add", "u:again"]),
        step(&["role", "add", "r"]),
        step(&["role", "add", "r"]),
        step(&["role", "add"]),
        step(&["role", "grant-permission", "r", "read", "a", "b"]),
        step(&["role", "grant-permission", "r", "write", "p", "--prefix"]),
        step(&[
            "role",
            "grant-permission",
            "r",
            "readwrite",
            "f",
            "--from-key",
        ]),
        step(&["role", "grant-permission", "r", "readwrite", "", "--prefix"]),
        step(&["role", "grant-permission", "r", "READWRITE", "x"]),
        step(&["role", "grant-permission", "r", "bogus", "x"]),
        step(&[
            "role",
            "grant-permission",
            "r",
            "read",
            "x",
            "y",
            "--prefix",
        ]),
        step(&[
            "role",
            "grant-permission",
            "r",
            "read",
            "x",
            "y",
            "--from-key",
        ]),
        step(&[
            "role",
            "grant-permission",
            "r",
            "read",
            "x",
            "--prefix",
            "--from-key",
        ]),
        step(&["role", "grant-permission", "r", "read"]),
        step(&["role", "grant-permission", "nosuch", "read", "k"]),
        step(&["role", "get", "r"]),
        step(&["role", "get", "nosuch"]),
        step(&["role", "get"]),
        step(&["role", "list"]),
        step(&["role", "list", "x"]),
        step(&["user", "grant-role", "u", "r"]),
        step(&["user", "grant-role", "u", "r"]),
        step(&["user", "grant-role", "u", "nosuch"]),
        step(&["user", "grant-role", "nosuch", "r"]),
        step(&["user", "grant-role", "u"]),
        step(&["user", "get", "u"]),
        step(&["user", "get", "u", "--detail"]),
        step(&["user", "get", "nosuch"]),
        step(&["user", "get"]),
        step(&["user", "list"]),
        step(&["user", "list", "x"]),
        with_stdin(&["user", "passwd", "s1", "--interactive=false"], "np\n"),
        with_stdin(&["user", "passwd", "nosuch", "--interactive=false"], "np\n"),
        with_stdin(&["user", "passwd", "--interactive=false"], "np\n"),
    ];
    for format in ["json", "fields", "table"] {
        let (user, role) = (format!("u{format}"), format!("r{format}"));
        let w = |args: &[&str], stdin: &str| Step {
            args: std::iter::once(format!("--write-out={format}"))
                .chain(args.iter().map(|a| a.to_string()))
                .collect(),
            stdin: stdin.to_string(),
            ..step(&[])
        };
        steps.extend([
            w(&["user", "add", &format!("{user}:x")], ""),
            w(&["role", "add", &role], ""),
            w(&["role", "get", "r"], ""),
            w(&["role", "list"], ""),
            w(&["user", "get", "u"], ""),
            w(&["user", "list"], ""),
            w(&["user", "grant-role", &user, &role], ""),
            w(&["user", "revoke-role", &user, &role], ""),
            w(&["role", "grant-permission", &role, "read", "k"], ""),
            w(&["role", "revoke-permission", &role, "k"], ""),
            w(&["user", "passwd", &user, "--interactive=false"], "z\n"),
            w(&["user", "delete", &user], ""),
            w(&["role", "delete", &role], ""),
        ]);
    }
    steps.extend([
        step(&["user", "revoke-role", "u", "r"]),
        step(&["user", "revoke-role", "u", "r"]),
        step(&["user", "revoke-role", "u"]),
        step(&["role", "revoke-permission", "r", "a", "b"]),
        step(&["role", "revoke-permission", "r", "a", "b"]),
        step(&["role", "revoke-permission", "r", "p", "--prefix"]),
        step(&["role", "revoke-permission", "r", "f", "--from-key"]),
        step(&["role", "revoke-permission", "r", "x"]),
        step(&["role", "revoke-permission", "r", "", "--prefix"]),
        step(&["role", "revoke-permission", "r"]),
        step(&["role", "get", "r"]),
        step(&["user", "delete", "s2"]),
        step(&["user", "delete", "s2"]),
        step(&["user", "delete"]),
        step(&["role", "delete", "r"]),
        step(&["role", "delete", "r"]),
        step(&["role", "delete"]),
        step(&["user", "list"]),
        step(&["role", "list"]),
    ]);
    steps
}

#[test]
fn etcdctl_and_etcrctl_agree_on_users_and_roles() {
    let failures = four_ways("user-role", &steps());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
