//! `cargo xtask cluster`: a local etcr cluster whose members run in the background, with
//! their data, logs and pids under `.etcr/cluster/` in the workspace.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::health;

#[derive(clap::Subcommand)]
pub enum Action {
    /// Build the release binaries, start the members in the background and wait until healthy.
    Up {
        /// Number of members.
        #[arg(long, default_value_t = 3)]
        size: usize,
        /// Peer transport between members: tcp or quic.
        #[arg(long = "peer-transport", default_value = "tcp")]
        peer_transport: String,
        /// Client TLS (https:// client URLs, --client-cert-auth) and peer mutual TLS, with
        /// certificates made in `.etcr/cluster/certs`.
        #[arg(long)]
        tls: bool,
    },
    /// Show each member: process, health, endpoints.
    Status,
    /// Stop one member (SIGTERM, then SIGKILL after 10 s).
    Stop { name: String },
    /// Start a stopped member again.
    Start { name: String },
    /// Add a member through `etcrctl member add` (as a learner), start it joining the running
    /// cluster, and promote it once it has caught up.
    Add {
        name: String,
        /// Leave it a learner (promote it later with `etcrctl member promote`).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member through `etcrctl member remove`, then stop it and delete its data.
    Remove { name: String },
    /// Stop every member; `--purge` also deletes their data and logs.
    Down {
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Serialize, Deserialize, Clone)]
struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    pid: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct State {
    peer_transport: String,
    #[serde(default)]
    tls: bool,
    members: Vec<Member>,
}

fn dir() -> PathBuf {
    crate::workspace_root().join(".etcr").join("cluster")
}

fn state_path() -> PathBuf {
    dir().join("state.json")
}

fn load() -> anyhow::Result<State> {
    let path = state_path();
    let text = fs::read_to_string(&path).map_err(|_| {
        anyhow::anyhow!(
            "no cluster here ({} missing); start one with `cargo xtask cluster up`",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn save(state: &State) -> anyhow::Result<()> {
    fs::create_dir_all(dir())?;
    fs::write(state_path(), serde_json::to_string_pretty(state)?)?;
    Ok(())
}

pub fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Up {
            size,
            peer_transport,
            tls,
        } => up(size, &peer_transport, tls),
        Action::Status => status(),
        Action::Stop { name } => {
            let mut state = load()?;
            let m = find(&mut state, &name)?;
            stop_member(m);
            save(&state)
        }
        Action::Start { name } => {
            let mut state = load()?;
            let initial_cluster = initial_cluster(&state.members);
            let transport = state.peer_transport.clone();
            let tls = state.tls;
            let m = find(&mut state, &name)?;
            if m.pid.is_some_and(alive) {
                anyhow::bail!(
                    "{name} is already running (pid {})",
                    m.pid.unwrap_or_default()
                );
            }
            start_member(m, &initial_cluster, &transport, tls, &[])?;
            let url = m.client_url.clone();
            save(&state)?;
            wait_healthy(&[url], tls)
        }
        Action::Add { name, learner } => add(&name, learner),
        Action::Remove { name } => remove(&name),
        Action::Down { purge } => down(purge),
    }
}

/// Runs the release etcrctl against the running members; its standard output.
fn etcrctl(state: &State, args: &[&str]) -> anyhow::Result<String> {
    let bin = crate::workspace_root().join("target/release/etcrctl");
    let endpoints: Vec<&str> = state
        .members
        .iter()
        .filter(|m| m.pid.is_some_and(alive))
        .map(|m| m.client_url.as_str())
        .collect();
    if endpoints.is_empty() {
        anyhow::bail!("no member is running; start one with `cargo xtask cluster start NAME`");
    }
    let out = Command::new(&bin)
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "etcrctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn add(name: &str, learner: bool) -> anyhow::Result<()> {
    let mut state = load()?;
    if state.members.iter().any(|m| m.name == name) {
        anyhow::bail!("a member named {name:?} exists already");
    }
    if state.peer_transport != "tcp" || state.tls {
        anyhow::bail!("`cluster add` supports plaintext clusters on the tcp peer transport only (the certificates of --tls and QUIC are made for the members of `up`)");
    }
    // The next free slot of the 2379/2380, 12379/12380, ... convention.
    let slot = (0..7)
        .find(|i| {
            let url = format!("http://127.0.0.1:{}", 2379 + 10000 * i);
            !state.members.iter().any(|m| m.client_url == url)
        })
        .ok_or_else(|| anyhow::anyhow!("the local cluster holds at most 7 members"))?;
    let mut m = Member {
        name: name.to_string(),
        client_url: format!("http://127.0.0.1:{}", 2379 + 10000 * slot),
        peer_url: format!("http://127.0.0.1:{}", 2380 + 10000 * slot),
        pid: None,
    };
    // Added as a learner first (etcd's advice): a voter that has no log yet would raise the
    // quorum at once, and with raft-core's rule (a change counts from when it is in the log)
    // a one-member cluster could not even commit the add until the new member runs.
    let peer_urls = format!("--peer-urls={}", m.peer_url);
    let out = etcrctl(&state, &["member", "add", name, &peer_urls, "--learner"])?;
    print!("{out}");
    let initial_cluster = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| anyhow::anyhow!("etcrctl member add printed no ETCD_INITIAL_CLUSTER"))?
        .to_string();
    remove_dir(&dir().join(format!("{name}.etcd")))?;
    start_member(
        &mut m,
        &initial_cluster,
        "tcp",
        false,
        &["--initial-cluster-state", "existing"],
    )?;
    let url = m.client_url.clone();
    state.members.push(m);
    save(&state)?;
    wait_healthy(&[url], false)?;
    if learner {
        return Ok(());
    }
    let id = member_id(&state, name)?;
    eprint!("promoting {name} once it has caught up");
    let mut last_error = String::new();
    let promoted = health::wait_until(Duration::from_secs(60), || {
        eprint!(".");
        match etcrctl(&state, &["member", "promote", &id]) {
            Ok(out) => {
                eprintln!();
                print!("{out}");
                true
            }
            Err(e) => {
                last_error = e.to_string();
                false
            }
        }
    });
    if !promoted {
        eprintln!();
        anyhow::bail!("{name} stays a learner: {last_error}");
    }
    Ok(())
}

/// The id `member list` gives the member named `name`.
fn member_id(state: &State, name: &str) -> anyhow::Result<String> {
    // `member list`: id, status, name, peer URLs, client URLs, is learner.
    etcrctl(state, &["member", "list"])?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f.get(2) == Some(&name)).then(|| f[0].to_string())
        })
        .ok_or_else(|| anyhow::anyhow!("the cluster lists no member named {name:?}"))
}

