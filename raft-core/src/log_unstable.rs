//! Entries and a snapshot that raft holds in memory until the application
//! reports them persisted.

use crate::message::{Entry, Snapshot};

/// The not-yet-persisted tail of the log. `entries[i]` has index
/// `offset + i`; a pending snapshot, if any, ends at `offset - 1`.
#[derive(Debug, Default)]
pub(crate) struct Unstable {
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) offset: u64,
}

impl Unstable {
    pub(crate) fn new(offset: u64) -> Unstable {
        Unstable {
            snapshot: None,
            entries: Vec::new(),
            offset,
        }
    }

    pub(crate) fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.metadata.index + 1)
    }

    pub(crate) fn maybe_last_index(&self) -> Option<u64> {
        match self.entries.last() {
            Some(e) => Some(e.index),
            None => self.snapshot.as_ref().map(|s| s.metadata.index),
        }
    }

    pub(crate) fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let s = self.snapshot.as_ref()?;
            return (s.metadata.index == index).then_some(s.metadata.term);
        }
        self.entries
            .get((index - self.offset) as usize)
            .map(|e| e.term)
    }

    /// The entries up to (`index`, `term`) reached stable storage.
    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        if index < self.offset || self.maybe_term(index) != Some(term) {
            // A newer append replaced what was persisted; nothing to drop.
            return;
        }
        self.entries.drain(..=(index - self.offset) as usize);
        self.offset = index + 1;
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().map(|s| s.metadata.index) == Some(index) {
            self.snapshot = None;
        }
    }

    pub(crate) fn restore(&mut self, snap: Snapshot) {
        self.entries.clear();
        self.offset = snap.metadata.index + 1;
        self.snapshot = Some(snap);
    }

    pub(crate) fn truncate_and_append(&mut self, ents: &[Entry]) {
        let after = ents[0].index;
        if after == self.offset + self.entries.len() as u64 {
            self.entries.extend_from_slice(ents);
        } else if after <= self.offset {
            // Replaces persisted entries too: they become unstable again.
            self.offset = after;
            self.entries.clear();
            self.entries.extend_from_slice(ents);
        } else {
            self.entries.truncate((after - self.offset) as usize);
            self.entries.extend_from_slice(ents);
        }
    }

    /// Like [`Unstable::truncate_and_append`], taking ownership.
    pub(crate) fn truncate_and_append_owned(&mut self, mut ents: Vec<Entry>) {
        let after = ents[0].index;
        if after <= self.offset {
            self.offset = after;
            self.entries = ents;
            return;
        }
        self.entries.truncate((after - self.offset) as usize);
        self.entries.append(&mut ents);
    }

    pub(crate) fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: u64, index: u64) -> Entry {
        Entry::new(term, index, vec![])
    }

    #[test]
    fn truncate_and_append_cases() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&[e(1, 5), e(1, 6)]);
        u.truncate_and_append(&[e(1, 7)]);
        assert_eq!(u.maybe_last_index(), Some(7));
        u.truncate_and_append(&[e(2, 6)]);
        assert_eq!(u.entries.len(), 2);
        assert_eq!(u.maybe_term(6), Some(2));
        u.truncate_and_append(&[e(3, 4)]);
        assert_eq!(u.offset, 4);
        assert_eq!(u.entries.len(), 1);
    }

    #[test]
    fn stable_to_ignores_replaced_entries() {
        let mut u = Unstable::new(1);
        u.truncate_and_append(&[e(1, 1), e(1, 2)]);
        u.stable_to(2, 2);
        assert_eq!(u.entries.len(), 2);
        u.stable_to(1, 1);
        assert_eq!(u.offset, 2);
        assert_eq!(u.entries.len(), 1);
    }
}
