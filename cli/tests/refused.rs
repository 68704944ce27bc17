//! What etcrctl cannot do yet is refused with a clear error and a non-zero exit, never
//! ignored: etcdctl's TLS, auth, discovery, keepalive and debug flags (on the command line
//! or as `ETCDCTL_*` variables), https:// endpoints, the v2 API, and the txn input that
//! makes etcdctl 3.4 panic. None of these needs a server: each is refused before dialling.

use std::io::Write;
use std::process::{Command, Stdio};

use etcrctl::args::{Kind, REFUSED_FLAGS};

/// An endpoint nothing listens on; a refusal must come before any dial.
const NOWHERE: &str = "--endpoints=127.0.0.1:9";

fn etcrctl(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (String, String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcrctl"))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcrctl");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait for etcrctl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A value for `kind` that asks for something (not etcdctl's default).
fn asking(kind: Kind, default: &str) -> &'static str {
    match kind {
        Kind::Bool if default == "true" => "false",
        Kind::Bool => "true",
        Kind::Duration => "3s",
        _ => "x",
    }
}

#[test]
fn every_refused_flag_is_refused_on_the_command_line_and_in_the_environment() {
    for r in REFUSED_FLAGS {
        let f = r.flag;
        let value = asking(f.kind, f.default);
        let want = format!(
            "Error: --{} is refused: etcrctl does not support {} yet\n",
            f.name, r.feature
        );
        for args in [
            vec![format!("--{}={value}", f.name), "get".into(), "k".into()],
            vec!["get".into(), "k".into(), format!("--{}={value}", f.name)],
            vec![format!("--{}={value}", f.name), "version".into()],
        ] {
            let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
            args.push(NOWHERE);
            let (out, err, code) = etcrctl(&args, &[], "");
            assert_eq!(
                (out.as_str(), err.as_str(), code),
                ("", want.as_str(), 4),
                "{args:?}"
            );
        }
        let var = format!("ETCDCTL_{}", f.name.to_uppercase().replace('-', "_"));
        let (out, err, code) = etcrctl(&[NOWHERE, "get", "k"], &[(&var, value)], "");
        assert_eq!(
            (out.as_str(), err, code),
            (
                "",
                format!(
                    "Error: {var} is refused: etcrctl does not support {} yet\n",
                    r.feature
                ),
                4
            ),
            "{var}"
        );
    }
}

#[test]
fn shorthand_and_separate_values_are_refused_too() {
    for args in [
        &["-d", "example.com", "get", "k"][..],
        &["--discovery-srv", "example.com", "put", "a", "b"],
        &["--keepalive-time", "5s", "member", "list"],
        &["--keepalive-time", "2s", "endpoint", "status"],
    ] {
        let mut args = args.to_vec();
        args.push(NOWHERE);
        let (_, err, code) = etcrctl(&args, &[], "");
        assert_eq!(code, 4, "{args:?}: {err}");
        assert!(
            err.contains(" is refused: etcrctl does not support "),
            "{err}"
        );
    }
}

#[test]
fn unix_socket_endpoints_and_the_v2_api_are_refused() {
    let (_, err, code) = etcrctl(&["--endpoints=unixs://etcd.sock", "get", "k"], &[], "");
    assert_eq!(
        (err.as_str(), code),
        (
            "Error: endpoint \"unixs://etcd.sock\" is refused: etcrctl does not support unix sockets yet\n",
            4
        )
    );
    let (_, err, code) = etcrctl(&["version"], &[("ETCDCTL_API", "2")], "");
    assert_eq!(
        (err.as_str(), code),
        (
            "Error: ETCDCTL_API=2 is refused: etcrctl speaks only the v3 API\n",
            4
        )
    );
    // etcdctl's own error for any other API version.
    let (_, err, code) = etcrctl(&["version"], &[("ETCDCTL_API", "4")], "");
    assert_eq!((err.as_str(), code), ("unsupported API version 4\n", 1));
}

#[test]
fn txn_input_that_etcdctl_panics_on_gets_a_clear_error() {
    for (input, want) in [
        (
            "lease(\"k\") = \"1\"\n\n\n",
            "Error: lease comparisons are not supported: lease(\"k\") = \"1\"\n",
        ),
        (
            "mod(\"k\") >= \"1\"\n\n\n",
            "Error: malformed comparison: mod(\"k\") >= \"1\" (unknown operator >=; use =, !=, < or >)\n",
        ),
    ] {
        let (out, err, code) = etcrctl(&[NOWHERE, "txn"], &[], input);
        assert_eq!((out.as_str(), err.as_str(), code), ("", want, 3), "{input:?}");
    }
}

#[test]
fn flag_errors_point_to_the_commands_help() {
    let (out, err, code) = etcrctl(&["get", "--bogus", "k"], &[], "");
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "",
            "Error: unknown flag: --bogus\nRun 'etcrctl get --help' for the flags of get.\n",
            1
        )
    );
    let (_, err, code) = etcrctl(&["--bogus"], &[], "");
    assert_eq!(
        (err.as_str(), code),
        (
            "Error: unknown flag: --bogus\nRun 'etcrctl --help' for the global flags.\n",
            1
        )
    );
}
