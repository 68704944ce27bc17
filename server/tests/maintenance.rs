//! Maintenance as tools read it: the standard process metrics, HashKV and Status.

mod common;

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, PutRequest, RangeRequest, StatusRequest,
};
use common::{run_etcdctl, Etcd, Etcr, ETCDCTL};

#[test]
fn etcdctl_check_datascale_reads_the_process_metrics() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let dir = tempfile::tempdir().unwrap();
    let m = Etcr::start(&dir.path().join("m"), &[]);
    let metrics = common::http_get(m.client_port, "/metrics").expect("/metrics");
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            metrics.contains(&format!("\n{name} ")),
            "{name} missing from /metrics"
        );
    }
    let (ok, out, err) = run_etcdctl(&m.endpoint(), &["check", "datascale"], b"");
    assert!(ok, "{out}{err}");
    assert!(out.contains("PASS"), "{out}");
}

/// `etcdctl endpoint hashkv -w json`'s hash and compact revision.
fn hashkv(endpoint: &str, rev: &str) -> (String, String) {
    let (ok, out, err) = run_etcdctl(
        endpoint,
        &["endpoint", "hashkv", "-w", "json", "--rev", rev],
        b"",
    );
    assert!(ok, "{err}");
    let field = |name: &str| {
        let at = out
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            + name.len()
            + 3;
        out[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect::<String>()
    };
    (field("hash"), field("compact_revision"))
}

#[test]
fn hashkv_equals_etcds_and_moves_with_compaction() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let etcd = Etcd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let txn = "\n\nput t1 x\nput t2 y\ndel b\n\n";
    let steps: &[(&[&str], &[u8])] = &[
        (&["put", "a", "1"], b""),
        (&["put", "b", "2"], b""),
        (&["put", "a", "3"], b""),
        (&["del", "a"], b""),
        (&["put", "c", "4"], b""),
        (&["txn"], txn.as_bytes()),
        (&["put", "c", "5"], b""),
    ];
    let mut before = Vec::new();
    for (args, stdin) in steps {
        for endpoint in [&etcd.endpoint, &etcr.endpoint()] {
            let (ok, _, err) = run_etcdctl(endpoint, args, stdin);
            assert!(ok, "{args:?} on {endpoint}: {err}");
        }
        let ours = hashkv(&etcr.endpoint(), "0");
        assert_eq!(ours, hashkv(&etcd.endpoint, "0"), "after {args:?}");
        assert_eq!(ours.1, "-1");
        before.push(ours.0);
    }
    // At a past revision too.
    assert_eq!(hashkv(&etcr.endpoint(), "3"), hashkv(&etcd.endpoint, "3"));
    for endpoint in [&etcd.endpoint, &etcr.endpoint()] {
        let (ok, _, err) = run_etcdctl(endpoint, &["compact", "6", "--physical"], b"");
        assert!(ok, "{err}");
    }
    let ours = hashkv(&etcr.endpoint(), "0");
    assert_eq!(ours, hashkv(&etcd.endpoint, "0"));
    assert_eq!(ours.1, "6");
    assert_ne!(
        &ours.0,
        before.last().unwrap(),
        "compaction changes the hash"
    );
    assert_eq!(hashkv(&etcr.endpoint(), "7"), hashkv(&etcd.endpoint, "7"));
}

/// The fields of `etcdctl endpoint status -w json`'s `Status`, with the values' JSON types.
fn status_fields(endpoint: &str) -> Vec<(String, String)> {
    let (ok, out, err) = run_etcdctl(endpoint, &["endpoint", "status", "-w", "json"], b"");
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let status = v[0]["Status"].as_object().expect("a Status object");
    let mut fields: Vec<(String, String)> = status
        .iter()
        .map(|(k, v)| {
            let kind = match v {
                serde_json::Value::Number(_) => "number",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Object(_) => "object",
                serde_json::Value::Array(_) => "array",
                _ => "other",
            };
            (k.clone(), kind.to_string())
        })
        .collect();
    fields.sort();
    fields
}

#[test]
fn status_reports_what_etcds_does() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let etcd = Etcd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    for endpoint in [&etcd.endpoint, &etcr.endpoint()] {
        assert!(run_etcdctl(endpoint, &["put", "a", "1"], b"").0);
    }
    assert_eq!(
        status_fields(&etcr.endpoint()),
        status_fields(&etcd.endpoint)
    );
}

fn outcome<T>(r: Result<tonic::Response<T>, tonic::Status>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(s) => format!("{:?} {}", s.code(), s.message()),
    }
}

