//! etcd behaviours, one scenario per test.

use mvcc::{
    Applied, Command, CommandResponse, CompactRequest, Compare, CompareResult, CompareTarget,
    DeleteRangeRequest, Error, EventKind, Outcome, PutRequest, RangeRequest, RequestOp, ResponseOp,
    SortOrder, SortTarget, Store, StoreOptions, TxnRequest, TxnResponse,
};

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    index: u64,
}

fn put_cmd(k: &[u8], v: &[u8]) -> Command {
    Command::Put(PutRequest {
        key: k.to_vec(),
        value: v.to_vec(),
        ..Default::default()
    })
}

fn get_req(k: &[u8]) -> RangeRequest {
    RangeRequest {
        key: k.to_vec(),
        ..Default::default()
    }
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            map_size: 256 << 20,
            ..Default::default()
        };
        let store = Store::open(dir.path(), opts).unwrap();
        Harness {
            _dir: dir,
            store,
            index: 0,
        }
    }

    fn apply(&mut self, cmd: Command) -> Result<CommandResponse, Error> {
        self.index += 1;
        let mut out = self.store.apply(&[(self.index, cmd)]).unwrap();
        match out.remove(0).outcome {
            Outcome::Done { response, .. } => Ok(response),
            Outcome::Failed(e) => Err(e),
            Outcome::Skipped => panic!("fresh index skipped"),
        }
    }

    fn put(&mut self, k: &[u8], v: &[u8]) -> i64 {
        self.apply(put_cmd(k, v)).unwrap().revision()
    }

    fn txn(&mut self, t: TxnRequest) -> Result<TxnResponse, Error> {
        match self.apply(Command::Txn(t))? {
            CommandResponse::Txn(r) => Ok(r),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn get(&self, k: &[u8]) -> Option<mvcc::KeyValue> {
        self.store.range(&get_req(k)).unwrap().kvs.pop()
    }
}

#[test]
fn revisions_versions_and_generations() {
    let mut h = Harness::new();
    assert_eq!(h.store.current_revision(), 1);
    assert_eq!(h.put(b"k", b"1"), 2);
    assert_eq!(h.put(b"k", b"2"), 3);
    let kv = h.get(b"k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));

    let del = DeleteRangeRequest {
        key: b"k".to_vec(),
        prev_kv: true,
        ..Default::default()
    };
    let CommandResponse::DeleteRange(d) = h.apply(Command::DeleteRange(del.clone())).unwrap()
    else {
        panic!()
    };
    assert_eq!((d.header.revision, d.deleted), (4, 1));
    assert_eq!(d.prev_kvs[0].value, b"2");
    // Deleting nothing does not bump the revision.
    let CommandResponse::DeleteRange(d) = h.apply(Command::DeleteRange(del)).unwrap() else {
        panic!()
    };
    assert_eq!((d.header.revision, d.deleted), (4, 0));
    assert_eq!(h.store.current_revision(), 4);

    // A new generation.
    assert_eq!(h.put(b"k", b"3"), 5);
    let kv = h.get(b"k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    // History stays readable.
    let old = h
        .store
        .range(&RangeRequest {
            revision: 3,
            ..get_req(b"k")
        })
        .unwrap();
    assert_eq!(old.kvs[0].value, b"2");
    assert_eq!(old.header.revision, 5);
    let gone = h
        .store
        .range(&RangeRequest {
            revision: 4,
            ..get_req(b"k")
        })
        .unwrap();
    assert!(gone.kvs.is_empty());
    assert_eq!(
        h.store.range(&RangeRequest {
            revision: 6,
            ..get_req(b"k")
        }),
        Err(Error::FutureRev)
    );
}

#[test]
fn put_options() {
    let mut h = Harness::new();
    let ignore = PutRequest {
        key: b"k".to_vec(),
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(
        h.apply(Command::Put(ignore.clone())),
        Err(Error::KeyNotFound)
    );
    assert_eq!(h.store.current_revision(), 1);
    for id in [7, 8] {
        h.apply(Command::LeaseGrant(mvcc::LeaseGrantRequest { id, ttl: 10 }))
            .unwrap();
    }
    h.apply(Command::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 7,
        ..Default::default()
    }))
    .unwrap();
    let CommandResponse::Put(p) = h
        .apply(Command::Put(PutRequest {
            lease: 8,
            prev_kv: true,
            ..ignore
        }))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.prev_kv.unwrap().lease, 7);
    let kv = h.get(b"k").unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v"[..], 8, 2)
    );
    let keep_lease = PutRequest {
        key: b"k".to_vec(),
        value: b"w".to_vec(),
        ignore_lease: true,
        ..Default::default()
    };
    h.apply(Command::Put(keep_lease)).unwrap();
    let kv = h.get(b"k").unwrap();
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"w"[..], 8));
    assert_eq!(h.apply(put_cmd(b"", b"x")), Err(Error::EmptyKey));
}

