//! The KV service of a real single-member etcr, through etcd's gRPC API.

mod common;

use api::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use common::Etcr;
use tonic::Code;

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

fn get(k: &str) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn revisions_follow_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &[]);
    let mut kv = etcr.kv().await;

    let empty = kv.range(get("hello")).await.unwrap().into_inner();
    assert_eq!(
        empty.header.unwrap().revision,
        1,
        "a new store is at revision 1"
    );
    assert_eq!(empty.count, 0);

    let r = kv.put(put("hello", "world")).await.unwrap().into_inner();
    assert_eq!(r.header.unwrap().revision, 2);
    let kvs = kv.range(get("hello")).await.unwrap().into_inner().kvs;
    assert_eq!(
        (kvs[0].create_revision, kvs[0].mod_revision, kvs[0].version),
        (2, 2, 1)
    );

    kv.put(put("hello", "hacker")).await.unwrap();
    let at2 = kv
        .range(RangeRequest {
            revision: 2,
            ..get("hello")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at2.kvs[0].value, b"world");
    assert_eq!(
        at2.header.unwrap().revision,
        3,
        "the header carries the current revision"
    );
    let now = kv.range(get("hello")).await.unwrap().into_inner();
    assert_eq!(
        (now.kvs[0].value.as_slice(), now.kvs[0].version),
        (&b"hacker"[..], 2)
    );

    let prev = kv
        .put(PutRequest {
            prev_kv: true,
            ..put("hello", "again")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prev.prev_kv.unwrap().value, b"hacker");

    let del = kv
        .delete_range(DeleteRangeRequest {
            key: "hello".into(),
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(del.deleted, 1);
    assert_eq!(del.prev_kvs[0].value, b"again");
    let h = del.header.unwrap();
    assert!(h.cluster_id != 0 && h.member_id != 0);

    // A new generation starts at version 1 with a new create revision.
    kv.put(put("hello", "reborn")).await.unwrap();
    let kvs = kv.range(get("hello")).await.unwrap().into_inner().kvs;
    assert_eq!((kvs[0].create_revision, kvs[0].version), (6, 1));
}

#[tokio::test]
async fn bad_input_gets_etcds_errors() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &["--max-txn-ops", "4"]);
    let mut kv = etcr.kv().await;
    let check = |r: Result<tonic::Response<_>, tonic::Status>, code: Code, msg: &str| {
        let Err(s) = r.map(|_: tonic::Response<()>| ()) else {
            panic!("expected {msg}")
        };
        assert_eq!((s.code(), s.message()), (code, msg));
    };

    check(
        kv.put(put("", "v")).await.map(|_| tonic::Response::new(())),
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    check(
        kv.range(get("")).await.map(|_| tonic::Response::new(())),
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );

    for i in 0..4 {
        kv.put(put("k", &i.to_string())).await.unwrap();
    }
    kv.compact(CompactionRequest {
        revision: 4,
        physical: true,
    })
    .await
    .unwrap();
    check(
        kv.range(RangeRequest {
            revision: 3,
            ..get("k")
        })
        .await
        .map(|_| tonic::Response::new(())),
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    check(
        kv.range(RangeRequest {
            revision: 100,
            ..get("k")
        })
        .await
        .map(|_| tonic::Response::new(())),
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    check(
        kv.compact(CompactionRequest {
            revision: 2,
            physical: false,
        })
        .await
        .map(|_| tonic::Response::new(())),
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );

    let big = "x".repeat(1536 * 1024 + 1);
    check(
        kv.put(put("big", &big))
            .await
            .map(|_| tonic::Response::new(())),
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );

    let op = |k: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(put(k, "v"))),
    };
    let too_many = TxnRequest {
        success: (0..5).map(|i| op(&format!("t{i}"))).collect(),
        ..Default::default()
    };
    check(
        kv.txn(too_many).await.map(|_| tonic::Response::new(())),
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    let dup = TxnRequest {
        success: vec![op("d"), op("d")],
        ..Default::default()
    };
    check(
        kv.txn(dup).await.map(|_| tonic::Response::new(())),
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );
    let ignore = PutRequest {
        ignore_value: true,
        ..put("missing", "")
    };
    check(
        kv.put(ignore).await.map(|_| tonic::Response::new(())),
        Code::InvalidArgument,
        "etcdserver: key not found",
    );

    // The server is still healthy and serving after all that.
    assert_eq!(
        kv.range(get("k")).await.unwrap().into_inner().kvs[0].value,
        b"3"
    );
}

#[tokio::test]
async fn txn_compares_and_branches() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &[]);
    let mut kv = etcr.kv().await;
    kv.put(put("k", "v1")).await.unwrap();
    let txn = |expect: &str| TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            key: "k".into(),
            target_union: Some(compare::TargetUnion::Value(expect.into())),
            range_end: vec![],
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(put("k", "v2"))),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(get("k"))),
        }],
    };
    let ok = kv.txn(txn("v1")).await.unwrap().into_inner();
    assert!(ok.succeeded);
    assert_eq!(ok.header.unwrap().revision, 3);
    let failed = kv.txn(txn("v1")).await.unwrap().into_inner();
    assert!(!failed.succeeded);
    assert_eq!(
        failed.header.unwrap().revision,
        3,
        "a failed compare writes nothing"
    );
    match &failed.responses[0].response {
        Some(api::etcdserverpb::response_op::Response::ResponseRange(r)) => {
            assert_eq!(r.kvs[0].value, b"v2")
        }
        other => panic!("expected a range response, got {other:?}"),
    }
}

