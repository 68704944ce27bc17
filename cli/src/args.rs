//! Command-line parsing with cobra/pflag semantics, so that flag errors, `--` handling,
//! interspersed flags, command prefixes and `ETCDCTL_*` environment variables behave as
//! etcdctl users expect. The commands themselves come from [`crate::commands`].

use std::collections::BTreeMap;

use crate::commands::{Command, GROUPS};
use crate::error::{exit, CliError, Result};
use crate::{gofmt, help};

/// How a flag's value is parsed (and how pflag reports a bad value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Str,
    Int,
    Duration,
    StrSlice,
}

/// One flag: long name, optional shorthand, kind, default (pflag's `DefValue`) and help line.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

pub const fn flag(
    name: &'static str,
    short: Option<char>,
    kind: Kind,
    default: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        short,
        kind,
        default,
        help,
    }
}

/// The global flags etcrctl implements, valid before or after any command.
pub const GLOBAL_FLAGS: &[Flag] = &[
    flag(
        "cacert",
        None,
        Kind::Str,
        "",
        "check TLS servers' certificates against this CA bundle (PEM)",
    ),
    flag(
        "cert",
        None,
        Kind::Str,
        "",
        "present this client certificate (PEM) to TLS servers",
    ),
    flag(
        "command-timeout",
        None,
        Kind::Duration,
        "5s",
        "how long a command waits for its answers (not counting the dial)",
    ),
    flag(
        "dial-timeout",
        None,
        Kind::Duration,
        "2s",
        "how long to wait for a connection to an endpoint",
    ),
    flag(
        "endpoints",
        None,
        Kind::StrSlice,
        "127.0.0.1:2379",
        "the servers to ask, comma-separated host:port or http://host:port",
    ),
    flag(
        "hex",
        None,
        Kind::Bool,
        "false",
        "print keys and values as \\x-prefixed hex bytes",
    ),
    flag(
        "insecure-skip-tls-verify",
        None,
        Kind::Bool,
        "false",
        "accept any server certificate: for tests only",
    ),
    flag(
        "insecure-transport",
        None,
        Kind::Bool,
        "true",
        "plaintext to host:port endpoints unless a TLS flag is given",
    ),
    flag(
        "key",
        None,
        Kind::Str,
        "",
        "the private key of --cert (PEM)",
    ),
    flag(
        "user",
        None,
        Kind::Str,
        "",
        "authenticate as this user: name:password, or name with --password",
    ),
    flag(
        "password",
        None,
        Kind::Str,
        "",
        "the password of --user (which then holds only the name)",
    ),
    flag(
        "write-out",
        Some('w'),
        Kind::Str,
        "simple",
        "output format: simple, json, fields, table or protobuf",
    ),
];

pub const HELP: Flag = flag("help", Some('h'), Kind::Bool, "false", "show this help");

/// An etcdctl global flag that etcrctl does not implement yet: parsed (so its value is not
/// taken for a command word), then refused unless its value asks for nothing.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub flag: Flag,
    /// The feature etcrctl lacks: "TLS", "authentication", ...
    pub feature: &'static str,
}

const fn refused(
    name: &'static str,
    short: Option<char>,
    kind: Kind,
    default: &'static str,
    feature: &'static str,
) -> Refused {
    Refused {
        flag: flag(name, short, kind, default, ""),
        feature,
    }
}

/// etcdctl 3.4's other global flags, with etcdctl's defaults.
pub const REFUSED_FLAGS: &[Refused] = &[
    refused("discovery-srv", Some('d'), Kind::Str, "", "DNS discovery"),
    refused("discovery-srv-name", None, Kind::Str, "", "DNS discovery"),
    refused(
        "insecure-discovery",
        None,
        Kind::Bool,
        "true",
        "DNS discovery",
    ),
    refused("keepalive-time", None, Kind::Duration, "2s", "keepalive"),
    refused("keepalive-timeout", None, Kind::Duration, "6s", "keepalive"),
    refused("debug", None, Kind::Bool, "false", "debug logging"),
];