#[test]
fn range_options() {
    let mut h = Harness::new();
    for (k, v) in [("a", "3"), ("b", "1"), ("c", "2"), ("d", "0")] {
        h.put(k.as_bytes(), v.as_bytes());
    }
    h.put(b"b", b"9"); // b: version 2, mod 6
    let base = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"d".to_vec(),
        ..Default::default()
    };
    let r = h
        .store
        .range(&RangeRequest {
            limit: 2,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(
        r.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert!(r.more);
    assert_eq!(r.count, 3);
    let r = h
        .store
        .range(&RangeRequest {
            sort_target: SortTarget::Value,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(r.kvs.iter().map(|kv| kv.key[0]).collect::<Vec<_>>(), b"cab");
    let r = h
        .store
        .range(&RangeRequest {
            sort_target: SortTarget::Mod,
            sort_order: SortOrder::Descend,
            limit: 1,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(r.kvs[0].key, b"b");
    assert!(r.more);
    let r = h
        .store
        .range(&RangeRequest {
            count_only: true,
            ..base.clone()
        })
        .unwrap();
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 3);
    let r = h
        .store
        .range(&RangeRequest {
            keys_only: true,
            ..base.clone()
        })
        .unwrap();
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty() && kv.version > 0));
    let r = h
        .store
        .range(&RangeRequest {
            min_mod_revision: 4,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(r.kvs.iter().map(|kv| kv.key[0]).collect::<Vec<_>>(), b"bc");
    assert_eq!(r.count, 3);
    // From a key to the end, and every key.
    let r = h
        .store
        .range(&RangeRequest {
            key: b"b".to_vec(),
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.count, 3);
    let r = h
        .store
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.count, 4);
    assert_eq!(r.header.revision, 6);
}

#[test]
fn txn_compare_and_swap() {
    let mut h = Harness::new();
    h.put(b"k", b"v1");
    let cas = |mod_rev: i64| TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::ModRevision(mod_rev),
            key: b"k".to_vec(),
            range_end: vec![],
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v2".to_vec(),
            ..Default::default()
        })],
        failure: vec![RequestOp::Range(get_req(b"k"))],
    };
    let r = h.txn(cas(1)).unwrap();
    assert!(!r.succeeded);
    assert_eq!(
        r.header.revision, 2,
        "a txn that writes nothing keeps the revision"
    );
    let ResponseOp::Range(got) = &r.responses[0] else {
        panic!()
    };
    assert_eq!(got.kvs[0].value, b"v1");
    let r = h.txn(cas(2)).unwrap();
    assert!(r.succeeded);
    assert_eq!(r.header.revision, 3);
    assert_eq!(h.store.current_revision(), 3);
}

#[test]
fn txn_ranges_see_earlier_writes_and_sub_revisions() {
    let mut h = Harness::new();
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: b"b".to_vec(),
                value: b"2".to_vec(),
                ..Default::default()
            }),
            RequestOp::Range(RangeRequest {
                key: b"a".to_vec(),
                range_end: b"c".to_vec(),
                ..Default::default()
            }),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b"x".to_vec(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    };
    h.index += 1;
    let out = h.store.apply(&[(h.index, Command::Txn(t))]).unwrap();
    let Outcome::Done {
        response: CommandResponse::Txn(r),
        events,
    } = &out[0].outcome
    else {
        panic!()
    };
    assert_eq!(r.header.revision, 2);
    let ResponseOp::Range(rr) = &r.responses[2] else {
        panic!()
    };
    assert_eq!(rr.count, 2);
    assert_eq!(rr.header.revision, 2);
    let ResponseOp::DeleteRange(d) = &r.responses[3] else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.revision), (0, 2));
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e.kv.mod_revision == 2 && e.kind == EventKind::Put));
}

