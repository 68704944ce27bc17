//! Server processes for the benchmarks: a cluster of etcr or etcd members on free loopback
//! ports, killed when dropped, and what `/proc` says about their memory and CPU time.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::health;

/// Server processes that are killed when dropped, whatever happens in between.
pub struct Servers(Vec<Child>);

impl Servers {
    /// The members' process ids, in member order.
    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Extra flags for a member, by member name (`m1`, `m2`, ...).
pub type MemberFlags<'a> = &'a dyn Fn(&str) -> Vec<String>;

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, or `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => crate::workspace_root().join(dir),
        None => crate::workspace_root().join("target"),
    }
}

/// Starts `size` members of `bin` (etcd or etcr: they take the same flags) under `dir` and
/// returns them with their client URLs once every member is healthy.
pub fn start_cluster(
    bin: &Path,
    dir: &Path,
    size: usize,
    extra: MemberFlags,
) -> anyhow::Result<(Servers, Vec<String>)> {
    fs::create_dir_all(dir)?;
    let mut ports = Vec::new();
    for _ in 0..size {
        ports.push((free_port()?, free_port()?));
    }
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Servers(Vec::new());
    let mut clients = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let name = format!("m{}", i + 1);
        let client = format!("http://127.0.0.1:{client}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = fs::File::create(dir.join(format!("{name}.log")))?;
        let child = member_command(bin, &name, dir, &client, &peer, &initial)
            .args(extra(&name))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        servers.0.push(child);
        clients.push(client);
    }
    if !health::wait_until(Duration::from_secs(60), || {
        clients.iter().all(|c| health::is_healthy(c))
    }) {
        anyhow::bail!(
            "{} cluster did not become healthy; see the logs in {}",
            bin.display(),
            dir.display()
        );
    }
    Ok((servers, clients))
}

/// A process's peak resident set size (`VmHWM`), in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// A process's resident set size now (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// A process's private memory now (`RssAnon`: heap and stacks, not mapped files), in bytes.
pub fn anon_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "RssAnon:").map(|kib| kib * 1024)
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// CPU time, user plus system, of this process's children that have ended and been waited
/// for, in seconds: the difference around a run is that run's CPU.
pub fn ended_children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A process's CPU time so far, user plus system (`utime + stime`), in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces; count after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(total as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// Bytes a directory tree occupies on disk (allocated blocks, as `du` counts them).
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The command line of bench member `name` (etcr or etcd take the same flags): data under
/// `dir/name`, listening on the `client` and `peer` URLs, in the `initial` cluster.
pub fn member_command(
    bin: &Path,
    name: &str,
    dir: &Path,
    client: &str,
    peer: &str,
    initial: &str,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--name", name, "--data-dir"])
        .arg(dir.join(name))
        .args([
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
        ])
        .args([
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
        ])
        .args([
            "--initial-cluster",
            initial,
            "--initial-cluster-token",
            "bench",
        ]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        assert!(peak_rss_bytes(pid).unwrap() > 0);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {}
        assert!(cpu_seconds(pid).unwrap() > 0.0);
    }

    #[test]
    fn counts_allocated_blocks() {
        let dir = std::env::temp_dir().join(format!("xtask-procs-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/f"), vec![1u8; 64 * 1024]).unwrap();
        let bytes = disk_bytes(&dir);
        let _ = fs::remove_dir_all(&dir);
        assert!(bytes >= 64 * 1024, "{bytes}");
    }
}