/// Every flag valid at the root: the global flags, the refused ones and `--help`.
fn root_flags() -> Vec<Flag> {
    let mut flags = GLOBAL_FLAGS.to_vec();
    flags.extend(REFUSED_FLAGS.iter().map(|r| r.flag));
    flags.push(HELP);
    flags
}

/// Whether a refused flag's value asks for something etcrctl does not do. A keepalive
/// interval always does; the other flags' etcdctl defaults (no CA, plaintext, no user) do not.
fn asks_for_something(r: &Refused, value: &str) -> bool {
    match r.flag.kind {
        Kind::Bool => gofmt::parse_bool(value).ok() != gofmt::parse_bool(r.flag.default).ok(),
        Kind::Str => value != r.flag.default,
        _ => true,
    }
}

/// Refuses every refused flag that was set (on the command line, or by `source` naming the
/// environment variable) to a value that asks for something.
fn check_refused(parsed: &Parsed, source: impl Fn(&Flag) -> String) -> Result<()> {
    for r in REFUSED_FLAGS {
        if parsed.changed(r.flag.name) && asks_for_something(r, &parsed.str(r.flag.name)) {
            return Err(CliError::bad_feature(format!(
                "{} is refused: etcrctl does not support {} yet",
                source(&r.flag),
                r.feature
            )));
        }
    }
    Ok(())
}

fn env_name(f: &Flag) -> String {
    format!("ETCDCTL_{}", f.name.to_uppercase().replace('-', "_"))
}

/// cobra's `findNext` with prefix matching: the exact name, else the only name with that prefix.
fn resolve<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    if let Some(exact) = names.iter().find(|n| **n == word) {
        return Some(exact);
    }
    let mut matches = names.iter().filter(|n| n.starts_with(word));
    match (matches.next(), matches.next()) {
        (Some(only), None) if !word.is_empty() => Some(only),
        _ => None,
    }
}

/// cobra's Levenshtein distance (case-insensitive), for suggestions.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A command word etcrctl does not have (`parent` is "" at the top level, else the group),
/// with the nearby names it does have.
fn unknown_command(word: &str, parent: &str, names: &[&str]) -> CliError {
    let path = if parent.is_empty() {
        "etcrctl".to_string()
    } else {
        format!("etcrctl {parent}")
    };
    let mut msg = format!(
        "Error: unknown command {} for \"{path}\"\n",
        gofmt::quote(word.as_bytes())
    );
    let suggestions: Vec<&str> = names
        .iter()
        .filter(|n| **n != "help")
        .filter(|n| levenshtein(word, n) <= 2 || n.starts_with(&word.to_lowercase()))
        .copied()
        .collect();
    if !suggestions.is_empty() {
        msg.push_str("\nDid you mean this?\n");
        for s in suggestions {
            msg.push_str(&format!("\t{s}\n"));
        }
        msg.push('\n');
    }
    let list = if parent.is_empty() {
        "etcrctl --help".to_string()
    } else {
        path.clone()
    };
    msg.push_str(&format!("Run '{list}' for the commands {path} has.\n"));
    CliError::Raw {
        stderr: msg,
        code: exit::ERROR,
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run a command with its parsed flags and positional arguments.
    Run(Command, Parsed),
    /// Print a help page and exit 0 (`--help`, `help`, a group without its command).
    Usage(String),
}

/// Parsed flag values (raw strings, validated by kind) and positional arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: BTreeMap<&'static str, String>,
    changed: BTreeMap<&'static str, bool>,
    kinds: BTreeMap<&'static str, Kind>,
    pub args: Vec<String>,
    /// How many of `args` came before a `--` (`None` without one): `watch` runs what follows.
    pub dash: Option<usize>,
}

impl Parsed {
    pub fn str(&self, name: &str) -> String {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.values
            .get(name)
            .is_some_and(|v| gofmt::parse_bool(v).unwrap_or(false))
    }

    pub fn int(&self, name: &str) -> i64 {
        self.values
            .get(name)
            .and_then(|v| gofmt::parse_int(v, 0).ok())
            .unwrap_or(0)
    }

