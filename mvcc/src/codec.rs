//! Byte layouts of the LMDB tables. Every decoder checks lengths and returns
//! [`Error::Corrupt`] instead of panicking on bad data.
//!
//! Integers are big-endian so that LMDB's byte order is numeric order. Revisions, lease ids
//! and key ids are never negative where they form part of a key.

use crate::error::{Error, Result};

/// A point in the store's history: `main` counts write requests, `sub` orders the changes
/// inside one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() != 16 {
            return Err(corrupt("revision key length"));
        }
        Ok(Revision {
            main: be_i64(&b[..8])?,
            sub: be_i64(&b[8..])?,
        })
    }
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_string())
}

pub(crate) fn be_i64(b: &[u8]) -> Result<i64> {
    let a: [u8; 8] = b.try_into().map_err(|_| corrupt("integer length"))?;
    Ok(i64::from_be_bytes(a))
}

pub(crate) fn be_u64(b: &[u8]) -> Result<u64> {
    let a: [u8; 8] = b.try_into().map_err(|_| corrupt("integer length"))?;
    Ok(u64::from_be_bytes(a))
}

/// A little cursor over a byte slice for decoding.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(corrupt("record too short"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn i64(&mut self) -> Result<i64> {
        be_i64(self.take(8)?)
    }
    fn u64(&mut self) -> Result<u64> {
        be_u64(self.take(8)?)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let a: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| corrupt("integer length"))?;
        Ok(u32::from_be_bytes(a))
    }
}

// ---------------------------------------------------------------------------------------------
// history table: revision -> HistoryRecord

/// One change as stored in the history table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HistoryRecord<'a> {
    pub id: u64,
    pub tombstone: bool,
    pub create: i64,
    pub version: i64,
    pub lease: i64,
    /// Previous revision of the same key (zero when none): events' `prev_kv`, and the chain
    /// that reads at a past revision and compaction walk back.
    pub prev: Revision,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> HistoryRecord<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 8 * 6 + 4 + self.key.len() + self.value.len());
        v.push(self.tombstone as u8);
        v.extend_from_slice(&self.id.to_be_bytes());
        v.extend_from_slice(&self.create.to_be_bytes());
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.lease.to_be_bytes());
        v.extend_from_slice(&self.prev.to_bytes());
        v.extend_from_slice(&(self.key.len() as u32).to_be_bytes());
        v.extend_from_slice(self.key);
        v.extend_from_slice(self.value);
        v
    }

    pub fn decode(b: &'a [u8]) -> Result<HistoryRecord<'a>> {
        let mut r = Reader { b };
        let tombstone = r.u8()? != 0;
        let id = r.u64()?;
        let create = r.i64()?;
        let version = r.i64()?;
        let lease = r.i64()?;
        let prev = Revision::new(r.i64()?, r.i64()?);
        let klen = r.u32()? as usize;
        let key = r.take(klen)?;
        Ok(HistoryRecord {
            id,
            tombstone,
            create,
            version,
            lease,
            prev,
            key,
            value: r.b,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// leases table: lease id ++ key id -> user key

pub(crate) fn lease_key(lease: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&lease.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

// ---------------------------------------------------------------------------------------------
// meta table

pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_REVISION: &[u8] = b"revision";
pub(crate) const META_COMPACTED: &[u8] = b"compacted";
pub(crate) const META_APPLIED: &[u8] = b"applied_index";
pub(crate) const META_NEXT_KEY_ID: &[u8] = b"next_key_id";
/// Position (a 16-byte revision) of the compaction walk in the history table.
pub(crate) const META_COMPACT_CURSOR: &[u8] = b"compact_cursor";
/// Revision the compaction walk works towards.
pub(crate) const META_COMPACT_TARGET: &[u8] = b"compact_target";

/// Version of this layout, checked at open. 2: no `revs` table; reads at a past revision
/// follow the history rows' `prev` chain. 3: no `keys` table (the key index is rebuilt in
/// memory from history at open); `leases` rows are keyed by key id.
pub(crate) const FORMAT_VERSION: u64 = 3;

/// The previous layout, which [`crate::Store::open`] upgrades in place.
pub(crate) const FORMAT_WITH_KEYS_TABLE: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_bytes_order_is_numeric_order() {
        let a = Revision::new(1, 300);
        let b = Revision::new(2, 0);
        assert!(a.to_bytes() < b.to_bytes());
        assert_eq!(Revision::from_bytes(&a.to_bytes()).unwrap(), a);
        assert!(Revision::from_bytes(&[1, 2]).is_err());
    }

    #[test]
    fn history_record_round_trips_and_rejects_truncation() {
        let r = HistoryRecord {
            id: 7,
            tombstone: false,
            create: 2,
            version: 3,
            lease: 9,
            prev: Revision::new(4, 1),
            key: b"k",
            value: b"value",
        };
        let b = r.encode();
        assert_eq!(HistoryRecord::decode(&b).unwrap(), r);
        assert!(HistoryRecord::decode(&b[..20]).is_err());
        let mut bad = b.clone();
        // Claim a key longer than the record.
        bad[49..53].copy_from_slice(&1000u32.to_be_bytes());
        assert!(HistoryRecord::decode(&bad).is_err());
    }
}
