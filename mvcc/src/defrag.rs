//! [`Store::defragment`]: etcd's Defragment without stopping reads or writes.
//!
//! LMDB reuses the pages compaction frees but never gives them back to the file system; only
//! a compacting copy of the environment is smaller. The copy is taken from a read
//! transaction (writers go on), opened as a second environment, and brought up to date with
//! what was committed since: history is append-only but for compaction, so the rows above
//! the copy's last revision are appended, and when a compaction ran meanwhile the rows it
//! dropped are dropped from the copy; the other tables (meta with the applied index, leases,
//! lease grants, the cluster state) are small and are made equal row by row. That runs
//! twice without any lock, each time catching up on less, and a last time under the
//! store's write lock, where the copy takes over: its file is renamed over the store's,
//! and new transactions use it. Readers still on the old environment finish there; its file,
//! already unlinked, is freed when the last of them ends.

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heed::{CompactionOption, RoTxn, RwTxn};

use crate::error::{Error, Result};
use crate::store::{Backend, Store};
use crate::tables::Table;
use crate::write::Counters;

/// What a defragmentation did to the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defragmented {
    /// The file's size before, in bytes.
    pub size_before: u64,
    /// The file's size after, in bytes.
    pub size_after: u64,
    /// Rows brought over under the write lock, the only time writes waited.
    pub rows_under_lock: usize,
    /// How long the write lock was held.
    pub locked: Duration,
}

/// Catch-up passes made without the write lock before the last one under it.
const UNLOCKED_PASSES: usize = 2;

