//! etcd's auth with Debian's etcdctl 3.4: users, roles, prefix permissions and tokens on a
//! 3-member etcr cluster, and the same etcdctl session against etcd 3.4 and etcr, compared
//! line by line.

mod common;

use std::time::{Duration, Instant};

use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{
    AuthUserChangePasswordRequest, AuthenticateRequest, RangeRequest, WatchCreateRequest,
};
use common::{run_etcdctl, Cluster, Etcd, Etcr, ETCDCTL};
use tonic::metadata::MetadataValue;

fn ok(endpoint: &str, args: &[&str]) -> String {
    let (ok, out, err) = run_etcdctl(endpoint, args, b"");
    assert!(ok, "etcdctl {args:?} failed: {err}");
    out
}

/// The last line etcdctl wrote to stderr (its `Error: ...`; the client's retry warnings, with
/// their timestamps, come before it).
fn refused(endpoint: &str, args: &[&str]) -> String {
    let (ok, _, err) = run_etcdctl(endpoint, args, b"");
    assert!(!ok, "etcdctl {args:?} succeeded");
    err.lines().last().unwrap_or_default().to_string()
}

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:apw";

/// Root with the root role, auth enabled, and alice reading `foo/` only.
fn set_up(first: &str, second: &str) {
    ok(first, &["user", "add", "root:rootpw"]);
    ok(first, &["user", "grant-role", "root", "root"]);
    // etcd enables auth from another member than the one that made root.
    assert_eq!(ok(second, &["auth", "enable"]), "Authentication Enabled\n");
    ok(first, &[ROOT, "user", "add", "alice:apw"]);
    ok(first, &[ROOT, "role", "add", "reader"]);
    ok(
        first,
        &[
            ROOT,
            "role",
            "grant-permission",
            "reader",
            "read",
            "foo/",
            "--prefix=true",
        ],
    );
    ok(first, &[ROOT, "user", "grant-role", "alice", "reader"]);
    ok(first, &[ROOT, "put", "foo/a", "1"]);
    ok(first, &[ROOT, "put", "bar", "2"]);
}

async fn token(endpoint: &str, name: &str, password: &str) -> Result<String, tonic::Status> {
    let mut auth = AuthClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    auth.authenticate(AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    })
    .await
    .map(|r| r.into_inner().token)
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Ok(v) = MetadataValue::try_from(token) {
        r.metadata_mut().insert("token", v);
    }
    r
}

