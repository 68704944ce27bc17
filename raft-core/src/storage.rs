//! The persisted log and hard state, as raft reads them.
//!
//! raft only **reads** through [`Storage`]; the application writes what each
//! [`crate::Ready`] asks it to persist (entries, hard state, snapshot) before
//! calling [`crate::RawNode::advance`]. [`MemStorage`] is an in-memory
//! implementation for tests and examples.

use crate::error::{Result, StorageError};
use crate::message::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

/// Read access to the persisted raft state.
///
/// Indices: the log holds entries `first_index()..=last_index()`; the entry at
/// `first_index() - 1` has been compacted into a snapshot but its term must
/// still be answered by [`Storage::term`]. An empty log has
/// `last_index() == first_index() - 1`.
pub trait Storage {
    /// The persisted hard state and the membership as of `first_index() - 1`
    /// (the snapshot's). Membership changes in the log after that point are
    /// found by raft itself.
    fn initial_state(&self) -> Result<(HardState, ConfState)>;

    /// Entries in `low..high`, at most `max_size` bytes in total
    /// (by [`Entry::size`]) but always at least one entry if the range is not
    /// empty. Fails with [`StorageError::Compacted`] if `low < first_index()`.
    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>>;

    /// The term of entry `index`, for `first_index() - 1 <= index <=
    /// last_index()`.
    fn term(&self, index: u64) -> Result<u64>;

    /// The index of the first entry still in the log.
    fn first_index(&self) -> Result<u64>;

    /// The index of the last entry in the log.
    fn last_index(&self) -> Result<u64>;

    /// The most recent snapshot. `request_index` is the index the leader
    /// needs covered; an implementation still building a fresh snapshot may
    /// answer [`StorageError::SnapshotTemporarilyUnavailable`].
    fn snapshot(&self, request_index: u64) -> Result<Snapshot>;
}

/// An in-memory [`Storage`]: a vector of entries behind a dummy entry that
/// records the index and term of the last compacted entry.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// `entries[0]` is a dummy at the compaction point.
    entries: Vec<Entry>,
}

impl MemStorage {
    /// An empty storage with no membership: a member that will join an
    /// existing cluster and learn the membership from the leader.
    pub fn new() -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            snapshot: Snapshot::default(),
            entries: vec![Entry::default()],
        }
    }

    /// A storage bootstrapped with an initial membership, as every founding
    /// member of a new cluster should be.
    pub fn new_with_conf_state(cs: ConfState) -> MemStorage {
        let mut s = MemStorage::new();
        s.snapshot.metadata.conf_state = cs;
        s
    }

    fn offset(&self) -> u64 {
        self.entries[0].index
    }

    fn last(&self) -> u64 {
        self.offset() + self.entries.len() as u64 - 1
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Persists the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Persists entries, replacing any existing entries from the first new
    /// index on. Entries at or below the compaction point are ignored.
    pub fn append(&mut self, ents: &[Entry]) -> Result<()> {
        if let Some(skip) = self.make_room(ents)? {
            self.entries.extend_from_slice(&ents[skip..]);
        }
        Ok(())
    }

    /// Like [`MemStorage::append`], taking ownership of the entries (no copy).
    pub fn append_owned(&mut self, mut ents: Vec<Entry>) -> Result<()> {
        if let Some(skip) = self.make_room(&ents)? {
            ents.drain(..skip);
            self.entries.append(&mut ents);
        }
        Ok(())
    }

    /// Checks that `ents` continue the log and truncates the log where they start. Returns how
    /// many leading entries are already compacted away, or `None` when all of them are.
    fn make_room(&mut self, ents: &[Entry]) -> Result<Option<usize>> {
        let Some(first_new) = ents.first().map(|e| e.index) else {
            return Ok(None);
        };
        let first = self.offset() + 1;
        let last_new = first_new + ents.len() as u64 - 1;
        if last_new < first {
            return Ok(None);
        }
        if first_new > self.last() + 1 {
            return Err(StorageError::Other(format!(
                "gap: appending {first_new} after last index {}",
                self.last()
            ))
            .into());
        }
        let start = first_new.max(first);
        self.entries.truncate((start - self.offset()) as usize);
        Ok(Some((start - first_new) as usize))
    }

    /// Replaces the whole state with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let meta = &snap.metadata;
        if meta.index <= self.snapshot.metadata.index && !self.snapshot.is_empty() {
            return Err(StorageError::SnapshotOutOfDate.into());
        }
        self.entries = vec![Entry::new(meta.term, meta.index, Vec::new())];
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.snapshot = snap;
        Ok(())
    }

    /// Records a snapshot of the application state as of `index` (which must
    /// be applied, hence in the log), with the membership `cs` as of `index`.
    pub fn create_snapshot(&mut self, index: u64, cs: ConfState, data: Vec<u8>) -> Result<()> {
        if index <= self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate.into());
        }
        if index > self.last() || index < self.offset() {
            return Err(StorageError::Unavailable.into());
        }
        let term = self.entries[(index - self.offset()) as usize].term;
        self.snapshot = Snapshot {
            data,
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state: cs,
            },
        };
        Ok(())
    }

    /// Discards entries up to and including `index`, which must not exceed
    /// the snapshot's index (a member must always be able to send a snapshot
    /// that covers what it discarded).
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.offset() {
            return Ok(());
        }
        if index > self.snapshot.metadata.index {
            return Err(StorageError::Other(format!(
                "compacting to {index} beyond snapshot {}",
                self.snapshot.metadata.index
            ))
            .into());
        }
        let i = (index - self.offset()) as usize;
        let dummy = Entry::new(self.entries[i].term, index, Vec::new());
        self.entries.drain(..=i);
        self.entries.insert(0, dummy);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState)> {
        Ok((self.hard_state, self.snapshot.metadata.conf_state.clone()))
    }

    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>> {
        if low <= self.offset() {
            return Err(StorageError::Compacted.into());
        }
        if high > self.last() + 1 || low > high {
            return Err(StorageError::Unavailable.into());
        }
        let lo = (low - self.offset()) as usize;
        let hi = (high - self.offset()) as usize;
        let ents = &self.entries[lo..hi];
        let n = limit_size(ents, max_size);
        Ok(ents[..n].to_vec())
    }

    fn term(&self, index: u64) -> Result<u64> {
        if index < self.offset() {
            return Err(StorageError::Compacted.into());
        }
        if index > self.last() {
            return Err(StorageError::Unavailable.into());
        }
        Ok(self.entries[(index - self.offset()) as usize].term)
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.offset() + 1)
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64) -> Result<Snapshot> {
        Ok(self.snapshot.clone())
    }
}

