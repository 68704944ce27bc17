//! What the watchers saw, against the keyspace's history as it ended up: per watcher every
//! revision once, in order, each revision's events in one response, nothing missing between
//! where it started and where the history ends, and every event as the history has it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// One event: a put of `value` or (`None`) a delete of `key` at `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub key: String,
    pub value: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "rev {} put {}={v}", self.revision, self.key),
            None => write!(f, "rev {} delete {}", self.revision, self.key),
        }
    }
}

/// What one watcher went through, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The events of one `WatchResponse`.
    Response(Vec<Change>),
    /// A new watch (after a lost stream) from `start_revision`.
    Resumed { start_revision: i64 },
    /// The resume was refused as compacted: revisions below `compact_revision` are gone, and
    /// the watcher goes on from there. Not a gap.
    Compacted { compact_revision: i64 },
}

#[derive(Clone, Debug, Default)]
pub struct WatchLog {
    pub watcher: u32,
    /// The start revision of its first watch.
    pub start_revision: i64,
    pub seen: Vec<Seen>,
}

impl WatchLog {
    pub fn events(&self) -> usize {
        self.seen
            .iter()
            .map(|s| match s {
                Seen::Response(c) => c.len(),
                _ => 0,
            })
            .sum()
    }

    pub fn resumes(&self) -> usize {
        self.seen
            .iter()
            .filter(|s| matches!(s, Seen::Resumed { .. }))
            .count()
    }

    pub fn compactions(&self) -> usize {
        self.seen
            .iter()
            .filter(|s| matches!(s, Seen::Compacted { .. }))
            .count()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchViolation {
    /// An event at a lower revision than one already seen.
    OutOfOrder { after: i64, got: Change },
    /// The same event twice.
    Duplicate(Change),
    /// Events of one revision spread over more than one response.
    SplitRevision(i64),
    /// An event of the history in the watched span that never came.
    Missing(Change),
    /// An event the history has differently (`truth`) or not at all (`None`).
    Mismatch { seen: Change, truth: Option<Change> },
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchViolation::OutOfOrder { after, got } => {
                write!(f, "out of order: {got} after rev {after}")
            }
            WatchViolation::Duplicate(c) => write!(f, "duplicate: {c}"),
            WatchViolation::SplitRevision(r) => {
                write!(f, "rev {r} split over more than one response")
            }
            WatchViolation::Missing(c) => write!(f, "missing (gap): {c}"),
            WatchViolation::Mismatch {
                seen,
                truth: Some(t),
            } => {
                write!(f, "saw {seen}, the history has {t}")
            }
            WatchViolation::Mismatch { seen, truth: None } => {
                write!(f, "saw {seen}, which the history does not have")
            }
        }
    }
}

/// Checks one watcher against `truth`, every event in its range from revision 1 to `until`
/// in revision order (from a watch at the end of the run). It must have seen every event
/// from its start revision through `until`, but for those a compaction took.
pub fn check(log: &WatchLog, truth: &[Change], until: i64) -> Vec<WatchViolation> {
    let history: BTreeMap<(i64, &str), &Change> = truth
        .iter()
        .map(|c| ((c.revision, c.key.as_str()), c))
        .collect();
    let mut out = Vec::new();
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    // Revisions whose events a compaction took from this watcher: [from, to).
    let mut excused: Vec<(i64, i64)> = Vec::new();
    let mut last = 0i64;
    let mut split_reported: HashSet<i64> = HashSet::new();
    for s in &log.seen {
        let changes = match s {
            Seen::Response(changes) => changes,
            Seen::Resumed { .. } => continue,
            Seen::Compacted { compact_revision } => {
                excused.push((last + 1, *compact_revision));
                continue;
            }
        };
        let mut this_response = HashSet::new();
        for c in changes {
            if !seen.insert((c.revision, c.key.clone())) {
                out.push(WatchViolation::Duplicate(c.clone()));
                continue;
            }
            if c.revision < last {
                out.push(WatchViolation::OutOfOrder {
                    after: last,
                    got: c.clone(),
                });
            } else if c.revision == last
                && !this_response.contains(&c.revision)
                && split_reported.insert(c.revision)
            {
                // `last` came from an earlier response.
                out.push(WatchViolation::SplitRevision(c.revision));
            }
            this_response.insert(c.revision);
            last = last.max(c.revision);
            match history.get(&(c.revision, c.key.as_str())) {
                Some(t) if *t == c => {}
                t => out.push(WatchViolation::Mismatch {
                    seen: c.clone(),
                    truth: t.map(|t| (*t).clone()),
                }),
            }
        }
    }
    for c in truth {
        let due = c.revision >= log.start_revision && c.revision <= until;
        let compacted = excused
            .iter()
            .any(|&(from, to)| c.revision >= from && c.revision < to);
        if due && !compacted && !seen.contains(&(c.revision, c.key.clone())) {
            out.push(WatchViolation::Missing(c.clone()));
        }
    }
    out
}

/// An acknowledged write (its answer's revision, key and value) that the history does not
/// hold as written.
pub fn unrecorded_writes(acked: &[Change], truth: &[Change]) -> Vec<Change> {
    let history: HashSet<(i64, &str, Option<&str>)> = truth
        .iter()
        .map(|c| (c.revision, c.key.as_str(), c.value.as_deref()))
        .collect();
    acked
        .iter()
        .filter(|a| !history.contains(&(a.revision, a.key.as_str(), a.value.as_deref())))
        .cloned()
        .collect()
}

