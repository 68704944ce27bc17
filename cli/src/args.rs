//! Command-line parsing with cobra/pflag semantics, so that flag errors, `--` handling,
//! interspersed flags and `ETCDCTL_*` environment variables behave as in etcdctl 3.4.

use std::collections::BTreeMap;

use crate::error::{CliError, Result};
use crate::gofmt;

/// How a flag's value is parsed (and how pflag reports a bad value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Str,
    Int,
    Duration,
    StrSlice,
}

/// One flag: long name, optional shorthand, kind and default (pflag's `DefValue`).
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: &'static str,
}

const fn flag(name: &'static str, short: Option<char>, kind: Kind, default: &'static str) -> Flag {
    Flag {
        name,
        short,
        kind,
        default,
    }
}

/// The root command's persistent flags (the "GLOBAL OPTIONS").
pub const GLOBAL_FLAGS: &[Flag] = &[
    flag("cacert", None, Kind::Str, ""),
    flag("cert", None, Kind::Str, ""),
    flag("command-timeout", None, Kind::Duration, "5s"),
    flag("debug", None, Kind::Bool, "false"),
    flag("dial-timeout", None, Kind::Duration, "2s"),
    flag("discovery-srv", Some('d'), Kind::Str, ""),
    flag("discovery-srv-name", None, Kind::Str, ""),
    flag("endpoints", None, Kind::StrSlice, "127.0.0.1:2379"),
    flag("hex", None, Kind::Bool, "false"),
    flag("insecure-discovery", None, Kind::Bool, "true"),
    flag("insecure-skip-tls-verify", None, Kind::Bool, "false"),
    flag("insecure-transport", None, Kind::Bool, "true"),
    flag("keepalive-time", None, Kind::Duration, "2s"),
    flag("keepalive-timeout", None, Kind::Duration, "6s"),
    flag("key", None, Kind::Str, ""),
    flag("password", None, Kind::Str, ""),
    flag("user", None, Kind::Str, ""),
    flag("write-out", Some('w'), Kind::Str, "simple"),
];

pub const HELP: Flag = flag("help", Some('h'), Kind::Bool, "false");

const GET_FLAGS: &[Flag] = &[
    flag("consistency", None, Kind::Str, "l"),
    flag("from-key", None, Kind::Bool, "false"),
    flag("keys-only", None, Kind::Bool, "false"),
    flag("limit", None, Kind::Int, "0"),
    flag("order", None, Kind::Str, ""),
    flag("prefix", None, Kind::Bool, "false"),
    flag("print-value-only", None, Kind::Bool, "false"),
    flag("rev", None, Kind::Int, "0"),
    flag("sort-by", None, Kind::Str, ""),
];
const PUT_FLAGS: &[Flag] = &[
    flag("ignore-lease", None, Kind::Bool, "false"),
    flag("ignore-value", None, Kind::Bool, "false"),
    flag("lease", None, Kind::Str, "0"),
    flag("prev-kv", None, Kind::Bool, "false"),
];
const DEL_FLAGS: &[Flag] = &[
    flag("from-key", None, Kind::Bool, "false"),
    flag("prefix", None, Kind::Bool, "false"),
    flag("prev-kv", None, Kind::Bool, "false"),
];
const TXN_FLAGS: &[Flag] = &[flag("interactive", Some('i'), Kind::Bool, "false")];
const COMPACTION_FLAGS: &[Flag] = &[flag("physical", None, Kind::Bool, "false")];
const ENDPOINT_FLAGS: &[Flag] = &[flag("cluster", None, Kind::Bool, "false")];

/// The commands etcrctl implements, with their own flags and usage text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Get,
    Put,
    Del,
    Txn,
    Compaction,
    Version,
    MemberList,
    EndpointStatus,
    EndpointHealth,
}

impl Command {
    pub fn flags(self) -> &'static [Flag] {
        match self {
            Command::Get => GET_FLAGS,
            Command::Put => PUT_FLAGS,
            Command::Del => DEL_FLAGS,
            Command::Txn => TXN_FLAGS,
            Command::Compaction => COMPACTION_FLAGS,
            Command::EndpointStatus | Command::EndpointHealth => ENDPOINT_FLAGS,
            Command::Version | Command::MemberList => &[],
        }
    }

    pub fn usage(self) -> &'static str {
        match self {
            Command::Get => include_str!("usage/get.txt"),
            Command::Put => include_str!("usage/put.txt"),
            Command::Del => include_str!("usage/del.txt"),
            Command::Txn => include_str!("usage/txn.txt"),
            Command::Compaction => include_str!("usage/compaction.txt"),
            Command::Version => include_str!("usage/version.txt"),
            Command::MemberList => include_str!("usage/member_list.txt"),
            Command::EndpointStatus => include_str!("usage/endpoint_status.txt"),
            Command::EndpointHealth => include_str!("usage/endpoint_health.txt"),
        }
    }
}

pub const ROOT_USAGE: &str = include_str!("usage/root.txt");
pub const MEMBER_USAGE: &str = include_str!("usage/member.txt");
pub const ENDPOINT_USAGE: &str = include_str!("usage/endpoint.txt");

