//! `watch [flags] [key or prefix] [range_end] [-- <command> [args...]]`, and `watch -i`, which
//! reads `watch ...` and `progress` lines from stdin.

use std::collections::VecDeque;
use std::io::BufRead;

use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use super::{emit, Ctx};
use crate::args::{flag, parse_flags, Flag, Kind, Parsed};
use crate::client::{etcd_error_string, is_transport_failure, stream_error_string, Client};
use crate::error::{exit, CliError, Result};
use crate::gofmt::quote;
use crate::help::Spec;
use crate::printer::Printer;

pub const FLAGS: &[Flag] = &[
    flag(
        "interactive",
        Some('i'),
        Kind::Bool,
        "false",
        "read watch requests from standard input",
    ),
    flag(
        "prefix",
        None,
        Kind::Bool,
        "false",
        "watch every key that starts with the key",
    ),
    flag(
        "prev-kv",
        None,
        Kind::Bool,
        "false",
        "also print each changed key's previous value",
    ),
    flag(
        "rev",
        None,
        Kind::Int,
        "0",
        "replay the changes from this revision on, then follow (0: from now)",
    ),
];

pub const SPEC: Spec = Spec {
    name: "watch",
    args: "[flags] [key or prefix] [range_end] [-- <command> [args...]]",
    summary: "print each change to a key or range as it happens",
    about: "Prints every change, as its type (PUT or DELETE), then the key and the value, until
interrupted; exits 5 if the server cancels the watch (for instance when --rev has been
compacted). After '--', runs <command> for each change, with ETCD_WATCH_REVISION,
ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY and ETCD_WATCH_VALUE (Go-quoted) in its environment.
ETCDCTL_WATCH_KEY and ETCDCTL_WATCH_RANGE_END give the key and range end instead of the
arguments.
With -i, reads lines from standard input: 'watch [flags] <key> [range_end] [-- ...]' adds
a watch, 'progress' asks the server for the current revision of every watch.",
    flags: FLAGS,
};

/// The environment variables that `watch` reads, accepted silently (etcdctl declares them).
pub const ENV_FLAGS: &[Flag] = &[
    flag("watch-key", None, Kind::Str, "", ""),
    flag("watch-range-end", None, Kind::Str, "", ""),
];

const BAD_ARGS_NUM: &str = "bad number of arguments";
const CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const NO_COMMAND: &str = "bad number of arguments (found separator --, but no commands)";

/// What to watch and what to run per event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    args: Vec<String>,
    exec: Vec<String>,
}

/// The key arguments and the command after `--`, checked against the environment's key as
/// etcdctl's `parseWatchArgs` does.
fn plan(p: &Parsed, env_key: &str, env_range: &str) -> std::result::Result<Plan, &'static str> {
    let (mut args, exec) = match p.dash {
        Some(at) => (p.args[..at].to_vec(), p.args[at..].to_vec()),
        None => (p.args.clone(), Vec::new()),
    };
    if p.dash.is_some() && exec.is_empty() {
        return Err(NO_COMMAND);
    }
    if !env_key.is_empty() {
        if !args.is_empty() {
            return Err(CONFLICT_ENV);
        }
        args.push(env_key.to_string());
        if !env_range.is_empty() {
            args.push(env_range.to_string());
        }
    }
    Ok(Plan { args, exec })
}

/// etcdctl's `getWatchChan`: the create request for the key arguments and flags.
fn create_request(p: &Parsed, args: &[String]) -> std::result::Result<WatchCreateRequest, String> {
    let Some(key) = args.first() else {
        return Err(BAD_ARGS_NUM.to_string());
    };
    let mut key = key.clone().into_bytes();
    let mut range_end = Vec::new();
    let prefix = p.bool("prefix");
    if args.len() == 2 {
        if prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".to_string());
        }
        range_end = args[1].clone().into_bytes();
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = api::prefix_range_end(&key);
        }
    }
    Ok(WatchCreateRequest {
        key,
        range_end,
        start_revision: p.int("rev"),
        prev_kv: p.bool("prev-kv"),
        ..Default::default()
    })
}