#[test]
fn txn_compare_over_a_range_and_missing_keys() {
    let mut h = Harness::new();
    h.put(b"p/1", b"x");
    h.put(b"p/2", b"x");
    let cmp = |result, target, end: &[u8]| Compare {
        result,
        target,
        key: b"p/".to_vec(),
        range_end: end.to_vec(),
    };
    let check = |h: &mut Harness, c: Compare| {
        h.txn(TxnRequest {
            compare: vec![c],
            ..Default::default()
        })
        .unwrap()
        .succeeded
    };
    assert!(check(
        &mut h,
        cmp(
            CompareResult::Equal,
            CompareTarget::Value(b"x".to_vec()),
            b"p0"
        )
    ));
    assert!(check(
        &mut h,
        cmp(CompareResult::Greater, CompareTarget::Version(0), b"p0")
    ));
    h.put(b"p/3", b"y");
    assert!(!check(
        &mut h,
        cmp(
            CompareResult::Equal,
            CompareTarget::Value(b"x".to_vec()),
            b"p0"
        )
    ));
    assert!(check(
        &mut h,
        cmp(
            CompareResult::NotEqual,
            CompareTarget::Value(b"z".to_vec()),
            b"p0"
        )
    ));
    // A missing key: version/revisions/lease compare as 0, a value compare always fails.
    assert!(check(
        &mut h,
        cmp(CompareResult::Equal, CompareTarget::Version(0), b"")
    ));
    assert!(check(
        &mut h,
        cmp(CompareResult::Equal, CompareTarget::CreateRevision(0), b"")
    ));
    assert!(!check(
        &mut h,
        cmp(CompareResult::Equal, CompareTarget::Value(vec![]), b"")
    ));
    assert!(!check(
        &mut h,
        cmp(
            CompareResult::NotEqual,
            CompareTarget::Value(b"a".to_vec()),
            b""
        )
    ));
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    let mut h = Harness::new();
    let nested = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
            key: b"a".to_vec(),
            range_end: vec![],
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: b"b".to_vec(),
            ..Default::default()
        })],
        failure: vec![],
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
            RequestOp::Txn(nested),
        ],
        failure: vec![],
    };
    let r = h.txn(t).unwrap();
    let ResponseOp::Txn(n) = &r.responses[1] else {
        panic!()
    };
    assert!(n.succeeded, "'a' did not exist before the transaction");
    assert!(h.get(b"b").is_some());
}

#[test]
fn failing_txn_changes_nothing() {
    let mut h = Harness::new();
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: b"b".to_vec(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        failure: vec![],
    };
    assert_eq!(h.txn(t), Err(Error::KeyNotFound));
    let dup = TxnRequest {
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    assert_eq!(h.txn(dup), Err(Error::DuplicateKey));
    let future = TxnRequest {
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
            RequestOp::Range(RangeRequest {
                revision: 2,
                ..get_req(b"a")
            }),
        ],
        ..Default::default()
    };
    assert_eq!(h.txn(future), Err(Error::FutureRev));
    assert_eq!(h.store.current_revision(), 1);
    assert!(h.get(b"a").is_none());
    assert_eq!(
        h.store.applied_index(),
        3,
        "failed commands still advance the applied index"
    );
}

#[test]
fn read_only_txn() {
    let mut h = Harness::new();
    h.put(b"a", b"1");
    let ro = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Greater,
            target: CompareTarget::Version(0),
            key: b"a".to_vec(),
            range_end: vec![],
        }],
        success: vec![RequestOp::Range(get_req(b"a"))],
        failure: vec![],
    };
    let r = h.store.txn_read_only(&ro).unwrap();
    assert!(r.succeeded);
    assert_eq!(r.header.revision, 2);
    let rw = TxnRequest {
        failure: vec![RequestOp::Put(PutRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })],
        ..ro
    };
    assert_eq!(h.store.txn_read_only(&rw), Err(Error::NotReadOnly));
}

#[test]
fn compaction_rules() {
    let mut h = Harness::new();
    h.put(b"a", b"1"); // 2
    h.put(b"a", b"2"); // 3
    h.put(b"b", b"1"); // 4
    h.apply(Command::DeleteRange(DeleteRangeRequest {
        key: b"b".to_vec(),
        ..Default::default()
    }))
    .unwrap(); // 5
    h.put(b"a", b"3"); // 6
    let compact = |rev| {
        Command::Compact(CompactRequest {
            revision: rev,
            physical: true,
        })
    };
    assert_eq!(h.apply(compact(7)), Err(Error::FutureRev));
    let r = h.apply(compact(5)).unwrap();
    assert_eq!(r.revision(), 6);
    assert_eq!(h.store.compacted_revision(), 5);
    assert_eq!(h.apply(compact(5)), Err(Error::Compacted));
    assert_eq!(h.apply(compact(4)), Err(Error::Compacted));
    let at = |rev| RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision: rev,
        ..Default::default()
    };
    assert_eq!(h.store.range(&at(4)), Err(Error::Compacted));
    let r5 = h.store.range(&at(5)).unwrap();
    assert_eq!(r5.kvs.len(), 1);
    assert_eq!(
        (r5.kvs[0].key.as_slice(), r5.kvs[0].value.as_slice()),
        (&b"a"[..], &b"2"[..])
    );
    assert_eq!(h.store.range(&at(6)).unwrap().kvs[0].value, b"3");
    assert_eq!(h.store.events(4, &[0], &[0], 0), Err(Error::Compacted));
    let (events, next) = h.store.events(5, &[0], &[0], 0).unwrap();
    assert_eq!(
        events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert_eq!(events[0].kind, EventKind::Delete);
    assert_eq!(next, 7);
    // The deleted key is gone entirely: writing it again starts fresh.
    h.put(b"b", b"2");
    assert_eq!(h.get(b"b").unwrap().version, 1);
}