    pub fn duration(&self, name: &str) -> std::time::Duration {
        self.values
            .get(name)
            .and_then(|v| gofmt::parse_duration(v).ok())
            .unwrap_or_default()
    }

    pub fn slice(&self, name: &str) -> Vec<String> {
        let raw = self.str(name);
        if raw.is_empty() {
            return Vec::new();
        }
        raw.split(',').map(str::to_string).collect()
    }

    pub fn changed(&self, name: &str) -> bool {
        self.changed.get(name).copied().unwrap_or(false)
    }

    fn set(&mut self, f: &Flag, value: &str) -> std::result::Result<(), String> {
        let check = match f.kind {
            Kind::Bool => gofmt::parse_bool(value).map(|_| ()),
            Kind::Int => gofmt::parse_int(value, 0).map(|_| ()),
            Kind::Duration => gofmt::parse_duration(value).map(|_| ()),
            Kind::Str | Kind::StrSlice => Ok(()),
        };
        if let Err(e) = check {
            let name = match f.short {
                Some(s) => format!("-{s}, --{}", f.name),
                None => format!("--{}", f.name),
            };
            return Err(format!(
                "invalid argument {} for {} flag: {e}",
                gofmt::quote(value.as_bytes()),
                gofmt::quote(name.as_bytes())
            ));
        }
        let stored = if f.kind == Kind::StrSlice && self.changed(f.name) {
            format!("{},{value}", self.str(f.name))
        } else {
            value.to_string()
        };
        self.values.insert(f.name, stored);
        self.changed.insert(f.name, true);
        Ok(())
    }

    /// Applies `ETCDCTL_<FLAG>` environment variables to the global flags (and `inherited`,
    /// a group's flags) as etcdctl's `SetPflagsFromEnv` does when the client is created.
    /// Returns the warnings to print on stderr, or the fatal error: a variable shadowed by a
    /// command-line flag, or one that sets a refused flag.
    pub fn apply_env(&mut self, env: &[(String, String)], inherited: &[Flag]) -> Result<String> {
        let mut warnings = String::new();
        let mut used = Vec::new();
        let candidates: Vec<Flag> = GLOBAL_FLAGS
            .iter()
            .copied()
            .chain(REFUSED_FLAGS.iter().map(|r| r.flag))
            .chain(inherited.iter().copied())
            .collect();
        for f in &candidates {
            let key = env_name(f);
            let Some((_, value)) = env.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            used.push(key.clone());
            if self.changed(f.name) {
                return Err(conflict(&key));
            }
            // etcdctl ignores a variable whose value does not parse.
            let _ = self.set(f, value);
        }
        check_refused(self, env_name)?;
        for (k, v) in env {
            if k.starts_with("ETCDCTL_") && k != "ETCDCTL_API" && !used.contains(k) {
                warnings.push_str(&format!(
                    "{} W | pkg/flags: unrecognized environment variable {k}={v}\n",
                    crate::clock::capnslog_timestamp()
                ));
            }
        }
        Ok(warnings)
    }
}

fn conflict(key: &str) -> CliError {
    // capnslog's critical level logs and exits with status 1.
    CliError::Raw {
        stderr: format!(
            "{} C | pkg/flags: conflicting environment variable {} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n",
            crate::clock::capnslog_timestamp(),
            gofmt::quote(key.as_bytes())
        ),
        code: crate::error::exit::ERROR,
    }
}

fn find_flag<'a>(flags: &'a [Flag], name: &str) -> Option<&'a Flag> {
    flags.iter().find(|f| f.name == name)
}

fn find_short(flags: &[Flag], c: char) -> Option<&Flag> {
    flags.iter().find(|f| f.short == Some(c))
}

/// The first words of every command, then `help`, in help order.
fn top_level_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for c in Command::ALL {
        let first = c.spec().name.split(' ').next().unwrap_or_default();
        if !names.contains(&first) {
            names.push(first);
        }
    }
    names.push("help");
    names
}

