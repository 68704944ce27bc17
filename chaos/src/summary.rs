//! Figures for the summary: calls by answer, and the longest spell without any successful
//! call during each kind of fault.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::nemesis::{Fault, Window};
use crate::workload::{Answer, Record};

#[derive(Default, Debug)]
pub struct Counts {
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub timed_out: usize,
    /// Writes and compare-and-sets whose effect is unknown (failed or timed out).
    pub indeterminate: usize,
}

pub fn count(records: &[Record]) -> Counts {
    let mut c = Counts {
        ops: records.len(),
        ..Counts::default()
    };
    for r in records {
        match r.answer {
            Answer::Ok => c.ok += 1,
            Answer::Failed => c.failed += 1,
            Answer::TimedOut => c.timed_out += 1,
        }
        if r.answer != Answer::Ok && r.op.call != linearizability::Call::Read {
            c.indeterminate += 1;
        }
    }
    c
}

/// For each kind of fault, the longest gap between two successful answers (from any client)
/// that overlaps one of its windows, from the fault's start to the cluster's recovery.
pub fn unavailability(records: &[Record], windows: &[Window]) -> BTreeMap<Fault, Duration> {
    let mut done: Vec<u64> = records
        .iter()
        .filter(|r| r.answer == Answer::Ok)
        .map(|r| r.op.complete())
        .collect();
    done.sort_unstable();
    let mut longest = BTreeMap::new();
    for w in windows {
        // The answers just before the fault and until well after recovery.
        let from = done.partition_point(|&t| t < w.start).saturating_sub(1);
        let mut gap = 0;
        for pair in done[from..].windows(2) {
            if pair[0] > w.recovered {
                break;
            }
            gap = gap.max(pair[1] - pair[0]);
        }
        let e = longest.entry(w.fault).or_insert(Duration::ZERO);
        *e = (*e).max(Duration::from_nanos(gap));
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use linearizability::{Call, Operation, Outcome, Ret};

    fn answered(at: u64, answer: Answer) -> Record {
        Record {
            op: Operation {
                client: 0,
                key: "k".into(),
                call: Call::Read,
                invoke: at.saturating_sub(1),
                outcome: match answer {
                    Answer::Ok => Outcome::Done {
                        at,
                        ret: Ret::Read(None),
                    },
                    _ => Outcome::Indeterminate,
                },
            },
            answer,
            revision: None,
        }
    }

    #[test]
    fn the_longest_gap_between_answers_in_a_window_counts() {
        let mut records: Vec<Record> = [0, 10, 20, 100, 110, 500, 510]
            .into_iter()
            .map(|t| answered(t, Answer::Ok))
            .collect();
        records.push(answered(60, Answer::TimedOut));
        let windows = [
            Window {
                fault: Fault::Kill,
                member: "m1".into(),
                start: 30,
                recovered: 105,
            },
            Window {
                fault: Fault::Isolate,
                member: "m2".into(),
                start: 111,
                recovered: 112,
            },
        ];
        let gaps = unavailability(&records, &windows);
        // 20 to 100 for the kill; the isolation overlaps the gap from 110 to 500.
        assert_eq!(gaps[&Fault::Kill], Duration::from_nanos(80));
        assert_eq!(gaps[&Fault::Isolate], Duration::from_nanos(390));
        let c = count(&records);
        assert_eq!((c.ops, c.ok, c.timed_out, c.indeterminate), (8, 7, 1, 0));
    }
}