#[test]
fn compaction_bounds_storage() {
    let mut h = Harness::new();
    let value = vec![7u8; 4000];
    for round in 0..20 {
        let batch: Vec<(u64, Command)> = (0..100)
            .map(|i| {
                h.index += 1;
                (h.index, put_cmd(format!("k{i}").as_bytes(), &value))
            })
            .collect();
        h.store.apply(&batch).unwrap();
        let rev = h.store.current_revision();
        h.apply(Command::Compact(CompactRequest {
            revision: rev,
            physical: false,
        }))
        .unwrap();
        if round == 4 {
            // Free pages are reused from here on: the file stops growing.
            let size = h.store.db_size_bytes().unwrap();
            assert!(size < 16 << 20, "file is {size} bytes");
        }
    }
    let in_use = h.store.db_size_in_use_bytes().unwrap();
    assert!(in_use < 4 << 20, "{in_use} bytes in use for 100 live keys");
    assert!(h.store.db_size_bytes().unwrap() < 16 << 20);
}

#[test]
fn long_keys() {
    let mut h = Harness::new();
    let big = |fill: u8, len: usize, tail: &[u8]| {
        let mut k = vec![fill; len];
        k.extend_from_slice(tail);
        k
    };
    let huge = big(b'h', 1_536 * 1024, b"");
    let keys = vec![
        big(b'p', 600, b"b"),
        big(b'p', 600, b"a"),
        big(b'p', 480, b""),
        big(b'p', 479, b"q"),
        big(b'p', 2000, b""),
        huge.clone(),
    ];
    for k in &keys {
        h.put(k, b"v");
    }
    let mut sorted = keys.clone();
    sorted.sort();
    let all = h
        .store
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            keys_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        sorted
    );
    for k in &keys {
        assert_eq!(h.get(k).unwrap().key, *k);
    }
    // A range that starts and ends inside a group of long keys sharing a prefix.
    let r = h
        .store
        .range(&RangeRequest {
            key: big(b'p', 600, b"a"),
            range_end: big(b'p', 600, b"b"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 1);
    assert_eq!(r.kvs[0].key, big(b'p', 600, b"a"));
    h.apply(Command::DeleteRange(DeleteRangeRequest {
        key: huge.clone(),
        ..Default::default()
    }))
    .unwrap();
    assert!(h.get(&huge).is_none());
    assert_eq!(h.get(&big(b'p', 2000, b"")).unwrap().value, b"v");
}

#[test]
fn leases() {
    let mut h = Harness::new();
    let with_lease = |k: &[u8], lease| {
        Command::Put(PutRequest {
            key: k.to_vec(),
            lease,
            ..Default::default()
        })
    };
    for id in [5, 6] {
        h.apply(Command::LeaseGrant(mvcc::LeaseGrantRequest { id, ttl: 10 }))
            .unwrap();
    }
    h.apply(with_lease(b"a", 5)).unwrap();
    h.apply(with_lease(b"b", 5)).unwrap();
    h.apply(with_lease(b"c", 6)).unwrap();
    h.apply(with_lease(b"b", 6)).unwrap();
    assert_eq!(h.store.leased_keys(5).unwrap(), vec![b"a".to_vec()]);
    assert_eq!(
        h.store.leased_keys(6).unwrap(),
        vec![b"b".to_vec(), b"c".to_vec()]
    );
    let CommandResponse::DeleteRange(d) = h.apply(Command::RevokeLease(6)).unwrap() else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.revision), (2, 6));
    assert!(h.store.leased_keys(6).unwrap().is_empty());
    let CommandResponse::DeleteRange(d) = h
        .apply(Command::DeleteKeys(vec![b"a".to_vec(), b"zz".to_vec()]))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.revision), (1, 7));
    assert!(h.store.leased_keys(5).unwrap().is_empty());
}

