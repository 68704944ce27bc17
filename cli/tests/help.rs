//! etcrctl's help and identity are its own: the help lists exactly the commands etcrctl
//! has, each with a page of its own, `version` names etcrctl, and etcdctl's other commands
//! are unknown commands (exit 1), not promises.

use std::process::{Command, Stdio};

use etcrctl::commands::Command as Cmd;

/// Runs etcrctl with `args` and no `ETCDCTL_*` variables: (stdout, stderr, exit code).
fn etcrctl(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_etcrctl"))
        .env_clear()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcrctl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The left column of the root page's "Commands:" block.
fn listed(page: &str) -> Vec<String> {
    let block = page
        .split("\nCommands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Commands: block");
    block
        .lines()
        .filter_map(|l| l.trim_start().split("  ").next())
        .map(str::to_string)
        .collect()
}

#[test]
fn root_help_lists_exactly_the_commands_etcrctl_has() {
    let (page, err, code) = etcrctl(&["--help"]);
    assert_eq!((err.as_str(), code), ("", 0));
    let mut want: Vec<String> = Cmd::ALL.iter().map(|c| c.spec().name.to_string()).collect();
    want.push("help [command]".to_string());
    assert_eq!(listed(&page), want);
    assert!(page.starts_with(&format!("etcrctl {}: ", env!("CARGO_PKG_VERSION"))));
    assert!(
        !page.contains("etcdctl "),
        "the page names etcdctl:\n{page}"
    );
    // Without a command, and with `help`, etcrctl shows the same page.
    assert_eq!(etcrctl(&[]).0, page);
    assert_eq!(etcrctl(&["help"]).0, page);
}

#[test]
fn every_listed_command_has_its_own_page() {
    for c in Cmd::ALL {
        let name = c.spec().name;
        let words: Vec<&str> = name.split(' ').collect();
        let mut args = words.clone();
        args.push("--help");
        let (page, err, code) = etcrctl(&args);
        assert_eq!((err.as_str(), code), ("", 0), "{name} --help");
        assert!(page.starts_with(&format!("etcrctl {name}: ")), "{page}");
        assert!(
            page.contains(&format!("\nUsage:\n  etcrctl {name}")),
            "{page}"
        );
        for f in c.flags() {
            assert!(
                page.contains(&format!("--{}", f.name)),
                "{name}: --{}",
                f.name
            );
        }
        assert!(
            !page.contains("etcdctl"),
            "{name}'s page names etcdctl:\n{page}"
        );
        let mut help = vec!["help"];
        help.extend(&words);
        assert_eq!(etcrctl(&help).0, page, "help {name}");
    }
}

#[test]
fn a_group_alone_lists_its_commands() {
    for (group, has) in [
        ("member", "member list"),
        ("endpoint", "endpoint status"),
        ("lease", "lease keep-alive"),
        ("alarm", "alarm disarm"),
        ("snapshot", "snapshot save"),
    ] {
        let (page, err, code) = etcrctl(&[group]);
        assert_eq!((err.as_str(), code), ("", 0), "{group}");
        assert!(page.starts_with(&format!("etcrctl {group}: ")), "{page}");
        assert!(page.contains(&format!("\n  {has} ")), "{page}");
    }
    let (page, _, _) = etcrctl(&["snapshot"]);
    assert!(
        page.contains("\n  snapshot restore "),
        "snapshot page lacks restore:\n{page}"
    );
}

#[test]
fn version_names_etcrctl_and_the_api() {
    let (out, err, code) = etcrctl(&["version"]);
    assert_eq!((err.as_str(), code), ("", 0));
    assert_eq!(
        out,
        format!(
            "etcrctl version: {}\nAPI version: 3.4\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn commands_etcrctl_lacks_are_unknown() {
    for args in [
        &["make-mirror", "x:1"][..],
        &["migrate"],
        &["check", "perf"],
        &["completion", "bash"],
        &["bogus"],
    ] {
        let (out, err, code) = etcrctl(args);
        assert_eq!((out.as_str(), code), ("", 1), "{args:?}");
        assert!(
            err.starts_with(&format!(
                "Error: unknown command \"{}\" for \"etcrctl\"\n",
                args[0]
            )),
            "{args:?}: {err}"
        );
        assert!(
            err.ends_with("Run 'etcrctl --help' for the commands etcrctl has.\n"),
            "{err}"
        );
    }
    for args in [&["snapshot", "bogus", "x.db"][..], &["lease", "bogus"]] {
        let (out, err, code) = etcrctl(args);
        assert_eq!((out.as_str(), code), ("", 1), "{args:?}");
        assert!(
            err.starts_with(&format!(
                "Error: unknown command \"{}\" for \"etcrctl {}\"\n",
                args[1], args[0]
            )),
            "{args:?}: {err}"
        );
    }
}
