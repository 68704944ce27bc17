//! The LMDB tables and the key-space primitives built on them: finding a user key, walking a
//! key range in byte order, and resolving a key's state at a revision.
//!
//! Tables (all `Bytes -> Bytes`):
//! - `meta`: named counters (see `codec::META_*`).
//! - `keys`: index key (see [`codec::index_key`]) -> [`KeyEntry`] (+ full key for long keys).
//! - `history`: revision -> [`HistoryRecord`], the change log (values live only here).
//! - `leases`: lease id ++ index key -> user key, for keys whose latest state has a lease.
//!
//! Long keys (over [`KEY_PREFIX_MAX`] bytes) share one index prefix when their first
//! `KEY_PREFIX_MAX` bytes are equal; such a group is contiguous in the `keys` table and is
//! sorted by full key in memory while scanning, so ranges still come out in byte order.

use std::ops::Bound;

use heed::types::Bytes;
use heed::{Database, RoTxn};

use crate::codec::{
    self, corrupt, KeyEntry, RevEntry, Revision, KEY_PREFIX_MAX, LONG_INDEX_KEY_LEN,
};
use crate::error::Result;
use crate::types::KeyValue;

pub(crate) type Table = Database<Bytes, Bytes>;

/// Handles of the store's tables.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub meta: Table,
    pub keys: Table,
    pub history: Table,
    pub leases: Table,
}

/// A user key found in the `keys` table.
#[derive(Clone, Debug)]
pub(crate) struct FoundKey {
    pub key: Vec<u8>,
    pub index_key: Vec<u8>,
    pub entry: KeyEntry,
}

/// End of a key range: `None` means unbounded.
pub(crate) type RangeEnd<'a> = Option<&'a [u8]>;

/// Turns etcd's `(key, range_end)` convention into `[start, end)`: `Single` for an empty
/// `range_end`, an unbounded end for `[0]`.
pub(crate) enum KeySpan<'a> {
    Single(&'a [u8]),
    Range(&'a [u8], RangeEnd<'a>),
}

impl<'a> KeySpan<'a> {
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        if range_end.is_empty() {
            KeySpan::Single(key)
        } else if range_end == [0] {
            KeySpan::Range(key, None)
        } else {
            KeySpan::Range(key, Some(range_end))
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeySpan::Single(s) => *s == k,
            KeySpan::Range(s, e) => k >= *s && e.is_none_or(|e| k < e),
        }
    }
}

impl Tables {
    /// Reads an `i64` counter from the meta table (0 when absent).
    pub fn meta_i64(&self, txn: &RoTxn, name: &[u8]) -> Result<i64> {
        match self.meta.get(txn, name)? {
            Some(b) => codec::be_i64(b),
            None => Ok(0),
        }
    }

    /// Reads a `u64` counter from the meta table (0 when absent).
    pub fn meta_u64(&self, txn: &RoTxn, name: &[u8]) -> Result<u64> {
        match self.meta.get(txn, name)? {
            Some(b) => codec::be_u64(b),
            None => Ok(0),
        }
    }

