//! The cluster under test: etcr processes on loopback that the nemesis kills, restarts,
//! pauses and partitions, and that are killed when this is dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::StatusRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RPC_TIMEOUT: Duration = Duration::from_millis(800);

pub struct Member {
    pub name: String,
    pub client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    /// Learned from the member's Status once the cluster is up.
    pub id: u64,
    child: Option<Child>,
    paused: bool,
}

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    initial_cluster: String,
    pub members: Vec<Member>,
}

/// A port nobody listens on now, below Linux's ephemeral range (32768 and up), so a member
/// that restarts gets its port back rather than finding it handed to an outgoing connection.
fn free_port(next: &mut u32) -> anyhow::Result<u16> {
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    for _ in 0..SPAN {
        let port = (FIRST + *next % SPAN) as u16;
        *next += 1;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!(
        "no free port on 127.0.0.1 between {FIRST} and {}",
        FIRST + SPAN
    )
}

impl Cluster {
    /// Starts `size` members of the etcr binary `bin` with their data and logs under `dir`,
    /// and waits until they agree on a leader.
    pub async fn start(bin: &Path, dir: &Path, size: usize) -> anyhow::Result<Cluster> {
        // Each run starts at its own offset so concurrent runs do not race for ports.
        let mut next = std::process::id().wrapping_mul(97);
        let mut ports = Vec::new();
        for _ in 0..size {
            ports.push((free_port(&mut next)?, free_port(&mut next)?));
        }
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, &(client_port, peer_port))| Member {
                name: format!("m{}", i + 1),
                client_port,
                peer_port,
                data_dir: dir.join(format!("m{}", i + 1)),
                id: 0,
                child: None,
                paused: false,
            })
            .collect();
        let mut cluster = Cluster {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            initial_cluster,
            members,
        };
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.wait_ready(Duration::from_secs(60)).await?;
        for i in 0..size {
            let status = cluster
                .status(i)
                .await
                .ok_or_else(|| anyhow::anyhow!("no status from {}", cluster.members[i].name))?;
            cluster.members[i].id = status.header.map(|h| h.member_id).unwrap_or_default();
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", m.name)))?;
        let child = Command::new(&self.bin)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", "etcr-chaos"])
            .arg("--experimental-fault-injection")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", self.bin.display()))?;
        let m = &mut self.members[i];
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Running and not paused: able to answer.
    pub fn is_up(&self, i: usize) -> bool {
        self.members[i].child.is_some() && !self.members[i].paused
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.members[i].paused = false;
    }

    /// Starts a killed member again on its data directory.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill9(i);
        self.spawn(i)
    }

    fn signal(&mut self, i: usize, sig: libc::c_int) {
        if let Some(c) = &self.members[i].child {
            // SAFETY: kill(2) on a child we started and have not reaped; no memory involved.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
    }

    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.members[i].paused = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.members[i].paused = false;
    }

    /// Cuts member `i` off from every other member, both ways.
    pub async fn isolate(&self, i: usize) -> anyhow::Result<()> {
        for (j, m) in self.members.iter().enumerate() {
            let cut: Vec<u64> = if j == i {
                self.members
                    .iter()
                    .filter(|o| o.id != m.id)
                    .map(|o| o.id)
                    .collect()
            } else {
                vec![self.members[i].id]
            };
            for to in cut {
                http_post(m.client_port, &format!("/debug/faults/cut/{to:x}"))
                    .await
                    .ok_or_else(|| anyhow::anyhow!("{} refused the cut", m.name))?;
            }
        }
        Ok(())
    }

    /// Removes every cut on every member that is up.
    pub async fn heal(&self) -> anyhow::Result<()> {
        for (i, m) in self.members.iter().enumerate() {
            if self.is_up(i) {
                http_post(m.client_port, "/debug/faults/heal")
                    .await
                    .ok_or_else(|| anyhow::anyhow!("{} refused to heal", m.name))?;
            }
        }
        Ok(())
    }

    /// Brings every member back: resumed, restarted if killed, links healed.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        for i in 0..self.size() {
            if self.members[i].paused {
                self.resume(i);
            }
            if self.members[i].child.is_none() {
                self.restart(i)?;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.heal().await.is_err() {
            if Instant::now() > deadline {
                anyhow::bail!("could not heal the partitions within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    pub async fn status(&self, i: usize) -> Option<api::etcdserverpb::StatusResponse> {
        let mut c = MaintenanceClient::connect(self.endpoint(i)).await.ok()?;
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(RPC_TIMEOUT);
        let status = tokio::time::timeout(RPC_TIMEOUT, c.status(req))
            .await
            .ok()?;
        status.ok().map(|r| r.into_inner())
    }

    /// The member every member that is up names as leader, if they agree and it is one of them.
    pub async fn leader(&self) -> Option<usize> {
        let mut leader = None;
        for i in (0..self.size()).filter(|&i| self.is_up(i)) {
            let l = self.status(i).await?.leader;
            if l == 0 || leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        let leader = leader?;
        (0..self.size()).find(|&i| self.members[i].id == leader && self.is_up(i))
    }

    /// Waits until every member that is up agrees on a leader and says it is healthy.
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let mut healthy = true;
            for (i, m) in self.members.iter().enumerate() {
                if self.is_up(i)
                    && !http_get(m.client_port, "/health")
                        .await
                        .is_some_and(|b| b.contains("\"health\":\"true\""))
                {
                    healthy = false;
                }
            }
            if healthy && (self.members.iter().all(|m| m.id == 0) || self.leader().await.is_some())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the cluster did not agree on a leader within {within:?}; logs in {}",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.size() {
            self.kill9(i);
        }
    }
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    http(port, "GET", path).await
}

async fn http_post(port: u16, path: &str) -> Option<String> {
    http(port, "POST", path).await
}

/// One plain HTTP/1.1 request within a second; the body when the answer is 200.
async fn http(port: u16, method: &str, path: &str) -> Option<String> {
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let out = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}
