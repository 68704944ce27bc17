//! Readers running alongside the writer: every read sees one whole batch, never a mix, and
//! never fails while compactions drop the history rows of older batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use mvcc::{Command, CompactRequest, Durability, PutRequest, RangeRequest, Store, StoreOptions};

const KEYS: usize = 8;

fn key(i: usize) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// One batch: every key gets the value `round`, then every third round a compaction at the
/// revision before the batch, so rows the previous batch's readers used are dropped at once.
fn batch(round: u64, index: &mut u64, revision_before: i64) -> Vec<(u64, Command)> {
    let mut cmds = Vec::new();
    for i in 0..KEYS {
        cmds.push(Command::Put(PutRequest {
            key: key(i),
            value: round.to_string().into_bytes(),
            ..Default::default()
        }));
    }
    if round.is_multiple_of(3) {
        cmds.push(Command::Compact(CompactRequest {
            revision: revision_before,
            physical: false,
        }));
    }
    cmds.into_iter()
        .map(|c| {
            *index += 1;
            (*index, c)
        })
        .collect()
}

#[test]
fn reads_see_whole_batches_while_compactions_run() {
    let dir = tempfile::tempdir().unwrap();
    // No fsync: more batches, so more chances to catch a reader between commit and publish.
    let opts = StoreOptions {
        durability: Durability::None,
        ..Default::default()
    };
    let store = Arc::new(Store::open(dir.path(), opts).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let all = RangeRequest {
                    key: key(0),
                    range_end: b"l".to_vec(),
                    ..Default::default()
                };
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let r = store
                        .range(&all)
                        .expect("a read at the current revision fails");
                    if !r.kvs.is_empty() {
                        assert_eq!(r.kvs.len(), KEYS, "a read saw part of a batch");
                        let first = &r.kvs[0].value;
                        assert!(r.kvs.iter().all(|kv| &kv.value == first), "mixed batches");
                        assert!(r.kvs.iter().all(|kv| kv.mod_revision <= r.header.revision));
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut index = 0;
    for round in 1..=3000u64 {
        let before = store.current_revision();
        store.apply(&batch(round, &mut index, before)).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(store.compacted_revision() > 1);
}
