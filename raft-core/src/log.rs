//! The raft log: persisted entries in [`Storage`] followed by the unstable
//! tail, plus the commit and apply cursors.

use std::cmp;

use crate::error::{Error, Result, StorageError};
use crate::log_unstable::Unstable;
use crate::message::{Entry, Snapshot};
use crate::storage::{limit_size, Storage};

/// The log as one sequence, whatever part of it is persisted.
pub(crate) struct RaftLog<S: Storage> {
    pub(crate) store: S,
    pub(crate) unstable: Unstable,
    /// The highest index known to be committed.
    pub(crate) committed: u64,
    /// The highest index handed to the application for applying.
    pub(crate) applied: u64,
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(store: S) -> Result<RaftLog<S>> {
        let first = store.first_index()?;
        let last = store.last_index()?;
        Ok(RaftLog {
            store,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            applied: first - 1,
        })
    }

    pub(crate) fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(i) => i,
            None => self.store.first_index().expect("storage first_index"),
        }
    }

    pub(crate) fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self.store.last_index().expect("storage last_index"),
        }
    }

    /// The highest index known durable.
    pub(crate) fn persisted(&self) -> u64 {
        cmp::min(self.unstable.offset - 1, self.last_index())
    }

    pub(crate) fn term(&self, index: u64) -> Result<u64> {
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted.into());
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable.into());
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        self.store.term(index)
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.term(self.last_index()).expect("last entry has a term")
    }

    pub(crate) fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).map(|t| t == term).unwrap_or(false)
    }

    /// Whether a log ending at (`last_index`, `term`) is at least as
    /// up-to-date as ours (§5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let our = self.last_term();
        term > our || (term == our && last_index >= self.last_index())
    }

    /// The index of the first entry of `ents` that conflicts with the log or
    /// is new; 0 if all are already present.
    fn find_conflict(&self, ents: &[Entry]) -> u64 {
        for e in ents {
            if !self.match_term(e.index, e.term) {
                return e.index;
            }
        }
        0
    }

    /// The largest index at or below `index` whose term is at most `term`,
    /// with that term; used to skip whole terms when an append is rejected.
    pub(crate) fn find_conflict_by_term(&self, mut index: u64, term: u64) -> (u64, u64) {
        while index > 0 {
            match self.term(index) {
                Ok(t) if t <= term => return (index, t),
                Ok(_) => index -= 1,
                Err(_) => return (index, 0),
            }
        }
        (0, 0)
    }

    /// Appends leader entries following (`index`, `log_term`) if they match
    /// the log. Returns the last new index and the first index written (0 if
    /// nothing changed), or `None` when the log does not match. `ents` must
    /// follow `index` one by one. Entries that would overwrite committed ones
    /// are refused with the index of the first: committed entries never change.
    pub(crate) fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        mut ents: Vec<Entry>,
    ) -> std::result::Result<Option<(u64, u64)>, u64> {
        if !self.match_term(index, log_term) {
            return Ok(None);
        }
        let last_new = index + ents.len() as u64;
        let conflict = self.find_conflict(&ents);
        if conflict != 0 {
            if conflict <= self.committed {
                return Err(conflict);
            }
            let start = (conflict - (index + 1)) as usize;
            ents.drain(..start);
            self.unstable.truncate_and_append_owned(ents);
        }
        self.commit_to(cmp::min(committed, last_new));
        Ok(Some((last_new, conflict)))
    }

    pub(crate) fn append(&mut self, ents: &[Entry]) -> u64 {
        if ents.is_empty() {
            return self.last_index();
        }
        assert!(
            ents[0].index > self.committed,
            "appending at {} would overwrite committed {}",
            ents[0].index,
            self.committed
        );
        self.unstable.truncate_and_append(ents);
        self.last_index()
    }

    pub(crate) fn commit_to(&mut self, to: u64) {
        if to > self.committed {
            assert!(to <= self.last_index(), "commit {to} beyond last index");
            self.committed = to;
        }
    }

    /// Commits `max_index` if it carries `term` (the commit rule of §5.4.2:
    /// only entries of the leader's own term are committed by counting).
    pub(crate) fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.term(max_index).ok() == Some(term) {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub(crate) fn applied_to(&mut self, index: u64) {
        if index > self.applied {
            assert!(index <= self.committed, "applied {index} beyond commit");
            self.applied = index;
        }
    }

    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    pub(crate) fn restore(&mut self, snap: Snapshot) {
        self.committed = snap.metadata.index;
        self.unstable.restore(snap);
    }

    /// Entries from `lo` to the end, limited to `max_size` bytes.
    pub(crate) fn entries(&self, lo: u64, max_size: u64) -> Result<Vec<Entry>> {
        let last = self.last_index();
        if lo > last {
            return Ok(Vec::new());
        }
        self.slice(lo, last + 1, max_size)
    }

    /// Entries in `lo..hi`, limited to `max_size` bytes (at least one).
    pub(crate) fn slice(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        if lo < self.first_index() {
            return Err(Error::Store(StorageError::Compacted));
        }
        if hi > self.last_index() + 1 {
            return Err(Error::Store(StorageError::Unavailable));
        }
        let offset = self.unstable.offset;
        let mut ents = Vec::new();
        if lo < offset {
            let stored_hi = cmp::min(hi, offset);
            ents = self.store.entries(lo, stored_hi, max_size)?;
            if (ents.len() as u64) < stored_hi - lo {
                return Ok(ents);
            }
        }
        if hi > offset {
            let tail = self.unstable.slice(cmp::max(lo, offset), hi);
            if ents.is_empty() {
                let n = limit_size(tail, max_size);
                return Ok(tail[..n].to_vec());
            }
            let mut size: u64 = ents.iter().map(Entry::size).sum();
            for e in tail {
                size += e.size();
                if size > max_size {
                    break;
                }
                ents.push(e.clone());
            }
        }
        Ok(ents)
    }

    /// The committed, persisted entries not yet handed out for applying.
    pub(crate) fn next_committed_entries(&self, max_size: u64) -> Vec<Entry> {
        let (lo, hi) = self.committed_range();
        if lo >= hi {
            return Vec::new();
        }
        self.slice(lo, hi, max_size)
            .expect("committed entries are in the log")
    }

    pub(crate) fn has_next_committed_entries(&self) -> bool {
        let (lo, hi) = self.committed_range();
        lo < hi
    }

    fn committed_range(&self) -> (u64, u64) {
        if self.unstable.snapshot.is_some() {
            return (0, 0);
        }
        let lo = cmp::max(self.applied + 1, self.first_index());
        let hi = cmp::min(self.committed, self.persisted()) + 1;
        (lo, hi)
    }

    pub(crate) fn snapshot(&self, request_index: u64) -> Result<Snapshot> {
        if let Some(s) = &self.unstable.snapshot {
            return Ok(s.clone());
        }
        self.store.snapshot(request_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn log_with(terms: &[u64]) -> RaftLog<MemStorage> {
        let mut s = MemStorage::new();
        let ents: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry::new(t, i as u64 + 1, vec![]))
            .collect();
        s.append(&ents).unwrap();
        RaftLog::new(s).unwrap()
    }

    #[test]
    fn find_conflict_by_term_skips_terms() {
        let l = log_with(&[1, 1, 2, 2, 5, 5, 5]);
        assert_eq!(l.find_conflict_by_term(7, 4), (4, 2));
        assert_eq!(l.find_conflict_by_term(7, 5), (7, 5));
        assert_eq!(l.find_conflict_by_term(4, 1), (2, 1));
        assert_eq!(l.find_conflict_by_term(4, 0), (0, 0));
    }

    #[test]
    fn maybe_append_truncates_only_conflicts() {
        let mut l = log_with(&[1, 1, 1]);
        let ents = vec![Entry::new(1, 2, vec![]), Entry::new(2, 3, vec![])];
        assert_eq!(l.maybe_append(1, 1, 3, ents), Ok(Some((3, 3))));
        assert_eq!(l.term(3).unwrap(), 2);
        assert_eq!(l.committed, 3);
        assert_eq!(l.persisted(), 2);
        assert_eq!(l.maybe_append(3, 1, 3, Vec::new()), Ok(None));
    }

    #[test]
    fn slice_spans_storage_and_unstable() {
        let mut l = log_with(&[1, 1]);
        l.append(&[Entry::new(2, 3, vec![]), Entry::new(2, 4, vec![])]);
        let all = l.slice(1, 5, u64::MAX).unwrap();
        assert_eq!(
            all.iter().map(|e| e.index).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(l.slice(1, 5, 50).unwrap().len(), 2);
        assert_eq!(l.slice(3, 5, 0).unwrap().len(), 1);
    }

    #[test]
    fn committed_entries_wait_for_persistence() {
        let mut l = log_with(&[1]);
        l.append(&[Entry::new(1, 2, vec![])]);
        l.commit_to(2);
        assert_eq!(l.next_committed_entries(u64::MAX).len(), 1);
        l.store.append(&[Entry::new(1, 2, vec![])]).unwrap();
        l.stable_to(2, 1);
        assert_eq!(l.next_committed_entries(u64::MAX).len(), 2);
    }
}