/// Resolves the command path (as cobra's `Find` does, skipping flags) and parses its flags.
pub fn parse(argv: &[String]) -> Result<Invocation> {
    let root = root_flags();
    let top = top_level_names();
    let is_group = |w: &str| GROUPS.iter().any(|g| Some(g.name) == resolve(w, &top));
    // Find the command words: positionals, skipping root flags and their values.
    let mut words: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i < argv.len() && words.len() < 2 {
        let a = argv[i].as_str();
        if a == "--" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') {
                if let Some(f) = find_flag(&root, long) {
                    if f.kind != Kind::Bool {
                        i += 1;
                    }
                }
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let c = a[1..].chars().next().unwrap_or('-');
            if a.len() == 2 && find_short(&root, c).is_some_and(|f| f.kind != Kind::Bool) {
                i += 1;
            }
        } else if words.is_empty() || is_group(words[0].1) {
            words.push((i, a));
        } else {
            break;
        }
        i += 1;
    }
    let Some(&(first_at, first_word)) = words.first() else {
        return root_only(argv);
    };
    let first = resolve(first_word, &top).ok_or_else(|| unknown_command(first_word, "", &top))?;
    if first == "help" {
        return help_for(&argv[first_at + 1..]);
    }
    let (name, used) = match GROUPS.iter().find(|g| g.name == first) {
        Some(group) => {
            let subs: Vec<&'static str> = group
                .commands()
                .filter_map(|c| c.spec().name.split_once(' ').map(|(_, s)| s))
                .collect();
            let Some(&(_, sub_word)) = words.get(1) else {
                check_root_flags(argv, "")?;
                return Ok(Invocation::Usage(help::group(group)));
            };
            let sub = resolve(sub_word, &subs)
                .ok_or_else(|| unknown_command(sub_word, group.name, &subs))?;
            (format!("{first} {sub}"), 2)
        }
        None => (first.to_string(), 1),
    };
    let command = Command::ALL
        .iter()
        .copied()
        .find(|c| c.spec().name == name)
        .ok_or_else(|| unknown_command(first_word, "", &top))?;
    let skip: Vec<usize> = words[..used].iter().map(|(i, _)| *i).collect();
    let rest: Vec<String> = argv
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .map(|(_, a)| a.clone())
        .collect();
    let mut flags: Vec<Flag> = command.flags().to_vec();
    flags.extend(root);
    let parsed = parse_flags(&flags, &rest).map_err(|message| CliError::Flag {
        message,
        command: command.spec().name,
    })?;
    if parsed.bool("help") {
        return Ok(Invocation::Usage(help::command(command.spec())));
    }
    check_refused(&parsed, |f| format!("--{}", f.name))?;
    Ok(Invocation::Run(command, parsed))
}

/// `help [command]`: the named command's page, else the root page.
fn help_for(rest: &[String]) -> Result<Invocation> {
    if rest.iter().all(|a| a.starts_with('-')) {
        return Ok(Invocation::Usage(help::root()));
    }
    match parse(rest)? {
        Invocation::Run(command, _) => Ok(Invocation::Usage(help::command(command.spec()))),
        usage => Ok(usage),
    }
}

/// Flags without a command (or with a group alone) only ask for help, but must still parse.
fn check_root_flags(argv: &[String], command: &'static str) -> Result<()> {
    let parsed =
        parse_flags(&root_flags(), argv).map_err(|message| CliError::Flag { message, command })?;
    check_refused(&parsed, |f| format!("--{}", f.name))
}

fn root_only(argv: &[String]) -> Result<Invocation> {
    check_root_flags(argv, "")?;
    Ok(Invocation::Usage(help::root()))
}

