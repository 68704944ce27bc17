//! The cross-compatibility harness that `compat.rs` (the key-value commands) and
//! `compat_ops.rs` (watch, lease, maintenance and membership) share: scripted steps run
//! with a client (etcdctl 3.4 or etcrctl) against a fresh single-member server (etcd 3.4 or
//! etcr), masked where runs legitimately differ, and compared with a line diff.
//!
//! Binaries: `/usr/bin/etcd` and `/usr/bin/etcdctl` (Debian's etcd-server and etcd-client,
//! installed with apt-get when missing); etcrctl is this package's binary; etcr comes from
//! `ETCR_BIN`, else `<target>/<profile>/etcr` next to the test, built with
//! `cargo build -p etcr` when missing. `COMPAT_SKIP_ETCR=1` skips the etcr runs (loudly);
//! `COMPAT_DUMP=<dir>` writes each masked transcript there.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use regex::Regex;

pub const ETCD: &str = "/usr/bin/etcd";
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
const MEMBER_NAME: &str = "compat";
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a streaming step may take to print what it should.
const STREAM_TIMEOUT: Duration = Duration::from_secs(15);

/// The commands `compat_ops.rs` proves; `compat.rs` proves the others `etcrctl --help` lists.
/// The commands `compat_auth.rs` proves (they need a root user set up first).
#[allow(dead_code)]
pub const AUTH_COMMANDS: &[&str] = &[
    "auth enable",
    "auth disable",
    // etcd 3.5's, which the reference etcd 3.4 lacks: auth_status.rs runs it.
    "auth status",
    // compat_user_role.rs runs these.
    "user add",
    "user delete",
    "user get",
    "user list",
    "user passwd",
    "user grant-role",
    "user revoke-role",
    "role add",
    "role delete",
    "role get",
    "role list",
    "role grant-permission",
    "role revoke-permission",
];

pub const OPS_COMMANDS: &[&str] = &[
    "watch",
    "lease grant",
    "lease revoke",
    "lease timetolive",
    "lease list",
    "lease keep-alive",
    "member add",
    "member remove",
    "member update",
    "member promote",
    "endpoint hashkv",
    "move-leader",
    "alarm disarm",
    "alarm list",
    "defrag",
    "snapshot save",
    "snapshot status",
    "snapshot restore",
];

// ---------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------