#[test]
fn batches_replay_and_partial_overlap() {
    let h = Harness::new();
    let batch: Vec<(u64, Command)> = (1..=3).map(|i| (i, put_cmd(b"k", &[i as u8]))).collect();
    h.store.apply(&batch).unwrap();
    // An overlapping batch: 2 and 3 are skipped, 4 runs.
    let next: Vec<(u64, Command)> = (2..=4).map(|i| (i, put_cmd(b"k", &[i as u8]))).collect();
    let out: Vec<Applied> = h.store.apply(&next).unwrap();
    assert_eq!(out[0].outcome, Outcome::Skipped);
    assert_eq!(out[1].outcome, Outcome::Skipped);
    assert!(matches!(out[2].outcome, Outcome::Done { .. }));
    assert_eq!(h.store.applied_index(), 4);
    assert_eq!(h.get(b"k").unwrap().version, 4);
}

#[test]
fn events_paging() {
    let mut h = Harness::new();
    for i in 0..10u8 {
        h.put(&[b'a' + (i % 2)], &[i]);
    }
    let (events, next) = h.store.events(1, b"a", b"", 2).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kv.mod_revision, 2);
    assert!(events[0].prev_kv.is_none());
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, [0]);
    let (rest, next) = h.store.events(next, b"a", b"", 0).unwrap();
    assert_eq!(rest.len(), 3);
    assert_eq!(next, 12);
}

#[test]
fn reopen_and_snapshot_restore() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        map_size: 64 << 20,
        ..Default::default()
    };
    let data = dir.path().join("data");
    {
        let store = Store::open(&data, opts.clone()).unwrap();
        store
            .apply(&[(1, put_cmd(b"a", b"1")), (2, put_cmd(b"b", b"2"))])
            .unwrap();
    }
    let store = Store::open(&data, opts.clone()).unwrap();
    assert_eq!((store.current_revision(), store.applied_index()), (3, 2));
    let snap = dir.path().join("snap.mdb");
    store.snapshot_to(&snap).unwrap();
    store.apply(&[(3, put_cmd(b"c", b"3"))]).unwrap();

    let restored = Store::restore(dir.path().join("other"), &snap, opts).unwrap();
    assert_eq!(
        (restored.current_revision(), restored.applied_index()),
        (3, 2)
    );
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(restored.range(&all).unwrap().count, 2);
    assert_eq!(store.range(&all).unwrap().count, 3);
}

#[test]
fn commands_round_trip_through_bincode() {
    let cmd = Command::Txn(TxnRequest {
        compare: vec![Compare {
            result: CompareResult::NotEqual,
            target: CompareTarget::Value(b"x".to_vec()),
            key: b"k".to_vec(),
            range_end: vec![0],
        }],
        success: vec![RequestOp::Txn(TxnRequest::default())],
        failure: vec![RequestOp::Put(PutRequest::default())],
    });
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&cmd, cfg).unwrap();
    let (back, _): (Command, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, cmd);
}

#[test]
fn hash_kv_depends_on_state_only() {
    let mut a = Harness::new();
    let mut b = Harness::new();
    a.put(b"x", b"1");
    a.put(b"y", b"2");
    b.put(b"x", b"1");
    b.put(b"y", b"2");
    assert_eq!(a.store.hash_kv(0).unwrap(), b.store.hash_kv(0).unwrap());
    let before = a.store.hash_kv(0).unwrap();
    a.put(b"y", b"3");
    assert_ne!(a.store.hash_kv(0).unwrap().hash, before.hash);
    assert_eq!(a.store.hash_kv(3).unwrap().hash, before.hash);
    assert_eq!(a.store.hash_kv(3).unwrap().revision, 4);
    assert_eq!(before.compact_revision, -1);
    assert_eq!(a.store.hash_kv(9), Err(Error::FutureRev));
}

#[test]
fn map_full_fails_the_batch_without_partial_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            map_size: 1 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let big = vec![1u8; 600 * 1024];
    store.apply(&[(1, put_cmd(b"a", b"small"))]).unwrap();
    let r = store.apply(&[(2, put_cmd(b"b", &big)), (3, put_cmd(b"c", &big))]);
    assert_eq!(r, Err(Error::MapFull));
    assert_eq!((store.current_revision(), store.applied_index()), (2, 1));
    store.apply(&[(2, put_cmd(b"b", b"fits"))]).unwrap();
    assert_eq!(store.current_revision(), 3);
}

#[test]
fn store_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}