fn env_var<'a>(ctx: &'a Ctx, name: &str) -> &'a str {
    ctx.env
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let env_key = env_var(ctx, "ETCDCTL_WATCH_KEY").to_string();
    let env_range = env_var(ctx, "ETCDCTL_WATCH_RANGE_END").to_string();
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(CliError::bad_args(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            quote(env_range.as_bytes())
        )));
    }
    if ctx.parsed.bool("interactive") {
        return interactive(ctx, &env_key, &env_range).await;
    }
    let plan = plan(&ctx.parsed, &env_key, &env_range).map_err(CliError::bad_args)?;
    let (client, printer) = ctx.connect()?;
    let create = create_request(&ctx.parsed, &plan.args).map_err(CliError::bad_args)?;
    let mut session = Session::new(client, printer, ctx.env.clone());
    session.add(create, plan.exec).await?;
    session.follow(None).await
}

/// One line of `watch -i` input, or the end of the input.
enum Line {
    Text(String),
    End,
}

async fn interactive(ctx: &mut Ctx, env_key: &str, env_range: &str) -> Result<()> {
    let (client, printer) = ctx.connect()?;
    let (tx, rx) = mpsc::channel(16);
    // Standard input blocks; a thread feeds its lines to the watch loop.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = Vec::new();
            let complete = stdin.read_until(b'\n', &mut buf).is_ok() && buf.last() == Some(&b'\n');
            let line = if complete {
                buf.pop();
                Line::Text(String::from_utf8_lossy(&buf).into_owned())
            } else {
                Line::End
            };
            let end = matches!(line, Line::End);
            if tx.blocking_send(line).is_err() || end {
                return;
            }
        }
    });
    let mut session = Session::new(client, printer, ctx.env.clone());
    session
        .follow(Some(Requests {
            lines: rx,
            env_key: env_key.to_string(),
            env_range: env_range.to_string(),
        }))
        .await
}

/// The input of `watch -i`.
struct Requests {
    lines: mpsc::Receiver<Line>,
    env_key: String,
    env_range: String,
}

impl Requests {
    /// etcdctl's interactive `parseWatchArgs` for a `watch ...` line (words after `watch`).
    fn parse(&self, words: &[String]) -> Result<(Parsed, Plan)> {
        if words.last().is_some_and(|w| w == "--") {
            return Err(CliError::bad_args(NO_COMMAND));
        }
        let p = parse_flags(FLAGS, words).map_err(CliError::bad_args)?;
        let dash = p.dash.is_some();
        if !dash && self.env_key.is_empty() && p.args.is_empty() {
            return Err(CliError::bad_args(BAD_ARGS_NUM));
        }
        if !dash && !p.args.is_empty() && !self.env_key.is_empty() {
            return Err(CliError::bad_args(CONFLICT_ENV));
        }
        let plan = plan(&p, &self.env_key, &self.env_range).map_err(CliError::bad_args)?;
        Ok((p, plan))
    }
}

/// A watch the session has asked for: what it watches (to re-create it after a reconnect,
/// from the revision after the last one it saw) and what it runs per event.
struct Watch {
    create: WatchCreateRequest,
    exec: Vec<String>,
}

/// Every watch of the command on one gRPC stream, as clientv3 multiplexes them.
struct Session {
    client: Client,
    printer: Printer,
    env: Vec<(String, String)>,
    stream: Option<Stream>,
    /// Watches sent but not yet confirmed, in the order the server answers them.
    pending: VecDeque<Watch>,
    active: Vec<(i64, Watch)>,
}

struct Stream {
    requests: mpsc::Sender<WatchRequest>,
    responses: tonic::Streaming<WatchResponse>,
}

fn create_message(create: &WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create.clone())),
    }
}

impl Session {
    fn new(client: Client, printer: Printer, env: Vec<(String, String)>) -> Session {
        Session {
            client,
            printer,
            env,
            stream: None,
            pending: VecDeque::new(),
            active: Vec::new(),
        }
    }

