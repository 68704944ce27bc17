//! The sequential specification every key must appear to follow: a register that starts
//! absent.

use crate::history::{Call, Operation, Outcome, Ret};

/// The register's contents; `None` until the first write.
pub type State = Option<u64>;

/// Applies `op` to `state` if the answer it got is possible there; `None` if it is not.
///
/// An indeterminate call is taken as having happened, with whatever answer the state gives:
/// the search covers "never happened" by leaving it out. An indeterminate compare-and-set
/// whose compare fails changes nothing, the same as never happening, so it is refused here.
pub fn step(state: State, op: &Operation) -> Option<State> {
    match (op.call, op.outcome) {
        (Call::Read, Outcome::Done { ret, .. }) => (ret == Ret::Read(state)).then_some(state),
        // A read nobody saw the answer of constrains nothing.
        (Call::Read, Outcome::Indeterminate) => Some(state),
        (Call::Write(v), _) => Some(Some(v)),
        (Call::Cas { expect, new }, outcome) => {
            let holds = state == Some(expect);
            match outcome {
                Outcome::Done { ret, .. } => match (ret, holds) {
                    (Ret::Cas(true), true) => Some(Some(new)),
                    (Ret::Cas(false), false) => Some(state),
                    (Ret::CasFailed(seen), false) => (seen == state).then_some(state),
                    _ => None,
                },
                Outcome::Indeterminate => holds.then_some(Some(new)),
            }
        }
    }
}
