//! Leases in the store: grants, attachment by puts, revocation in one revision, expiry of
//! many leases in one command, and lease state across a reopen and a snapshot.

use mvcc::{
    Command, CommandResponse, Compare, CompareResult, CompareTarget, Error, EventKind,
    LeaseGrantRequest, Outcome, PutRequest, RangeRequest, RequestOp, Store, StoreOptions,
    TxnRequest, MAX_LEASE_TTL,
};

struct Store1 {
    store: Store,
    index: u64,
    _dir: tempfile::TempDir,
}

impl Store1 {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        Store1 {
            store,
            index: 0,
            _dir: dir,
        }
    }

    fn apply(&mut self, cmd: Command) -> Result<CommandResponse, Error> {
        self.index += 1;
        match self
            .store
            .apply(&[(self.index, cmd)])
            .unwrap()
            .remove(0)
            .outcome
        {
            Outcome::Done { response, .. } => Ok(response),
            Outcome::Failed(e) => Err(e),
            Outcome::Skipped => panic!("skipped"),
        }
    }

    fn get(&self, k: &str) -> Option<mvcc::KeyValue> {
        let r = RangeRequest {
            key: k.into(),
            ..Default::default()
        };
        self.store.range(&r).unwrap().kvs.pop()
    }
}

fn grant(id: i64, ttl: i64) -> Command {
    Command::LeaseGrant(LeaseGrantRequest { id, ttl })
}

fn put(k: &str, lease: i64) -> Command {
    Command::Put(put_req(k, lease))
}

fn put_req(k: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    }
}

#[test]
fn grants_are_refused_for_an_existing_id_or_a_too_large_ttl() {
    let mut s = Store1::new();
    let CommandResponse::LeaseGrant(g) = s.apply(grant(7, 30)).unwrap() else {
        panic!()
    };
    assert_eq!((g.id, g.ttl, g.header.revision), (7, 30, 1));
    assert_eq!(s.apply(grant(7, 5)), Err(Error::LeaseExists));
    assert_eq!(
        s.apply(grant(8, MAX_LEASE_TTL + 1)),
        Err(Error::LeaseTtlTooLarge)
    );
    assert!(s.apply(grant(9, MAX_LEASE_TTL)).is_ok());
    let ids: Vec<(i64, i64)> = s
        .store
        .leases()
        .unwrap()
        .iter()
        .map(|l| (l.id, l.ttl))
        .collect();
    assert_eq!(ids, vec![(7, 30), (9, MAX_LEASE_TTL)]);
    assert_eq!(s.store.current_revision(), 1, "grants create no revision");
}

#[test]
fn puts_with_an_unknown_lease_change_nothing() {
    let mut s = Store1::new();
    assert_eq!(s.apply(put("a", 5)), Err(Error::LeaseNotFound));
    let txn = TxnRequest {
        success: vec![
            RequestOp::Put(put_req("b", 0)),
            RequestOp::Put(put_req("c", 5)),
        ],
        ..Default::default()
    };
    assert_eq!(
        s.apply(Command::Txn(txn.clone())),
        Err(Error::LeaseNotFound)
    );
    assert_eq!(s.store.current_revision(), 1);
    s.apply(grant(5, 10)).unwrap();
    assert!(s.apply(Command::Txn(txn)).is_ok());
    assert_eq!(s.get("c").unwrap().lease, 5);
    // A failing compare takes the other branch, whose lease is checked instead.
    let guarded = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Version(99),
            key: b"b".to_vec(),
            range_end: vec![],
        }],
        success: vec![RequestOp::Put(put_req("d", 6))],
        failure: vec![RequestOp::Put(put_req("d", 5))],
    };
    assert!(s.apply(Command::Txn(guarded)).is_ok());
    assert_eq!(s.get("d").unwrap().lease, 5);
}

