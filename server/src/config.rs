//! Command-line flags. Names and defaults follow etcd's so that a user can start etcr the
//! way they start etcd.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// etcd's default for `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// The flags of the `etcr` server.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "etcr",
    version,
    about = "etcr: an etcd v3 compatible, strongly consistent key-value store"
)]
pub struct Flags {
    /// The member's name, as `--initial-cluster` and `member list` show it.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `<name>.etcd`).
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic, comma-separated.
    #[arg(long = "listen-client-urls", default_value = "http://localhost:2379")]
    pub listen_client_urls: String,
    /// Client URLs of this member to advertise to the rest of the cluster, comma-separated.
    #[arg(
        long = "advertise-client-urls",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic, comma-separated.
    #[arg(long = "listen-peer-urls", default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,
    /// Peer URLs of this member to advertise to the rest of the cluster, comma-separated.
    #[arg(
        long = "initial-advertise-peer-urls",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Every founding member as `name=peer-url,...`, the same on each of them
    /// (default: this member alone, at its advertised peer URLs).
    #[arg(long = "initial-cluster")]
    pub initial_cluster: Option<String>,
    /// `new` to bootstrap a cluster, `existing` to join one.
    #[arg(long = "initial-cluster-state", default_value = "new")]
    pub initial_cluster_state: ClusterState,
    /// Refuse membership changes that could leave the cluster without a quorum of started
    /// members.
    #[arg(long = "strict-reconfig-check", default_value_t = true, action = clap::ArgAction::Set)]
    pub strict_reconfig_check: bool,
    /// Token that makes cluster and member ids unique across clusters with the same URLs.
    #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// How often a leader reminds followers it is alive, in milliseconds.
    #[arg(long = "heartbeat-interval", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// How long a follower waits without hearing from a leader before it stands for election,
    /// in milliseconds.
    #[arg(long = "election-timeout", default_value_t = 1000)]
    pub election_timeout: u64,
    /// The largest client request, in bytes; larger ones are refused.
    #[arg(long = "max-request-bytes", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// The most operations one transaction may hold.
    #[arg(long = "max-txn-ops", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Refuse writes with "database space exceeded" once the backend reaches this many bytes
    /// (0: 2 GiB, etcd's default).
    #[arg(long = "quota-backend-bytes", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum concurrent streams (calls) each client connection may open at a time
    /// (etcd's default: math.MaxUint32).
    #[arg(long = "max-concurrent-streams", default_value = "math.MaxUint32", value_parser = parse_max_streams)]
    pub max_concurrent_streams: u32,
    /// Client connections served at once over all client URLs; more wait until one closes.
    #[arg(long = "max-client-connections", default_value_t = 10_000)]
    pub max_client_connections: usize,
    /// A client connection with no call open for this long is closed (GOAWAY); `0s` never.
    #[arg(long = "client-idle-timeout", default_value = "5m0s", value_parser = parse_duration)]
    pub client_idle_timeout: Duration,
    /// Frequency duration of server-to-client ping to check if a connection is alive.
    #[arg(long = "grpc-keepalive-interval", default_value = "2h0m0s", value_parser = parse_duration)]
    pub grpc_keepalive_interval: Duration,
    /// Minimum duration interval that a client should wait before pinging the server.
    #[arg(long = "grpc-keepalive-min-time", default_value = "5s", value_parser = parse_duration)]
    pub grpc_keepalive_min_time: Duration,
    /// Additional duration of wait before closing a non-responsive connection.
    #[arg(long = "grpc-keepalive-timeout", default_value = "20s", value_parser = parse_duration)]
    pub grpc_keepalive_timeout: Duration,
    /// Number of committed entries between raft snapshots (log compactions).
    #[arg(long = "snapshot-count", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Certificate of this member for peer TLS (PEM).
    #[arg(long = "peer-cert-file")]
    pub peer_cert_file: Option<PathBuf>,
    /// Private key of this member for peer TLS (PEM).
    #[arg(long = "peer-key-file")]
    pub peer_key_file: Option<PathBuf>,
    /// The cluster CA that signs every member's peer certificate (PEM).
    #[arg(long = "peer-trusted-ca-file")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Certificate this member presents to clients on `https://` client URLs (PEM; re-read
    /// when the file changes).
    #[arg(long = "cert-file")]
    pub cert_file: Option<PathBuf>,
    /// Private key of `--cert-file` (PEM).
    #[arg(long = "key-file")]
    pub key_file: Option<PathBuf>,
    /// CA whose certificates clients must present on `https://` client URLs (PEM).
    #[arg(long = "trusted-ca-file")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require every client on `https://` client URLs to present a certificate signed by
    /// `--trusted-ca-file`; its common name is the user when auth is enabled.
    #[arg(long = "client-cert-auth")]
    pub client_cert_auth: bool,
    /// Testing only: wrap the peer transport in a fault injector controlled through
    /// `POST /debug/faults/cut/<member-id-hex>` and `POST /debug/faults/heal` on the client port.
    #[arg(long = "experimental-fault-injection")]
    pub fault_injection: bool,
    /// Peer transport: `tcp` or `quic`.
    #[arg(long = "peer-transport", default_value = "tcp")]
    pub peer_transport: PeerTransport,
    /// Duration of periodic watch progress notifications (Go syntax: `10m`, `1m30s`,
    /// `500ms`); at least 100ms.
    #[arg(
        long = "experimental-watch-progress-notify-interval",
        default_value = "10m",
        value_parser = parse_duration
    )]
    pub watch_progress_notify_interval: Duration,
    /// How tokens are made: `simple` (random strings kept by every member) or
    /// `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m` (signed claims).
    #[arg(long = "auth-token", default_value = "simple")]
    pub auth_token: String,
    /// Seconds a simple token lives after its last use.
    #[arg(long = "auth-token-ttl", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// Work factor of the bcrypt hashes of passwords (4 to 31).
    #[arg(long = "bcrypt-cost", default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,
    /// Log format: `text` or `json`.
    #[arg(long = "log-format", default_value = "text")]
    pub log_format: LogFormat,
    /// Log level (`debug`, `info`, `warn`, `error`); `RUST_LOG` overrides it.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
}