/// What each step of an alarm's life answers over gRPC, member id replaced by 1.
async fn alarm_calls(endpoint: &str, kind: AlarmType) -> Vec<String> {
    let mut m = MaintenanceClient::connect(endpoint.to_string())
        .await
        .unwrap();
    let mut kv = KvClient::connect(endpoint.to_string()).await.unwrap();
    let id = m
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .member_id;
    let alarm = |action: AlarmAction| AlarmRequest {
        action: action as i32,
        member_id: id,
        alarm: kind as i32,
    };
    let alarms = |r: AlarmResponse| {
        r.alarms
            .iter()
            .map(|a| format!("{}:{}", u8::from(a.member_id == id), a.alarm))
            .collect::<Vec<_>>()
            .join(",")
    };
    let put = || PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let r = m.alarm(alarm(AlarmAction::Activate)).await.unwrap();
    seen.push(alarms(r.into_inner()));
    seen.push(outcome(kv.put(put()).await));
    seen.push(outcome(
        kv.range(RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await,
    ));
    let list = AlarmRequest {
        action: AlarmAction::Get as i32,
        member_id: 0,
        alarm: AlarmType::None as i32,
    };
    seen.push(alarms(m.alarm(list).await.unwrap().into_inner()));
    let r = m.alarm(alarm(AlarmAction::Deactivate)).await.unwrap();
    seen.push(alarms(r.into_inner()));
    let r = m.alarm(alarm(AlarmAction::Deactivate)).await.unwrap();
    seen.push(alarms(r.into_inner()));
    seen.push(outcome(kv.put(put()).await));
    seen
}

/// ACTIVATE, a put under the alarm, a read, GET, DEACTIVATE twice and a put after: the same
/// answers as etcd 3.4 gives, for NOSPACE and CORRUPT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_calls_answer_as_etcds_do() {
    let etcd = Etcd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    for kind in [AlarmType::Nospace, AlarmType::Corrupt] {
        let theirs = alarm_calls(&etcd.endpoint, kind).await;
        assert_ne!(theirs[1], "ok", "the alarm refuses the put: {theirs:?}");
        let ours = alarm_calls(&etcr.endpoint(), kind).await;
        assert_eq!(ours, theirs, "{kind:?}: etcr (left) against etcd (right)");
    }
}

/// A member that was given 51,200 keys under `k/` with values of `value_len` bytes (128 per
/// txn) and then deleted them all in one DeleteRange, with that DeleteRange's answer.
struct Emptied {
    etcr: Etcr,
    maintenance: MaintenanceClient<tonic::transport::Channel>,
    deleted: api::etcdserverpb::DeleteRangeResponse,
    // Last: the member stops before its directory goes.
    _dir: tempfile::TempDir,
}

async fn fill_then_delete(value_len: usize) -> Emptied {
    use api::etcdserverpb::{request_op, RequestOp, TxnRequest};
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(&dir.path().join("m"), &[]);
    let mut kv = etcr.kv().await;
    let maintenance = MaintenanceClient::connect(etcr.endpoint()).await.unwrap();
    for batch in 0..400 {
        let success = (0..128)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: format!("k/{batch:04}/{i:03}").into_bytes(),
                    value: vec![b'v'; value_len],
                    ..Default::default()
                })),
            })
            .collect();
        kv.txn(TxnRequest {
            success,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let deleted = common::delete_prefix(&mut kv, b"k/").await;
    Emptied {
        etcr,
        maintenance,
        deleted,
        _dir: dir,
    }
}

/// Writes are answered before the store commits them; Status answers only once the store
/// holds what this member answered, so a script that deletes, then compacts at the revision
/// Status gives, compacts the deletion too (as it does on etcd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_includes_the_write_just_answered() {
    // A delete of this many keys takes the store a while to commit.
    // Bound, not `..`: fields left out of the pattern would be dropped (the member stopped)
    // at once.
    let Emptied {
        etcr: _etcr,
        mut maintenance,
        deleted,
        _dir,
    } = fill_then_delete(100).await;
    let status = maintenance
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let revision = |h: Option<api::etcdserverpb::ResponseHeader>| h.unwrap().revision;
    assert_eq!(
        revision(status.header),
        revision(deleted.header),
        "after deleting {} keys",
        deleted.deleted
    );
}

/// `etcdctl compaction --physical` returns once the compacted history is dropped, and it is
/// dropped even when no write follows (the space is free for new writes before any defrag).
/// The apply thread alone drops 16k rows after the batch that holds the compaction: far less
/// than half of these.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_physical_compaction_drops_the_history_before_it_answers() {
    let Emptied {
        etcr,
        maintenance: mut m,
        deleted,
        _dir,
    } = fill_then_delete(1000).await;
    let in_use = |s: api::etcdserverpb::StatusResponse| s.db_size_in_use;
    let before = in_use(m.status(StatusRequest {}).await.unwrap().into_inner());
    let revision = deleted.header.unwrap().revision.to_string();
    let (ok, out, err) = run_etcdctl(
        &etcr.endpoint(),
        &["compaction", "--physical", &revision],
        b"",
    );
    assert!(ok, "{out}{err}");
    let after = in_use(m.status(StatusRequest {}).await.unwrap().into_inner());
    assert!(
        after < before / 2,
        "{before} bytes in use before the compaction of 51,200 values of 1 kB, {after} after"
    );
}