/// etcdctl 3.4's top-level commands in registration order (cobra's suggestion order);
/// etcrctl implements get, put, del, txn, compaction, endpoint, version and member.
const ROOT_COMMANDS: &[&str] = &[
    "get",
    "put",
    "del",
    "txn",
    "compaction",
    "alarm",
    "defrag",
    "endpoint",
    "move-leader",
    "watch",
    "version",
    "lease",
    "member",
    "snapshot",
    "make-mirror",
    "migrate",
    "lock",
    "elect",
    "auth",
    "user",
    "role",
    "check",
    "help",
    "completion",
];
const MEMBER_COMMANDS: &[&str] = &["add", "remove", "update", "list", "promote"];
const ENDPOINT_COMMANDS: &[&str] = &["health", "status", "hashkv"];

/// cobra's `findNext` with prefix matching: the exact name, else the only name with that prefix.
fn resolve(word: &str, names: &[&'static str]) -> Option<&'static str> {
    if let Some(exact) = names.iter().find(|n| **n == word) {
        return Some(exact);
    }
    let mut matches = names.iter().filter(|n| n.starts_with(word));
    match (matches.next(), matches.next()) {
        (Some(only), None) if !word.is_empty() => Some(only),
        _ => None,
    }
}

/// cobra's Levenshtein distance (case-insensitive).
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

/// cobra's unknown-command error with its "Did you mean this?" suggestions.
fn unknown_command(word: &str) -> CliError {
    let mut msg = format!(
        "unknown command {} for \"etcdctl\"",
        gofmt::quote(word.as_bytes())
    );
    let suggestions: Vec<&str> = ROOT_COMMANDS
        .iter()
        .filter(|n| **n != "help")
        .filter(|n| levenshtein(word, n) <= 2 || n.starts_with(&word.to_lowercase()))
        .copied()
        .collect();
    if !suggestions.is_empty() {
        msg.push_str("\n\nDid you mean this?\n");
        for s in suggestions {
            msg.push_str(&format!("\t{s}\n"));
        }
    }
    CliError::Raw {
        stderr: format!("Error: {msg}\nRun 'etcdctl --help' for usage.\nError: {msg}\n"),
        code: crate::error::exit::ERROR,
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run a command with its parsed flags and positional arguments.
    Run(Command, Parsed),
    /// Print a usage text and exit 0 (`--help`, a group without its subcommand).
    Usage(&'static str),
}

/// Parsed flag values (raw strings, validated by kind) and positional arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: BTreeMap<&'static str, String>,
    changed: BTreeMap<&'static str, bool>,
    kinds: BTreeMap<&'static str, Kind>,
    pub args: Vec<String>,
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

    /// Applies `ETCDCTL_<FLAG>` environment variables to the global flags as etcdctl's
    /// `SetPflagsFromEnv` does when the client is created. Returns the warnings to print
    /// on stderr, or the fatal conflict (a variable shadowed by a command-line flag).
    pub fn apply_env(
        &mut self,
        env: &[(String, String)],
        extra: &[&'static str],
    ) -> Result<String> {
        let mut warnings = String::new();
        let mut used = Vec::new();
        let candidates: Vec<Flag> = GLOBAL_FLAGS
            .iter()
            .copied()
            .chain(extra.iter().filter_map(|n| {
                [Command::EndpointStatus]
                    .iter()
                    .flat_map(|c| c.flags())
                    .find(|f| f.name == *n)
                    .copied()
            }))
            .collect();
        for f in &candidates {
            let key = format!("ETCDCTL_{}", f.name.to_uppercase().replace('-', "_"));
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

/// Resolves the command path (as cobra's `Find` does, skipping flags) and parses its flags.
pub fn parse(argv: &[String]) -> Result<Invocation> {
    // Find the command words: positionals, skipping global flags and their values.
    let mut words: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i < argv.len() && words.len() < 2 {
        let a = argv[i].as_str();
        if a == "--" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') {
                if let Some(f) = find_flag(GLOBAL_FLAGS, long) {
                    if f.kind != Kind::Bool {
                        i += 1;
                    }
                }
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let c = a[1..].chars().next().unwrap_or('-');
            if a.len() == 2 && find_short(GLOBAL_FLAGS, c).is_some_and(|f| f.kind != Kind::Bool) {
                i += 1;
            }
        } else if words.is_empty()
            || matches!(
                resolve(words[0].1, ROOT_COMMANDS),
                Some("member" | "endpoint")
            )
        {
            words.push((i, a));
        } else {
            break;
        }
        i += 1;
    }
    // cobra's prefix matching: an unambiguous prefix names the command.
    let first = words.first().map(|(_, w)| resolve(w, ROOT_COMMANDS));
    let second = match (first, words.get(1)) {
        (Some(Some("member")), Some((_, w))) => resolve(w, MEMBER_COMMANDS),
        (Some(Some("endpoint")), Some((_, w))) => resolve(w, ENDPOINT_COMMANDS),
        _ => None,
    };
    let (command, used) = match (first, second) {
        (None, _) => return root_only(argv),
        (Some(Some("get")), _) => (Command::Get, 1),
        (Some(Some("put")), _) => (Command::Put, 1),
        (Some(Some("del")), _) => (Command::Del, 1),
        (Some(Some("txn")), _) => (Command::Txn, 1),
        (Some(Some("compaction")), _) => (Command::Compaction, 1),
        (Some(Some("version")), _) => (Command::Version, 1),
        (Some(Some("member")), Some("list")) => (Command::MemberList, 2),
        (Some(Some("endpoint")), Some("status")) => (Command::EndpointStatus, 2),
        (Some(Some("endpoint")), Some("health")) => (Command::EndpointHealth, 2),
        (Some(Some("member")), None) => return Ok(Invocation::Usage(MEMBER_USAGE)),
        (Some(Some("endpoint")), None) => return Ok(Invocation::Usage(ENDPOINT_USAGE)),
        (Some(Some("help")), _) => return Ok(Invocation::Usage(help_for(argv, &words))),
        (Some(Some(other)), sub) => {
            let name = match sub {
                Some(sub) => format!("{other} {sub}"),
                None => other.to_string(),
            };
            return Err(CliError::exit(
                crate::error::exit::ERROR,
                format!("etcrctl does not implement the {name:?} command yet"),
            ));
        }
        (Some(None), _) => return Err(unknown_command(words[0].1)),
    };
    let skip: Vec<usize> = words[..used].iter().map(|(i, _)| *i).collect();
    let rest: Vec<String> = argv
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .map(|(_, a)| a.clone())
        .collect();
    let mut flags: Vec<Flag> = command.flags().to_vec();
    flags.push(HELP);
    flags.extend_from_slice(GLOBAL_FLAGS);
    let parsed = parse_flags(&flags, &rest).map_err(|message| CliError::Flag {
        message,
        usage: command.usage(),
    })?;
    if parsed.bool("help") {
        return Ok(Invocation::Usage(command.usage()));
    }
    Ok(Invocation::Run(command, parsed))
}

/// `help [command]`: the named command's usage, else the root usage.
fn help_for(argv: &[String], words: &[(usize, &str)]) -> &'static str {
    let rest: Vec<String> = argv.iter().skip(words[0].0 + 1).cloned().collect();
    match parse(&rest) {
        Ok(Invocation::Run(command, _)) => command.usage(),
        Ok(Invocation::Usage(text)) => text,
        Err(_) => ROOT_USAGE,
    }
}

fn root_only(argv: &[String]) -> Result<Invocation> {
    let mut flags = GLOBAL_FLAGS.to_vec();
    flags.push(HELP);
    parse_flags(&flags, argv).map_err(|message| CliError::Flag {
        message,
        usage: ROOT_USAGE,
    })?;
    Ok(Invocation::Usage(ROOT_USAGE))
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

    #[test]
    fn finds_command_past_global_flags() {
        let Invocation::Run(cmd, p) =
            parse(&argv("--endpoints x:1 -w json get foo --prefix")).unwrap()
        else {
            panic!("expected a command")
        };
        assert_eq!(cmd, Command::Get);
        assert_eq!(p.args, vec!["foo"]);
        assert!(p.bool("prefix"));
        assert_eq!(p.str("write-out"), "json");
        assert_eq!(p.slice("endpoints"), vec!["x:1"]);
    }

    #[test]
    fn subcommands_and_double_dash() {
        let Invocation::Run(cmd, p) = parse(&argv("member list -wfields")).unwrap() else {
            panic!()
        };
        assert_eq!(cmd, Command::MemberList);
        assert_eq!(p.str("write-out"), "fields");
        let Invocation::Run(_, p) = parse(&argv("put -- -x -y")).unwrap() else {
            panic!()
        };
        assert_eq!(p.args, vec!["-x", "-y"]);
    }

    #[test]
    fn prefixes_and_suggestions_like_cobra() {
        assert!(matches!(
            parse(&argv("ver")).unwrap(),
            Invocation::Run(Command::Version, _)
        ));
        assert!(matches!(
            parse(&argv("mem l")).unwrap(),
            Invocation::Run(Command::MemberList, _)
        ));
        let CliError::Raw { stderr, .. } = parse(&argv("de")).unwrap_err() else {
            panic!()
        };
        assert!(stderr.starts_with("Error: unknown command \"de\" for \"etcdctl\"\n\nDid you mean this?\n\tget\n\tdel\n\tdefrag\n\nRun"));
    }

    #[test]
    fn flag_errors_match_pflag() {
        let err = parse(&argv("get --bogus")).unwrap_err();
        assert!(
            matches!(err, CliError::Flag { ref message, .. } if message == "unknown flag: --bogus")
        );
        let err = parse(&argv("get -x")).unwrap_err();
        assert!(
            matches!(err, CliError::Flag { ref message, .. } if message == "unknown shorthand flag: 'x' in -x")
        );
        let err = parse(&argv("get --rev=abc")).unwrap_err();
        assert!(matches!(err, CliError::Flag { ref message, .. }
            if message == r#"invalid argument "abc" for "--rev" flag: strconv.ParseInt: parsing "abc": invalid syntax"#));
    }
}
