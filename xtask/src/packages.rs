//! Debian packages the tests and benchmarks compare against: the real etcd 3.4 and etcdctl.

use std::path::Path;
use std::process::Command;

/// Installs Debian's `etcd-server` and `etcd-client` when `etcd` or `etcdctl` is missing.
pub fn ensure_etcd() -> anyhow::Result<()> {
    if Path::new("/usr/bin/etcd").exists() && Path::new("/usr/bin/etcdctl").exists() {
        return Ok(());
    }
    eprintln!("installing Debian's etcd-server and etcd-client (reference etcd 3.4 for the compatibility tests)...");
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        crate::run_cmd(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "etcd-server", "etcd-client"]).map_err(|e| {
        anyhow::anyhow!(
            "{e}; install the packages etcd-server and etcd-client by hand and run again"
        )
    })?;
    // The package may start a system etcd on the default ports; tests choose their own ports,
    // but a user's `cluster up` wants 2379 free.
    let _ = Command::new("systemctl").args(["stop", "etcd"]).status();
    Ok(())
}