    /// Opens the stream (with `first` queued: the server answers the call only once it has
    /// something to say), retrying until a server takes it, as clientv3's watch does; a
    /// server that refuses it ends the watches.
    async fn connect(&mut self, first: Vec<WatchRequest>) -> Result<()> {
        let sender = std::sync::Mutex::new(None);
        let responses = self
            .client
            .open(None, |ch| {
                let (tx, rx) = mpsc::channel(first.len().max(1) + 16);
                for m in &first {
                    let _ = tx.try_send(m.clone());
                }
                if let Ok(mut slot) = sender.lock() {
                    *slot = Some(tx);
                }
                let mut req = tonic::Request::new(ReceiverStream::new(rx));
                // clientv3.WithRequireLeader: the server ends the watch if it loses its leader.
                req.metadata_mut().insert(
                    "hasleader",
                    tonic::metadata::MetadataValue::from_static("true"),
                );
                async move {
                    WatchClient::new(ch)
                        .max_decoding_message_size(usize::MAX)
                        .watch(req)
                        .await
                }
            })
            .await;
        let responses = match responses {
            Ok(r) => r,
            // clientv3 ends every watch of a stream it could not open with the error.
            Err(status) => return self.close_with(&stream_error_string(&status)),
        };
        let requests = sender
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| CliError::exit(exit::ERROR, "watch stream lost"))?;
        self.stream = Some(Stream {
            requests,
            responses,
        });
        Ok(())
    }

    async fn send(&mut self, message: WatchRequest) -> Result<()> {
        match &self.stream {
            Some(s) => {
                // A closed stream shows up as its error on the receiving side.
                let _ = s.requests.send(message).await;
                Ok(())
            }
            None => self.connect(vec![message]).await,
        }
    }

    async fn add(&mut self, create: WatchCreateRequest, exec: Vec<String>) -> Result<()> {
        let message = create_message(&create);
        self.pending.push_back(Watch { create, exec });
        self.send(message).await
    }

    /// Reopens the stream after a transport failure, resuming every watch after the last
    /// revision it delivered.
    async fn reconnect(&mut self) -> Result<()> {
        self.stream = None;
        let mut again: VecDeque<Watch> = self.active.drain(..).map(|(_, w)| w).collect();
        again.extend(self.pending.drain(..));
        let first = again.iter().map(|w| create_message(&w.create)).collect();
        self.pending = again;
        self.connect(first).await
    }

    /// Prints responses (and, with `input`, serves `watch -i` lines) until the server
    /// cancels the last watch or the input ends.
    async fn follow(&mut self, mut input: Option<Requests>) -> Result<()> {
        loop {
            if input.is_none() && self.stream.is_none() && self.active.is_empty() {
                return Err(canceled_by_server());
            }
            let line = async {
                match input.as_mut() {
                    Some(i) => i.lines.recv().await,
                    None => std::future::pending().await,
                }
            };
            let message = async {
                match self.stream.as_mut() {
                    Some(s) => Some(s.responses.message().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = message => match got {
                    Some(Ok(Some(resp))) => {
                        let ended = self.on_response(resp)?;
                        if ended && input.is_none() {
                            return Err(canceled_by_server());
                        }
                    }
                    Some(Ok(None)) => self.reconnect().await?,
                    Some(Err(status)) if is_transport_failure(&status) => self.reconnect().await?,
                    Some(Err(status)) => {
                        self.close_with(&stream_error_string(&status))?;
                        if input.is_none() {
                            return Err(canceled_by_server());
                        }
                    }
                    None => {}
                },
                line = line => match line {
                    Some(Line::Text(l)) => {
                        if let Some(requests) = &input {
                            self.on_line(requests, &l).await?;
                        }
                    }
                    _ => {
                        return Err(CliError::exit(
                            exit::INVALID_INPUT,
                            "Error reading watch request line: EOF",
                        ))
                    }
                },
            }
        }
    }

    async fn on_line(&mut self, requests: &Requests, l: &str) -> Result<()> {
        let words: Vec<String> = crate::txn_grammar::argify(l)
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect();
        match words.first().map(String::as_str) {
            None => eprintln!("Invalid command: {l} (watch and progress supported)"),
            Some("watch") => {
                if words.len() < 2 && requests.env_key.is_empty() {
                    eprintln!("Invalid command {l} (command type or key is not provided)");
                    return Ok(());
                }
                let (p, plan) = requests.parse(&words[1..])?;
                match create_request(&p, &plan.args) {
                    Ok(create) => self.add(create, plan.exec).await?,
                    Err(e) => eprintln!("Invalid command {l} ({e})"),
                }
            }
            Some("progress") => {
                let message = WatchRequest {
                    request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                };
                self.send(message).await?;
            }
            Some(_) => eprintln!("Invalid command {l} (only support watch)"),
        }
        Ok(())
    }

    /// Handles one response; true when it canceled the session's last watch.
    fn on_response(&mut self, resp: WatchResponse) -> Result<bool> {
        if resp.created {
            // clientv3 swallows the confirmation (etcdctl does not ask for it).
            if let Some(w) = self.pending.pop_front() {
                self.active.push((resp.watch_id, w));
            }
            if !resp.canceled {
                return Ok(false);
            }
        }
        let header_rev = resp.header.as_ref().map_or(0, |h| h.revision);
        let progress = resp.events.is_empty()
            && !resp.canceled
            && !resp.created
            && resp.compact_revision == 0
            && header_rev != 0;
        // Progress for every watch (watch id -1) reaches each of them.
        let targets: Vec<usize> = self
            .active
            .iter()
            .enumerate()
            .filter(|(_, (id, _))| *id == resp.watch_id || (progress && resp.watch_id == -1))
            .map(|(i, _)| i)
            .collect();
        for &i in &targets {
            if let Some(last) = resp.events.last().and_then(|e| e.kv.as_ref()) {
                self.active[i].1.create.start_revision = last.mod_revision + 1;
            } else if header_rev != 0 {
                self.active[i].1.create.start_revision = header_rev;
            }
            if resp.canceled {
                eprintln!("watch was canceled ({})", cancel_error(&resp));
            }
            if progress {
                println!("progress notify: {header_rev}");
            }
            emit(&self.printer.watch(&resp)?);
            self.run_commands(i, &resp)?;
        }
        if resp.canceled {
            self.active.retain(|(id, _)| *id != resp.watch_id);
            return Ok(self.active.is_empty() && self.pending.is_empty());
        }
        Ok(false)
    }

    /// The stream failed for good: every watch ends with the failure.
    fn close_with(&mut self, err: &str) -> Result<()> {
        self.stream = None;
        let ended = self.active.len() + self.pending.len();
        self.active.clear();
        self.pending.clear();
        for _ in 0..ended {
            eprintln!("watch was canceled ({err})");
            let resp = WatchResponse {
                canceled: true,
                ..Default::default()
            };
            emit(&self.printer.watch(&resp)?);
        }
        Ok(())
    }

    /// Runs the watch's command once per event (etcdctl stops at the first failure).
    fn run_commands(&self, i: usize, resp: &WatchResponse) -> Result<()> {
        let exec = &self.active[i].1.exec;
        if exec.is_empty() {
            return Ok(());
        }
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        for e in &resp.events {
            let kv = e.kv.clone().unwrap_or_default();
            let vars = [
                ("ETCD_WATCH_REVISION", revision.to_string()),
                (
                    "ETCD_WATCH_EVENT_TYPE",
                    quote(crate::printer::event_type_name(e.r#type).as_bytes()),
                ),
                ("ETCD_WATCH_KEY", quote(&kv.key)),
                ("ETCD_WATCH_VALUE", quote(&kv.value)),
            ];
            if let Err(why) = run_command(exec, &self.env, &vars) {
                let shown: Vec<String> = exec.iter().map(|a| quote(a.as_bytes())).collect();
                eprintln!("command [{}] error ({why})", shown.join(" "));
                return Err(CliError::Silent { code: exit::ERROR });
            }
        }
        Ok(())
    }
}

/// Runs `argv` as Go's `exec.Command(argv...).Run()` with `env` and `vars`; a failure as Go
/// reports it (`exit status 3`, `fork/exec /x: no such file or directory`).
pub(super) fn run_command(
    argv: &[String],
    env: &[(String, String)],
    vars: &[(&str, String)],
) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::ExitStatusExt as _;
    let Some(name) = argv.first() else {
        return Ok(());
    };
    let program = if name.contains('/') {
        std::path::PathBuf::from(name)
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("", |(_, v)| v.as_str());
        path.split(':')
            .map(|dir| std::path::Path::new(if dir.is_empty() { "." } else { dir }).join(name))
            .find(|candidate| {
                std::fs::metadata(candidate)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| {
                format!(
                    "exec: {}: executable file not found in $PATH",
                    quote(name.as_bytes())
                )
            })?
    };
    let status = std::process::Command::new(&program)
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .map_err(|e| format!("fork/exec {}: {}", program.display(), errno_text(&e)))?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("exit status {code}")),
        (None, Some(signal)) => Err(format!("signal: {}", signal_name(signal))),
        (None, None) => Err("exit status -1".to_string()),
    }
}

/// Go's text of an errno: the C library's, starting in lower case, without Rust's suffix.
fn errno_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Go's names of the common signals.
fn signal_name(signal: i32) -> String {
    match signal {
        1 => "hangup".to_string(),
        2 => "interrupt".to_string(),
        3 => "quit".to_string(),
        6 => "aborted".to_string(),
        9 => "killed".to_string(),
        11 => "segmentation fault".to_string(),
        13 => "broken pipe".to_string(),
        15 => "terminated".to_string(),
        other => format!("signal {other}"),
    }
}

fn canceled_by_server() -> CliError {
    CliError::exit(exit::INTERRUPTED, "watch is canceled by the server")
}

/// clientv3's `WatchResponse.Err` for a canceled watch.
fn cancel_error(resp: &WatchResponse) -> String {
    if resp.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".to_string()
    } else if !resp.cancel_reason.is_empty() {
        etcd_error_string(&tonic::Status::failed_precondition(
            resp.cancel_reason.clone(),
        ))
    } else {
        "etcdserver: mvcc: required revision is a future revision".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Parsed {
        let words: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_flags(FLAGS, &words).unwrap()
    }

    #[test]
    fn arguments_and_environment_like_etcdctl() {
        let p = parsed(&["foo", "--rev=3", "--", "echo", "hi"]);
        assert_eq!(
            plan(&p, "", ""),
            Ok(Plan {
                args: vec!["foo".into()],
                exec: vec!["echo".into(), "hi".into()],
            })
        );
        assert_eq!(plan(&parsed(&["foo", "--"]), "", ""), Err(NO_COMMAND));
        assert_eq!(plan(&parsed(&["foo"]), "k", ""), Err(CONFLICT_ENV));
        assert_eq!(
            plan(&parsed(&["foo", "--", "echo"]), "k", ""),
            Err(CONFLICT_ENV)
        );
        assert_eq!(
            plan(&parsed(&["--", "echo"]), "k", "l").map(|p| p.args),
            Ok(vec!["k".to_string(), "l".to_string()])
        );
    }

    #[test]
    fn create_requests_like_clientv3() {
        let r = create_request(&parsed(&["--prefix"]), &["".into()]).unwrap();
        assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
        let r = create_request(&parsed(&["--prefix", "--prev-kv"]), &["ab".into()]).unwrap();
        assert_eq!((r.range_end, r.prev_kv), (b"ac".to_vec(), true));
        assert_eq!(
            create_request(&parsed(&["--prefix"]), &["a".into(), "b".into()]).unwrap_err(),
            "`range_end` and `--prefix` are mutually exclusive"
        );
        assert_eq!(create_request(&parsed(&[]), &[]).unwrap_err(), BAD_ARGS_NUM);
        // A third argument is ignored, as in etcdctl.
        let r = create_request(&parsed(&[]), &["a".into(), "b".into(), "c".into()]).unwrap();
        assert_eq!((r.key, r.range_end), (b"a".to_vec(), Vec::new()));
    }
}