/// How many leading entries fit in `max_size` bytes (at least one).
pub(crate) fn limit_size(ents: &[Entry], max_size: u64) -> usize {
    if ents.is_empty() {
        return 0;
    }
    let mut size = ents[0].size();
    let mut n = 1;
    while n < ents.len() {
        size += ents[n].size();
        if size > max_size {
            break;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| Entry::new(term, i, vec![i as u8])).collect()
    }

    #[test]
    fn append_truncates_conflicts() {
        let mut s = MemStorage::new();
        s.append(&ents(1..=5, 1)).unwrap();
        s.append_owned(ents(4..=6, 2)).unwrap();
        assert_eq!(s.last_index().unwrap(), 6);
        assert_eq!(s.term(3).unwrap(), 1);
        assert_eq!(s.term(4).unwrap(), 2);
        assert!(s.append(&ents(9..=9, 2)).is_err());
    }

    #[test]
    fn compact_requires_snapshot_and_keeps_term() {
        let mut s = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1]));
        s.append(&ents(1..=10, 3)).unwrap();
        assert!(s.compact(5).is_err());
        s.create_snapshot(7, ConfState::with_voters(vec![1]), b"sm".to_vec())
            .unwrap();
        s.compact(5).unwrap();
        assert_eq!(s.first_index().unwrap(), 6);
        assert_eq!(s.term(5).unwrap(), 3);
        assert_eq!(
            s.entries(5, 7, u64::MAX),
            Err(Error::Store(StorageError::Compacted))
        );
        assert_eq!(s.entries(6, 11, 0).unwrap().len(), 1);
        assert_eq!(s.entries(6, 11, u64::MAX).unwrap().len(), 5);
        assert_eq!(s.snapshot(0).unwrap().metadata.index, 7);
    }

    #[test]
    fn apply_snapshot_resets_log() {
        let mut s = MemStorage::new();
        s.append(&ents(1..=3, 1)).unwrap();
        let mut snap = Snapshot::default();
        snap.metadata.index = 20;
        snap.metadata.term = 4;
        s.apply_snapshot(snap.clone()).unwrap();
        assert_eq!(s.first_index().unwrap(), 21);
        assert_eq!(s.last_index().unwrap(), 20);
        assert_eq!(s.term(20).unwrap(), 4);
        assert_eq!(
            s.apply_snapshot(snap),
            Err(Error::Store(StorageError::SnapshotOutOfDate))
        );
    }
}
