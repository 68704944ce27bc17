//! [`Store::hash_kv`]: etcd's HashKV over the history kept, byte for byte as etcd hashes its
//! `key` bucket, so that the hash moves with compaction as etcd's does and equal histories
//! give etcd's own value.
//!
//! etcd feeds a CRC-32C the bucket name `key`, then each kept history row at or below the
//! requested revision, in revision order: its bucket key (main revision, `_`, sub revision,
//! big-endian, and `t` for a deletion) and its value (the `mvccpb.KeyValue` protobuf; a
//! deletion's holds only the key). Rows at or below the compaction revision count only if
//! they are the key's live state at the requested revision, the rows a compaction there
//! would keep; rows a compaction still has to drop are thereby left out.

use std::collections::BTreeSet;

use crate::codec::{HistoryRecord, Revision};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::tables::KeySpan;

/// Answer of [`Store::hash_kv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    /// etcd's CRC-32C (Castagnoli) of the kept history up to the requested revision.
    pub hash: u32,
    /// The store's current revision (etcd's response header revision).
    pub revision: i64,
    /// The compaction revision, -1 before any compaction (etcd's `compact_revision`).
    pub compact_revision: i64,
}

impl Store {
    /// etcd's HashKV at revision `rev` (0 = current): equal on replicas with the same history.
    /// Fails with [`Error::Compacted`] for a revision at or below the compaction revision and
    /// [`Error::FutureRev`] above the current one, as etcd does. Reads the whole history.
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv> {
        let (p, txn) = self.reader()?;
        let view = p.view();
        let compacted = view.compacted;
        if rev > 0 && rev <= compacted {
            return Err(Error::Compacted);
        }
        if rev > view.current {
            return Err(Error::FutureRev);
        }
        let at = if rev <= 0 { view.current } else { rev };
        // The rows a compaction at `at` would keep, among those at or below `compacted`.
        // Like etcd, filter only when some key is live at `at`.
        let mut keep = BTreeSet::new();
        let mut any_live = false;
        if compacted > 0 {
            p.index.scan(&KeySpan::Range(&[], None), |found| {
                if let Some(r) = txn.b.t.live_rev_at(&txn, &found.entry, at)? {
                    any_live = true;
                    if r.main <= compacted {
                        keep.insert(r);
                    }
                }
                Ok(true)
            })?;
        }
        let mut h = Crc32c::default();
        h.write(b"key");
        let upper = Revision::new(at + 1, 0).to_bytes();
        let bounds = (
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(&upper[..]),
        );
        let mut value = Vec::new();
        for row in txn.b.t.history.range(&txn, &bounds)? {
            let (k, v) = row?;
            let r = Revision::from_bytes(k)?;
            if r.main <= compacted && any_live && !keep.contains(&r) {
                continue;
            }
            let rec = HistoryRecord::decode(v)?;
            h.write(&r.main.to_be_bytes());
            h.write(b"_");
            h.write(&r.sub.to_be_bytes());
            if rec.tombstone {
                h.write(b"t");
            }
            value.clear();
            encode_key_value(&mut value, r, &rec);
            h.write(&value);
        }
        Ok(HashKv {
            hash: h.finish(),
            revision: view.current,
            compact_revision: if compacted > 0 { compacted } else { -1 },
        })
    }
}

/// The `mvccpb.KeyValue` protobuf etcd stores for a history row: fields 1 key, 2
/// create_revision, 3 mod_revision, 4 version, 5 value, 6 lease; zero values omitted.
fn encode_key_value(out: &mut Vec<u8>, rev: Revision, rec: &HistoryRecord) {
    bytes_field(out, 1, rec.key);
    if rec.tombstone {
        return;
    }
    int_field(out, 2, rec.create);
    int_field(out, 3, rev.main);
    int_field(out, 4, rec.version);
    bytes_field(out, 5, rec.value);
    int_field(out, 6, rec.lease);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn int_field(out: &mut Vec<u8>, field: u64, v: i64) {
    if v != 0 {
        varint(out, field << 3);
        // int64 fields: a negative value is its 64-bit two's complement.
        varint(out, v as u64);
    }
}

fn bytes_field(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    if !b.is_empty() {
        varint(out, (field << 3) | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// CRC-32C (Castagnoli), as Go's `crc32.MakeTable(crc32.Castagnoli)`.
pub(crate) struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c(!0)
    }
}

const CASTAGNOLI: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ CASTAGNOLI
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Crc32c {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = TABLE[((self.0 ^ u32::from(*b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    pub(crate) fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        let mut h = Crc32c::default();
        h.write(b"123456789");
        assert_eq!(h.finish(), 0xe306_9283);
    }

    #[test]
    fn key_values_encode_as_protobuf() {
        let rec = HistoryRecord {
            id: 1,
            tombstone: false,
            create: 2,
            version: 1,
            lease: 0,
            prev: Revision::default(),
            key: b"foo",
            value: b"bar",
        };
        let mut out = Vec::new();
        encode_key_value(&mut out, Revision::new(2, 0), &rec);
        assert_eq!(
            out,
            [0x0a, 3, b'f', b'o', b'o', 0x10, 2, 0x18, 2, 0x20, 1, 0x2a, 3, b'b', b'a', b'r']
        );
    }
}
