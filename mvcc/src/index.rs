//! The key index: every user key's latest state, in memory, ordered by key.
//!
//! It is a persistent (structurally shared) B-tree: the writer clones the published index in
//! O(1) at the start of a batch, changes its own copy, and publishes it after the batch
//! commits, while readers keep scanning the version they started with. Nothing of it is on
//! disk: [`KeyIndex::rebuild`] replays the history table at open, which holds every fact the
//! index records.

use std::ops::Bound;
use std::sync::Arc;

use heed::RoTxn;
use imbl::OrdMap;

use crate::codec::{corrupt, HistoryRecord, Revision};
use crate::error::Result;
use crate::tables::{KeySpan, Tables};

/// Latest state of one user key: which key generation series it is (`id`), where its
/// latest change is in history, and the live generation's create revision, version and
/// lease. Those three are in the history row too; holding them here (24 of the entry's 48
/// bytes) lets a put that returns no previous value write the next change without reading
/// the latest row, which was half the cost of applying a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyEntry {
    /// Stable id of the key while it has revisions (in each of its history rows).
    id: u64,
    /// Main revision of the latest change.
    main: i64,
    /// Sub revision of the latest change, with [`TOMBSTONE`] set when it is a deletion.
    sub: u32,
    /// 0 after a deletion, as are `version` and `lease`.
    create: i64,
    version: i64,
    lease: i64,
}

const TOMBSTONE: u32 = 1 << 31;

fn sub_of(latest: Revision) -> Result<u32> {
    // A request would need 2^31 changes to overflow; no request fits in a message.
    u32::try_from(latest.sub)
        .ok()
        .filter(|s| s & TOMBSTONE == 0)
        .ok_or_else(|| corrupt("sub revision out of range"))
}

impl KeyEntry {
    /// The entry of a live key whose latest change, a put, is at `latest`.
    pub fn live(
        id: u64,
        latest: Revision,
        create: i64,
        version: i64,
        lease: i64,
    ) -> Result<KeyEntry> {
        Ok(KeyEntry {
            id,
            main: latest.main,
            sub: sub_of(latest)?,
            create,
            version,
            lease,
        })
    }

    /// The entry of a key whose latest change, a deletion, is at `latest`.
    pub fn deleted(id: u64, latest: Revision) -> Result<KeyEntry> {
        Ok(KeyEntry {
            id,
            main: latest.main,
            sub: sub_of(latest)? | TOMBSTONE,
            create: 0,
            version: 0,
            lease: 0,
        })
    }

    /// The state a history row leaves its key in.
    pub fn of_change(rev: Revision, r: &HistoryRecord) -> Result<KeyEntry> {
        if r.tombstone {
            KeyEntry::deleted(r.id, rev)
        } else {
            KeyEntry::live(r.id, rev, r.create, r.version, r.lease)
        }
    }

    /// Create revision of the live generation.
    pub fn create(&self) -> i64 {
        self.create
    }

    /// Version of the latest put.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Lease of the latest put.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Revision of the latest change.
    pub fn latest(&self) -> Revision {
        Revision::new(self.main, i64::from(self.sub & !TOMBSTONE))
    }

    /// Whether the latest change is a deletion.
    pub fn tombstone(&self) -> bool {
        self.sub & TOMBSTONE != 0
    }
}

/// Longest key held inline in an [`IndexKey`].
const INLINE_KEY: usize = 22;

/// A user key as the index holds it. Copying a B-tree node on write copies its keys: short
/// keys are inline so that this allocates nothing, long ones are shared.
#[derive(Clone)]
pub(crate) enum IndexKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Shared(Arc<[u8]>),
}

impl IndexKey {
    fn new(key: &[u8]) -> IndexKey {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            IndexKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            IndexKey::Shared(Arc::from(key))
        }
    }
}

impl std::ops::Deref for IndexKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IndexKey::Shared(k) => k,
        }
    }
}

impl std::borrow::Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &**self)
    }
}

/// A user key found in the index.
#[derive(Clone, Debug)]
pub(crate) struct FoundKey {
    pub key: IndexKey,
    pub entry: KeyEntry,
}

/// User key -> latest state, for every key that has history.
#[derive(Clone, Default)]
pub(crate) struct KeyIndex {
    map: OrdMap<IndexKey, KeyEntry>,
}

impl KeyIndex {
    /// Replays every history row, oldest first; the last change of each key wins.
    pub fn rebuild(t: &Tables, txn: &RoTxn) -> Result<KeyIndex> {
        let mut index = KeyIndex::default();
        for item in t.history.iter(txn)? {
            let (k, v) = item?;
            let rev = Revision::from_bytes(k)?;
            let rec = HistoryRecord::decode(v)?;
            index.set(rec.key, KeyEntry::of_change(rev, &rec)?);
        }
        Ok(index)
    }

