//! Client TLS on `https://` client URLs, against real processes: a 3-member etcr cluster with
//! client TLS, `--client-cert-auth` and peer mutual TLS, driven by etcdctl 3.4, etcrctl and
//! curl; and etcrctl against a real etcd 3.4 with the same flags, printing what etcdctl prints.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, ETCDCTL};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA and the PEM files it signed, written under a directory.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = dir.join(name.replace(' ', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// Writes `<file>.pem` and `<file>-key.pem`; returns their paths.
    fn sign(&self, file: &str, cn: &str, server: bool) -> (String, String) {
        let sans = if server {
            vec!["127.0.0.1".to_string(), "localhost".to_string()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (
            cert_path.display().to_string(),
            key_path.display().to_string(),
        )
    }
}

/// The client-side files a command line passes.
struct ClientFiles {
    ca: String,
    cert: String,
    key: String,
}

impl ClientFiles {
    fn flags(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca),
            format!("--cert={}", self.cert),
            format!("--key={}", self.key),
        ]
    }
}

/// A server process (etcr or etcd), killed on drop.
struct Server {
    child: Child,
    client_port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `curl` over https with `files` (no client certificate when `files.cert` is empty).
fn curl(url: &str, files: &ClientFiles) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "3", "--cacert", &files.ca]);
    if !files.cert.is_empty() {
        cmd.args(["--cert", &files.cert, "--key", &files.key]);
    }
    cmd.arg(url).output().expect("run curl")
}

fn healthy(server: &Server, files: &ClientFiles) -> bool {
    let out = curl(&format!("{}/health", server.endpoint()), files);
    String::from_utf8_lossy(&out.stdout).contains("\"health\":\"true\"")
}

