//! Alarms and published members: replicated state kept in the store with the applied index.

use mvcc::{
    Alarm, AlarmKind, ClusterCommand, ClusterOutcome, Command, CompactRequest, DeleteRangeRequest,
    Error, MemberInfo, Outcome, PutRequest, RangeRequest, RequestOp, Store, StoreOptions,
    TxnRequest,
};

fn opts() -> StoreOptions {
    StoreOptions {
        map_size: 64 << 20,
        ..Default::default()
    }
}

fn put(k: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: b"v".to_vec(),
        ..Default::default()
    }
}

fn txn(ops: Vec<RequestOp>) -> Command {
    Command::Txn(TxnRequest {
        compare: vec![],
        success: ops,
        failure: vec![],
    })
}

const NOSPACE: Alarm = Alarm {
    member: 7,
    kind: AlarmKind::Nospace,
};

fn cluster(store: &Store, index: u64, cmd: ClusterCommand) -> ClusterOutcome {
    let mut w = store.writer();
    let out = w.apply_cluster(index, &cmd).unwrap();
    w.commit().unwrap();
    out
}

fn failed(store: &Store, index: u64, cmd: Command) -> Option<Error> {
    match store.apply(&[(index, cmd)]).unwrap().remove(0).outcome {
        Outcome::Failed(e) => Some(e),
        Outcome::Done { .. } => None,
        Outcome::Skipped => panic!("entry {index} skipped"),
    }
}

#[test]
fn nospace_refuses_writes_that_take_space_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store
        .apply(&[(1, Command::Put(put("a"))), (2, Command::Put(put("b")))])
        .unwrap();
    assert_eq!(
        cluster(&store, 3, ClusterCommand::ActivateAlarm(NOSPACE)),
        ClusterOutcome::Alarms(vec![NOSPACE])
    );
    assert_eq!(store.alarms().unwrap(), vec![NOSPACE]);

    assert_eq!(
        failed(&store, 4, Command::Put(put("c"))),
        Some(Error::NoSpace)
    );
    let nested_put = txn(vec![RequestOp::Txn(TxnRequest {
        compare: vec![],
        success: vec![RequestOp::Put(put("c"))],
        failure: vec![],
    })]);
    assert_eq!(failed(&store, 5, nested_put), Some(Error::NoSpace));
    let revision = store.current_revision();
    // Deletes (also inside a transaction), compaction and reads still work.
    let del = DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        failed(&store, 6, txn(vec![RequestOp::DeleteRange(del.clone())])),
        None
    );
    assert_eq!(
        failed(
            &store,
            7,
            Command::Compact(CompactRequest {
                revision: 2,
                physical: false
            })
        ),
        None
    );
    assert_eq!(store.current_revision(), revision + 1);
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(store.range(&all).unwrap().count, 1);

    // Raising it again answers the alarm; clearing answers it once, then nothing.
    assert_eq!(
        cluster(&store, 8, ClusterCommand::ActivateAlarm(NOSPACE)),
        ClusterOutcome::Alarms(vec![NOSPACE])
    );
    assert_eq!(
        cluster(&store, 9, ClusterCommand::DeactivateAlarm(NOSPACE)),
        ClusterOutcome::Alarms(vec![NOSPACE])
    );
    assert_eq!(
        cluster(&store, 10, ClusterCommand::DeactivateAlarm(NOSPACE)),
        ClusterOutcome::Alarms(vec![])
    );
    assert_eq!(failed(&store, 11, Command::Put(put("c"))), None);
}

#[test]
fn cluster_state_survives_a_reopen_and_travels_in_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let member = MemberInfo {
        id: 7,
        name: "m7".into(),
        client_urls: vec!["http://127.0.0.1:2379".into()],
    };
    let corrupt = Alarm {
        member: 3,
        kind: AlarmKind::Corrupt,
    };
    {
        let store = Store::open(dir.path().join("a"), opts()).unwrap();
        // Cluster commands and key writes share one transaction, in log order.
        let mut w = store.writer();
        w.apply_then(&[(1, Command::Put(put("a")))], |_| {})
            .unwrap();
        w.apply_cluster(2, &ClusterCommand::ActivateAlarm(NOSPACE))
            .unwrap();
        w.apply_then(&[(3, Command::Put(put("b")))], |applied| {
            assert_eq!(applied[0].outcome, Outcome::Failed(Error::NoSpace));
        })
        .unwrap();
        w.apply_cluster(4, &ClusterCommand::ActivateAlarm(corrupt))
            .unwrap();
        w.apply_cluster(5, &ClusterCommand::PublishMember(member.clone()))
            .unwrap();
        w.commit().unwrap();
        assert_eq!(store.applied_index(), 5);
        // Replaying is harmless.
        assert_eq!(
            cluster(&store, 4, ClusterCommand::DeactivateAlarm(corrupt)),
            ClusterOutcome::Skipped
        );
    }
    let store = Store::open(dir.path().join("a"), opts()).unwrap();
    assert_eq!(store.alarms().unwrap(), vec![NOSPACE, corrupt]);
    assert_eq!(store.members().unwrap(), vec![member.clone()]);
    // CORRUPT, raised too, refuses before NOSPACE does.
    assert_eq!(
        failed(&store, 6, Command::Put(put("c"))),
        Some(Error::CorruptCluster)
    );

    let file = dir.path().join("snap.mdb");
    store.snapshot_to(&file).unwrap();
    let follower = Store::open(dir.path().join("b"), opts()).unwrap();
    follower.apply(&[(1, Command::Put(put("x")))]).unwrap();
    follower.replace_with_snapshot(&file).unwrap();
    assert_eq!(follower.alarms().unwrap(), vec![NOSPACE, corrupt]);
    assert_eq!(follower.members().unwrap(), vec![member]);
    assert_eq!(
        failed(&follower, 7, Command::Put(put("c"))),
        Some(Error::CorruptCluster)
    );
}

#[test]
fn corrupt_refuses_every_write_until_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.apply(&[(1, Command::Put(put("a")))]).unwrap();
    let corrupt = Alarm {
        member: 7,
        kind: AlarmKind::Corrupt,
    };
    cluster(&store, 2, ClusterCommand::ActivateAlarm(corrupt));
    let del = Command::DeleteRange(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    });
    let compact = Command::Compact(CompactRequest {
        revision: 2,
        physical: false,
    });
    for (i, cmd) in [Command::Put(put("b")), del.clone(), compact]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            failed(&store, 3 + i as u64, cmd),
            Some(Error::CorruptCluster)
        );
    }
    // Reads go on.
    let a = RangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    };
    assert_eq!(store.range(&a).unwrap().count, 1);
    cluster(&store, 6, ClusterCommand::DeactivateAlarm(corrupt));
    assert_eq!(failed(&store, 7, del), None);
}