/// What of a step's result must match etcdctl's.
#[derive(Clone, Copy)]
pub enum Check {
    /// stdout, stderr and the exit code.
    Full,
    /// The exit code and the lines (stdout and stderr, repeats dropped) with this prefix.
    Lines(&'static str),
    /// Like `Full`, with a snapshot's hash and size masked: the backend holds the member
    /// and cluster IDs, which vary, and how far its file has grown varies too.
    Snapshot,
    /// Nothing: the step only sets up what follows (and when exactly it fails varies).
    Setup,
    /// Like `Full`, with the members put in one order: they come sorted by ID, and IDs are
    /// random.
    Members,
}

/// Sorts what lists members once masked: member list rows, the `ETCD_INITIAL_CLUSTER`
/// entries of member add, and the objects of a JSON `members` array.
fn sort_members(text: &str) -> String {
    let rows = Regex::new(r"(?m)^(<HEXID>, .*\n)+").expect("regex");
    let text = rows.replace_all(text, |c: &regex::Captures| {
        let mut lines: Vec<&str> = c[0].lines().collect();
        lines.sort();
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    });
    let cluster = Regex::new(r#"ETCD_INITIAL_CLUSTER="([^"]*)""#).expect("regex");
    let text = cluster.replace_all(&text, |c: &regex::Captures| {
        let mut parts: Vec<&str> = c[1].split(',').collect();
        parts.sort();
        format!("ETCD_INITIAL_CLUSTER=\"{}\"", parts.join(","))
    });
    let members = Regex::new(r#""members":\[\{(.*?)\}\]"#).expect("regex");
    members
        .replace_all(&text, |c: &regex::Captures| {
            let mut objects: Vec<&str> = c[1].split("},{").collect();
            objects.sort();
            format!("\"members\":[{{{}}}]", objects.join("},{"))
        })
        .into_owned()
}

/// One command of the script: etcdctl arguments (after `--endpoints`), stdin, extra env.
pub struct Step {
    pub args: Vec<String>,
    pub stdin: String,
    pub env: Vec<(&'static str, &'static str)>,
    pub check: Check,
    /// A command that runs until stopped (watch, keep-alive): see [`Stream`].
    pub stream: Option<Stream>,
    /// Instead of a client command, something the harness does to the server (what no
    /// etcdctl command can do, such as raising an alarm); not compared.
    pub action: Option<fn(&Server)>,
}

/// How a long-running step is driven: once its stdout has `first` lines, the `then`
/// commands run (with the same client; each must succeed); it is stopped once its stdout
/// has `lines` lines, or, with `until_exit`, left to exit by itself after that.
pub struct Stream {
    pub first: usize,
    pub lines: usize,
    pub then: Vec<Vec<String>>,
    pub until_exit: bool,
}

pub fn step(args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: String::new(),
        env: Vec::new(),
        check: Check::Full,
        stream: None,
        action: None,
    }
}

/// A step in which the harness itself acts on the server (see [`Step::action`]).
pub fn action(name: &str, act: fn(&Server)) -> Step {
    Step {
        check: Check::Setup,
        action: Some(act),
        ..step(&[name])
    }
}

/// A flag error: etcdctl follows it with its usage text, etcrctl with a pointer to its help.
pub fn flag_error(args: &[&str]) -> Step {
    Step {
        check: Check::Lines("Error: "),
        ..step(args)
    }
}

pub fn with_stdin(args: &[&str], stdin: &str) -> Step {
    Step {
        stdin: stdin.to_string(),
        ..step(args)
    }
}

pub fn with_env(args: &[&str], env: &[(&'static str, &'static str)]) -> Step {
    Step {
        env: env.to_vec(),
        ..step(args)
    }
}
/// A step whose output lists members (in an order that varies).
pub fn members(args: &[&str]) -> Step {
    Step {
        check: Check::Members,
        ..step(args)
    }
}

/// A step stopped once its stdout has `lines` lines, after running `then`.
pub fn streaming(args: &[&str], lines: usize, then: &[&[&str]]) -> Step {
    Step {
        stream: Some(Stream {
            first: 0,
            lines,
            then: then
                .iter()
                .map(|c| c.iter().map(|s| s.to_string()).collect())
                .collect(),
            until_exit: false,
        }),
        ..step(args)
    }
}

/// A step that runs `then` once its stdout has `first` lines, then exits by itself.
pub fn until_exit(args: &[&str], first: usize, then: &[&[&str]]) -> Step {
    let mut s = streaming(args, first, then);
    if let Some(stream) = s.stream.as_mut() {
        stream.first = first;
        stream.until_exit = true;
    }
    s
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

static USED_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback port that was free a moment ago and that this process has not handed out.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral loopback port")
            .port();
        let mut used = USED_PORTS.lock().unwrap();
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

/// A single-member server (etcd or etcr) on fresh ports with a temporary data dir.
pub struct Server {
    pub process: KillOnDrop,
    pub client_port: u16,
    pub peer_port: u16,
    pub log: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts `binary` with etcd's flags for a single member, then `extra`.
    pub fn start(binary: &Path, extra: &[&str]) -> Server {
        let mut last_error = String::new();
        for _ in 0..3 {
            match Server::try_start(binary, extra) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start {}: {last_error}", binary.display());
    }

    fn try_start(binary: &Path, extra: &[&str]) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .args(["--name", MEMBER_NAME])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("{MEMBER_NAME}={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let mut server = Server {
            process: KillOnDrop(child),
            client_port,
            peer_port,
            log,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits until the reference etcdctl can read through the server (leader elected).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.process.0.try_wait() {
                return Err(format!(
                    "server exited ({status}); log:\n{}",
                    self.log_tail()
                ));
            }
            let probe = Command::new(ETCDCTL)
                .env_clear()
                .env("ETCDCTL_API", "3")
                .args(["--dial-timeout=1s", "--command-timeout=2s"])
                .arg(format!("--endpoints={}", self.endpoint()))
                .args(["get", "compat-ready-probe"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server not ready after {READY_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs `client` with `args` (bounded by STEP_TIMEOUT): (stdout, stderr, exit code).
pub fn run_client(
    client: &Path,
    args: &[String],
    stdin: &str,
    env: &[(&str, &str)],
) -> (Vec<u8>, Vec<u8>, i32) {
    let mut cmd = Command::new(client);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ETCDCTL_API", "3")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = KillOnDrop(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", client.display())),
    );
    let mut input = child.0.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut out_pipe = child.0.stdout.take().expect("stdout");
    let mut err_pipe = child.0.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + STEP_TIMEOUT;
    let code = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status.code().unwrap_or(-1),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.0.kill();
                panic!(
                    "{} {args:?} did not finish within {STEP_TIMEOUT:?}",
                    client.display()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("wait for {}: {e}", client.display()),
        }
    };
    let _ = writer.join();
    (
        out_reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default(),
        code,
    )
}

// ---------------------------------------------------------------------------------------
// Masking
// ---------------------------------------------------------------------------------------

/// Rewrites what legitimately differs between runs and implementations.
pub struct Masker {
    rules: Vec<(Regex, &'static str)>,
    table_line: Regex,
    runs: Regex,
}

impl Masker {
    pub fn new() -> Masker {
        let r = |re: &str, to: &'static str| (Regex::new(re).expect("mask regex"), to);
        let rules = vec![
            // loggers: zap's time and clientv3's resolver id, capnslog's time
            r(r#""ts":"[^"]*""#, r#""ts":"<TS>""#),
            r(
                r"client-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "client-<UUID>",
            ),
            r(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}", "<TIME>"),
            // identities and raft state (non-zero values only: a zero must stay a zero)
            r(
                r#""(cluster_id|member_id|raft_term|ID|leader|raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse)":[1-9]\d*"#,
                r#""$1":<N>"#,
            ),
            r(
                r#""(ClusterID|MemberID|RaftTerm|ID|Leader|DBSize|RaftIndex|RaftAppliedIndex)" : [1-9]\d*"#,
                r#""$1" : <N>"#,
            ),
            r(
                r#"("version":"|"Version" : ")[0-9][0-9A-Za-z.+-]*"#,
                "$1<VER>",
            ),
            // lease ids and remaining TTLs, alarm members, zap's epoch times and durations
            r(r#""(id|ttl|memberID)":[1-9]\d*"#, r#""$1":<N>"#),
            r(r"remaining\(\d+s\)", "remaining(<N>s)"),
            r(r"memberID:\d+ ", "memberID:<N> "),
            r(r"\b(cluster_id|member_id|raft_term):[1-9]\d* ", "$1:<N> "),
            r(r#""(ts|took)":[0-9][0-9.e+-]*"#, r#""$1":<N>"#),
            // member and lease ids in hex (etcdctl pads some to 16 columns)
            r(r"\b[0-9a-f]{6,16}\b", "<HEXID>"),
            r(r"(Member|cluster) +<HEXID>", "$1 <HEXID>"),
            // timings
            r(
                r#"(took = |"took":"|"Took" : |\| +)[0-9.]+(ns|µs|ms|s|m)"#,
                "$1<TOOK>",
            ),
            // endpoint status rows: version, db size, raft term/index/applied index
            r(
                r"(<HEXID>, )[0-9][0-9A-Za-z.+-]*, [0-9.]+ [kMGTPE]?B, (\w+), (\w+), \d+, \d+, \d+, ",
                "$1<VER>, <SIZE>, $2, $3, <N>, <N>, <N>, ",
            ),
            r(
                r"(\| +<HEXID> \| +)[0-9][0-9A-Za-z.+-]* \| +[0-9.]+ [kMGTPE]?B \| +(\w+) \| +(\w+) \| +\d+ \| +\d+ \| +\d+ \|",
                "$1<VER> | <SIZE> | $2 | $3 | <N> | <N> | <N> |",
            ),
        ];
        Masker {
            rules,
            table_line: Regex::new(r"^[+|]").expect("regex"),
            runs: Regex::new(r"-{2,}| {2,}").expect("regex"),
        }
    }

    pub fn mask(&self, text: &str, server: &Server) -> String {
        let text = text
            .replace(&format!("127.0.0.1:{}", server.client_port), "<CLIENT>")
            .replace(&format!("127.0.0.1:{}", server.peer_port), "<PEER>");
        text.split_inclusive('\n')
            .map(|line| {
                let mut line = line.to_string();
                for (re, to) in &self.rules {
                    line = re.replace_all(&line, *to).into_owned();
                }
                // Masked cells change column widths: compare tables modulo padding.
                if self.table_line.is_match(&line) {
                    line = self
                        .runs
                        .replace_all(&line, |c: &regex::Captures| c[0][..1].to_string())
                        .into_owned();
                }
                line
            })
            .collect()
    }
}

/// What a run learnt that later steps refer to: `{lease}` (the last lease granted),
/// `{learner}` (the last member added), `{member}` (the server's member ID) and `{rev+1}`
/// (the revision after the server's current one); `{dir}` is a directory of the server's.
#[derive(Default)]
struct Vars {
    lease: String,
    learner: String,
}

fn capture(text: &str, re: &str) -> Option<String> {
    Regex::new(re)
        .ok()?
        .captures(text)
        .map(|c| c[1].trim().to_string())
}

/// The server's member ID and current revision, asked with the reference etcdctl.
fn server_fact(server: &Server, args: &[&str], re: &str) -> String {
    let mut full = vec![format!("--endpoints={}", server.endpoint())];
    full.extend(args.iter().map(|s| s.to_string()));
    let (out, _, _) = run_client(Path::new(ETCDCTL), &full, "", &[]);
    capture(&String::from_utf8_lossy(&out), re).unwrap_or_default()
}

fn substitute(arg: &str, vars: &Vars, server: &Server) -> String {
    let dir = server._dir.path().display().to_string();
    let mut a = arg.replace("{lease}", &vars.lease).replace("{dir}", &dir);
    a = a.replace("{learner}", &vars.learner);
    if a.contains("{member}") {
        a = a.replace(
            "{member}",
            &server_fact(server, &["member", "list"], r"^([0-9a-f]+),"),
        );
    }
    if a.contains("{rev+1}") {
        let rev: i64 = server_fact(server, &["get", "x", "-w", "json"], r#""revision":(\d+)"#)
            .parse()
            .unwrap_or(0);
        a = a.replace("{rev+1}", &(rev + 1).to_string());
    }
    a
}

/// Runs a long-running step as its [`Stream`] says: (stdout, stderr, exit code or -1 when
/// it was stopped).
fn run_stream(
    client: &Path,
    args: &[String],
    stream: &Stream,
    env: &[(&str, &str)],
    then: &[Vec<String>],
) -> (Vec<u8>, Vec<u8>, i32) {
    let mut cmd = Command::new(client);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ETCDCTL_API", "3")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = KillOnDrop(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", client.display())),
    );
    let out_pipe = child.0.stdout.take().expect("stdout");
    let mut err_pipe = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let out_reader = std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(out_pipe);
        let mut all = Vec::new();
        loop {
            let mut line = Vec::new();
            match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    all.extend_from_slice(&line);
                    let _ = tx.send(line);
                }
            }
        }
        all
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    // A server that cannot serve the stream fails the comparison (it is not a panic).
    let deadline = Instant::now() + STREAM_TIMEOUT;
    let mut seen = 0;
    let wait_for = |count: usize, seen: &mut usize| {
        while *seen < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(_) => *seen += 1,
                Err(_) => return false,
            }
        }
        true
    };
    let mut notes = Vec::new();
    let mut reached = wait_for(stream.first, &mut seen);
    if reached {
        for c in then {
            let (_, err, code) = run_client(client, c, "", &[]);
            if code != 0 {
                notes.push(format!(
                    "[{c:?} failed with exit {code}: {}]\n",
                    String::from_utf8_lossy(&err).trim()
                ));
            }
        }
        reached = wait_for(stream.lines, &mut seen);
    }
    let code = if !reached {
        notes.push(format!(
            "[{seen} of {} lines in {STREAM_TIMEOUT:?}]\n",
            stream.lines
        ));
        let _ = child.0.kill();
        let _ = child.0.wait();
        -1
    } else if stream.until_exit {
        loop {
            match child.0.try_wait() {
                Ok(Some(status)) => break status.code().unwrap_or(-1),
                Ok(None) if Instant::now() > deadline => {
                    notes.push("[did not exit]\n".to_string());
                    let _ = child.0.kill();
                    let _ = child.0.wait();
                    break -1;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("wait for {}: {e}", client.display()),
            }
        }
    } else {
        let _ = child.0.kill();
        let _ = child.0.wait();
        -1
    };
    drop(child);
    let mut err = err_reader.join().unwrap_or_default();
    for n in notes {
        err.extend_from_slice(n.as_bytes());
    }
    (out_reader.join().unwrap_or_default(), err, code)
}
/// The masked transcript of every step: (command line, masked result).
pub fn run_script(
    client: &Path,
    server: &Server,
    masker: &Masker,
    steps: &[Step],
) -> Vec<(String, String)> {
    let mut vars = Vars::default();
    let endpoint = format!("--endpoints={}", server.endpoint());
    steps
        .iter()
        .map(|s| {
            let mut args = vec![endpoint.clone()];
            args.extend(s.args.iter().map(|a| substitute(a, &vars, server)));
            let (out, err, code) = match &s.stream {
                None if s.action.is_some() => {
                    if let Some(act) = s.action {
                        act(server);
                    }
                    (Vec::new(), Vec::new(), 0)
                }
                None => run_client(client, &args, &s.stdin, &s.env),
                Some(stream) => {
                    let then: Vec<Vec<String>> = stream
                        .then
                        .iter()
                        .map(|c| {
                            let mut full = vec![endpoint.clone()];
                            full.extend(c.iter().map(|a| substitute(a, &vars, server)));
                            full
                        })
                        .collect();
                    run_stream(client, &args, stream, &s.env, &then)
                }
            };
            let env: String = s.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
            let shown: Vec<String> = s
                .args
                .iter()
                .map(|a| {
                    if a.is_empty() || a.contains(' ') {
                        format!("{a:?}")
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let title = format!("{env}etcdctl {}", shown.join(" "));
            let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
            if let Some(id) = capture(&out, r"lease ([0-9a-f]{16}) granted") {
                vars.lease = id;
            }
            if let Some(id) = capture(&out, r"Member +([0-9a-f]+) added") {
                vars.learner = id;
            }
            let exit = if code == -1 && s.stream.is_some() {
                "stopped".to_string()
            } else {
                code.to_string()
            };
            let result = match s.check {
                Check::Full | Check::Members | Check::Snapshot => {
                    format!("[stdout]\n{out}[stderr]\n{err}[exit {exit}]\n")
                }
                Check::Lines(prefix) => {
                    let mut lines: Vec<&str> = out
                        .lines()
                        .chain(err.lines())
                        .filter(|l| l.starts_with(prefix))
                        .collect();
                    lines.dedup();
                    format!("[{prefix}lines]\n{}\n[exit {exit}]\n", lines.join("\n"))
                }
                Check::Setup => "[not compared]\n".to_string(),
            };
            let dir = server._dir.path().display().to_string();
            let masked = masker.mask(&result.replace(&dir, "<DIR>"), server);
            match s.check {
                Check::Members => (title, sort_members(&masked)),
                Check::Snapshot => {
                    let numbers = Regex::new(r#"("hash":|"Hash" : |"totalSize":|"Size" : )\d+"#)
                        .expect("regex");
                    let sizes = Regex::new(r"[0-9.]+ [kMG]?B\b").expect("regex");
                    let masked = numbers.replace_all(&masked, "${1}<N>");
                    (title, sizes.replace_all(&masked, "<SIZE>").into_owned())
                }
                _ => (title, masked),
            }
        })
        .collect()
}

/// Writes a transcript to `COMPAT_DUMP/<name>.txt` when that variable is set.
pub fn dump(name: &str, transcript: &[(String, String)]) {
    let Some(dir) = std::env::var_os("COMPAT_DUMP").map(PathBuf::from) else {
        return;
    };
    let text: String = transcript
        .iter()
        .map(|(t, r)| format!("$ {t}\n{r}"))
        .collect();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.txt")), text);
}

/// The etcr server to compare against, or `None` (said loudly) with `COMPAT_SKIP_ETCR=1`.
pub fn etcr_under_test() -> Option<PathBuf> {
    if std::env::var("COMPAT_SKIP_ETCR").is_ok_and(|v| v == "1") {
        eprintln!("compat: COMPAT_SKIP_ETCR=1: SKIPPING the etcr server runs (etcdctl→etcr, etcrctl→etcr)");
        return None;
    }
    Some(etcr_binary().unwrap_or_else(|e| panic!("etcr server binary unavailable: {e}")))
}

// ---------------------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------------------

/// A line diff (longest common subsequence): ` ` common, `-` expected only, `+` actual only.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("      {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("    - {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("    + {}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// Every step where `actual` differs from `reference`, with a diff.
pub fn compare(
    label: &str,
    reference: &[(String, String)],
    actual: &[(String, String)],
) -> Option<String> {
    let mut report = String::new();
    let mut failures = 0;
    for ((title, want), (_, got)) in reference.iter().zip(actual) {
        if want != got {
            failures += 1;
            report.push_str(&format!("  $ {title}\n{}", line_diff(want, got)));
        }
    }
    (failures > 0).then(|| {
        format!(
            "{label}: {failures} of {} steps differ from etcdctl→etcd (- etcdctl→etcd, + {label}):\n{report}",
            reference.len()
        )
    })
}

// ---------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------

/// Installs Debian's etcd-server and etcd-client when the reference binaries are missing.
pub fn ensure_reference_etcd() {
    if Path::new(ETCD).exists() && Path::new(ETCDCTL).exists() {
        return;
    }
    let status = Command::new("sh")
        .args([
            "-c",
            "apt-get update && apt-get install -y etcd-server etcd-client",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    let ok = status.as_ref().is_ok_and(|s| s.success());
    assert!(
        ok && Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
        "the reference etcd is missing ({ETCD}, {ETCDCTL}) and `apt-get install -y etcd-server etcd-client` \
         failed ({status:?}); install Debian's etcd-server and etcd-client (etcd 3.4) and rerun"
    );
}

/// The etcr server binary: `ETCR_BIN`, else `<target>/<profile>/etcr`, built if missing.
pub fn etcr_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("ETCR_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.exists() {
            Ok(bin)
        } else {
            Err(format!("ETCR_BIN={} does not exist", bin.display()))
        };
    }
    // The test runs as <target>/<profile>/deps/compat-<hash>.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("unexpected test executable path")?;
    let bin = profile_dir.join("etcr");
    if bin.exists() {
        return Ok(bin);
    }
    let target_dir = profile_dir.parent().ok_or("unexpected target dir")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "etcr", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    eprintln!(
        "compat: {} is missing, building it: {build:?}",
        bin.display()
    );
    let status = build
        .status()
        .map_err(|e| format!("cargo build -p etcr: {e}"))?;
    if !status.success() || !bin.exists() {
        return Err(format!(
            "`cargo build -p etcr` failed ({status}); {} still missing",
            bin.display()
        ));
    }
    Ok(bin)
}

/// The commands `etcrctl --help` lists (its "Commands:" block), without `help` itself.
pub fn listed_commands(etcrctl: &Path) -> Vec<String> {
    let (out, _, code) = run_client(etcrctl, &["--help".to_string()], "", &[]);
    assert_eq!(code, 0, "etcrctl --help");
    let page = String::from_utf8_lossy(&out).into_owned();
    let block = page
        .split("\nCommands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("no Commands: block in\n{page}"));
    let listed: Vec<String> = block
        .lines()
        .filter_map(|l| l.trim_start().split("  ").next())
        .filter(|c| !c.starts_with("help"))
        .map(str::to_string)
        .collect();
    assert!(listed.len() >= 5, "too few commands parsed from\n{page}");
    listed
}

/// Runs `steps` four ways, each on a fresh server: etcdctl 3.4 on etcd 3.4 (the reference),
/// then etcrctl on etcd, and etcdctl and etcrctl on etcr; the differences from the reference,
/// labelled by pair. Transcripts are dumped under `label`.
#[allow(dead_code)]
pub fn four_ways(label: &str, steps: &[Step]) -> Vec<String> {
    ensure_reference_etcd();
    let etcrctl = PathBuf::from(env!("CARGO_BIN_EXE_etcrctl"));
    let etcdctl = PathBuf::from(ETCDCTL);
    let masker = Masker::new();
    let run = |client: &Path, server_bin: &Path| {
        let server = Server::start(server_bin, &[]);
        let transcript = run_script(client, &server, &masker, steps);
        let name = format!(
            "{label}-{}-{}",
            client.file_name().unwrap_or_default().to_string_lossy(),
            server_bin.file_name().unwrap_or_default().to_string_lossy()
        );
        dump(&name, &transcript);
        transcript
    };
    let reference = run(&etcdctl, Path::new(ETCD));
    let mut failures = Vec::new();
    failures.extend(compare(
        "etcrctl→etcd",
        &reference,
        &run(&etcrctl, Path::new(ETCD)),
    ));
    if let Some(etcr) = etcr_under_test() {
        failures.extend(compare("etcdctl→etcr", &reference, &run(&etcdctl, &etcr)));
        failures.extend(compare("etcrctl→etcr", &reference, &run(&etcrctl, &etcr)));
    }
    failures
}

/// Listed commands that no step of the transcript ran with exit code 0.
pub fn unproven(label: &str, listed: &[String], transcript: &[(String, String)]) -> Option<String> {
    let missing: Vec<&str> = listed
        .iter()
        .filter(|c| {
            !transcript.iter().any(|(title, result)| {
                // A stream stopped while it ran counts as a success.
                title.starts_with(&format!("etcdctl {c}"))
                    && (result.ends_with("[exit 0]\n") || result.ends_with("[exit stopped]\n"))
            })
        })
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| {
        format!("{label}: etcrctl --help lists commands that no script step ran successfully: {missing:?}")
    })
}
