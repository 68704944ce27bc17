//! Cross-compatibility: one script of commands runs four ways, etcdctl→etcd (the reference),
//! etcdctl→etcr, etcrctl→etcd and etcrctl→etcr, each against a fresh single-member server.
//! Every step's stdout, stderr and exit code must be identical once the values that
//! legitimately differ (ids, ports, versions, sizes, timings) are masked; where etcrctl
//! speaks for itself (help after a flag error, its version line), only the lines that
//! scripts read (`Error: ...`, `API version: ...`) and the exit code must be.
//! Every command etcrctl's help lists must also run successfully in the script.
//!
//! Binaries: `/usr/bin/etcd` and `/usr/bin/etcdctl` (Debian's etcd-server and etcd-client,
//! installed with apt-get when missing); etcrctl is this package's binary; etcr comes from
//! `ETCR_BIN`, else `<target>/<profile>/etcr` next to this test, built with
//! `cargo build -p etcr` when missing. `COMPAT_SKIP_ETCR=1` skips the etcr runs (loudly);
//! `COMPAT_DUMP=<dir>` writes each masked transcript there (`<client>-<server>.txt`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use regex::Regex;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const MEMBER_NAME: &str = "compat";
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// The script
// ---------------------------------------------------------------------------------------

/// What of a step's result must match etcdctl's.
#[derive(Clone, Copy)]
enum Check {
    /// stdout, stderr and the exit code.
    Full,
    /// The exit code and the lines (stdout and stderr, repeats dropped) with this prefix.
    Lines(&'static str),
}

/// One command of the script: etcdctl arguments (after `--endpoints`), stdin, extra env.
struct Step {
    args: Vec<String>,
    stdin: &'static str,
    env: Vec<(&'static str, &'static str)>,
    check: Check,
}

fn step(args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: "",
        env: Vec::new(),
        check: Check::Full,
    }
}

/// A flag error: etcdctl follows it with its usage text, etcrctl with a pointer to its help.
fn flag_error(args: &[&str]) -> Step {
    Step {
        check: Check::Lines("Error: "),
        ..step(args)
    }
}

fn with_stdin(args: &[&str], stdin: &'static str) -> Step {
    Step {
        stdin,
        ..step(args)
    }
}

fn with_env(args: &[&str], env: &[(&'static str, &'static str)]) -> Step {
    Step {
        env: env.to_vec(),
        ..step(args)
    }
}

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
// Processes
// ---------------------------------------------------------------------------------------

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

static USED_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback port that was free a moment ago and that this process has not handed out.
fn free_port() -> u16 {
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
struct Server {
    process: KillOnDrop,
    client_port: u16,
    peer_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn start(binary: &Path) -> Server {
        let mut last_error = String::new();
        for _ in 0..3 {
            match Server::try_start(binary) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start {}: {last_error}", binary.display());
    }

    fn try_start(binary: &Path) -> Result<Server, String> {
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
fn run_client(
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
struct Masker {
    rules: Vec<(Regex, &'static str)>,
    table_line: Regex,
    runs: Regex,
}

impl Masker {
    fn new() -> Masker {
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
            // member ids in hex
            r(r"\b[0-9a-f]{6,16}\b", "<HEXID>"),
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

    fn mask(&self, text: &str, server: &Server) -> String {
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

/// The masked transcript of every step: (command line, masked result).
fn run_script(client: &Path, server: &Server, masker: &Masker) -> Vec<(String, String)> {
    script()
        .iter()
        .map(|s| {
            let mut args = vec![format!("--endpoints={}", server.endpoint())];
            args.extend(s.args.iter().cloned());
            let (out, err, code) = run_client(client, &args, s.stdin, &s.env);
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
            let result = match s.check {
                Check::Full => format!("[stdout]\n{out}[stderr]\n{err}[exit {code}]\n"),
                Check::Lines(prefix) => {
                    let mut lines: Vec<&str> = out
                        .lines()
                        .chain(err.lines())
                        .filter(|l| l.starts_with(prefix))
                        .collect();
                    lines.dedup();
                    format!("[{prefix}lines]\n{}\n[exit {code}]\n", lines.join("\n"))
                }
            };
            (title, masker.mask(&result, server))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------------------

/// A line diff (longest common subsequence): ` ` common, `-` expected only, `+` actual only.
fn line_diff(expected: &str, actual: &str) -> String {
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
fn compare(
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
fn ensure_reference_etcd() {
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
fn etcr_binary() -> Result<PathBuf, String> {
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

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[test]
fn etcdctl_and_etcrctl_agree_against_etcd_and_etcr() {
    ensure_reference_etcd();
    let etcrctl = PathBuf::from(env!("CARGO_BIN_EXE_etcrctl"));
    let etcdctl = PathBuf::from(ETCDCTL);
    let skip_etcr = std::env::var("COMPAT_SKIP_ETCR").is_ok_and(|v| v == "1");
    let etcr = if skip_etcr {
        eprintln!("compat: COMPAT_SKIP_ETCR=1: SKIPPING the etcr server runs (etcdctl→etcr, etcrctl→etcr)");
        None
    } else {
        Some(etcr_binary().unwrap_or_else(|e| panic!("etcr server binary unavailable: {e}")))
    };
    let masker = Masker::new();
    let dump = std::env::var_os("COMPAT_DUMP").map(PathBuf::from);
    let run = |client: &Path, server_bin: &Path| {
        let server = Server::start(server_bin);
        let transcript = run_script(client, &server, &masker);
        if let Some(dir) = &dump {
            let name = format!(
                "{}-{}.txt",
                client.file_name().unwrap_or_default().to_string_lossy(),
                server_bin.file_name().unwrap_or_default().to_string_lossy()
            );
            let text: String = transcript
                .iter()
                .map(|(t, r)| format!("$ {t}\n{r}"))
                .collect();
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(dir.join(name), text);
        }
        transcript
    };

    let listed = listed_commands(&etcrctl);
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

/// The commands `etcrctl --help` lists (its "Commands:" block), without `help` itself.
fn listed_commands(etcrctl: &Path) -> Vec<String> {
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

/// Listed commands that no step of the transcript ran with exit code 0.
fn unproven(label: &str, listed: &[String], transcript: &[(String, String)]) -> Option<String> {
    let missing: Vec<&str> = listed
        .iter()
        .filter(|c| {
            !transcript.iter().any(|(title, result)| {
                title.starts_with(&format!("etcdctl {c}")) && result.ends_with("[exit 0]\n")
            })
        })
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| {
        format!("{label}: etcrctl --help lists commands that no script step ran successfully: {missing:?}")
    })
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
