//! The LMDB tables and the primitives built on them: resolving a key's state at a revision by
//! walking its chain of history rows.
//!
//! Tables (all `Bytes -> Bytes`):
//! - `meta`: named counters (see `codec::META_*`).
//! - `history`: revision -> [`codec::HistoryRecord`], the change log (values live only here).
//! - `leases`: lease id ++ key id -> user key, for keys whose latest state has a lease.
//! - `lease_grants`: lease id -> granted TTL in seconds, for every lease that exists.

use heed::types::Bytes;
use heed::{Database, PutFlags, RoTxn, RwTxn};

use crate::codec::{self, corrupt, Revision};
use crate::error::Result;
use crate::index::{FoundKey, KeyEntry};
use crate::types::KeyValue;

pub(crate) type Table = Database<Bytes, Bytes>;

/// Handles of the store's tables.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub meta: Table,
    pub history: Table,
    pub leases: Table,
    pub lease_grants: Table,
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

    /// The revision of the key's change in effect at main revision `rev`, or `None` when the
    /// key was not live then (never written, deleted, or its revisions were compacted away).
    /// Reads no history when the latest change is at or before `rev`.
    pub fn live_rev_at(&self, txn: &RoTxn, entry: &KeyEntry, rev: i64) -> Result<Option<Revision>> {
        let latest = entry.latest();
        if latest.main <= rev {
            return Ok((!entry.tombstone()).then_some(latest));
        }
        // Walk the key's chain of changes back from its latest one: each history row points to
        // the key's previous revision. The rows passed are newer than `rev`, which no
        // compaction that still allows reading at `rev` has removed.
        let Some((_, mut prev)) = self.change_at(txn, latest)? else {
            return Ok(None);
        };
        while prev != Revision::default() {
            let row = self.change_at(txn, prev)?;
            if prev.main <= rev {
                // The newest change at or before `rev`. A compacted row was a deletion or was
                // superseded at or before the compaction: the key was not live at `rev`.
                return Ok(row.filter(|(tombstone, _)| !tombstone).map(|_| prev));
            }
            match row {
                Some((_, p)) => prev = p,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Whether the history row at `rev` is a deletion, and the key's revision before it, if
    /// the row is still stored.
    pub fn change_at(&self, txn: &RoTxn, rev: Revision) -> Result<Option<(bool, Revision)>> {
        let Some(b) = self.history.get(txn, &rev.to_bytes())? else {
            return Ok(None);
        };
        let r = codec::HistoryRecord::decode(b)?;
        Ok(Some((r.tombstone, r.prev)))
    }

    /// The key-value pair the history row at `rev` wrote; the value is copied only when
    /// `with_value`.
    pub fn kv_of_row(
        &self,
        txn: &RoTxn,
        key: &[u8],
        rev: Revision,
        with_value: bool,
    ) -> Result<KeyValue> {
        let b = self
            .history
            .get(txn, &rev.to_bytes())?
            .ok_or_else(|| corrupt("revision missing from history"))?;
        let r = codec::HistoryRecord::decode(b)?;
        Ok(KeyValue {
            key: key.to_vec(),
            create_revision: r.create,
            mod_revision: rev.main,
            version: r.version,
            value: if with_value {
                r.value.to_vec()
            } else {
                Vec::new()
            },
            lease: r.lease,
        })
    }

    /// The key-value pair of `found` at main revision `rev`, if live; the value is copied
    /// only when `with_value`.
    pub fn kv_at(
        &self,
        txn: &RoTxn,
        found: &FoundKey,
        rev: i64,
        with_value: bool,
    ) -> Result<Option<KeyValue>> {
        match self.live_rev_at(txn, &found.entry, rev)? {
            Some(r) => Ok(Some(self.kv_of_row(txn, &found.key, r, with_value)?)),
            None => Ok(None),
        }
    }

    /// The latest live pair of a key, with its value.
    pub fn current_kv(&self, txn: &RoTxn, found: &FoundKey) -> Result<Option<KeyValue>> {
        if found.entry.tombstone() {
            return Ok(None);
        }
        Ok(Some(self.kv_of_row(
            txn,
            &found.key,
            found.entry.latest(),
            true,
        )?))
    }
}

/// Writes a row whose key is, normally, above every key of `table` (history rows, keyed by
/// revision). LMDB's append fills each page before starting the next, where a plain put
/// splits the full last page in half and leaves every page of an ever-growing table half
/// empty. A key that is not above the last one is put the ordinary way.
pub(crate) fn append(table: Table, txn: &mut RwTxn, key: &[u8], value: &[u8]) -> Result<()> {
    match table.put_with_flags(txn, PutFlags::APPEND, key, value) {
        Err(heed::Error::Mdb(heed::MdbError::KeyExist)) => Ok(table.put(txn, key, value)?),
        other => Ok(other?),
    }
}

impl Tables {
    /// User keys whose latest state carries `lease`, in key id order.
    pub fn leased_keys(&self, txn: &RoTxn, lease: i64) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for item in self.leases.prefix_iter(txn, &lease.to_be_bytes())? {
            let (_, v) = item?;
            keys.push(v.to_vec());
        }
        Ok(keys)
    }
}
