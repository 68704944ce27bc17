//! OpenStack's python `etcd3gw` client against a real etcr through the JSON gateway. The test
//! installs etcd3gw from PyPI into a virtualenv under the target directory the first time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Etcr;

/// The etcd3gw release the script was written against.
const ETCD3GW: &str = "etcd3gw==2.7.0";

fn venv() -> PathBuf {
    // The tests of this file run at once; one of them makes the virtualenv.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("etcd3gw-venv");
    let python = venv.join("bin/python");
    let installed = |python: &Path| {
        Command::new(python)
            .args(["-c", "import etcd3gw"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !installed(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("run python3 (the test needs python3 with venv)");
        assert!(made.success(), "python3 -m venv failed");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", ETCD3GW])
            .status()
            .expect("run pip");
        assert!(pip.success(), "pip install {ETCD3GW} failed");
        assert!(installed(&python), "etcd3gw still cannot be imported");
    }
    venv
}

/// Runs `script` (in `tests/`) with etcr's endpoint as its argument; it prints `ok` when done.
fn run(script: &str) {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let endpoint = format!("127.0.0.1:{}", etcr.client_port);
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(&endpoint)
        .output()
        .expect("run the etcd3gw script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" ok"),
        "{} failed\nstdout:\n{stdout}\nstderr:\n{}\netcr log:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr),
        etcr.log_tail()
    );
}

#[test]
fn etcd3gw_reads_and_writes() {
    run("gateway_etcd3gw.py");
}

#[test]
fn etcd3gw_leases_and_locks() {
    run("gateway_etcd3gw_lease.py");
}

#[test]
fn etcd3gw_watches() {
    run("gateway_etcd3gw_watch.py");
}
