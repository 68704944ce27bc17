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
    pub child: Option<Child>,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
}

/// A port nobody listens on right now. The OS hands out ephemeral ports in sequence, so two
/// tests asking at once get different ones.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

impl Etcr {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Etcr {
        let mut e = Etcr {
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        e.spawn();
        e
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(env!("CARGO_BIN_EXE_etcr"))
            .args(["--name", "t1"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t1={peer}")])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start etcr");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthy(self.client_port) {
            assert!(Instant::now() < deadline, "etcr did not become healthy within 20 s");
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("etcr exited early with {status}");
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
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::connect(self.endpoint()).await.expect("connect to etcr")
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
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}