/// Revisions from 2 (the first write of a fresh store) through `until` that no event of
/// `truth` carries. When every key of the store is in the watched range, as in the chaos
/// run, each revision is some write's, so a hole is a revision the history lost.
pub fn holes(truth: &[Change], until: i64) -> Vec<i64> {
    let present: HashSet<i64> = truth.iter().map(|c| c.revision).collect();
    (2..=until).filter(|r| !present.contains(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: i64, key: &str, value: &str) -> Change {
        Change {
            revision,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    fn del(revision: i64, key: &str) -> Change {
        Change {
            revision,
            key: key.into(),
            value: None,
        }
    }

    /// Revisions 2..=6, with a lease revoke deleting two keys at 5.
    fn truth() -> Vec<Change> {
        vec![
            put(2, "a", "1"),
            put(3, "b", "2"),
            put(4, "a", "3"),
            del(5, "a"),
            del(5, "b"),
            put(6, "b", "4"),
        ]
    }

    fn log(start_revision: i64, seen: Vec<Seen>) -> WatchLog {
        WatchLog {
            watcher: 0,
            start_revision,
            seen,
        }
    }

    fn resp(changes: &[Change]) -> Seen {
        Seen::Response(changes.to_vec())
    }

    #[test]
    fn a_watcher_that_saw_everything_once_in_order_passes() {
        let t = truth();
        let l = log(
            1,
            vec![
                resp(&t[..2]),
                resp(&t[2..3]),
                Seen::Resumed { start_revision: 5 },
                resp(&t[3..5]),
                resp(&t[5..]),
            ],
        );
        assert_eq!(check(&l, &t, 6), vec![]);
        assert_eq!((l.events(), l.resumes()), (6, 1));
    }

    #[test]
    fn a_gap_is_flagged() {
        let t = truth();
        let l = log(
            1,
            vec![
                resp(&t[..2]),
                Seen::Resumed { start_revision: 5 },
                resp(&t[3..]),
            ],
        );
        assert_eq!(
            check(&l, &t, 6),
            vec![WatchViolation::Missing(put(4, "a", "3"))]
        );
    }

    #[test]
    fn a_watcher_that_stopped_short_of_the_end_is_missing_the_rest() {
        let t = truth();
        let l = log(1, vec![resp(&t[..5])]);
        assert_eq!(
            check(&l, &t, 6),
            vec![WatchViolation::Missing(put(6, "b", "4"))]
        );
        // What it was not due to see is not missing.
        assert_eq!(check(&l, &t, 5), vec![]);
        assert_eq!(check(&log(3, vec![resp(&t[1..])]), &t, 6), vec![]);
    }

    #[test]
    fn a_duplicate_after_a_resume_is_flagged() {
        let t = truth();
        let l = log(
            1,
            vec![
                resp(&t[..3]),
                Seen::Resumed { start_revision: 4 },
                resp(&t[2..]),
            ],
        );
        assert_eq!(
            check(&l, &t, 6),
            vec![WatchViolation::Duplicate(put(4, "a", "3"))]
        );
    }

    #[test]
    fn an_event_out_of_order_is_flagged() {
        let t = truth();
        let l = log(
            1,
            vec![
                resp(&[t[0].clone(), t[2].clone(), t[1].clone()]),
                resp(&t[3..]),
            ],
        );
        assert_eq!(
            check(&l, &t, 6),
            vec![WatchViolation::OutOfOrder {
                after: 4,
                got: put(3, "b", "2")
            }]
        );
    }

    #[test]
    fn one_revision_over_two_responses_is_flagged() {
        let t = truth();
        let l = log(1, vec![resp(&t[..4]), resp(&t[4..5]), resp(&t[5..])]);
        assert_eq!(check(&l, &t, 6), vec![WatchViolation::SplitRevision(5)]);
    }

    #[test]
    fn an_event_the_history_does_not_have_is_flagged() {
        let t = truth();
        let mut wrong = t.clone();
        wrong[1] = put(3, "b", "99");
        assert_eq!(
            check(&log(1, vec![resp(&wrong)]), &t, 6),
            vec![WatchViolation::Mismatch {
                seen: put(3, "b", "99"),
                truth: Some(put(3, "b", "2"))
            }]
        );
        let mut extra = t.clone();
        extra.push(put(7, "c", "5"));
        assert_eq!(
            check(&log(1, vec![resp(&extra)]), &t, 6),
            vec![WatchViolation::Mismatch {
                seen: put(7, "c", "5"),
                truth: None
            }]
        );
    }

    #[test]
    fn a_compacted_resume_is_not_a_gap() {
        let t = truth();
        let l = log(
            1,
            vec![
                resp(&t[..1]),
                Seen::Resumed { start_revision: 3 },
                Seen::Compacted {
                    compact_revision: 5,
                },
                Seen::Resumed { start_revision: 5 },
                resp(&t[3..]),
            ],
        );
        assert_eq!(check(&l, &t, 6), vec![]);
        assert_eq!(l.compactions(), 1);
    }

    #[test]
    fn a_revision_the_history_lacks_is_a_hole() {
        let t = truth();
        assert_eq!(holes(&t, 6), Vec::<i64>::new());
        assert_eq!(holes(&t, 8), vec![7, 8]);
        let without_3: Vec<Change> = t.into_iter().filter(|c| c.revision != 3).collect();
        assert_eq!(holes(&without_3, 6), vec![3]);
    }

    #[test]
    fn an_acknowledged_write_the_history_lacks_is_flagged() {
        let t = truth();
        assert!(unrecorded_writes(&[put(3, "b", "2"), put(6, "b", "4")], &t).is_empty());
        assert_eq!(
            unrecorded_writes(&[put(3, "b", "7"), put(8, "a", "9")], &t),
            vec![put(3, "b", "7"), put(8, "a", "9")]
        );
    }
}