fn wait_healthy(servers: &mut [Server], files: &ClientFiles) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in servers.iter_mut() {
        while !healthy(s, files) {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("server exited with {status}; log:\n{}", s.log());
            }
            assert!(
                Instant::now() < deadline,
                "not healthy within 30 s; log:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A 3-member etcr cluster with https client URLs, `--client-cert-auth` and peer mutual TLS.
fn start_cluster(dir: &Path, pki: &Pki, extra: &[&str]) -> Vec<Server> {
    let names = ["m1", "m2", "m3"];
    let peer_ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let initial = names
        .iter()
        .zip(&peer_ports)
        .map(|(n, p)| format!("{n}=https://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    names
        .iter()
        .zip(&peer_ports)
        .map(|(name, peer_port)| {
            let (cert, key) = pki.sign(name, name, true);
            let client_port = free_port();
            let client = format!("https://127.0.0.1:{client_port}");
            let peer = format!("https://127.0.0.1:{peer_port}");
            let log = dir.join(format!("{name}.log"));
            let child = Command::new(env!("CARGO_BIN_EXE_etcr"))
                .args(["--name", name])
                .arg("--data-dir")
                .arg(dir.join(name))
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .args(["--cert-file", &cert, "--key-file", &key])
                .args(["--trusted-ca-file", &pki.ca(), "--client-cert-auth"])
                .args(["--peer-cert-file", &cert, "--peer-key-file", &key])
                .args(["--peer-trusted-ca-file", &pki.ca()])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start etcr");
            Server {
                child,
                client_port,
                log,
            }
        })
        .collect()
}

/// One etcd 3.4 with an https client URL and `--client-cert-auth`, not yet healthy.
fn start_etcd(dir: &Path, pki: &Pki) -> Server {
    let (server_cert, server_key) = pki.sign("etcd", "etcd", true);
    let client_port = free_port();
    let client = format!("https://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = dir.join("etcd.log");
    let child = Command::new("/usr/bin/etcd")
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(["--cert-file", &server_cert, "--key-file", &server_key])
        .args(["--trusted-ca-file", &pki.ca(), "--client-cert-auth"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start etcd");
    Server {
        child,
        client_port,
        log,
    }
}

/// The etcrctl binary of this build (built here if the test run did not build it).
fn etcrctl_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_etcr")).with_file_name("etcrctl");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", "etcrctl"])
        .status()
        .expect("run cargo build -p etcrctl");
    assert!(status.success(), "cargo build -p etcrctl failed");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// Runs a client binary; (exit code, stdout, stderr).
fn run(bin: &Path, endpoints: &str, flags: &[String], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(flags)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Strips what differs between two runs of the same failure: timestamps and resolver ids.
fn stable(stderr: &str) -> String {
    let ts = regex_lite(stderr, "\"ts\":\"", "\"");
    regex_lite(&ts, "endpoint://client-", "/")
}

/// Blanks every `start ... end` span after `start`.
fn regex_lite(text: &str, start: &str, end: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(start) {
        out.push_str(&rest[..i + start.len()]);
        rest = &rest[i + start.len()..];
        let j = rest.find(end).unwrap_or(rest.len());
        out.push('_');
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

#[test]
fn etcdctl_and_etcrctl_work_over_tls_with_client_certificates_on_three_members() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster CA");
    let (cert, key) = pki.sign("client", "root", false);
    let files = ClientFiles {
        ca: pki.ca(),
        cert,
        key,
    };
    let mut cluster = start_cluster(dir.path(), &pki, &[]);
    wait_healthy(&mut cluster, &files);
    let endpoints: Vec<String> = cluster.iter().map(Server::endpoint).collect();
    let all = endpoints.join(",");
    let etcrctl = etcrctl_bin();
    let etcdctl = Path::new(ETCDCTL);

    let (code, out, err) = run(etcdctl, &endpoints[0], &files.flags(), &["put", "k", "v1"]);
    assert_eq!((code, out.as_str()), (0, "OK\n"), "{err}");
    for ep in &endpoints {
        let got = run(&etcrctl, ep, &files.flags(), &["get", "k"]);
        assert_eq!(got, (0, "k\nv1\n".to_string(), String::new()), "{ep}");
    }
    let (code, out, err) = run(&etcrctl, &all, &files.flags(), &["put", "k", "v2"]);
    assert_eq!((code, out.as_str()), (0, "OK\n"), "{err}");
    for ep in &endpoints {
        let got = run(
            etcdctl,
            ep,
            &files.flags(),
            &["get", "k", "--print-value-only"],
        );
        assert_eq!(got.1, "v2\n", "{ep}: {}", got.2);
    }
    let (code, out, err) = run(etcdctl, &all, &files.flags(), &["endpoint", "status"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    for ep in &endpoints {
        assert!(out.contains(&format!("{ep}, ")), "{out}");
    }
    // etcdctl 3.4 prints health on stderr.
    let (code, _, err) = run(&etcrctl, &all, &files.flags(), &["endpoint", "health"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("is healthy").count(), 3, "{err}");

    // The HTTP endpoints on the TLS port, HTTP/1.1 as curl negotiates it.
    for s in &cluster {
        let health = curl(&format!("{}/health", s.endpoint()), &files);
        assert_eq!(
            String::from_utf8_lossy(&health.stdout),
            "{\"health\":\"true\"}"
        );
        let metrics = curl(&format!("{}/metrics", s.endpoint()), &files);
        assert!(String::from_utf8_lossy(&metrics.stdout).contains("etcd_server_has_leader 1"));
    }
}

#[test]
fn client_cert_auth_refuses_clients_without_a_certificate_from_the_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster CA");
    let other = Pki::new(dir.path(), "other CA");
    let (cert, key) = pki.sign("client", "root", false);
    let files = ClientFiles {
        ca: pki.ca(),
        cert,
        key,
    };
    let mut cluster = start_cluster(dir.path(), &pki, &[]);
    wait_healthy(&mut cluster, &files);
    let server = &cluster[0];
    let ep = server.endpoint();
    let etcrctl = etcrctl_bin();
    let quick = ["--dial-timeout=1s", "--command-timeout=2s"].map(String::from);

    // No client certificate: etcdctl and etcrctl both fail the same way, curl is refused.
    let no_cert = [vec![format!("--cacert={}", pki.ca())], quick.to_vec()].concat();
    let theirs = run(Path::new(ETCDCTL), &ep, &no_cert, &["endpoint", "status"]);
    let ours = run(&etcrctl, &ep, &no_cert, &["endpoint", "status"]);
    assert_eq!(theirs.0, 1, "{theirs:?}");
    // etcdctl's balancer error is racy (the server's alert or a broken pipe, whichever its
    // next write meets); etcrctl gives the first, and the same last line.
    assert_eq!(ours.0, 1);
    assert!(
        ours.2
            .contains("desc = latest balancer error: connection closed\"}\n"),
        "{ours:?}"
    );
    let last = |s: &str| s.lines().last().map(str::to_string);
    assert_eq!(last(&ours.2), last(&theirs.2));
    assert_eq!(
        stable(&ours.2).split("latest balancer").next(),
        stable(&theirs.2).split("latest balancer").next()
    );
    let (code, _, err) = run(&etcrctl, &ep, &no_cert, &["get", "k"]);
    assert_eq!(code, 1);
    assert!(err.ends_with("Error: context deadline exceeded\n"), "{err}");
    let refused = curl(
        &format!("{ep}/health"),
        &ClientFiles {
            ca: pki.ca(),
            cert: String::new(),
            key: String::new(),
        },
    );
    assert!(!refused.status.success());

    // A client certificate from another CA.
    let (cert, key) = other.sign("intruder", "root", false);
    let foreign = ClientFiles {
        ca: pki.ca(),
        cert,
        key,
    };
    let flags = [foreign.flags(), quick.to_vec()].concat();
    let (code, _, err) = run(Path::new(ETCDCTL), &ep, &flags, &["get", "k"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(&etcrctl, &ep, &flags, &["get", "k"]);
    assert_eq!(code, 1);
    assert!(err.ends_with("Error: context deadline exceeded\n"), "{err}");
    assert!(!curl(&format!("{ep}/health"), &foreign).status.success());

    // The wrong CA on the client side: etcdctl's words.
    let wrong_ca = ClientFiles {
        ca: other.ca(),
        cert: files.cert.clone(),
        key: files.key.clone(),
    };
    let flags = [wrong_ca.flags(), quick.to_vec()].concat();
    let theirs = run(Path::new(ETCDCTL), &ep, &flags, &["endpoint", "status"]);
    let ours = run(&etcrctl, &ep, &flags, &["endpoint", "status"]);
    assert!(
        ours.2.contains("transport: authentication handshake failed: x509: certificate signed by unknown authority"),
        "{ours:?}"
    );
    assert_eq!(ours.0, theirs.0);
    assert!(ours.2.ends_with(&format!(
        "Failed to get the status of endpoint {ep} (context deadline exceeded)\n"
    )));

    // Plain HTTP/1 and a plaintext HTTP/2 (gRPC) client: closed at once, nothing served.
    for hello in [
        &b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ] {
        let started = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", server.client_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(hello).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not closed promptly"
        );
        assert!(!String::from_utf8_lossy(&answer).contains("health"));
    }
    // The member is still healthy, and the bad connections cost no log lines.
    assert!(healthy(server, &files));
    let log = server.log();
    assert!(!log.contains("handshake"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
}

#[test]
fn missing_or_bad_files_stop_the_server_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster CA");
    let (cert, key) = pki.sign("m1", "m1", true);
    let client = format!("https://127.0.0.1:{}", free_port());
    let start = |flags: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_etcr"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", free_port()),
            ])
            .args(flags)
            .output()
            .expect("run etcr");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = start(&[]);
    assert!(
        err.contains(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://"
        ),
        "{err}"
    );
    let err = start(&["--cert-file", "/nonexistent.pem", "--key-file", &key]);
    assert!(
        err.contains("cannot read --cert-file /nonexistent.pem")
            && err.contains("cargo xtask certs"),
        "{err}"
    );
    let err = start(&["--cert-file", &key, "--key-file", &key]);
    assert!(err.contains("no certificate in it"), "{err}");
    let err = start(&["--cert-file", &cert, "--key-file", &cert]);
    assert!(err.contains("no private key in it"), "{err}");
    let err = start(&[
        "--cert-file",
        &cert,
        "--key-file",
        &key,
        "--client-cert-auth",
    ]);
    assert!(
        err.contains("--client-cert-auth needs --trusted-ca-file"),
        "{err}"
    );
    let (_, other_key) = pki.sign("other", "other", true);
    let err = start(&["--cert-file", &cert, "--key-file", &other_key]);
    assert!(err.contains("do not make a key pair"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "the data directory was created"
    );
}

#[test]
fn etcrctl_prints_what_etcdctl_prints_against_etcd_with_client_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "etcd CA");
    let (cert, key) = pki.sign("client", "root", false);
    let files = ClientFiles {
        ca: pki.ca(),
        cert,
        key,
    };
    let mut etcd = [start_etcd(dir.path(), &pki)];
    let client = etcd[0].endpoint();
    wait_healthy(&mut etcd, &files);
    let etcrctl = etcrctl_bin();
    let etcdctl = Path::new(ETCDCTL);
    let flags = files.flags();
    assert_eq!(run(etcdctl, &client, &flags, &["put", "k", "v"]).0, 0);
    for args in [
        &["get", "k"][..],
        &["get", "k", "-w", "json"],
        &["put", "k2", "v"],
        &["get", "k", "--prefix", "-w", "fields"],
        &["member", "list"],
        &["endpoint", "status"],
        &["del", "k2"],
    ] {
        let theirs = run(etcdctl, &client, &flags, args);
        // etcrctl deletes what etcdctl deleted, so both print the same count.
        if args[0] == "del" {
            run(etcdctl, &client, &flags, &["put", "k2", "v"]);
        }
        let ours = run(&etcrctl, &client, &flags, args);
        assert_eq!(ours, theirs, "{args:?}");
    }
    let theirs = run(
        etcdctl,
        &client,
        &[],
        &["--cert=/nonexistent", "--key=x", "get", "k"],
    );
    let ours = run(
        &etcrctl,
        &client,
        &[],
        &["--cert=/nonexistent", "--key=x", "get", "k"],
    );
    assert_eq!(ours, theirs);
    assert_eq!(theirs.0, 128);
}

/// With `--client-cert-auth` and auth enabled, a call without a token acts as the user its
/// certificate's common name names (etcd's rule), and a token still wins over it: etcdctl
/// prints the same against etcd 3.4 and a 3-member etcr cluster.
#[test]
fn a_client_certificate_names_the_user_when_no_token_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "auth CA");
    let files = |name: &str| {
        let (cert, key) = pki.sign(name, name, false);
        ClientFiles {
            ca: pki.ca(),
            cert,
            key,
        }
        .flags()
    };
    let (root, alice, nobody) = (files("root"), files("alice"), files("nobody"));
    let etcdctl = Path::new(ETCDCTL);
    let session = |endpoint: &str| -> Vec<(i32, String, String)> {
        for args in [
            &["user", "add", "root:rootpw"][..],
            &["user", "grant-role", "root", "root"],
            &["user", "add", "alice", "--no-password"],
            &["role", "add", "reader"],
            &[
                "role",
                "grant-permission",
                "reader",
                "read",
                "foo/",
                "--prefix",
            ],
            &["user", "grant-role", "alice", "reader"],
            &["put", "foo/a", "1"],
            &["put", "bar", "2"],
            &["auth", "enable"],
        ] {
            let (code, _, err) = run(etcdctl, endpoint, &root, args);
            assert_eq!(code, 0, "{args:?}: {err}");
        }
        let mut seen = Vec::new();
        for (flags, args) in [
            (&alice, &["get", "foo/a"][..]),
            (&alice, &["get", "bar"]),
            (&alice, &["put", "foo/a", "x"]),
            (&alice, &["user", "get", "alice"]),
            (&alice, &["user", "list"]),
            (&alice, &["--user=root:rootpw", "get", "bar"]),
            (&nobody, &["get", "foo/a"]),
            (&root, &["get", "bar"]),
            (&root, &["user", "list"]),
        ] {
            let (code, out, err) = run(etcdctl, endpoint, flags, args);
            let host = endpoint.trim_start_matches("https://");
            seen.push((code, out, stable(&err).replace(host, "_")));
        }
        seen
    };

    let root_files = ClientFiles {
        ca: pki.ca(),
        cert: pki.dir.join("root.pem").display().to_string(),
        key: pki.dir.join("root-key.pem").display().to_string(),
    };
    let mut etcd = [start_etcd(dir.path(), &pki)];
    wait_healthy(&mut etcd, &root_files);
    let theirs = session(&etcd[0].endpoint());
    assert_eq!(theirs[0].1, "foo/a\n1\n");
    assert!(
        theirs[1]
            .2
            .ends_with("Error: etcdserver: permission denied\n"),
        "{theirs:?}"
    );
    assert_eq!(theirs[5].1, "bar\n2\n");

    let mut cluster = start_cluster(dir.path(), &pki, &["--bcrypt-cost", "4"]);
    wait_healthy(&mut cluster, &root_files);
    let ours = session(&cluster[1].endpoint());
    for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(a, b, "step {i}");
    }
    // Another member sees the certificate's user the same way.
    let got = run(etcdctl, &cluster[2].endpoint(), &alice, &["get", "foo/a"]);
    assert_eq!(got.1, "foo/a\n1\n", "{}", got.2);
}
