//! Checks that a concurrent history of register operations is linearizable: that every
//! call appears to take effect at one instant between its invocation and its answer, in an
//! order a single register could have produced.
//!
//! Keys are independent registers, so the history is split by key and each key searched on
//! its own (linearizability is local: the whole is linearizable when every key is). The
//! search is Wing and Gong's, with the memo of tried configurations porcupine uses; a call
//! that was never answered is indeterminate and may have happened at any time after its
//! invocation, or not at all. For a key that fails, [`check`] also cuts its history down to
//! a small sub-history that still fails, which is what a person wants to read.
//!
//! ```
//! use linearizability::{check, Call, Operation, Outcome, Ret};
//!
//! let op = |client, call, invoke, at, ret| Operation {
//!     client,
//!     key: "k".into(),
//!     call,
//!     invoke,
//!     outcome: Outcome::Done { at, ret },
//! };
//! // Client 0 writes 1 and is told it is done; afterwards client 1 still reads nothing.
//! let stale = vec![
//!     op(0, Call::Write(1), 0, 10, Ret::Write),
//!     op(1, Call::Read, 20, 30, Ret::Read(None)),
//! ];
//! let report = check(&stale, 1_000_000).unwrap();
//! assert_eq!(report.violations.len(), 1);
//! assert_eq!(report.violations[0].smallest.len(), 2);
//!
//! // Had the read overlapped the write, either answer would do.
//! let overlapping = vec![
//!     op(0, Call::Write(1), 0, 25, Ret::Write),
//!     op(1, Call::Read, 20, 30, Ret::Read(None)),
//! ];
//! assert!(check(&overlapping, 1_000_000).unwrap().is_linearizable());
//! ```

mod history;
mod model;
mod search;
mod shrink;

use std::collections::BTreeMap;

pub use history::{Call, Operation, Outcome, Ret, Value};
pub use search::{search, Found};
pub use shrink::{smallest_failing, without_unseen_indeterminate};

/// A history the checker cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the answer does not fit the call: {0}")]
    Mismatch(String),
    #[error("answered before it was called: {0}")]
    AnsweredBeforeCalled(String),
}

/// One key whose history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    /// Operations on the key in the whole history.
    pub ops: usize,
    /// A small sub-history that is not linearizable on its own, in invocation order.
    pub smallest: Vec<Operation>,
}

/// What [`check`] found, per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub keys: usize,
    pub violations: Vec<Violation>,
    /// Keys whose search ran out of steps, neither proven nor refuted.
    pub gave_up: Vec<String>,
}

impl Report {
    /// Every key was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty() && self.gave_up.is_empty()
    }
}

/// Checks every key of `history`, each search limited to `max_steps` steps.
pub fn check(history: &[Operation], max_steps: u64) -> Result<Report, Error> {
    let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for op in history {
        op.validate()?;
        // An unanswered read constrains nothing.
        if op.call == Call::Read && op.outcome == Outcome::Indeterminate {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    let mut report = Report {
        keys: by_key.len(),
        ..Report::default()
    };
    for (key, all) in by_key {
        let ops = without_unseen_indeterminate(&all);
        match search(&ops, max_steps) {
            Found::Linearizable => {}
            Found::GaveUp => report.gave_up.push(key.to_string()),
            Found::NotLinearizable => report.violations.push(Violation {
                key: key.to_string(),
                ops: all.len(),
                smallest: smallest_failing(&ops, max_steps),
            }),
        }
    }
    Ok(report)
}