/// `--initial-cluster-state`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster.
    New,
    /// Join an existing cluster.
    Existing,
}

/// `--peer-transport`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerTransport {
    /// TCP (tokio), plaintext or mutual TLS.
    Tcp,
    /// QUIC (quinn), always mutual TLS.
    Quic,
}

/// `--log-format`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl Flags {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)))
    }

    /// `--initial-cluster`, grouped by member name in first-seen order. A name may appear
    /// several times, once per peer URL, as in etcd.
    pub fn initial_members(&self) -> anyhow::Result<Vec<InitialMember>> {
        let spec = match &self.initial_cluster {
            Some(s) => s.clone(),
            None => split_urls(&self.initial_advertise_peer_urls)
                .map(|u| format!("{}={u}", self.name))
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut members: Vec<InitialMember> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, url) = part.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--initial-cluster: {part:?} is not of the form name=url")
            })?;
            let url = normalize_url(url)?;
            match members.iter_mut().find(|m| m.name == name) {
                Some(m) => m.peer_urls.push(url),
                None => members.push(InitialMember {
                    name: name.to_string(),
                    peer_urls: vec![url],
                }),
            }
        }
        if !members.iter().any(|m| m.name == self.name) {
            anyhow::bail!(
                "--initial-cluster has no member named {:?} (this member's --name); add {}=<peer-url>",
                self.name,
                self.name
            );
        }
        Ok(members)
    }
}

/// `--max-concurrent-streams`: a number, or etcd's spelling of its default.
fn parse_max_streams(value: &str) -> Result<u32, String> {
    if value == "math.MaxUint32" {
        return Ok(u32::MAX);
    }
    value.parse().map_err(|e| format!("{e}"))
}

/// A Go duration as etcd's flags take them: numbers with units, `1h30m`, `5s`, `100ms`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {value:?} (write it like 20s, 1m30s or 100ms)");
    let mut rest = value;
    let mut total = Duration::ZERO;
    if rest == "0" {
        return Ok(total);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(number * seconds).map_err(|_| bad())?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Splits a comma-separated URL list.
pub fn split_urls(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|u| !u.is_empty())
}

/// Canonical text of a URL as etcd prints it: scheme, host and port, no trailing slash.
pub fn normalize_url(url: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        anyhow::anyhow!("URL {url:?} has no scheme; write it as http://host:port")
    })?;
    if scheme != "http" && scheme != "https" && scheme != "unix" && scheme != "unixs" {
        anyhow::bail!("URL {url:?} has unsupported scheme {scheme:?}; use http or https");
    }
    let host_port = rest.trim_end_matches('/');
    if !host_port.contains(':') {
        anyhow::bail!("URL {url:?} has no port; write it as {scheme}://host:port");
    }
    Ok(format!("{scheme}://{host_port}"))
}

