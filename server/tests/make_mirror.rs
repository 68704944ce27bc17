//! etcdctl 3.4's `make-mirror` (a watch on the source, txns on the destination) from etcd to
//! etcr and from etcr to etcd: the migration path. Under a few seconds of writes and deletes
//! the destination ends up holding exactly the source's keys and values.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_etcdctl, Etcd, Etcr, ETCDCTL};

struct Mirror(Child);

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn etcdctl(endpoint: &str, args: &[&str]) -> String {
    let (ok, out, err) = run_etcdctl(endpoint, args, b"");
    assert!(ok, "etcdctl {args:?} on {endpoint}: {err}");
    out
}

fn mirror(from: &str, to: &str) {
    for i in 0..20 {
        etcdctl(from, &["put", &format!("m/{i:03}"), &format!("before {i}")]);
    }
    let to_addr = to.trim_start_matches("http://");
    let child = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={from}"))
        .args(["make-mirror", "--prefix", "m/", to_addr])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run etcdctl make-mirror");
    let _mirror = Mirror(child);
    let writes_until = Instant::now() + Duration::from_secs(3);
    let mut i = 0;
    while Instant::now() < writes_until {
        etcdctl(
            from,
            &["put", &format!("m/{:03}", i % 40), &format!("during {i}")],
        );
        if i % 7 == 0 {
            etcdctl(from, &["del", &format!("m/{:03}", (i * 3) % 40)]);
        }
        i += 1;
    }
    let source = etcdctl(from, &["get", "--prefix", "m/"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let destination = etcdctl(to, &["get", "--prefix", "m/"]);
        if destination == source {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror did not catch up within 20 s\nsource:\n{source}\ndestination:\n{destination}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn make_mirror_from_etcd_to_etcr() {
    let etcd = Etcd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    mirror(&etcd.endpoint, &etcr.endpoint());
}

#[test]
fn make_mirror_from_etcr_to_etcd() {
    let etcd = Etcd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    mirror(&etcr.endpoint(), &etcd.endpoint);
}