impl Store {
    /// Rewrites the database file without its free pages (etcd's Defragment), while reads
    /// and writes go on; writes wait only for the last catch-up (the rows committed during
    /// the one before) and the swap. Finishes a pending compaction first, so that the copy
    /// leaves out what it would drop. A snapshot installed meanwhile makes it fail
    /// ([`Error::Storage`]); the store is unchanged then.
    pub fn defragment(&self) -> Result<Defragmented> {
        let _one = self.defrag_lock.lock().unwrap_or_else(|p| p.into_inner());
        while !self.run_compaction(self.compaction_rows)? {}
        let size_before = self.db_size_bytes()?;
        let installs = self.installs.load(Ordering::SeqCst);
        let n = self.defrags.fetch_add(1, Ordering::Relaxed);
        let dir = self.path();
        let work = dir.with_file_name(format!("{}{}-{n}", work_prefix(&dir), std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work)?;
        let result = self.defragment_into(&work, installs);
        // The work directory holds the copy's lock file only, or a copy that failed.
        let _ = fs::remove_dir_all(&work);
        let (rows_under_lock, locked) = result?;
        Ok(Defragmented {
            size_before,
            size_after: self.db_size_bytes()?,
            rows_under_lock,
            locked,
        })
    }

    /// The copy's work; the rows caught up on under the write lock and how long it was held.
    fn defragment_into(&self, work: &Path, installs: u64) -> Result<(usize, Duration)> {
        let old = self.backend();
        old.env
            .copy_to_path(work.join("data.mdb"), CompactionOption::Enabled)?
            .sync_all()?;
        let copy = Backend::open(work, &self.options)?;
        for _ in 0..UNLOCKED_PASSES {
            let rtxn = old.env.read_txn()?;
            catch_up(&old, &rtxn, &copy)?;
        }
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let locked = Instant::now();
        if self.installs.load(Ordering::SeqCst) != installs || !Arc::ptr_eq(&old, &self.backend()) {
            return Err(Error::Storage(
                "defragment: a snapshot was installed meanwhile; try again".into(),
            ));
        }
        let rtxn = old.env.read_txn()?;
        let rows = catch_up(&old, &rtxn, &copy)?;
        drop(rtxn);
        copy.env.force_sync()?;
        let dir: PathBuf = self.path();
        fs::rename(work.join("data.mdb"), dir.join("data.mdb"))?;
        fs::File::open(&dir)?.sync_all()?;
        self.swap_backend(copy);
        Ok((rows, locked.elapsed()))
    }
}

/// The start of the names of the work directories of defragmentations of the store `dir`,
/// beside it.
fn work_prefix(dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    format!("{}.defrag-", name.unwrap_or_else(|| "kv".into()))
}

/// Removes what defragmentations of the store `dir` interrupted by a crash left (a copy
/// never renamed into place, which nothing reads).
pub(crate) fn remove_leftovers(dir: &Path) {
    let (Some(parent), prefix) = (dir.parent(), work_prefix(dir)) else {
        return;
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Brings `copy` up to the state `old` has in `rtxn`, in one committed transaction; returns
/// the rows written or deleted.
fn catch_up(old: &Backend, rtxn: &RoTxn, copy: &Backend) -> Result<usize> {
    let mut wtxn = copy.env.write_txn()?;
    let mut rows = 0;
    let was = Counters::load(&copy.t, &wtxn)?;
    let now = Counters::load(&old.t, rtxn)?;
    if (was.compact_cursor, was.compact_target, was.compacted)
        != (now.compact_cursor, now.compact_target, now.compacted)
    {
        // A compaction dropped rows below its cursor, at most.
        let end = now.compact_cursor.to_bytes();
        let bounds = (Bound::Unbounded, Bound::Excluded(&end[..]));
        rows += drop_missing(old.t.history, rtxn, copy.t.history, &mut wtxn, &bounds)?;
    }
    let last = copy.t.history.last(&wtxn)?.map(|(k, _)| k.to_vec());
    let tail = match &last {
        Some(k) => (Bound::Excluded(&k[..]), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    };
    for row in old.t.history.range(rtxn, &tail)? {
        let (k, v) = row?;
        crate::tables::append(copy.t.history, &mut wtxn, k, v)?;
        rows += 1;
    }
    for (from, to) in [
        (old.t.meta, copy.t.meta),
        (old.t.leases, copy.t.leases),
        (old.t.lease_grants, copy.t.lease_grants),
        (old.cluster, copy.cluster),
    ] {
        rows += make_equal(from, rtxn, to, &mut wtxn)?;
    }
    wtxn.commit()?;
    Ok(rows)
}

type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Deletes the rows of `dst` within `bounds` that `src` lacks.
fn drop_missing(
    src: Table,
    stxn: &RoTxn,
    dst: Table,
    dtxn: &mut RwTxn,
    bounds: &Bounds,
) -> Result<usize> {
    let mut gone = Vec::new();
    for row in dst.range(dtxn, bounds)? {
        let (k, _) = row?;
        if src.get(stxn, k)?.is_none() {
            gone.push(k.to_vec());
        }
    }
    for k in &gone {
        dst.delete(dtxn, k)?;
    }
    Ok(gone.len())
}

/// Makes `dst` hold exactly the rows of `src`, writing only the differences.
fn make_equal(src: Table, stxn: &RoTxn, dst: Table, dtxn: &mut RwTxn) -> Result<usize> {
    let mut put = Vec::new();
    let mut gone = Vec::new();
    {
        let mut a = src.iter(stxn)?.peekable();
        let mut b = dst.iter(dtxn)?.peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    let e = a.next().and_then(|r| r.err()).or_else(|| b.next()?.err());
                    return Err(e.map(Error::from).unwrap_or_else(|| {
                        Error::Storage("defragment: a table read failed".into())
                    }));
                }
                (Some(Ok(_)), None) => std::cmp::Ordering::Less,
                (None, Some(Ok(_))) => std::cmp::Ordering::Greater,
                (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka.cmp(kb),
            };
            match order {
                std::cmp::Ordering::Less => {
                    if let Some(Ok((k, v))) = a.next() {
                        put.push((k.to_vec(), v.to_vec()));
                    }
                }
                std::cmp::Ordering::Greater => {
                    if let Some(Ok((k, _))) = b.next() {
                        gone.push(k.to_vec());
                    }
                }
                std::cmp::Ordering::Equal => {
                    if let (Some(Ok((k, va))), Some(Ok((_, vb)))) = (a.next(), b.next()) {
                        if va != vb {
                            put.push((k.to_vec(), va.to_vec()));
                        }
                    }
                }
            }
        }
    }
    for k in &gone {
        dst.delete(dtxn, k)?;
    }
    for (k, v) in &put {
        dst.put(dtxn, k, v)?;
    }
    Ok(put.len() + gone.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Command, CompactRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
        StoreOptions,
    };

    fn put(key: String, lease: i64) -> Command {
        Command::Put(PutRequest {
            key: key.into_bytes(),
            value: vec![7; 1000],
            lease,
            ..Default::default()
        })
    }

    fn everything(store: &Store) -> (i64, Vec<crate::KeyValue>) {
        let r = store
            .range(&RangeRequest {
                key: vec![0],
                range_end: vec![0],
                ..Default::default()
            })
            .unwrap();
        (r.header.revision, r.kvs)
    }

    #[test]
    fn defragment_shrinks_the_file_keeps_everything_and_loses_no_concurrent_write() {
        let dir = tempfile::tempdir().unwrap();
        let kv = dir.path().join("kv");
        let opts = StoreOptions {
            map_size: 1 << 30,
            durability: crate::Durability::None,
            ..Default::default()
        };
        let store = Store::open(&kv, opts.clone()).unwrap();
        let mut index = 0u64;
        let mut next = || {
            index += 1;
            index
        };
        let grant = Command::LeaseGrant(LeaseGrantRequest { id: 42, ttl: 600 });
        store.apply(&[(next(), grant)]).unwrap();
        for chunk in 0..20 {
            let batch: Vec<_> = (0..500)
                .map(|i| (next(), put(format!("k{chunk:02}-{i:04}"), 0)))
                .collect();
            store.apply(&batch).unwrap();
        }
        store.apply(&[(next(), put("leased".into(), 42))]).unwrap();
        let del = Command::DeleteRange(DeleteRangeRequest {
            key: b"k0".to_vec(),
            range_end: b"k2".to_vec(),
            ..Default::default()
        });
        store.apply(&[(next(), del)]).unwrap();
        let at = store.current_revision();
        let compact = Command::Compact(CompactRequest {
            revision: at,
            physical: false,
        });
        store.apply(&[(next(), compact)]).unwrap();
        let before = everything(&store);
        let size = store.db_size_bytes().unwrap();

        // Writes from another thread all along.
        let done = std::sync::atomic::AtomicBool::new(false);
        let first = next();
        let written = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut i = first;
                while !done.load(Ordering::SeqCst) || i < first + 50 {
                    store.apply(&[(i, put(format!("during-{i}"), 0))]).unwrap();
                    i += 1;
                }
                i - first
            });
            let report = store.defragment().unwrap();
            done.store(true, Ordering::SeqCst);
            assert!(report.size_before >= size, "{report:?}");
            assert!(report.size_after * 2 < report.size_before, "{report:?}");
            writer.join().unwrap()
        });
        assert!(store.db_size_bytes().unwrap() * 2 < size);
        let after = everything(&store);
        assert_eq!(after.0, before.0 + written as i64);
        assert_eq!(after.1.len(), before.1.len() + written as usize);
        let kept: Vec<_> = after
            .1
            .iter()
            .filter(|kv| !kv.key.starts_with(b"during-"))
            .cloned()
            .collect();
        assert!(kept == before.1, "a key or revision changed");
        assert_eq!(store.lease(42).unwrap().map(|l| l.ttl), Some(600));
        assert_eq!(store.leased_keys(42).unwrap(), vec![b"leased".to_vec()]);
        assert_eq!(store.compacted_revision(), at);
        let applied = store.applied_index();
        // Writes go on after the swap, and a reopen finds all of it.
        store
            .apply(&[(applied + 1, put("after".into(), 0))])
            .unwrap();
        let last = everything(&store);
        drop(store);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("kv")]);
        let reopened = Store::open(&kv, opts).unwrap();
        assert_eq!(everything(&reopened), last);
        assert_eq!(reopened.applied_index(), applied + 1);
        assert!(reopened.db_size_bytes().unwrap() * 2 < size);
    }

    /// Every row of every table, for comparing two environments.
    fn rows(b: &Backend) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let txn = b.env.read_txn().unwrap();
        [
            b.t.meta,
            b.t.history,
            b.t.leases,
            b.t.lease_grants,
            b.cluster,
        ]
        .iter()
        .map(|t| {
            t.iter(&txn)
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect()
        })
        .collect()
    }

    #[test]
    fn a_copy_catches_up_on_writes_revokes_and_a_compaction_made_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            map_size: 64 << 20,
            durability: crate::Durability::None,
            compaction_rows_per_batch: 1 << 20,
            ..Default::default()
        };
        let store = Store::open(dir.path().join("kv"), opts.clone()).unwrap();
        let grant = |id| Command::LeaseGrant(LeaseGrantRequest { id, ttl: 60 });
        store.apply(&[(1, grant(1)), (2, grant(2))]).unwrap();
        let batch: Vec<_> = (0..200)
            .map(|i| (3 + i as u64, put(format!("k{}", i % 50), (i % 3) as i64)))
            .collect();
        store.apply(&batch).unwrap();
        let work = dir.path().join("copy");
        fs::create_dir_all(&work).unwrap();
        let old = store.backend();
        old.env
            .copy_to_path(work.join("data.mdb"), CompactionOption::Enabled)
            .unwrap();
        let copy = Backend::open(&work, &opts).unwrap();
        // After the copy: more writes, a revoke, and a compaction that drops rows the copy has.
        let more: Vec<_> = (0..100)
            .map(|i| (300 + i as u64, put(format!("k{}", i % 70), 0)))
            .collect();
        store.apply(&more).unwrap();
        store.apply(&[(400, Command::RevokeLease(1))]).unwrap();
        let at = store.current_revision() - 10;
        let compact = Command::Compact(CompactRequest {
            revision: at,
            physical: false,
        });
        store.apply(&[(401, compact)]).unwrap();
        while !store.run_compaction(1 << 20).unwrap() {}
        assert_ne!(rows(&old), rows(&copy));
        let rtxn = old.env.read_txn().unwrap();
        assert!(catch_up(&old, &rtxn, &copy).unwrap() > 0);
        drop(rtxn);
        assert!(
            rows(&old) == rows(&copy),
            "the copy differs after catching up"
        );
        let rtxn = old.env.read_txn().unwrap();
        assert_eq!(catch_up(&old, &rtxn, &copy).unwrap(), 0);
    }
}
