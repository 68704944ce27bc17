//! A real `etcr` process on 127.0.0.1 for integration tests: free ports, a temporary data
//! directory, health polled with a deadline, and the process killed on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

pub struct Etcr {
    pub name: String,
    pub child: Option<Child>,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub initial_cluster: String,
    extra: Vec<String>,
}

/// A port nobody listens on right now, below Linux's ephemeral range (32768 and up): a
/// member that restarts gets its port back, which an ephemeral port could meanwhile have been
/// handed to an outgoing connection. Each test process starts at its own offset and counts up,
/// so concurrent tests do not collide.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() * 97) % SPAN;
    for _ in 0..SPAN {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port on 127.0.0.1 between {FIRST} and {}",
        FIRST + SPAN
    );
}

impl Etcr {
    /// A single-member cluster, started and healthy.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Etcr {
        let peer_port = free_port();
        let mut e = Etcr::new(
            "t1",
            peer_port,
            &format!("t1=http://127.0.0.1:{peer_port}"),
            data_dir,
            extra,
        );
        e.spawn();
        e.wait_healthy();
        e
    }

    fn new(
        name: &str,
        peer_port: u16,
        initial_cluster: &str,
        data_dir: &Path,
        extra: &[&str],
    ) -> Etcr {
        Etcr {
            name: name.to_string(),
            child: None,
            client_port: free_port(),
            peer_port,
            data_dir: data_dir.to_path_buf(),
            initial_cluster: initial_cluster.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(env!("CARGO_BIN_EXE_etcr"))
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
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
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("start etcr");
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    fn log_file(&self) -> std::fs::File {
        if let Some(parent) = self.data_dir.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the member's log file")
    }

    /// The end of this member's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until this member reports a leader.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthy(self.client_port) {
            assert!(
                Instant::now() < deadline,
                "{} did not become healthy within 20 s; log:\n{}",
                self.name,
                self.log_tail()
            );
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "{} exited early with {status}; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_healthy();
    }

    /// Starts a member that was killed, without waiting for it.
    pub fn start_again(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::connect(self.endpoint())
            .await
            .expect("connect to etcr")
    }
}