/// The sample value of `name` (a metric line without labels) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[tokio::test]
async fn metrics_time_the_log_fsync_and_the_apply_batches() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &[]);
    let mut kv = etcr.kv().await;
    let port = etcr.client_port;
    let before = common::http_get(port, "/metrics").expect("/metrics answers");
    for i in 0..5 {
        kv.put(put(&format!("k{i}"), "v")).await.unwrap();
    }
    let after = common::http_get(port, "/metrics").expect("/metrics answers");
    let grew = |name: &str| metric(&after, name) - metric(&before, name);
    // Every acknowledged put was synced to the log and applied in some batch.
    assert!(grew("etcd_disk_wal_fsync_duration_seconds_count") >= 1.0);
    assert!(grew("etcd_disk_wal_fsync_duration_seconds_sum") > 0.0);
    assert!(grew("etcr_apply_batch_duration_seconds_count") >= 1.0);
    assert_eq!(
        metric(
            &after,
            "etcr_apply_batch_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        metric(&after, "etcr_apply_batch_duration_seconds_count"),
    );
    assert_eq!(grew("etcd_server_proposals_applied_total"), 5.0);

    // etcd's gRPC counters, by method and status code.
    let labels = "grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"";
    assert_eq!(grew(&format!("grpc_server_started_total{{{labels}}}")), 5.0);
    assert_eq!(
        grew(&format!(
            "grpc_server_handled_total{{grpc_code=\"OK\",{labels}}}"
        )),
        5.0
    );
    let refused = kv.put(put("", "v")).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let last = common::http_get(port, "/metrics").expect("/metrics answers");
    let invalid = format!("grpc_server_handled_total{{grpc_code=\"InvalidArgument\",{labels}}}");
    assert_eq!(metric(&last, &invalid) - metric(&after, &invalid), 1.0);
}

#[tokio::test]
async fn a_serializable_read_sees_the_members_own_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &[]);
    let mut kv = etcr.kv().await;
    // Answers leave before the store's commit; a local read must still see them.
    for i in 0..50 {
        let v = i.to_string();
        let written = kv.put(put("k", &v)).await.unwrap().into_inner().header;
        let r = kv
            .range(RangeRequest {
                serializable: true,
                ..get("k")
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.kvs[0].value, v.as_bytes(), "write {i}");
        assert!(r.header.unwrap().revision >= written.unwrap().revision);
    }
}

#[tokio::test]
async fn services_etcr_lacks_are_refused_with_grpc_go_words() {
    use api::etcdserverpb::{WatchRequest, WatchResponse};
    let dir = tempfile::tempdir().unwrap();
    let etcr = Etcr::start(dir.path(), &[]);
    let channel = tonic::transport::Endpoint::from_shared(etcr.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // A stream that never ends its requests: the refusal must not wait for an end.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.Nothing/Stream");
    let codec = tonic_prost::ProstCodec::<WatchRequest, WatchResponse>::default();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        grpc.streaming(
            tonic::Request::new(futures::stream::pending::<WatchRequest>()),
            path,
            codec,
        ),
    )
    .await
    .expect("the refusal comes at once")
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);
    assert_eq!(refused.message(), "unknown service etcdserverpb.Nothing");
}
