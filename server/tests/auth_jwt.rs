//! JWT tokens (`--auth-token jwt,...`): a token signed by one member works on every member,
//! carries etcd's claims, stops working once it expires or the auth state changes after it
//! was signed, and anything not signed with the cluster's key is `invalid auth token`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{AuthUserChangePasswordRequest, AuthenticateRequest, RangeRequest};
use base64::Engine as _;
use common::{run_etcdctl, Cluster, Etcd, Etcr};
use tonic::metadata::MetadataValue;
use tonic::Code;

fn ok(endpoint: &str, args: &[&str]) {
    let (ok, _, err) = run_etcdctl(endpoint, args, b"");
    assert!(ok, "etcdctl {args:?} failed: {err}");
}

/// Root, and alice who may read `foo/`; auth enabled.
fn set_up(endpoint: &str) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:apw"],
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
        &["auth", "enable"],
    ] {
        ok(endpoint, args);
    }
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

async fn range(endpoint: &str, token: &str) -> Result<usize, tonic::Status> {
    let mut kv = KvClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    let mut req = tonic::Request::new(RangeRequest {
        key: b"foo/a".to_vec(),
        ..Default::default()
    });
    if let Ok(v) = MetadataValue::try_from(token) {
        req.metadata_mut().insert("token", v);
    }
    kv.range(req).await.map(|r| r.into_inner().kvs.len())
}

fn assert_invalid(r: Result<usize, tonic::Status>, what: &str) {
    let status = r.expect_err(what);
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "etcdserver: invalid auth token"),
        "{what}"
    );
}

/// The token's claims, decoded without checking the signature.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn write_es256_keys(dir: &Path) -> (String, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let (private, public) = (dir.join("jwt.key"), dir.join("jwt.pub"));
    std::fs::write(&private, pair.serialize_pem()).unwrap();
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    (private.display().to_string(), public.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_work_everywhere_until_they_expire_or_auth_changes() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = write_es256_keys(keys.path());
    let flag = format!("jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=3s");
    let cluster = Cluster::start(3, &["--bcrypt-cost", "4", "--auth-token", &flag]);
    cluster.leader(Duration::from_secs(10)).await;
    let e = cluster.endpoints();
    set_up(&e[0]);

    let alice = token(&e[0], "alice", "apw").await.expect("authenticate");
    let c = claims(&alice);
    assert_eq!(c["username"], "alice");
    assert!(c["revision"].as_u64().is_some_and(|r| r > 0), "{c}");
    assert!(c["exp"].as_u64().is_some(), "{c}");
    for endpoint in &e {
        assert_eq!(range(endpoint, &alice).await.expect("alice reads"), 1);
    }

    // Not signed with the cluster's key: garbage, a changed signature, changed claims.
    assert_invalid(range(&e[1], "garbage").await, "garbage");
    let (head, sig) = alice.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    assert_invalid(
        range(&e[1], &format!("{head}.{flipped}{}", &sig[1..])).await,
        "another signature",
    );
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::json!({"username": "root", "revision": c["revision"], "exp": c["exp"]})
            .to_string(),
    );
    let parts: Vec<&str> = alice.split('.').collect();
    assert_invalid(
        range(&e[1], &format!("{}.{forged}.{}", parts[0], parts[2])).await,
        "forged claims",
    );

    // A password change makes every earlier token old, on every member.
    let root = token(&e[0], "root", "rootpw").await.expect("root");
    let mut auth = AuthClient::connect(e[0].clone()).await.unwrap();
    let mut req = tonic::Request::new(AuthUserChangePasswordRequest {
        name: "alice".into(),
        password: "new".into(),
    });
    req.metadata_mut()
        .insert("token", MetadataValue::try_from(root.as_str()).unwrap());
    auth.user_change_password(req).await.expect("passwd");
    for endpoint in &e {
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match range(endpoint, &alice).await {
                Err(s) => break s,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Ok(_) => panic!("{endpoint}: the old token still works"),
            }
        };
        assert_eq!(
            (status.code(), status.message()),
            (
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old"
            )
        );
    }
    assert_eq!(
        token(&e[0], "alice", "apw").await.unwrap_err().message(),
        "etcdserver: authentication failed, invalid user ID or password"
    );
    let fresh = token(&e[2], "alice", "new").await.expect("new password");
    assert_eq!(range(&e[0], &fresh).await.expect("fresh token"), 1);

    // The TTL is 3 s; the token is refused once its exp (whole seconds) has passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match range(&e[1], &fresh).await {
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => {
                assert_invalid(other, "an expired token");
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_private_key_alone_signs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa.key");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "openssl: {made:?}");
    let flag = format!("jwt,priv-key={},sign-method=RS256", key.display());
    let data = dir.path().join("data");
    let etcr = Etcr::start(&data, &["--bcrypt-cost", "4", "--auth-token", &flag]);
    let e = etcr.endpoint();
    set_up(&e);
    let alice = token(&e, "alice", "apw").await.expect("authenticate");
    assert_eq!(range(&e, &alice).await.expect("alice reads"), 1);
    // etcd's default TTL: five minutes.
    let c = claims(&alice);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = c["exp"].as_u64().unwrap();
    assert!((now + 290..=now + 310).contains(&exp), "{c}");
}