fn remove(name: &str) -> anyhow::Result<()> {
    let mut state = load()?;
    find(&mut state, name)?;
    let id = member_id(&state, name)?;
    print!("{}", etcrctl(&state, &["member", "remove", &id])?);
    if let Some(m) = state.members.iter_mut().find(|m| m.name == name) {
        stop_member(m);
    }
    state.members.retain(|m| m.name != name);
    remove_dir(&dir().join(format!("{name}.etcd")))?;
    save(&state)
}

fn find<'a>(state: &'a mut State, name: &str) -> anyhow::Result<&'a mut Member> {
    let names: Vec<String> = state.members.iter().map(|m| m.name.clone()).collect();
    state
        .members
        .iter_mut()
        .find(|m| m.name == name)
        .ok_or_else(|| anyhow::anyhow!("no member named {name:?}; members: {}", names.join(", ")))
}

fn up(size: usize, peer_transport: &str, tls: bool) -> anyhow::Result<()> {
    if !(1..=7).contains(&size) {
        anyhow::bail!("--size must be between 1 and 7");
    }
    if peer_transport != "tcp" && peer_transport != "quic" {
        anyhow::bail!("--peer-transport must be tcp or quic");
    }
    if let Ok(state) = load() {
        if state.members.iter().any(|m| m.pid.is_some_and(alive)) {
            anyhow::bail!("a cluster is already running; see `cargo xtask cluster status`, or stop it with `cargo xtask cluster down`");
        }
    }
    eprintln!("== building release binaries (etcr, etcrctl)");
    crate::run_cmd(Command::new("cargo").args([
        "build",
        "--release",
        "-p",
        "etcr",
        "-p",
        "etcrctl",
    ]))?;
    // The etcd convention for local clusters: 2379/2380, 22379/22380, 32379/32380, ...
    let scheme = if tls { "https" } else { "http" };
    let mut members: Vec<Member> = (0..size)
        .map(|i| Member {
            name: format!("m{}", i + 1),
            client_url: format!("{scheme}://127.0.0.1:{}", 2379 + 10000 * i),
            peer_url: format!("{scheme}://127.0.0.1:{}", 2380 + 10000 * i),
            pid: None,
        })
        .collect();
    let initial_cluster = initial_cluster(&members);
    if peer_transport == "quic" || tls {
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        crate::certs::generate(&certs_dir(), &names)?;
        crate::certs::generate_client(&certs_dir(), "root")?;
        eprintln!(
            "certificates for mutual TLS between members{} in {}",
            if tls { " and for clients" } else { "" },
            certs_dir().display()
        );
    }
    for m in &mut members {
        start_member(m, &initial_cluster, peer_transport, tls, &[])?;
    }
    let urls: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    save(&State {
        peer_transport: peer_transport.to_string(),
        tls,
        members,
    })?;
    wait_healthy(&urls, tls)?;
    let endpoints = urls.join(",");
    println!(
        "cluster is up: {size} member(s), data and logs in {}",
        dir().display()
    );
    println!("endpoints: {endpoints}");
    let security = if tls {
        let file = |f: &str| certs_dir().join(f).display().to_string();
        format!(
            " --cacert={} --cert={} --key={}",
            file("ca.pem"),
            file("client.pem"),
            file("client-key.pem")
        )
    } else {
        String::new()
    };
    println!("try:");
    println!("  ./target/release/etcrctl --endpoints={endpoints}{security} put hello world");
    println!("  ./target/release/etcrctl --endpoints={endpoints}{security} get hello -w json");
    if tls {
        println!(
            "  ETCDCTL_API=3 etcdctl --endpoints={endpoints}{security} endpoint status -w table"
        );
    }
    println!("stop it with `cargo xtask cluster down` (add --purge to delete the data)");
    Ok(())
}