#[test]
fn a_put_without_lease_detaches_the_key_and_ignore_lease_keeps_it() {
    let mut s = Store1::new();
    s.apply(grant(5, 10)).unwrap();
    s.apply(put("kept", 5)).unwrap();
    s.apply(put("detached", 5)).unwrap();
    s.apply(put("detached", 0)).unwrap();
    s.apply(Command::Put(PutRequest {
        key: b"kept".to_vec(),
        value: b"w".to_vec(),
        ignore_lease: true,
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(s.get("kept").unwrap().lease, 5);
    assert_eq!(s.get("detached").unwrap().lease, 0);
    assert_eq!(s.store.leased_keys(5).unwrap(), vec![b"kept".to_vec()]);
    s.apply(Command::RevokeLease(5)).unwrap();
    assert!(s.get("kept").is_none());
    assert!(s.get("detached").is_some());
}

#[test]
fn revoke_deletes_every_attached_key_at_one_revision_with_delete_events() {
    let mut s = Store1::new();
    s.apply(grant(5, 10)).unwrap();
    for k in ["c", "a", "b"] {
        s.apply(put(k, 5)).unwrap();
    }
    let before = s.store.current_revision();
    let CommandResponse::DeleteRange(d) = s.apply(Command::RevokeLease(5)).unwrap() else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.revision), (3, before + 1));
    let (events, _) = s.store.events(before + 1, &[0], &[0], 0).unwrap();
    let deleted: Vec<(&[u8], i64)> = events
        .iter()
        .map(|e| {
            assert_eq!(e.kind, EventKind::Delete);
            (&e.kv.key[..], e.kv.mod_revision)
        })
        .collect();
    let at = before + 1;
    assert_eq!(
        deleted,
        vec![(&b"a"[..], at), (&b"b"[..], at), (&b"c"[..], at)]
    );
    assert_eq!(s.store.lease(5).unwrap(), None);
    assert_eq!(s.apply(Command::RevokeLease(5)), Err(Error::LeaseNotFound));
    assert_eq!(s.apply(put("a", 5)), Err(Error::LeaseNotFound));
    // A lease without keys is revoked without a revision.
    s.apply(grant(6, 10)).unwrap();
    s.apply(Command::RevokeLease(6)).unwrap();
    assert_eq!(s.store.current_revision(), at);
}

#[test]
fn expiring_many_leases_revokes_each_existing_one_at_its_own_revision() {
    let mut s = Store1::new();
    for id in 1..=3 {
        s.apply(grant(id, 10)).unwrap();
        s.apply(put(&format!("k{id}"), id)).unwrap();
    }
    s.apply(Command::RevokeLease(2)).unwrap();
    let before = s.store.current_revision();
    let CommandResponse::LeasesExpired(e) =
        s.apply(Command::ExpireLeases(vec![3, 2, 1, 42])).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.revoked, vec![3, 1]);
    assert_eq!(e.header.revision, before + 2);
    let (events, _) = s.store.events(before + 1, &[0], &[0], 0).unwrap();
    let got: Vec<(&[u8], i64)> = events
        .iter()
        .map(|e| (&e.kv.key[..], e.kv.mod_revision))
        .collect();
    assert_eq!(
        got,
        vec![(&b"k3"[..], before + 1), (&b"k1"[..], before + 2)]
    );
    assert!(s.store.leases().unwrap().is_empty());
}

#[test]
fn a_nospace_alarm_refuses_grants_but_not_revokes() {
    let mut s = Store1::new();
    s.apply(grant(5, 10)).unwrap();
    s.apply(put("k", 5)).unwrap();
    s.index += 1;
    let nospace = mvcc::Alarm {
        member: 1,
        kind: mvcc::AlarmKind::Nospace,
    };
    let mut w = s.store.writer();
    w.apply_cluster(s.index, &mvcc::ClusterCommand::ActivateAlarm(nospace))
        .unwrap();
    w.commit().unwrap();
    drop(w);
    assert_eq!(s.apply(grant(6, 10)), Err(Error::NoSpace));
    assert!(s.apply(Command::RevokeLease(5)).is_ok());
    assert!(s.get("k").is_none());
}

#[test]
fn leases_survive_a_reopen_and_travel_in_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.mdb");
    {
        let store = Store::open(dir.path().join("a"), StoreOptions::default()).unwrap();
        store
            .apply(&[(1, grant(5, 10)), (2, put("k", 5)), (3, grant(6, 20))])
            .unwrap();
        store.snapshot_to(&file).unwrap();
    }
    let reopened = Store::open(dir.path().join("a"), StoreOptions::default()).unwrap();
    let follower = Store::open(dir.path().join("b"), StoreOptions::default()).unwrap();
    follower.apply(&[(1, grant(9, 1))]).unwrap();
    follower.replace_with_snapshot(&file).unwrap();
    for store in [&reopened, &follower] {
        let leases: Vec<(i64, i64)> = store
            .leases()
            .unwrap()
            .iter()
            .map(|l| (l.id, l.ttl))
            .collect();
        assert_eq!(leases, vec![(5, 10), (6, 20)]);
        assert_eq!(store.leased_keys(5).unwrap(), vec![b"k".to_vec()]);
    }
}