async fn range(endpoint: &str, key: &str, token: &str) -> Result<usize, tonic::Status> {
    let mut kv = KvClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    let req = RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    kv.range(with_token(req, token))
        .await
        .map(|r| r.into_inner().kvs.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_enabled_on_one_member_holds_on_every_member() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let cluster = Cluster::start(3, &["--bcrypt-cost", "4"]);
    cluster.leader(Duration::from_secs(10)).await;
    let e: Vec<String> = cluster.endpoints();
    set_up(&e[0], &e[1]);

    // Auth is on at the third member too.
    assert_eq!(
        refused(&e[2], &["get", "foo/a"]),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(ok(&e[2], &[ALICE, "get", "foo/a"]), "foo/a\n1\n");
    assert_eq!(ok(&e[2], &[ALICE, "get", "foo/", "--prefix"]), "foo/a\n1\n");
    for args in [
        &[ALICE, "get", "bar"][..],
        &[ALICE, "get", "", "--from-key"],
        &[ALICE, "put", "foo/a", "3"],
        &[ALICE, "del", "foo/a"],
        &[ALICE, "user", "list"],
    ] {
        assert_eq!(
            refused(&e[2], args),
            "Error: etcdserver: permission denied",
            "{args:?}"
        );
    }
    // Revoking a lease deletes its keys: it needs WRITE on each of them.
    let granted = ok(&e[0], &[ROOT, "lease", "grant", "600"]);
    let lease = granted
        .split_whitespace()
        .nth(1)
        .expect("a lease id")
        .to_string();
    ok(
        &e[0],
        &[ROOT, "put", "foo/leased", "v", &format!("--lease={lease}")],
    );
    // Attaching a key to it needs the same: alice may write `foo/w` but not `foo/leased`.
    ok(&e[0], &[ROOT, "role", "add", "writer"]);
    ok(
        &e[0],
        &[ROOT, "role", "grant-permission", "writer", "write", "foo/w"],
    );
    ok(&e[0], &[ROOT, "user", "grant-role", "alice", "writer"]);
    assert_eq!(
        refused(
            &e[2],
            &[ALICE, "put", "foo/w", "v", &format!("--lease={lease}")]
        ),
        "Error: etcdserver: permission denied"
    );
    assert_eq!(ok(&e[2], &[ALICE, "put", "foo/w", "v"]), "OK\n");
    assert_eq!(
        refused(&e[2], &[ALICE, "lease", "revoke", &lease]),
        "Error: failed to revoke lease (etcdserver: permission denied)"
    );
    assert!(ok(&e[2], &[ROOT, "lease", "revoke", &lease]).contains("revoked"));
    assert_eq!(
        refused(&e[1], &["--user=alice:wrong", "get", "foo/a"]),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );

    // A token handed out by one member is good on another, and goes with a password change.
    let alice = token(&e[0], "alice", "apw").await.expect("authenticate");
    assert_eq!(range(&e[2], "foo/a", &alice).await.expect("range"), 1);
    let denied = range(&e[2], "bar", &alice).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let garbage = range(&e[2], "foo/a", "garbage.7").await.unwrap_err();
    assert_eq!(
        (garbage.code(), garbage.message()),
        (
            tonic::Code::Unauthenticated,
            "etcdserver: invalid auth token"
        )
    );

    // A permission change made on one member takes effect on the others.
    ok(
        &e[0],
        &[ROOT, "role", "revoke-permission", "reader", "foo/", "foo0"],
    );
    assert_eq!(
        refused(&e[2], &[ALICE, "get", "foo/a"]),
        "Error: etcdserver: permission denied"
    );
    let revoked = range(&e[1], "foo/a", &alice).await.unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::PermissionDenied);

    let root = token(&e[1], "root", "rootpw")
        .await
        .expect("authenticate root");
    let mut auth = AuthClient::connect(e[1].clone()).await.expect("connect");
    auth.user_change_password(with_token(
        AuthUserChangePasswordRequest {
            name: "alice".into(),
            password: "new".into(),
        },
        &root,
    ))
    .await
    .expect("change alice's password");
    // Every member forgets alice's tokens once it applies the change; a linearizable read
    // there sees it applied.
    for m in &e {
        let _ = range(m, "bar", &root).await.expect("root reads");
        let old = range(m, "foo/a", &alice).await.unwrap_err();
        assert_eq!(old.message(), "etcdserver: invalid auth token", "{m}");
    }

    // A watch needs READ on its range: etcd 3.4 answers created and canceled, id -1.
    let mut watch = api::etcdserverpb::watch_client::WatchClient::connect(e[2].clone())
        .await
        .expect("connect");
    let alice = token(&e[2], "alice", "new").await.expect("authenticate");
    let create = api::etcdserverpb::WatchRequest {
        request_union: Some(
            api::etcdserverpb::watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"bar".to_vec(),
                ..Default::default()
            }),
        ),
    };
    let mut responses = watch
        .watch(with_token(futures::stream::iter([create]), &alice))
        .await
        .expect("watch")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), responses.message())
        .await
        .expect("an answer in time")
        .expect("a response")
        .expect("not the end");
    assert!(first.created && first.canceled, "{first:?}");
    assert_eq!(first.watch_id, -1);
    assert_eq!(
        first.cancel_reason,
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );

    assert_eq!(
        ok(&e[2], &[ROOT, "auth", "disable"]),
        "Authentication Disabled\n"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !run_etcdctl(&e[0], &["get", "bar"], b"").0 {
        assert!(
            Instant::now() < deadline,
            "auth still on at the first member"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One etcdctl session; every line it prints, but for the client's timestamped warnings.
fn session(endpoint: &str) -> String {
    let steps: &[&[&str]] = &[
        &["user", "add", "root:rootpw"],
        &["user", "add", "root:x"],
        &["auth", "enable"],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "get", "root"],
        &["role", "get", "root"],
        &["auth", "enable"],
        &["auth", "enable"],
        &["get", "foo"],
        &["--user=root:bad", "get", "foo"],
        &["--user=nobody:x", "get", "foo"],
        &[ROOT, "put", "foo/a", "1"],
        &[ROOT, "user", "add", "alice:apw"],
        &[ROOT, "role", "add", "reader"],
        &[ROOT, "role", "add", "reader"],
        &[
            ROOT,
            "role",
            "grant-permission",
            "reader",
            "read",
            "foo/",
            "--prefix=true",
        ],
        &[
            ROOT,
            "role",
            "grant-permission",
            "reader",
            "readwrite",
            "k1",
            "k5",
        ],
        &[ROOT, "role", "grant-permission", "reader", "write", "z"],
        &[ROOT, "role", "get", "reader"],
        &[ROOT, "user", "grant-role", "alice", "reader"],
        &[ROOT, "user", "grant-role", "alice", "reader"],
        &[ROOT, "user", "grant-role", "alice", "nosuch"],
        &[ROOT, "user", "grant-role", "nobody", "reader"],
        &[ROOT, "user", "get", "alice"],
        &[ROOT, "user", "get", "nobody"],
        &[ROOT, "user", "list"],
        &[ROOT, "role", "list"],
        &[ALICE, "get", "foo/a"],
        &[ALICE, "get", "bar"],
        &[ALICE, "put", "foo/a", "3"],
        &[ALICE, "put", "k2", "3"],
        &[ALICE, "user", "list"],
        &[ALICE, "user", "get", "alice"],
        &[ALICE, "role", "get", "reader"],
        &[ALICE, "role", "get", "root"],
        &[ROOT, "role", "revoke-permission", "reader", "foo/", "foo0"],
        &[ROOT, "role", "revoke-permission", "reader", "foo/", "foo0"],
        &[ALICE, "get", "foo/a"],
        &[ROOT, "user", "revoke-role", "alice", "reader"],
        &[ROOT, "user", "revoke-role", "alice", "reader"],
        &[ROOT, "user", "delete", "root"],
        &[ROOT, "role", "delete", "root"],
        &[ROOT, "user", "revoke-role", "root", "root"],
        &[ROOT, "user", "add", "bob", "--no-password"],
        &["--user=bob:x", "get", "foo"],
        &[ROOT, "role", "delete", "reader"],
        &[ROOT, "role", "delete", "reader"],
        &[ROOT, "user", "delete", "alice"],
        &[ROOT, "user", "delete", "alice"],
        &[ROOT, "auth", "disable"],
        &["auth", "disable"],
        &["get", "foo/a", "--print-value-only"],
    ];
    let mut out = String::new();
    for args in steps {
        let (ok, stdout, stderr) = run_etcdctl(endpoint, args, b"");
        out += &format!("$ {args:?} ok={ok}\n{stdout}");
        for l in stderr.lines().filter(|l| !l.starts_with("{\"level\"")) {
            out += l;
            out.push('\n');
        }
    }
    out
}

#[test]
fn etcdctl_sees_the_same_auth_as_from_etcd() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let etcd = Etcd::start(&["--bcrypt-cost", "4"]);
    let expected = session(&etcd.endpoint);
    drop(etcd);
    let dir = tempfile::tempdir().expect("temporary directory");
    let etcr = Etcr::start(dir.path(), &["--bcrypt-cost", "4"]);
    let got = session(&etcr.endpoint());
    let (expected, got): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), got.lines().collect());
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(
            g,
            e,
            "etcr differs from etcd 3.4; whole session:\n{}",
            got.join("\n")
        );
    }
    assert_eq!(got.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_state_survives_a_restart_and_travels_in_snapshots() {
    let mut cluster = Cluster::start(3, &["--snapshot-count", "20", "--bcrypt-cost", "4"]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let e = cluster.endpoints();
    set_up(&e[leader], &e[leader]);

    // A member wiped and brought back catches up by snapshot, the auth entries long
    // compacted away.
    let down = (leader + 1) % 3;
    cluster.members[down].kill9();
    std::fs::remove_dir_all(&cluster.members[down].data_dir).expect("wipe the member");
    let root = token(&e[leader], "root", "rootpw")
        .await
        .expect("authenticate root");
    let mut kv = KvClient::connect(e[leader].clone()).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..200 {
        let put = api::etcdserverpb::PutRequest {
            key: format!("k{i}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        // An election on a loaded machine fails a put now and then: retry it.
        while let Err(err) = kv.put(with_token(put.clone(), &root)).await {
            assert!(Instant::now() < deadline, "put k{i}: {err}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cluster.members[down].restart();
    let log = std::fs::read_to_string(cluster.members[down].data_dir.with_extension("log"))
        .expect("the member's log");
    assert!(
        log.contains("installing a snapshot"),
        "no snapshot was installed"
    );
    let restored = cluster.members[down].endpoint();
    assert_eq!(
        refused(&restored, &["get", "foo/a"]),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(ok(&restored, &[ALICE, "get", "foo/a"]), "foo/a\n1\n");
    assert_eq!(
        refused(&restored, &[ALICE, "get", "bar"]),
        "Error: etcdserver: permission denied"
    );

    // A restart reads the state back from the store.
    let other = (leader + 2) % 3;
    cluster.members[other].restart();
    assert_eq!(ok(&e[other], &[ALICE, "get", "foo/a"]), "foo/a\n1\n");
    assert_eq!(
        refused(&e[other], &[ALICE, "put", "foo/a", "2"]),
        "Error: etcdserver: permission denied"
    );
}

/// One HTTP/1.1 POST with an optional `Authorization` header; the status and the body.
/// A gateway call's status and first JSON document; a stream (`observe`, which never ends)
/// is read only up to its first line.
fn post(port: u16, path: &str, body: &str, authorization: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let auth = authorization.map_or(String::new(), |t| format!("Authorization: {t}\r\n"));
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    // A chunked body: the JSON is the chunk between its size lines.
    let json_line = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        body.split_inclusive('\n')
            .find(|l| l.starts_with('{') && l.ends_with('\n'))
            .map(|l| l.trim_end().to_string())
    };
    loop {
        match s.read(&mut chunk).expect("read") {
            0 => break,
            n => out.extend_from_slice(&chunk[..n]),
        }
        if json_line(&out).is_some() {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = json_line(&out).unwrap_or_else(|| {
        text.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string()
    });
    (status, json)
}

#[test]
fn the_gateway_takes_the_token_from_the_authorization_header() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let etcr = Etcr::start(dir.path(), &["--bcrypt-cost", "4"]);
    let e = etcr.endpoint();
    ok(&e, &["user", "add", "root:rootpw"]);
    ok(&e, &["user", "grant-role", "root", "root"]);
    let port = etcr.client_port;
    assert_eq!(post(port, "/v3/auth/enable", "{}", None).0, 200);
    // The gRPC port's snapshot is root's alone too.
    let file = dir.path().join("snap.db").display().to_string();
    assert_eq!(
        refused(&e, &["snapshot", "save", &file]),
        "Error: rpc error: code = Unknown desc = auth: user name is empty"
    );
    ok(&e, &[ROOT, "snapshot", "save", &file]);
    // etcd 3.4's gateway answers, captured from it.
    assert_eq!(
        post(port, "/v3/kv/range", r#"{"key":"Zm9v"}"#, None).1,
        r#"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#
    );
    let (status, bad) = post(
        port,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"bad"}"#,
        None,
    );
    assert_eq!(
        (status, bad.as_str()),
        (
            400,
            r#"{"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}"#
        )
    );
    let (_, good) = post(
        port,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"rootpw"}"#,
        None,
    );
    let token = good
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a token")
        .to_string();
    let (status, _) = post(
        port,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmFy"}"#,
        Some(&token),
    );
    assert_eq!(status, 200);
    let (_, users) = post(port, "/v3/auth/user/list", "{}", Some(&token));
    assert!(users.ends_with(r#""users":["root"]}"#), "{users}");
    // etcd 3.5's AuthStatus (root's), through the gateway: user add and grant-role counted,
    // enabling not.
    let (status, auth) = post(port, "/v3/auth/status", "{}", Some(&token));
    assert_eq!(status, 200, "{auth}");
    assert!(
        auth.ends_with(r#""enabled":true,"authRevision":"3"}"#),
        "{auth}"
    );
    assert_eq!(
        post(port, "/v3/auth/status", "{}", None).1,
        r#"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#
    );
    // Streams take the header's token too: a snapshot is root's alone (etcd's words and
    // codes for a stream), and an observer with a token sees the leader.
    assert_eq!(
        post(port, "/v3/maintenance/snapshot", "{}", None),
        (
            500,
            r#"{"error":{"grpc_code":2,"http_code":500,"message":"auth: user name is empty","http_status":"Internal Server Error"}}"#.to_string()
        )
    );
    let (status, chunk) = post(port, "/v3/maintenance/snapshot", "{}", Some(&token));
    assert_eq!(status, 200);
    assert!(chunk.starts_with(r#"{"result":{"#), "{chunk}");
    let (_, lease) = post(port, "/v3/lease/grant", r#"{"TTL":60}"#, Some(&token));
    let lease = lease
        .split("\"ID\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a lease")
        .to_string();
    let campaign = format!(r#"{{"name":"ZQ==","value":"dg==","lease":"{lease}"}}"#);
    assert_eq!(
        post(port, "/v3/election/campaign", &campaign, Some(&token)).0,
        200
    );
    let (status, observed) = post(
        port,
        "/v3/election/observe",
        r#"{"name":"ZQ=="}"#,
        Some(&token),
    );
    assert_eq!(status, 200, "{observed}");
    assert!(observed.contains(r#""value":"dg==""#), "{observed}");
    assert_eq!(
        post(port, "/v3/kv/range", r#"{"key":"Zm9v"}"#, Some("garbage")).1,
        r#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#
    );
}

/// A simple token names the entry that assigned it; a member that has not applied that entry
/// yet waits for it rather than refusing the token (etcd's rule), so a token works at once on
/// every member: serializable reads, watches and the gateway alike. Each call is made while
/// the member is cut off (so it cannot know the token), and the member is healed after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_token_works_on_a_member_still_catching_up() {
    let cluster = Cluster::start(3, &["--bcrypt-cost", "4", "--experimental-fault-injection"]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let e: Vec<String> = cluster.endpoints();
    set_up(&e[leader], &e[(leader + 1) % 3]);
    let behind = (leader + 2) % 3;
    let endpoint = e[behind].clone();
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    for call in ["range", "watch", "gateway"] {
        cluster.isolate(behind).await;
        let alice = token(&e[leader], "alice", "apw")
            .await
            .expect("authenticate");
        let endpoint = endpoint.clone();
        let answer = tokio::spawn(async move {
            match call {
                "range" => {
                    let mut kv = KvClient::connect(endpoint).await.expect("connect");
                    let req = RangeRequest {
                        key: b"foo/a".to_vec(),
                        serializable: true,
                        ..Default::default()
                    };
                    let read = kv.range(with_token(req, &alice)).await;
                    format!("{:?}", read.map(|r| r.into_inner().kvs.len()))
                }
                "watch" => {
                    let mut watch = api::etcdserverpb::watch_client::WatchClient::connect(endpoint)
                        .await
                        .expect("connect");
                    let create = api::etcdserverpb::WatchRequest {
                        request_union: Some(
                            api::etcdserverpb::watch_request::RequestUnion::CreateRequest(
                                WatchCreateRequest {
                                    key: b"foo/a".to_vec(),
                                    ..Default::default()
                                },
                            ),
                        ),
                    };
                    let mut responses = watch
                        .watch(with_token(
                            futures::StreamExt::chain(
                                futures::stream::iter([create]),
                                futures::stream::pending(),
                            ),
                            &alice,
                        ))
                        .await
                        .expect("watch")
                        .into_inner();
                    let first = responses.message().await.expect("a response");
                    let first = first.expect("not the end");
                    format!("created {} canceled {}", first.created, first.canceled)
                }
                _ => {
                    let answer = tokio::task::spawn_blocking(move || {
                        post(port, "/v3/kv/range", r#"{"key":"Zm9vL2E="}"#, Some(&alice))
                    });
                    let (status, body) = answer.await.expect("the gateway call");
                    format!("{status} {}", body.contains(r#""count":"1""#))
                }
            }
        });
        // The call reaches the member while it is cut off; the heal lets it apply the entry.
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.heal();
        let answer = tokio::time::timeout(Duration::from_secs(15), answer)
            .await
            .expect("an answer in time")
            .expect("the call");
        let expected = match call {
            "range" => "Ok(1)",
            "watch" => "created true canceled false",
            _ => "200 true",
        };
        assert_eq!(answer, expected, "{call}");
    }
}
