//! Installing a snapshot into an open store: what a follower does when the leader sends one.

use mvcc::{Command, PutRequest, RangeRequest, Store, StoreOptions};

fn put(k: &str, v: &str) -> Command {
    Command::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

fn all(store: &Store) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
    let r = store
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    r.kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.mod_revision))
        .collect()
}

#[test]
fn replace_with_snapshot_swaps_contents_of_an_open_store() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Store::open(dir.path().join("leader"), StoreOptions::default()).unwrap();
    leader
        .apply(&[(1, put("a", "1")), (2, put("b", "2")), (3, put("a", "3"))])
        .unwrap();
    let file = dir.path().join("snap.mdb");
    leader.snapshot_to(&file).unwrap();

    let follower = Store::open(dir.path().join("follower"), StoreOptions::default()).unwrap();
    follower.apply(&[(1, put("stale", "x"))]).unwrap();
    follower.replace_with_snapshot(&file).unwrap();

    assert_eq!(all(&follower), all(&leader));
    assert_eq!(follower.current_revision(), leader.current_revision());
    assert_eq!(follower.applied_index(), 3);
    // History came along: a read at an old revision answers as on the leader.
    let old = RangeRequest {
        key: b"a".to_vec(),
        revision: 2,
        ..Default::default()
    };
    assert_eq!(follower.range(&old).unwrap().kvs[0].value, b"1");
    // Entries the snapshot covers are skipped; later ones apply.
    let applied = follower
        .apply(&[(3, put("a", "again")), (4, put("c", "4"))])
        .unwrap();
    assert_eq!(applied[0].outcome, mvcc::Outcome::Skipped);
    assert_eq!(follower.current_revision(), leader.current_revision() + 1);
    // And the replacement survives a reopen.
    drop(follower);
    let reopened = Store::open(dir.path().join("follower"), StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), 4);
}

#[test]
fn apply_then_hands_out_outcomes_before_readers_see_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store.apply(&[(1, put("a", "1"))]).unwrap();
    let mut seen = None;
    store
        .apply_then(
            &[(1, put("a", "replayed")), (2, put("a", "2"))],
            |applied| {
                // Not committed yet: a reader still sees the state before the batch.
                seen = Some((applied, all(&store)));
            },
        )
        .unwrap();
    let (applied, before) = seen.expect("before_commit was called");
    assert_eq!(applied[0].outcome, mvcc::Outcome::Skipped);
    assert!(matches!(applied[1].outcome, mvcc::Outcome::Done { .. }));
    assert_eq!(before, vec![(b"a".to_vec(), b"1".to_vec(), 2)]);
    assert_eq!(all(&store), vec![(b"a".to_vec(), b"2".to_vec(), 3)]);
    assert_eq!(store.applied_index(), 2);
}

#[test]
fn a_writer_holds_batches_until_it_commits_and_drops_them_if_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    {
        let mut writer = store.writer();
        assert!(writer.pending().is_none());
        writer.apply_then(&[(1, put("a", "1"))], |_| {}).unwrap();
        writer.apply_then(&[(2, put("b", "2"))], |_| {}).unwrap();
        assert_eq!(writer.pending().map(|(_, n)| n), Some(2));
        assert!(all(&store).is_empty(), "readers see only committed batches");
        assert_eq!(store.applied_index(), 0);
        writer.commit().unwrap();
        assert!(writer.pending().is_none());
        assert_eq!(all(&store).len(), 2);
        assert_eq!(store.applied_index(), 2);
        // Left open when the writer goes: lost, to be applied again from the log.
        writer.apply_then(&[(3, put("c", "3"))], |_| {}).unwrap();
    }
    assert_eq!(store.applied_index(), 2);
    assert_eq!(all(&store).len(), 2);
    store.apply(&[(3, put("c", "3"))]).unwrap();
    assert_eq!(all(&store).len(), 3);
}