fn initial_cluster(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",")
}

fn certs_dir() -> PathBuf {
    dir().join("certs")
}

/// The flags that give member `name` its transport and, for QUIC, its TLS files in `certs`.
pub fn tls_flags(certs: &Path, name: &str, peer_transport: &str) -> Vec<String> {
    let mut flags = vec!["--peer-transport".to_string(), peer_transport.to_string()];
    if peer_transport == "quic" {
        flags.extend(peer_tls_flags(certs, name));
    }
    flags
}

fn peer_tls_flags(certs: &Path, name: &str) -> Vec<String> {
    let file = |f: String| certs.join(f).display().to_string();
    vec![
        "--peer-trusted-ca-file".to_string(),
        file("ca.pem".into()),
        "--peer-cert-file".to_string(),
        file(format!("{name}.pem")),
        "--peer-key-file".to_string(),
        file(format!("{name}-key.pem")),
    ]
}

/// `cluster up --tls`: what member `name` adds to [`tls_flags`]: its client TLS files,
/// client certificates required, and peer mutual TLS over TCP too.
fn client_tls_flags(certs: &Path, name: &str, peer_transport: &str) -> Vec<String> {
    let file = |f: String| certs.join(f).display().to_string();
    let mut flags = vec![
        "--trusted-ca-file".to_string(),
        file("ca.pem".into()),
        "--cert-file".to_string(),
        file(format!("{name}.pem")),
        "--key-file".to_string(),
        file(format!("{name}-key.pem")),
        "--client-cert-auth".to_string(),
    ];
    if peer_transport != "quic" {
        flags.extend(peer_tls_flags(certs, name));
    }
    flags
}

fn start_member(
    m: &mut Member,
    initial_cluster: &str,
    peer_transport: &str,
    tls: bool,
    extra: &[&str],
) -> anyhow::Result<()> {
    let bin = crate::workspace_root().join("target/release/etcr");
    if !bin.exists() {
        anyhow::bail!(
            "{} is missing; run `cargo xtask cluster up` to build it",
            bin.display()
        );
    }
    let data_dir = dir().join(format!("{}.etcd", m.name));
    let log_path = dir().join(format!("{}.log", m.name));
    fs::create_dir_all(dir())?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let child = Command::new(&bin)
        .arg("--name")
        .arg(&m.name)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen-client-urls", &m.client_url])
        .args(["--advertise-client-urls", &m.client_url])
        .args(["--listen-peer-urls", &m.peer_url])
        .args(["--initial-advertise-peer-urls", &m.peer_url])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-token", "etcr-local"])
        .args(tls_flags(&certs_dir(), &m.name, peer_transport))
        .args(if tls {
            client_tls_flags(&certs_dir(), &m.name, peer_transport)
        } else {
            Vec::new()
        })
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: the member outlives this command and a Ctrl-C given to it.
        .process_group(0)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
    eprintln!(
        "started {} (pid {}), log {}",
        m.name,
        child.id(),
        log_path.display()
    );
    m.pid = Some(child.id());
    Ok(())
}