fn openssl(args: &[&str], out: &Path) {
    let made = Command::new("openssl")
        .args(args)
        .arg("-out")
        .arg(out)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "openssl {args:?}: {made:?}");
}

/// ES512 (P-521), which the jsonwebtoken crate lacks, with keys made as etcd's docs make
/// them (a SEC1 private key): tokens pass both ways between etcd 3.4 and etcr, since both
/// count auth revisions alike, and a member given the PKCS#8 private key alone verifies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es512_tokens_pass_between_etcd_and_etcr() {
    let dir = tempfile::tempdir().unwrap();
    let (sec1, pkcs8, public) = (
        dir.path().join("p521.key"),
        dir.path().join("p521.pk8"),
        dir.path().join("p521.pub"),
    );
    openssl(
        &["ecparam", "-genkey", "-name", "secp521r1", "-noout"],
        &sec1,
    );
    let sec1_text = sec1.display().to_string();
    openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &sec1_text], &pkcs8);
    openssl(&["ec", "-pubout", "-in", &sec1_text], &public);
    let flag = format!(
        "jwt,pub-key={},priv-key={sec1_text},sign-method=ES512",
        public.display()
    );
    let etcd = Etcd::start(&["--auth-token", &flag]);
    let etcr = Etcr::start(
        &dir.path().join("etcr"),
        &["--bcrypt-cost", "4", "--auth-token", &flag],
    );
    set_up(&etcd.endpoint);
    set_up(&etcr.endpoint());

    let from_etcd = token(&etcd.endpoint, "alice", "apw").await.expect("etcd");
    let from_etcr = token(&etcr.endpoint(), "alice", "apw").await.expect("etcr");
    let header = |t: &str| {
        let head = t.split('.').next().unwrap_or_default();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .expect("base64url header");
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON header")
    };
    assert_eq!(header(&from_etcr), header(&from_etcd));
    assert_eq!(
        claims(&from_etcr)["revision"],
        claims(&from_etcd)["revision"]
    );
    assert_eq!(
        range(&etcr.endpoint(), &from_etcd)
            .await
            .expect("etcd's token on etcr"),
        1
    );
    assert_eq!(
        range(&etcd.endpoint, &from_etcr)
            .await
            .expect("etcr's token on etcd"),
        1
    );

    let flag = format!("jwt,priv-key={},sign-method=ES512", pkcs8.display());
    let alone = Etcr::start(
        &dir.path().join("alone"),
        &["--bcrypt-cost", "4", "--auth-token", &flag],
    );
    set_up(&alone.endpoint());
    assert_eq!(
        range(&alone.endpoint(), &from_etcd)
            .await
            .expect("verified"),
        1
    );
    let own = token(&alone.endpoint(), "alice", "apw")
        .await
        .expect("signed");
    assert_eq!(range(&etcr.endpoint(), &own).await.expect("same key"), 1);
    let (head, sig) = own.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    assert_invalid(
        range(&etcr.endpoint(), &format!("{head}.{flipped}{}", &sig[1..])).await,
        "another signature",
    );
}

#[test]
fn a_member_refuses_to_start_with_bad_jwt_options() {
    let dir = tempfile::tempdir().unwrap();
    for flag in [
        "jwt,sign-method=RS256",
        "jwt,sign-method=XX999,priv-key=/nonexistent",
        "jwt,sign-method=RS256,priv-key=/nonexistent",
        "jwt,sign-method=RS256,pub-key=x,bogus=1",
        "jwt,sign-method=ES512",
        "jwt,sign-method=ES512,priv-key=/etc/hostname",
        "tokens-please",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_etcr"))
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .args(["--auth-token", flag])
            .output()
            .expect("run etcr");
        assert!(!out.status.success(), "{flag}: started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--auth-token"), "{flag}: {err}");
    }
}
