//! Cross-compatibility: one script of commands runs four ways, etcdctl→etcd (the reference),
//! etcdctl→etcr, etcrctl→etcd and etcrctl→etcr, each against a fresh single-member server.
//! Every step's stdout, stderr and exit code must be identical once the values that
//! legitimately differ (ids, ports, versions, sizes, timings) are masked; where etcrctl
//! speaks for itself (help after a flag error, its version line), only the lines that
//! scripts read (`Error: ...`, `API version: ...`) and the exit code must be.
//! Every command etcrctl's help lists (but those of `compat_ops.rs`) must also run
//! successfully in the script. The harness, and what it needs, is in `common/mod.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The key-value script.
fn script() -> Vec<Step> {
    vec![
        // put
        step(&["put", "foo", "bar"]),
        step(&["put", "foo2", "baz", "--prev-kv"]),
        step(&["put", "foo2", "qux", "--prev-kv"]),
        step(&["put", "foo3", "v 3", "-w", "json"]),
        step(&["put", "k1", "v1"]),
        step(&["put", "k2", "v2"]),
        step(&["put", "k3", "v3", "-w", "fields"]),
        step(&["put", "foo", "bar2", "--prev-kv", "-w", "json"]),
        step(&["put", "foo", "--ignore-value"]),
        step(&["put", "--prev-kv", "-w", "fields", "foo", "bar3"]),
        with_stdin(&["put", "stdinkey"], "from stdin\n"),
        step(&["put", "--", "-dash", "-value"]),
        step(&["put", "", "x"]),
        step(&["put", "a"]),
        step(&["put", "missing", "--ignore-value"]),
        step(&["put", "--lease=zz", "a", "b"]),
        step(&["put", "--lease=1234", "a", "b"]),
        step(&["put", "a", "b", "c", "-w", "table"]),
        // get
        step(&["get", "foo"]),
        step(&["get", "foo", "-w", "json"]),
        step(&["get", "foo", "-w", "fields"]),
        step(&["get", "foo", "-w", "simple"]),
        step(&["get", "foo", "-w", "table"]),
        step(&["get", "foo", "--hex"]),
        step(&["get", "foo", "--hex", "-w", "json"]),
        step(&["get", "--prefix", "foo"]),
        step(&["get", "--prefix", "foo", "--limit", "1", "-w", "json"]),
        step(&["get", "--prefix", "foo", "--limit=2", "-w", "fields"]),
        step(&["get", "--from-key", "foo2"]),
        step(&["get", "--from-key", "", "--keys-only"]),
        step(&["get", "", "--prefix", "-w", "json"]),
        step(&["get", "k", "--prefix", "--sort-by=VALUE", "--order=DESCEND"]),
        step(&["get", "k", "--prefix", "--sort-by=create", "--order=ascend", "-w", "fields"]),
        step(&["get", "k", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--limit=2"]),
        step(&["get", "foo", "--prefix", "--sort-by=VERSION", "-w", "json"]),
        step(&["get", "k", "--prefix", "--order=DESCEND"]),
        step(&["get", "k", "--prefix", "--keys-only"]),
        step(&["get", "k", "--prefix", "--keys-only", "-w", "json"]),
        flag_error(&["get", "k1", "--count-only"]),
        step(&["get", "k", "--prefix", "--print-value-only"]),
        step(&["get", "k1", "--print-value-only", "-w", "json"]),
        step(&["get", "k1", "k3"]),
        step(&["get", "k1", "--consistency=s", "-w", "json"]),
        step(&["get", "k1", "--consistency=x"]),
        step(&["get", "foo", "--rev=2"]),
        step(&["get", "foo", "--rev", "3", "-w", "json"]),
        step(&["get", "foo2", "--rev=3", "-w", "fields"]),
        step(&["get"]),
        step(&["get", "a", "--prefix", "--from-key"]),
        step(&["get", "a", "b", "--prefix"]),
        step(&["get", "k", "--sort-by=bad"]),
        step(&["get", "k", "--order=bad"]),
        flag_error(&["get", "--rev=abc", "k"]),
        flag_error(&["get", "--bogus", "k"]),
        flag_error(&["get", "-x"]),
        step(&["get", "--", "-dash"]),
        step(&["get", "nothing", "-w", "json"]),
        step(&["get", "nothing", "-w", "fields"]),
        step(&["get", "nothing"]),
        with_env(&["get", "foo"], &[("ETCDCTL_WRITE_OUT", "json")]),
        with_env(&["get", "foo"], &[("ETCDCTL_HEX", "true")]),
        with_env(&["get", "foo"], &[("ETCDCTL_UNKNOWN_THING", "1")]),
        step(&["-w", "bad", "get", "foo"]),
        // txn
        with_stdin(
            &["txn", "-i"],
            "value(\"k1\") = \"v1\"\nmod(\"k2\") > \"0\"\n\nput k4 v4\nget k1\ndel k3 --prev-kv\n\nget k2\n\n",
        ),
        with_stdin(
            &["txn", "-w", "json"],
            "version(\"k1\") = \"5\"\n\nput k5 v5\n\nget k --prefix\nput k9 \"a b\" --prev-kv\n\n",
        ),
        with_stdin(
            &["txn", "-w", "fields"],
            "c(\"k1\") < \"100\"\nver(\"k1\") != \"0\"\n\nput k9 'c d' --prev-kv\nget k9\ndel k9 --prev-kv\n\n\n",
        ),
        with_stdin(&["txn"], "val(\"nokey\") = \"x\"\n\n\nget k1 --keys-only\n\n"),
        with_stdin(&["txn", "-w", "table"], "\n\n\n"),
        with_stdin(&["txn"], "bad\n\n"),
        with_stdin(&["txn"], "val(\"k1) = 3\n\n"),
        with_stdin(&["txn"], "ver(\"k1\") = 3\n\n\n"),
        with_stdin(&["txn"], "ver(\"k1\")=\"1\"\n\n\n"),
        with_stdin(&["txn"], "foo(\"k1\") = \"3\"\n\n"),
        with_stdin(&["txn"], "ver(\"k1\") = \"x\"\n\n"),
        with_stdin(&["txn"], "\nput\n\n"),
        with_stdin(&["txn"], "\nput a\n\n"),
        with_stdin(&["txn"], "\nzap a b\n\n"),
        Step {
            check: Check::Lines("Error: "),
            ..with_stdin(&["txn"], "\nput --bogus a b\n\n")
        },
        with_stdin(&["txn", "-i"], "ver(\"k1\") = \"1\""),
        with_stdin(&["txn", "-i"], "\nput k6 v6"),
        step(&["txn", "extra"]),
        // del
        step(&["del", "k4", "--prev-kv"]),
        step(&["del", "k", "--prefix", "--prev-kv", "-w", "json"]),
        step(&["del", "nothing"]),
        step(&["del", "nothing", "-w", "fields"]),
        step(&["del", "--from-key", "foo3", "--prev-kv", "-w", "fields"]),
        step(&["del", "foo", "foo3"]),
        step(&["del"]),
        step(&["del", "a", "b", "c"]),
        step(&["del", "a", "--prefix", "--from-key"]),
        // compaction
        step(&["compaction", "3"]),
        step(&["get", "foo", "--rev=2"]),
        step(&["get", "foo", "--rev=1000"]),
        step(&["get", "foo", "--rev=3", "-w", "json"]),
        step(&["compaction", "2"]),
        step(&["compaction", "1000"]),
        step(&["compaction", "abc"]),
        step(&["compaction"]),
        step(&["compaction", "--physical", "4"]),
        // cluster information
        step(&["endpoint", "status"]),
        step(&["endpoint", "status", "-w", "json"]),
        step(&["endpoint", "status", "-w", "fields"]),
        step(&["endpoint", "status", "-w", "table"]),
        step(&["endpoint", "status", "--cluster"]),
        step(&["endpoint", "status", "-w", "protobuf"]),
        step(&["endpoint", "health"]),
        step(&["endpoint", "health", "-w", "json"]),
        step(&["endpoint", "health", "-w", "fields"]),
        step(&["endpoint", "health", "-w", "table"]),
        step(&["endpoint", "health", "--cluster"]),
        step(&["member", "list"]),
        step(&["member", "list", "-w", "json"]),
        step(&["member", "list", "-w", "fields"]),
        step(&["member", "list", "-w", "table"]),
        // each client names itself; the API version line is shared
        Step {
            check: Check::Lines("API version: "),
            ..step(&["version"])
        },
        // final state
        step(&["get", "", "--from-key", "-w", "json"]),
    ]
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[test]
fn etcdctl_and_etcrctl_agree_against_etcd_and_etcr() {
    ensure_reference_etcd();
    let etcrctl = PathBuf::from(env!("CARGO_BIN_EXE_etcrctl"));
    let etcdctl = PathBuf::from(ETCDCTL);
    let etcr = etcr_under_test();
    let masker = Masker::new();
    let steps = script();
    let run = |client: &Path, server_bin: &Path| {
        let server = Server::start(server_bin, &[]);
        let transcript = run_script(client, &server, &masker, &steps);
        let name = format!(
            "{}-{}",
            client.file_name().unwrap_or_default().to_string_lossy(),
            server_bin.file_name().unwrap_or_default().to_string_lossy()
        );
        dump(&name, &transcript);
        transcript
    };

    // compat_ops.rs and compat_auth.rs prove the commands they cover.
    let listed: Vec<String> = listed_commands(&etcrctl)
        .into_iter()
        .filter(|c| !OPS_COMMANDS.contains(&c.as_str()) && !AUTH_COMMANDS.contains(&c.as_str()))
        .collect();
    let reference = run(&etcdctl, Path::new(ETCD));
    let mut failures = Vec::new();
    let on_etcd = run(&etcrctl, Path::new(ETCD));
    failures.extend(compare("etcrctl→etcd", &reference, &on_etcd));
    failures.extend(unproven("etcrctl→etcd", &listed, &on_etcd));
    if let Some(etcr) = &etcr {
        failures.extend(compare("etcdctl→etcr", &reference, &run(&etcdctl, etcr)));
        let on_etcr = run(&etcrctl, etcr);
        failures.extend(compare("etcrctl→etcr", &reference, &on_etcr));
        failures.extend(unproven("etcrctl→etcr", &listed, &on_etcr));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn masking_hides_only_what_legitimately_differs() {
    let masker = Masker::new();
    let dir = tempfile::tempdir().unwrap();
    let server = Server {
        process: KillOnDrop(Command::new("true").spawn().unwrap()),
        client_port: 23791,
        peer_port: 23801,
        log: dir.path().join("log"),
        _dir: tempfile::tempdir().unwrap(),
    };
    // Lease ids and remaining TTLs, alarm members and zap's epoch times vary too.
    assert_eq!(
        masker.mask(
            "{\"id\":7587,\"ttl\":99,\"granted-ttl\":100}\nremaining(99s) memberID:123 alarm:NOSPACE \n{\"ts\":1796117090.32,\"took\":0.0062}\n",
            &server
        ),
        "{\"id\":<N>,\"ttl\":<N>,\"granted-ttl\":100}\nremaining(<N>s) memberID:<N> alarm:NOSPACE \n{\"ts\":<N>,\"took\":<N>}\n"
    );
    let a = masker.mask(
        "{\"header\":{\"cluster_id\":15118495548433857066,\"member_id\":1366,\"revision\":4,\"raft_term\":2}}\n\
         127.0.0.1:23791, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 11, 11, \n\
         127.0.0.1:23791 is healthy: successfully committed proposal: took = 1.903339ms\n",
        &server,
    );
    assert_eq!(
        a,
        "{\"header\":{\"cluster_id\":<N>,\"member_id\":<N>,\"revision\":4,\"raft_term\":<N>}}\n\
         <CLIENT>, <HEXID>, <VER>, <SIZE>, true, false, <N>, <N>, <N>, \n\
         <CLIENT> is healthy: successfully committed proposal: took = <TOOK>\n"
    );
    // Zero ids and revisions stay visible.
    assert_eq!(
        masker.mask("\"ClusterID\" : 0\n\"Revision\" : 7\n", &server),
        "\"ClusterID\" : 0\n\"Revision\" : 7\n"
    );
    assert!(line_diff("a\nb\n", "a\nc\n").contains("    - b\n    + c\n"));
}