/// The socket addresses a listen URL list names.
pub fn listen_addrs(list: &str) -> anyhow::Result<Vec<SocketAddr>> {
    Ok(listen_urls(list)?.into_iter().map(|(a, _)| a).collect())
}

/// The socket addresses a listen URL list names, each with whether it is `https://`.
pub fn listen_urls(list: &str) -> anyhow::Result<Vec<(SocketAddr, bool)>> {
    let mut out = Vec::new();
    for url in split_urls(list) {
        let url = normalize_url(url)?;
        let (scheme, host_port) = url.split_once("://").unwrap_or(("http", &url));
        if scheme != "http" && scheme != "https" {
            anyhow::bail!(
                "listening on {scheme}:// URLs is not supported yet ({url}); use http:// or https://"
            );
        }
        let addrs = host_port
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("cannot resolve {url}: {e}"))?;
        // "localhost" resolves to both families; listening on the first is what a user expects.
        let first = addrs
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("{url} resolves to no address"))?;
        out.push((first, scheme == "https"));
    }
    if out.is_empty() {
        anyhow::bail!("no URL to listen on");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_progress_notify_interval_is_a_duration() {
        let f = flags(&["--experimental-watch-progress-notify-interval", "2s"]);
        assert_eq!(f.watch_progress_notify_interval, Duration::from_secs(2));
        let default = flags(&[]).watch_progress_notify_interval;
        assert_eq!(default, Duration::from_secs(600));
    }

    fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["etcr"];
        all.extend_from_slice(args);
        Flags::parse_from(all)
    }

    #[test]
    fn initial_cluster_groups_urls_by_name() {
        let f = flags(&[
            "--name",
            "m1",
            "--initial-cluster",
            "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381/,m1=http://127.0.0.1:2390",
        ]);
        let m = f.initial_members().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].peer_urls,
            vec!["http://127.0.0.1:2380", "http://127.0.0.1:2390"]
        );
        assert_eq!(m[1].peer_urls, vec!["http://127.0.0.1:2381"]);
    }

    #[test]
    fn initial_cluster_defaults_to_self() {
        let f = flags(&[
            "--name",
            "solo",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:3380",
        ]);
        let m = f.initial_members().unwrap();
        assert_eq!(
            m,
            vec![InitialMember {
                name: "solo".into(),
                peer_urls: vec!["http://127.0.0.1:3380".into()]
            }]
        );
        assert_eq!(f.data_dir(), PathBuf::from("solo.etcd"));
    }

    #[test]
    fn initial_cluster_must_name_this_member() {
        let f = flags(&[
            "--name",
            "x",
            "--initial-cluster",
            "m1=http://127.0.0.1:2380",
        ]);
        let err = f.initial_members().unwrap_err().to_string();
        assert!(err.contains("no member named \"x\""), "{err}");
    }

    #[test]
    fn durations_and_stream_limits_parse_as_etcd_writes_them() {
        assert_eq!(parse_duration("2h0m0s"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_max_streams("math.MaxUint32"), Ok(u32::MAX));
        assert_eq!(parse_max_streams("100"), Ok(100));
        let f = flags(&[]);
        assert_eq!(f.max_concurrent_streams, u32::MAX);
        assert_eq!(f.grpc_keepalive_timeout, Duration::from_secs(20));
    }

    #[test]
    fn bad_urls_are_explained() {
        assert!(normalize_url("127.0.0.1:2379")
            .unwrap_err()
            .to_string()
            .contains("no scheme"));
        assert!(normalize_url("http://127.0.0.1")
            .unwrap_err()
            .to_string()
            .contains("no port"));
        assert_eq!(
            listen_addrs("http://127.0.0.1:2379").unwrap(),
            vec!["127.0.0.1:2379".parse().unwrap()]
        );
        assert_eq!(
            listen_urls("http://127.0.0.1:2379,https://127.0.0.1:2389").unwrap(),
            vec![
                ("127.0.0.1:2379".parse().unwrap(), false),
                ("127.0.0.1:2389".parse().unwrap(), true)
            ]
        );
        assert!(listen_urls("unix://x:1").is_err());
    }
}
