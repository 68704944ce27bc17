//! [`Store::history`]: one scan of a stretch of history that many watchers share.
//!
//! [`Store::events`] serves one key range; a watch hub with thousands of watchers instead
//! reads each new stretch of revisions once and lets the caller decide, row by row, whether
//! anybody wants the change and its previous pair. Rows nobody wants cost a decode of their
//! header only: no value is copied and no previous row is read.

use std::ops::Bound;

use crate::codec::{HistoryRecord, Revision};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::types::{Event, EventKind};
use crate::write::Counters;

/// What a [`Store::history`] caller wants of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Nobody watches it.
    Skip,
    /// The change, without its previous pair.
    Event,
    /// The change and, when still in history, the pair it replaced.
    EventWithPrev,
}

/// A stretch of history read by [`Store::history`].
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryBatch {
    /// The wanted changes, in revision order.
    pub events: Vec<Event>,
    /// The first main revision not read: one past the stretch when it was read whole.
    pub next: i64,
}

impl Store {
    /// Reads the changes of main revisions `from..=to` (`to` capped at the committed
    /// revision) on one read transaction, asking `want(key, main revision, kind)` about each.
    ///
    /// It stops between main revisions once it has looked at `max_rows` rows (at least one
    /// revision is read whole), so that one call stays short; continue from
    /// [`HistoryBatch::next`]. Fails with [`Error::Compacted`] when `from` is below the
    /// compaction revision.
    pub fn history(
        &self,
        from: i64,
        to: i64,
        max_rows: usize,
        mut want: impl FnMut(&[u8], i64, EventKind) -> Wanted,
    ) -> Result<HistoryBatch> {
        let txn = self.read_txn()?;
        let c = Counters::load(&txn.b.t, &txn)?;
        let from = from.max(1);
        if from < c.compacted {
            return Err(Error::Compacted);
        }
        let to = to.min(c.revision);
        let mut events = Vec::new();
        if from > to {
            return Ok(HistoryBatch { events, next: from });
        }
        let start = Revision::new(from, 0).to_bytes();
        let end = Revision::new(to, i64::MAX).to_bytes();
        let bounds = (Bound::Included(&start[..]), Bound::Included(&end[..]));
        let mut current_main = 0;
        for (scanned, item) in txn.b.t.history.range(&txn, &bounds)?.enumerate() {
            let (k, v) = item?;
            let rev = Revision::from_bytes(k)?;
            if rev.main != current_main {
                if scanned >= max_rows.max(1) {
                    return Ok(HistoryBatch {
                        events,
                        next: rev.main,
                    });
                }
                current_main = rev.main;
            }
            let rec = HistoryRecord::decode(v)?;
            let kind = if rec.tombstone {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            let with_prev = match want(rec.key, rev.main, kind) {
                Wanted::Skip => continue,
                Wanted::Event => false,
                Wanted::EventWithPrev => true,
            };
            events.push(self.event_of(&txn, rev, &rec, with_prev)?);
        }
        Ok(HistoryBatch {
            events,
            next: to + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, CompactRequest, DeleteRangeRequest, PutRequest, StoreOptions};

    fn put(key: &str, value: &str) -> Command {
        Command::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        (dir, store)
    }

    #[test]
    fn reads_only_what_is_wanted_and_prev_only_when_asked() {
        let (_d, store) = open();
        store
            .apply(&[
                (1, put("a", "1")),
                (2, put("b", "1")),
                (3, put("a", "2")),
                (
                    4,
                    Command::DeleteRange(DeleteRangeRequest {
                        key: "a".into(),
                        ..Default::default()
                    }),
                ),
            ])
            .unwrap();
        let mut asked = Vec::new();
        let batch = store
            .history(1, 100, 1000, |key, rev, kind| {
                asked.push((key.to_vec(), rev, kind));
                match (key, rev) {
                    (b"a", 5) => Wanted::EventWithPrev,
                    (b"a", _) => Wanted::Event,
                    _ => Wanted::Skip,
                }
            })
            .unwrap();
        assert_eq!(asked.len(), 4);
        assert_eq!(asked[3], (b"a".to_vec(), 5, EventKind::Delete));
        let revs: Vec<i64> = batch.events.iter().map(|e| e.kv.mod_revision).collect();
        assert_eq!(revs, [2, 4, 5]);
        assert_eq!(batch.events[1].prev_kv, None, "not asked for");
        assert_eq!(batch.events[2].prev_kv.as_ref().unwrap().value, b"2");
        assert_eq!(batch.next, 6, "capped at the committed revision");
    }

    #[test]
    fn stops_between_revisions_and_refuses_compacted_starts() {
        let (_d, store) = open();
        let batch: Vec<_> = (1..=10).map(|i| (i, put("k", "v"))).collect();
        store.apply(&batch).unwrap();
        let first = store.history(2, 11, 3, |_, _, _| Wanted::Event).unwrap();
        assert_eq!(first.events.len(), 3);
        assert_eq!(first.next, 5);
        let rest = store
            .history(first.next, 8, 100, |_, _, _| Wanted::Event)
            .unwrap();
        assert_eq!(rest.events.len(), 4);
        assert_eq!(rest.next, 9);
        store
            .apply(&[(
                11,
                Command::Compact(CompactRequest {
                    revision: 6,
                    physical: true,
                }),
            )])
            .unwrap();
        assert_eq!(
            store.history(5, 11, 100, |_, _, _| Wanted::Event),
            Err(Error::Compacted)
        );
        assert_eq!(
            store
                .history(6, 11, 100, |_, _, _| Wanted::Event)
                .unwrap()
                .events
                .len(),
            6
        );
    }
}