impl Drop for Etcr {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn healthy(port: u16) -> bool {
    http_get(port, "/health").is_some_and(|b| b.contains("\"health\":\"true\""))
}

pub fn http_get(port: u16, path: &str) -> Option<String> {
    http(port, "GET", path)
}

/// One plain HTTP/1.1 request; the body when the answer is 200.
pub fn http(port: u16, method: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The peer transport a test cluster runs on.
#[derive(Clone, Copy, Debug)]
pub enum Net {
    Tcp,
    /// QUIC with mutual TLS, certificates from a fresh test CA.
    Quic,
}

/// A cluster of real etcr processes on 127.0.0.1 sharing one temporary directory.
pub struct Cluster {
    pub members: Vec<Etcr>,
    _dir: tempfile::TempDir,
}

/// Writes a CA and a certificate per member under `dir`; returns each member's TLS flags.
fn quic_flags(dir: &Path, names: &[String]) -> Vec<Vec<String>> {
    let pki = transport::conformance::Pki::new("etcr test CA");
    names
        .iter()
        .map(|name| {
            let tls = pki.member(name);
            let file = |suffix: &str, pem: &[u8]| {
                let path = dir.join(format!("{name}{suffix}"));
                std::fs::write(&path, pem).expect("write a PEM file");
                path.display().to_string()
            };
            vec![
                "--peer-transport".into(),
                "quic".into(),
                "--peer-trusted-ca-file".into(),
                file("-ca.pem", &tls.ca_pem),
                "--peer-cert-file".into(),
                file(".pem", &tls.cert_pem),
                "--peer-key-file".into(),
                file("-key.pem", &tls.key_pem),
            ]
        })
        .collect()
}

impl Cluster {
    pub fn start(size: usize, extra: &[&str]) -> Cluster {
        Cluster::start_on(Net::Tcp, size, extra)
    }

    pub fn start_on(net: Net, size: usize, extra: &[&str]) -> Cluster {
        Cluster::start_prepared(net, size, extra, &|_| {})
    }

    /// Like [`Cluster::start_on`], with `prepare` run on each member before it starts (its
    /// data directory does not exist yet).
    pub fn start_prepared(
        net: Net,
        size: usize,
        extra: &[&str],
        prepare: &dyn Fn(&Etcr),
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let names: Vec<String> = (0..size).map(|i| format!("m{}", i + 1)).collect();
        let net_flags = match net {
            Net::Tcp => vec![vec!["--peer-transport".to_string(), "tcp".to_string()]; size],
            Net::Quic => quic_flags(dir.path(), &names),
        };
        let peer_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let initial = (0..size)
            .map(|i| format!("m{}=http://127.0.0.1:{}", i + 1, peer_ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Etcr> = (0..size)
            .map(|i| {
                let name = &names[i];
                let data = dir.path().join(name);
                let mut flags: Vec<&str> = extra.to_vec();
                flags.extend(net_flags[i].iter().map(String::as_str));
                Etcr::new(name, peer_ports[i], &initial, &data, &flags)
            })
            .collect();
        for m in &mut members {
            prepare(m);
            m.spawn();
        }
        for m in &mut members {
            m.wait_healthy();
        }
        Cluster { members, _dir: dir }
    }

    /// The member ids, in member order.
    pub async fn member_ids(&self) -> Vec<u64> {
        use api::etcdserverpb::{maintenance_client::MaintenanceClient, StatusRequest};
        let mut ids = Vec::new();
        for m in &self.members {
            let mut c = MaintenanceClient::connect(m.endpoint())
                .await
                .expect("connect");
            let s = c
                .status(StatusRequest {})
                .await
                .expect("status")
                .into_inner();
            ids.push(s.header.expect("header").member_id);
        }
        ids
    }

    /// Cuts member `i` off from every other member, both ways (needs
    /// `--experimental-fault-injection`).
    pub async fn isolate(&self, i: usize) {
        let ids = self.member_ids().await;
        for (j, m) in self.members.iter().enumerate() {
            if j == i {
                for (k, id) in ids.iter().enumerate() {
                    if k != i {
                        http(m.client_port, "POST", &format!("/debug/faults/cut/{id:x}"))
                            .expect("cut");
                    }
                }
            } else {
                http(
                    m.client_port,
                    "POST",
                    &format!("/debug/faults/cut/{:x}", ids[i]),
                )
                .expect("cut");
            }
        }
    }

    pub fn heal(&self) {
        for m in &self.members {
            http(m.client_port, "POST", "/debug/faults/heal").expect("heal");
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint()).collect()
    }

    /// Starts a member that joins this cluster (`--initial-cluster-state existing`) with the
    /// `ETCD_INITIAL_CLUSTER` that `member add` printed, without waiting for it; returns its
    /// index.
    pub fn join(
        &mut self,
        name: &str,
        peer_port: u16,
        initial_cluster: &str,
        extra: &[&str],
    ) -> usize {
        let data = self._dir.path().join(name);
        let mut flags = vec!["--initial-cluster-state", "existing"];
        flags.extend_from_slice(extra);
        let mut m = Etcr::new(name, peer_port, initial_cluster, &data, &flags);
        m.spawn();
        self.members.push(m);
        self.members.len() - 1
    }

    /// The index of the member every running member agrees leads, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.agreed_leader().await {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        use api::etcdserverpb::{maintenance_client::MaintenanceClient, StatusRequest};
        let mut leader_id = None;
        let mut ids = Vec::new();
        for m in self.members.iter().filter(|m| m.is_running()) {
            let mut c = MaintenanceClient::connect(m.endpoint()).await.ok()?;
            let s = c.status(StatusRequest {}).await.ok()?.into_inner();
            if s.leader == 0 || leader_id.is_some_and(|l| l != s.leader) {
                return None;
            }
            leader_id = Some(s.leader);
            ids.push(s.header?.member_id);
        }
        let leader_id = leader_id?;
        let running: Vec<usize> = (0..self.members.len())
            .filter(|i| self.members[*i].is_running())
            .collect();
        ids.iter()
            .position(|id| *id == leader_id)
            .map(|p| running[p])
    }
}

/// Debian's etcdctl 3.4, the reference client.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Runs etcdctl against `endpoints` with `stdin`; returns (exit ok, stdout, stderr).
pub fn run_etcdctl(endpoints: &str, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).expect("write etcdctl's stdin");
    }
    let out = child.wait_with_output().expect("etcdctl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One plain HTTP/1.1 GET; the status line and the body, whatever the status.
pub fn http_get_any(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

impl Etcr {
    /// Restarts the member (SIGKILL first) and waits until it answers `etcdctl alarm list`,
    /// which needs a leader: unlike [`Etcr::restart`] this does not need `/health` to be
    /// true, which it is not while an alarm is raised.
    pub fn restart_until_serving(&mut self) {
        self.start_again();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !run_etcdctl(&self.endpoint(), &["alarm", "list"], b"").0 {
            assert!(
                Instant::now() < deadline,
                "{} did not serve within 20 s; log:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A real etcd 3.4 (/usr/bin/etcd) on 127.0.0.1, the reference behaviour; killed on drop.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
    pub client_port: u16,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// A single-member etcd with `extra` flags, once `etcdctl endpoint health` passes.
    pub fn start(extra: &[&str]) -> Etcd {
        let dir = tempfile::tempdir().expect("temporary directory");
        let client_port = free_port();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new("/usr/bin/etcd")
            .arg("--data-dir")
            .arg(dir.path().join("etcd"))
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
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let etcd = Etcd {
            child,
            endpoint: client,
            client_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !run_etcdctl(&etcd.endpoint, &["endpoint", "health"], b"").0 {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stored key: (key, value, create_revision, mod_revision, version, lease).
#[allow(dead_code)]
pub type Row = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

/// Every key of `endpoint` with its revisions and lease, and the header's revision.
#[allow(dead_code)]
pub async fn all_keys(endpoint: String) -> (i64, Vec<Row>) {
    let mut kv = KvClient::connect(endpoint).await.expect("connect");
    let r = kv
        .range(api::etcdserverpb::RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    let kvs = r
        .kvs
        .into_iter()
        .map(|k| {
            let (c, m, v, l) = (k.create_revision, k.mod_revision, k.version, k.lease);
            (k.key, k.value, c, m, v, l)
        })
        .collect();
    (r.header.expect("header").revision, kvs)
}

/// Deletes every key under `prefix` in one DeleteRange.
#[allow(dead_code)]
pub async fn delete_prefix(
    kv: &mut KvClient<Channel>,
    prefix: &[u8],
) -> api::etcdserverpb::DeleteRangeResponse {
    kv.delete_range(api::etcdserverpb::DeleteRangeRequest {
        key: prefix.to_vec(),
        range_end: api::prefix_range_end(prefix),
        ..Default::default()
    })
    .await
    .expect("delete range")
    .into_inner()
}