    /// Number of keys, deleted ones included until compaction forgets them.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Finds a user key's entry.
    pub fn lookup(&self, key: &[u8]) -> Option<FoundKey> {
        self.map.get_key_value(key).map(|(k, e)| FoundKey {
            key: k.clone(),
            entry: *e,
        })
    }

    /// Records a key's new latest state.
    pub fn set(&mut self, key: &[u8], entry: KeyEntry) {
        if let Some(e) = self.map.get_mut(key) {
            *e = entry;
        } else {
            self.map.insert(IndexKey::new(key), entry);
        }
    }

    /// Forgets a key (compaction dropped its last deletion).
    pub fn remove(&mut self, key: &[u8]) {
        self.map.remove(key);
    }

    /// Calls `f` for every key of the span in byte order until it returns `false`.
    pub fn scan(&self, span: &KeySpan, mut f: impl FnMut(FoundKey) -> Result<bool>) -> Result<()> {
        let (start, end) = match span {
            KeySpan::Single(k) => {
                if let Some(found) = self.lookup(k) {
                    f(found)?;
                }
                return Ok(());
            }
            KeySpan::Range(s, e) => (*s, *e),
        };
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(start), upper);
        for (k, e) in self.map.range::<_, [u8]>(bounds) {
            let found = FoundKey {
                key: k.clone(),
                entry: *e,
            };
            if !f(found)? {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(main: i64) -> KeyEntry {
        KeyEntry::live(main as u64, Revision::new(main, 0), main, 1, 0).unwrap()
    }

    #[test]
    fn entries_pack_the_tombstone_flag_with_the_sub_revision() {
        let e = KeyEntry::deleted(9, Revision::new(5, 3)).unwrap();
        assert_eq!(
            (e.id(), e.latest(), e.tombstone()),
            (9, Revision::new(5, 3), true)
        );
        let e = KeyEntry::live(9, Revision::new(5, (1 << 31) - 1), 4, 2, 7).unwrap();
        assert_eq!(e.latest().sub, (1 << 31) - 1);
        assert!(!e.tombstone());
        assert_eq!((e.create(), e.version(), e.lease()), (4, 2, 7));
        assert!(KeyEntry::live(9, Revision::new(5, 1 << 31), 4, 2, 7).is_err());
        assert!(KeyEntry::deleted(9, Revision::new(5, -1)).is_err());
        assert_eq!(std::mem::size_of::<KeyEntry>(), 48);
    }

    fn keys(index: &KeyIndex, span: KeySpan) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        index
            .scan(&span, |f| {
                out.push(f.key.to_vec());
                Ok(true)
            })
            .unwrap();
        out
    }

    #[test]
    fn scans_in_byte_order_within_the_span() {
        let mut index = KeyIndex::default();
        for (i, k) in [&b"b"[..], b"a", b"c", b"ab", &[0xff; 600]]
            .iter()
            .enumerate()
        {
            index.set(k, entry(i as i64 + 2));
        }
        assert_eq!(
            keys(&index, KeySpan::Range(b"a", Some(b"c"))),
            vec![b"a".to_vec(), b"ab".to_vec(), b"b".to_vec()]
        );
        assert_eq!(keys(&index, KeySpan::Range(b"c", None)).len(), 2);
        assert_eq!(keys(&index, KeySpan::Range(b"", None)).len(), 5);
        assert!(keys(&index, KeySpan::Range(b"c", Some(b"a"))).is_empty());
        assert_eq!(keys(&index, KeySpan::Single(b"ab")), vec![b"ab".to_vec()]);
    }

    #[test]
    fn keys_order_as_bytes_whether_inline_or_shared() {
        let long = [b'a'; INLINE_KEY + 1];
        let short = [b'a'; INLINE_KEY];
        let (l, s) = (IndexKey::new(&long), IndexKey::new(&short));
        assert!(matches!(l, IndexKey::Shared(_)) && matches!(s, IndexKey::Inline { .. }));
        assert!(s < l && *l == long[..] && *s == short[..]);
        assert!(IndexKey::new(b"b") > l);
        assert_eq!(std::mem::size_of::<IndexKey>(), 24);
    }

    #[test]
    fn a_clone_is_unaffected_by_later_changes() {
        let mut index = KeyIndex::default();
        index.set(b"k", entry(2));
        let published = index.clone();
        index.set(b"k", entry(3));
        index.set(b"new", entry(4));
        index.remove(b"k");
        assert_eq!(published.lookup(b"k").unwrap().entry, entry(2));
        assert!(published.lookup(b"new").is_none());
        assert!(index.lookup(b"k").is_none());
        assert_eq!(index.len(), 1);
    }
}
