//! `cargo xtask bench check-perf`: `etcdctl check perf` against a fresh single etcr member and a
//! fresh single etcd 3.4 member (Debian's), one after the other, on the same machine.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::health;

/// A server process that is killed when dropped, whatever happens in between.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start(bin: &Path, data_dir: &Path) -> anyhow::Result<(Server, String)> {
    let client = format!("http://127.0.0.1:{}", free_port()?);
    let peer = format!("http://127.0.0.1:{}", free_port()?);
    let log = fs::File::create(data_dir.with_extension("log"))?;
    let child = Command::new(bin)
        .args(["--name", "bench", "--data-dir"])
        .arg(data_dir)
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("bench={peer}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
    let server = Server(child);
    if !health::wait_until(Duration::from_secs(30), || health::is_healthy(&client)) {
        anyhow::bail!("{} did not become healthy; see {}", bin.display(), data_dir.with_extension("log").display());
    }
    Ok((server, client))
}

pub fn run(load: &str) -> anyhow::Result<()> {
    crate::packages::ensure_etcd()?;
    eprintln!("== building etcr (release)");
    crate::run_cmd(Command::new("cargo").args(["build", "--release", "-p", "etcr"]))?;
    let out_dir = crate::workspace_root().join("target/bench/check-perf");
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir)?;
    let targets: [(&str, PathBuf); 2] = [
        ("etcr", crate::workspace_root().join("target/release/etcr")),
        ("etcd", PathBuf::from("/usr/bin/etcd")),
    ];
    for (name, bin) in targets {
        eprintln!("== etcdctl check perf --load={load} against a single {name} member");
        let (server, endpoint) = start(&bin, &out_dir.join(name))?;
        let status = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(["check", "perf", &format!("--load={load}")])
            .status()?;
        drop(server);
        // check perf exits non-zero when a criterion fails; that is a result, not an error.
        println!("{name}: etcdctl check perf --load={load} exited with {status}");
    }
    Ok(())
}