fn wait_healthy(urls: &[String], tls: bool) -> anyhow::Result<()> {
    eprint!("waiting for health");
    let ok = health::wait_until(Duration::from_secs(30), || {
        eprint!(".");
        urls.iter().all(|u| healthy(u, tls))
    });
    eprintln!();
    if !ok {
        anyhow::bail!(
            "the cluster did not become healthy within 30 s; read the logs in {} and `cargo xtask cluster status`",
            dir().display()
        );
    }
    Ok(())
}

/// `/health` over plain HTTP, or over https with the cluster's client certificate (curl).
fn healthy(url: &str, tls: bool) -> bool {
    if !tls {
        return health::is_healthy(url);
    }
    let file = |f: &str| certs_dir().join(f);
    Command::new("curl")
        .args(["-s", "--max-time", "1", "--cacert"])
        .arg(file("ca.pem"))
        .arg("--cert")
        .arg(file("client.pem"))
        .arg("--key")
        .arg(file("client-key.pem"))
        .arg(format!("{url}/health"))
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
}

fn status() -> anyhow::Result<()> {
    let state = load()?;
    println!(
        "{:<6} {:<8} {:<8} {:<24} {:<24}",
        "NAME", "PID", "HEALTH", "CLIENT URL", "PEER URL"
    );
    for m in &state.members {
        let running = m.pid.is_some_and(alive);
        let pid = match (m.pid, running) {
            (Some(p), true) => p.to_string(),
            _ => "stopped".to_string(),
        };
        let health = if running && healthy(&m.client_url, state.tls) {
            "healthy"
        } else {
            "-"
        };
        println!(
            "{:<6} {:<8} {:<8} {:<24} {:<24}",
            m.name, pid, health, m.client_url, m.peer_url
        );
    }
    Ok(())
}

fn down(purge: bool) -> anyhow::Result<()> {
    match load() {
        Ok(mut state) => {
            for m in &mut state.members {
                stop_member(m);
            }
            save(&state)?;
        }
        Err(e) if !purge => return Err(e),
        Err(_) => {}
    }
    if purge {
        remove_dir(&dir())?;
        eprintln!("removed {}", dir().display());
    }
    Ok(())
}

fn remove_dir(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn stop_member(m: &mut Member) {
    let Some(pid) = m.pid.take() else {
        eprintln!("{} is not running", m.name);
        return;
    };
    if !alive(pid) {
        eprintln!("{} had already stopped", m.name);
        return;
    }
    // SAFETY: kill(2) with a pid we started; no memory is involved.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    if !health::wait_until(Duration::from_secs(10), || !alive(pid)) {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        health::wait_until(Duration::from_secs(5), || !alive(pid));
    }
    eprintln!("stopped {} (pid {pid})", m.name);
}

/// Whether `pid` is a live etcr process (not a zombie, not a reused pid).
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'));
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !zombie && String::from_utf8_lossy(&cmdline).contains("etcr")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_members_require_client_certificates_and_use_peer_tls_on_tcp() {
        let certs = Path::new("/c");
        let flags = client_tls_flags(certs, "m2", "tcp").join(" ");
        assert_eq!(
            flags,
            "--trusted-ca-file /c/ca.pem --cert-file /c/m2.pem --key-file /c/m2-key.pem --client-cert-auth \
             --peer-trusted-ca-file /c/ca.pem --peer-cert-file /c/m2.pem --peer-key-file /c/m2-key.pem"
        );
        // QUIC already carries the peer files (tls_flags).
        assert!(!client_tls_flags(certs, "m2", "quic")
            .join(" ")
            .contains("--peer-"));
    }
}