/// pflag's `Parse`: interspersed flags, `--name=value`, `--name value`, `-abc`, `-wjson`, `--`.
pub fn parse_flags(flags: &[Flag], argv: &[String]) -> std::result::Result<Parsed, String> {
    let mut parsed = Parsed::default();
    for f in flags {
        parsed.values.insert(f.name, f.default.to_string());
        parsed.kinds.insert(f.name, f.kind);
    }
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if a == "--" {
            parsed.dash = Some(parsed.args.len());
            parsed.args.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let f = find_flag(flags, name).ok_or_else(|| format!("unknown flag: --{name}"))?;
            let value = match (inline, f.kind) {
                (Some(v), _) => v,
                (None, Kind::Bool) => "true".to_string(),
                (None, _) => {
                    if i < argv.len() {
                        i += 1;
                        argv[i - 1].clone()
                    } else {
                        return Err(format!("flag needs an argument: --{name}"));
                    }
                }
            };
            parsed.set(f, &value)?;
        } else if a.len() > 1 && a.starts_with('-') {
            let shorts: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < shorts.len() {
                let c = shorts[j];
                let f = find_short(flags, c).ok_or_else(|| {
                    format!("unknown shorthand flag: {} in {a}", gofmt::quote_rune(c))
                })?;
                let tail: String = shorts[j + 1..].iter().collect();
                if let Some(v) = tail.strip_prefix('=') {
                    parsed.set(f, v)?;
                    break;
                }
                if f.kind == Kind::Bool {
                    parsed.set(f, "true")?;
                    j += 1;
                    continue;
                }
                if !tail.is_empty() {
                    parsed.set(f, &tail)?;
                } else if i < argv.len() {
                    i += 1;
                    parsed.set(f, &argv[i - 1])?;
                } else {
                    return Err(format!(
                        "flag needs an argument: {} in {a}",
                        gofmt::quote_rune(c)
                    ));
                }
                break;
            }
        } else {
            parsed.args.push(a.clone());
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn run(s: &str) -> (Command, Parsed) {
        match parse(&argv(s)) {
            Ok(Invocation::Run(cmd, p)) => (cmd, p),
            other => panic!("{s}: expected a command, got {other:?}"),
        }
    }

    fn stderr(s: &str) -> String {
        match parse(&argv(s)) {
            Err(e) => e.render().0,
            Ok(other) => panic!("{s}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn finds_command_past_global_flags() {
        let (cmd, p) = run("--endpoints x:1 -w json get foo --prefix");
        assert_eq!(cmd, Command::Get);
        assert_eq!(p.args, vec!["foo"]);
        assert!(p.bool("prefix"));
        assert_eq!(p.str("write-out"), "json");
        assert_eq!(p.slice("endpoints"), vec!["x:1"]);
    }

    #[test]
    fn groups_and_exec_arguments() {
        assert_eq!(run("lease grant 10").0, Command::LeaseGrant);
        assert_eq!(run("lease keep-alive --once 1").0, Command::LeaseKeepAlive);
        assert_eq!(
            run("member add m2 --peer-urls=http://a:1").0,
            Command::MemberAdd
        );
        assert_eq!(run("endpoint hashkv --rev=3").0, Command::EndpointHashKv);
        let (cmd, p) = run("watch foo --rev 3 -- echo -n hi");
        assert_eq!(cmd, Command::Watch);
        assert_eq!(p.args, vec!["foo", "echo", "-n", "hi"]);
        assert_eq!((p.dash, p.int("rev")), (Some(1), 3));
    }

    #[test]
    fn subcommands_and_double_dash() {
        let (cmd, p) = run("member list -wfields");
        assert_eq!(cmd, Command::MemberList);
        assert_eq!(p.str("write-out"), "fields");
        let (_, p) = run("put -- -x -y");
        assert_eq!(p.args, vec!["-x", "-y"]);
    }

    #[test]
    fn prefixes_and_suggestions_like_cobra() {
        assert_eq!(run("ver").0, Command::Version);
        assert_eq!(run("mem l").0, Command::MemberList);
        assert_eq!(
            stderr("gte"),
            "Error: unknown command \"gte\" for \"etcrctl\"\n\nDid you mean this?\n\tget\n\nRun 'etcrctl --help' for the commands etcrctl has.\n"
        );
    }

    #[test]
    fn commands_etcrctl_lacks_are_unknown() {
        for (line, word, path) in [
            ("check perf", "check", "etcrctl"),
            ("snapshot bogus x", "bogus", "etcrctl snapshot"),
            ("help check", "check", "etcrctl"),
        ] {
            let err = parse(&argv(line)).unwrap_err();
            let (text, code) = err.render();
            assert_eq!(code, exit::ERROR, "{line}");
            assert!(
                text.starts_with(&format!(
                    "Error: unknown command \"{word}\" for \"{path}\"\n"
                )),
                "{line}: {text}"
            );
        }
    }

    #[test]
    fn help_pages() {
        let page = |s: &str| match parse(&argv(s)) {
            Ok(Invocation::Usage(text)) => text,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(page(""), help::root());
        assert_eq!(page("--help"), help::root());
        assert_eq!(page("help"), help::root());
        assert_eq!(page("get --help"), help::command(Command::Get.spec()));
        assert_eq!(page("help get"), help::command(Command::Get.spec()));
        assert_eq!(page("help member list"), page("member list -h"));
        assert!(page("member").starts_with("etcrctl member: "));
        assert!(page("help endpoint").contains("\n  endpoint status "));
    }

    #[test]
    fn refused_flags_are_errors_unless_they_ask_for_nothing() {
        for line in [
            "-d example.com get foo",
            "--discovery-srv-name x get foo",
            "--insecure-discovery=false get foo",
            "--keepalive-time=2s get foo",
            "--keepalive-timeout 6s get foo",
            "--debug version",
            "member --keepalive-time=3s",
        ] {
            let err = parse(&argv(line)).unwrap_err();
            let (text, code) = err.render();
            assert_eq!(code, exit::BAD_FEATURE, "{line}");
            assert!(text.starts_with("Error: --"), "{line}: {text}");
            assert!(
                text.contains(" is refused: etcrctl does not support "),
                "{line}: {text}"
            );
        }
        for line in [
            "--insecure-transport=true get foo",
            "--insecure-transport get foo",
            "--cacert ca.pem get foo",
            "get foo --cert=c.pem --key k.pem",
            "--insecure-skip-tls-verify --insecure-transport=false get foo",
            "--debug=false get foo",
            "--insecure-discovery get foo",
        ] {
            assert_eq!(run(line).0, Command::Get, "{line}");
        }
        let (_, p) = run("--cacert= get foo");
        assert_eq!(p.args, vec!["foo"]);
        let (_, p) = run("get --cacert ca.pem foo");
        assert_eq!(
            (p.str("cacert"), p.args),
            ("ca.pem".into(), vec!["foo".into()])
        );
    }

    #[test]
    fn refused_flags_from_the_environment() {
        let (_, mut p) = run("get foo");
        let env = vec![("ETCDCTL_DEBUG".to_string(), "true".to_string())];
        let err = p.apply_env(&env, &[]).unwrap_err();
        assert_eq!(
            err.render().0,
            "Error: ETCDCTL_DEBUG is refused: etcrctl does not support debug logging yet\n"
        );
        let (_, mut p) = run("get foo");
        let env = vec![("ETCDCTL_USER".to_string(), "root:pw".to_string())];
        assert_eq!(p.apply_env(&env, &[]).unwrap(), "");
        assert_eq!(p.str("user"), "root:pw");
        let (_, mut p) = run("get foo");
        let env = vec![("ETCDCTL_INSECURE_TRANSPORT".to_string(), "true".to_string())];
        assert_eq!(p.apply_env(&env, &[]).unwrap(), "");
    }

    #[test]
    fn flag_errors_keep_pflag_messages() {
        let message = |s: &str| match parse(&argv(s)).unwrap_err() {
            CliError::Flag { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message("get --bogus"), "unknown flag: --bogus");
        assert_eq!(message("get -x"), "unknown shorthand flag: 'x' in -x");
        assert_eq!(
            message("get --rev=abc"),
            r#"invalid argument "abc" for "--rev" flag: strconv.ParseInt: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            stderr("get --bogus"),
            "Error: unknown flag: --bogus\nRun 'etcrctl get --help' for the flags of get.\n"
        );
    }
}
