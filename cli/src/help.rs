//! etcrctl's help texts, built from each command's [`Spec`] (kept next to the command) and
//! the global flags, so a help page lists exactly what the parser accepts.

use crate::args::{Flag, Kind, GLOBAL_FLAGS, HELP, REFUSED_FLAGS};
use crate::commands::Command;

/// The etcd v3 API version etcrctl speaks (and `version` reports).
pub const API_VERSION: &str = "3.4";

/// What a command's help page says about it.
#[derive(Debug)]
pub struct Spec {
    /// The words that name the command: `"get"`, `"member list"`.
    pub name: &'static str,
    /// What follows the name on the usage line.
    pub args: &'static str,
    /// One line for the command lists.
    pub summary: &'static str,
    /// Paragraphs between the usage line and the flags (empty for none).
    pub about: &'static str,
    /// The command's own flags (the global flags come on top).
    pub flags: &'static [Flag],
}

/// A word that only groups commands (`member`, `endpoint`).
#[derive(Debug)]
pub struct Group {
    pub name: &'static str,
    pub summary: &'static str,
}

impl Group {
    /// The commands under this group, in help order.
    pub fn commands(&self) -> impl Iterator<Item = Command> + '_ {
        Command::ALL
            .iter()
            .copied()
            .filter(move |c| c.spec().name.split_once(' ').map(|(g, _)| g) == Some(self.name))
    }
}

/// `  -w, --write-out=simple` for the flag tables.
fn flag_left(f: &Flag) -> String {
    let short = match f.short {
        Some(c) => format!("-{c}, "),
        None => "    ".to_string(),
    };
    let value = match f.kind {
        Kind::Bool if f.default == "false" => String::new(),
        Kind::Str if f.default.is_empty() => "=\"\"".to_string(),
        _ => format!("={}", f.default),
    };
    format!("  {short}--{}{value}", f.name)
}

/// Two-column lines, the right column aligned after the widest left cell.
fn table(rows: &[(String, &str)]) -> String {
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(l, r)| format!("{l:width$}  {r}\n"))
        .collect()
}

fn flag_table(flags: &[Flag]) -> String {
    let rows: Vec<(String, &str)> = flags.iter().map(|f| (flag_left(f), f.help)).collect();
    table(&rows)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("  {l}\n")
            }
        })
        .collect()
}

fn global_flags() -> Vec<Flag> {
    let mut flags = GLOBAL_FLAGS.to_vec();
    flags.sort_by_key(|f| f.name);
    flags
}

/// The help page of one command.
pub fn command(spec: &Spec) -> String {
    let mut out = format!("etcrctl {}: {}\n\n", spec.name, spec.summary);
    out.push_str(
        &format!("Usage:\n  etcrctl {} {}\n\n", spec.name, spec.args).replace(" \n", "\n"),
    );
    if !spec.about.is_empty() {
        out.push_str(&indent(spec.about));
        out.push('\n');
    }
    let mut own = spec.flags.to_vec();
    own.push(HELP);
    own.sort_by_key(|f| f.name);
    out.push_str("Flags:\n");
    out.push_str(&flag_table(&own));
    out.push_str("\nGlobal flags (see 'etcrctl --help'):\n");
    out.push_str(&flag_table(&global_flags()));
    out
}

/// The help page of a group: its commands.
pub fn group(group: &Group) -> String {
    let rows: Vec<(String, &str)> = group
        .commands()
        .map(|c| (format!("  {}", c.spec().name), c.spec().summary))
        .collect();
    format!(
        "etcrctl {name}: {summary}\n\nUsage:\n  etcrctl {name} <command> [flags]\n\nCommands:\n{}\nRun 'etcrctl {name} <command> --help' for a command's flags.\n",
        table(&rows),
        name = group.name,
        summary = group.summary,
    )
}

/// The refused flags, one line per missing feature.
fn refused_table() -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for r in REFUSED_FLAGS {
        let mut name = match r.flag.short {
            Some(c) => format!("-{c}/--{}", r.flag.name),
            None => format!("--{}", r.flag.name),
        };
        if r.flag.kind == Kind::Bool && r.flag.default == "true" {
            name.push_str("=false");
        }
        let left = format!("  {}", r.feature);
        match rows.iter_mut().find(|(l, _)| *l == left) {
            Some((_, names)) => {
                names.push_str(", ");
                names.push_str(&name);
            }
            None => rows.push((left, name)),
        }
    }
    if let Some((_, names)) = rows.iter_mut().find(|(l, _)| l == "  TLS") {
        names.push_str(", https:// endpoints");
    }
    let rows: Vec<(String, &str)> = rows.iter().map(|(l, r)| (l.clone(), r.as_str())).collect();
    table(&rows)
}

/// `etcrctl --help`: every command, the global flags and the conventions they share.
pub fn root() -> String {
    let mut rows: Vec<(String, &str)> = Command::ALL
        .iter()
        .map(|c| (format!("  {}", c.spec().name), c.spec().summary))
        .collect();
    rows.push((
        "  help [command]".to_string(),
        "show this page, or the page of one command",
    ));
    let mut out = format!(
        "etcrctl {}: a command-line client for etcr, and for any server of the etcd v3 API {API_VERSION}\n\n",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("Usage:\n  etcrctl [global flags] <command> [flags] [arguments]\n\n");
    out.push_str("Commands:\n");
    out.push_str(&table(&rows));
    out.push('\n');
    out.push_str("Global flags:\n");
    let mut flags = global_flags();
    flags.push(HELP);
    flags.sort_by_key(|f| f.name);
    out.push_str(&flag_table(&flags));
    out.push_str(
        "
Output formats (-w):
  simple (the default) and json for every command that prints a response; fields too,
  except for member add, remove, update and promote and move-leader; protobuf too,
  except for the endpoint commands, snapshot status and lease revoke (the other lease
  commands encode only the response header); table only for the endpoint
  commands, member list and snapshot status.
  Whatever the format, defrag and snapshot save print the same lines.

Environment:
  ETCDCTL_<FLAG> sets a global flag, such as ETCDCTL_ENDPOINTS=10.0.0.1:2379 or
  ETCDCTL_WRITE_OUT=json; setting one flag both ways is an error.

Exit codes:
  0 done; 1 failed (a server error, a timeout, a bad flag); 3 malformed txn input;
  4 an unsupported flag or flag value; 128 wrong arguments.

Not supported yet, and refused (exit 4):
",
    );
    out.push_str(&refused_table());
    out.push_str(
        "  Such a flag is accepted only with a value that asks for nothing, as etcdctl's
  defaults do (--insecure-transport=true, --user=\"\").

Run 'etcrctl <command> --help' for the flags of a command.
",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::GROUPS;

    #[test]
    fn flag_cells_show_defaults_but_not_false() {
        let rows: Vec<String> = GLOBAL_FLAGS.iter().map(flag_left).collect();
        assert!(rows.contains(&"  -w, --write-out=simple".to_string()));
        assert!(rows.contains(&"      --hex".to_string()));
    }

    #[test]
    fn every_command_is_listed_once_under_its_group() {
        let page = root();
        for c in Command::ALL {
            let line = format!("\n  {} ", c.spec().name);
            assert_eq!(page.matches(&line).count(), 1, "{line:?} in\n{page}");
        }
        for g in GROUPS {
            assert!(g.commands().count() > 0, "{} has no commands", g.name);
        }
    }
}