    /// Finds a user key's entry.
    pub fn lookup(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<FoundKey>> {
        if key.is_empty() {
            return Ok(None);
        }
        if key.len() <= KEY_PREFIX_MAX {
            return match self.keys.get(txn, key)? {
                Some(v) => {
                    let (entry, _) = KeyEntry::decode(v)?;
                    Ok(Some(FoundKey {
                        key: key.to_vec(),
                        index_key: key.to_vec(),
                        entry,
                    }))
                }
                None => Ok(None),
            };
        }
        for item in self.keys.prefix_iter(txn, &key[..KEY_PREFIX_MAX])? {
            let (ik, v) = item?;
            if ik.len() != LONG_INDEX_KEY_LEN {
                continue;
            }
            let (entry, full) = KeyEntry::decode(v)?;
            if full == key {
                return Ok(Some(FoundKey {
                    key: key.to_vec(),
                    index_key: ik.to_vec(),
                    entry,
                }));
            }
        }
        Ok(None)
    }

    /// Calls `f` for every key entry in the span, in byte order of the user keys, until it
    /// returns `false`.
    pub fn scan(
        &self,
        txn: &RoTxn,
        span: &KeySpan,
        mut f: impl FnMut(FoundKey) -> Result<bool>,
    ) -> Result<()> {
        let (start, end) = match span {
            KeySpan::Single(k) => {
                if let Some(found) = self.lookup(txn, k)? {
                    f(found)?;
                }
                return Ok(());
            }
            KeySpan::Range(s, e) => (*s, *e),
        };
        if let Some(e) = end {
            if e <= start {
                return Ok(());
            }
        }
        let seek = &start[..start.len().min(KEY_PREFIX_MAX)];
        // LMDB rejects empty keys, even as a seek position.
        let lower = if seek.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(seek)
        };
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (lower, Bound::Unbounded);
        let mut group: Vec<FoundKey> = Vec::new();
        // Emits a group (one short key, or long keys sharing an index prefix); returns false
        // to stop the scan.
        let mut flush = |group: &mut Vec<FoundKey>, lower: &[u8]| -> Result<bool> {
            if end.is_some_and(|e| lower >= e) {
                group.clear();
                return Ok(false);
            }
            group.sort_by(|a, b| a.key.cmp(&b.key));
            for found in group.drain(..) {
                if found.key.as_slice() < start {
                    continue;
                }
                if end.is_some_and(|e| found.key.as_slice() >= e) {
                    return Ok(false);
                }
                if !f(found)? {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        let mut group_prefix: Vec<u8> = Vec::new();
        for item in self.keys.range(txn, &bounds)? {
            let (ik, v) = item?;
            let (entry, full) = KeyEntry::decode(v)?;
            if ik.len() <= KEY_PREFIX_MAX {
                if !group.is_empty() {
                    let prefix = std::mem::take(&mut group_prefix);
                    if !flush(&mut group, &prefix)? {
                        return Ok(());
                    }
                }
                let found = FoundKey {
                    key: ik.to_vec(),
                    index_key: ik.to_vec(),
                    entry,
                };
                let mut single = vec![found];
                if !flush(&mut single, ik)? {
                    return Ok(());
                }
            } else {
                if ik.len() != LONG_INDEX_KEY_LEN || full.len() <= KEY_PREFIX_MAX {
                    return Err(corrupt("long key index entry"));
                }
                let prefix = &ik[..KEY_PREFIX_MAX];
                if !group.is_empty() && group_prefix != prefix {
                    let p = std::mem::take(&mut group_prefix);
                    if !flush(&mut group, &p)? {
                        return Ok(());
                    }
                }
                if group.is_empty() {
                    group_prefix = prefix.to_vec();
                }
                group.push(FoundKey {
                    key: full.to_vec(),
                    index_key: ik.to_vec(),
                    entry,
                });
            }
        }
        if !group.is_empty() {
            let p = std::mem::take(&mut group_prefix);
            flush(&mut group, &p)?;
        }
        Ok(())
    }

    /// The key's revision and metadata at main revision `rev`, or `None` when the key was not
    /// live then (never written, deleted, or its revisions were compacted away).
    pub fn state_at(
        &self,
        txn: &RoTxn,
        entry: &KeyEntry,
        rev: i64,
    ) -> Result<Option<(Revision, RevEntry)>> {
        if entry.latest.main <= rev {
            if entry.tombstone {
                return Ok(None);
            }
            let meta = RevEntry {
                tombstone: false,
                create: entry.create,
                version: entry.version,
                lease: entry.lease,
            };
            return Ok(Some((entry.latest, meta)));
        }
        // Walk the key's chain of changes back from its latest one: each history row points to
        // the key's previous revision. The rows passed are newer than `rev`, which no
        // compaction that still allows reading at `rev` has removed.
        let Some((_, mut prev)) = self.change_at(txn, entry.latest)? else {
            return Ok(None);
        };
        while prev != Revision::default() {
            let row = self.change_at(txn, prev)?;
            if prev.main <= rev {
                // The newest change at or before `rev`. A compacted row was a deletion or was
                // superseded at or before the compaction: the key was not live at `rev`.
                return Ok(row.filter(|(m, _)| !m.tombstone).map(|(m, _)| (prev, m)));
            }
            match row {
                Some((_, p)) => prev = p,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// What the history row at `rev` says of its key, and the key's revision before it, if
    /// the row is still stored.
    pub fn change_at(&self, txn: &RoTxn, rev: Revision) -> Result<Option<(RevEntry, Revision)>> {
        let Some(b) = self.history.get(txn, &rev.to_bytes())? else {
            return Ok(None);
        };
        let r = codec::HistoryRecord::decode(b)?;
        let meta = RevEntry {
            tombstone: r.tombstone,
            create: r.create,
            version: r.version,
            lease: r.lease,
        };
        Ok(Some((meta, r.prev)))
    }

    /// Value stored at a revision.
    pub fn value_at(&self, txn: &RoTxn, rev: Revision) -> Result<Vec<u8>> {
        let b = self
            .history
            .get(txn, &rev.to_bytes())?
            .ok_or_else(|| corrupt("revision missing from history"))?;
        Ok(codec::HistoryRecord::decode(b)?.value.to_vec())
    }

    /// The key-value pair of `found` at main revision `rev`, if live; the value is read only
    /// when `with_value`.
    pub fn kv_at(
        &self,
        txn: &RoTxn,
        found: &FoundKey,
        rev: i64,
        with_value: bool,
    ) -> Result<Option<KeyValue>> {
        let Some((r, meta)) = self.state_at(txn, &found.entry, rev)? else {
            return Ok(None);
        };
        let value = if with_value {
            self.value_at(txn, r)?
        } else {
            Vec::new()
        };
        Ok(Some(KeyValue {
            key: found.key.clone(),
            create_revision: meta.create,
            mod_revision: r.main,
            version: meta.version,
            value,
            lease: meta.lease,
        }))
    }

    /// The latest live pair of a key, with its value.
    pub fn current_kv(&self, txn: &RoTxn, found: &FoundKey) -> Result<Option<KeyValue>> {
        if found.entry.tombstone {
            return Ok(None);
        }
        self.kv_at(txn, found, found.entry.latest.main, true)
    }
}

impl Tables {
    /// User keys whose latest state carries `lease`, in index order.
    pub fn leased_keys(&self, txn: &RoTxn, lease: i64) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for item in self.leases.prefix_iter(txn, &lease.to_be_bytes())? {
            let (_, v) = item?;
            keys.push(v.to_vec());
        }
        Ok(keys)
    }
}
