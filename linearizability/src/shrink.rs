//! Cutting a non-linearizable history down to a small one that still fails, using only
//! changes that loosen it, so the small history's failure is a real failure of the big one.
//!
//! Loosening changes: ending the history early (linearizability is closed under prefixes; a
//! call still open at the cut becomes indeterminate), dropping a read or a failed
//! compare-and-set (each only adds a constraint), making an answered write indeterminate,
//! and dropping a write whose value nothing left observes while no blind failed
//! compare-and-set is left (see [`without_unseen_indeterminate`]).

use crate::history::{Call, Operation, Outcome, Ret};
use crate::search::{search, Found};

fn fails(ops: &[Operation], max_steps: u64) -> bool {
    search(ops, max_steps) == Found::NotLinearizable
}

/// The history as it stood at time `cut`: calls made by then, those answered later left open.
fn prefix(ops: &[Operation], cut: u64) -> Vec<Operation> {
    ops.iter()
        .filter(|op| op.invoke <= cut)
        .filter_map(|op| {
            if op.complete() <= cut {
                return Some(op.clone());
            }
            match op.call {
                Call::Read => None,
                _ => Some(Operation {
                    outcome: Outcome::Indeterminate,
                    ..op.clone()
                }),
            }
        })
        .collect()
}

/// The shortest prefix of `ops` that is not linearizable, found by bisection over answer times.
fn shortest_prefix(ops: &[Operation], max_steps: u64) -> Vec<Operation> {
    let mut cuts: Vec<u64> = ops
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Done { at, .. } => Some(at),
            Outcome::Indeterminate => None,
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let (mut lo, mut hi) = (0, cuts.len());
    // Invariant: the prefix at cuts[hi] fails (or hi is the whole history).
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(&prefix(ops, cuts[mid]), max_steps) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    match cuts.get(hi) {
        Some(&cut) => prefix(ops, cut),
        None => ops.to_vec(),
    }
}

fn is_observer(op: &Operation) -> bool {
    matches!(
        (op.call, op.outcome),
        (Call::Read, _)
            | (
                Call::Cas { .. },
                Outcome::Done {
                    ret: Ret::Cas(false) | Ret::CasFailed(_),
                    ..
                }
            )
    )
}

fn written(op: &Operation) -> Option<u64> {
    match op.call {
        Call::Write(v) | Call::Cas { new: v, .. } => Some(v),
        Call::Read => None,
    }
}

fn observes(op: &Operation, v: u64) -> bool {
    match (op.call, op.outcome) {
        (
            _,
            Outcome::Done {
                ret: Ret::Read(r), ..
            },
        ) => r == Some(v),
        (Call::Cas { expect, .. }, _) => expect == v,
        _ => false,
    }
}

/// A compare-and-set that failed without saying what it found: the one kind of call that an
/// unobserved write can explain.
fn has_failed_cas(ops: &[Operation]) -> bool {
    ops.iter().any(|op| {
        matches!(
            op.outcome,
            Outcome::Done {
                ret: Ret::Cas(false),
                ..
            }
        )
    })
}

/// `ops` without the indeterminate writes whose values nothing observes, which decides the
/// same. Every call that reads pins the state to one value, and a write of a value nobody
/// sees can only move the state away from the values the others pin, so "never happened" is
/// always as good a choice for it. Without this pass every timed-out write stays open to the
/// end of the history and the search tries it at every point.
///
/// A blind failed compare-and-set only says the state was not its expected value, which an
/// unseen write can explain; with one in the history nothing is dropped.
pub fn without_unseen_indeterminate(ops: &[Operation]) -> Vec<Operation> {
    if has_failed_cas(ops) {
        return ops.to_vec();
    }
    let seen: std::collections::HashSet<u64> = ops
        .iter()
        .filter_map(|op| match (op.call, op.outcome) {
            (
                _,
                Outcome::Done {
                    ret: Ret::Read(Some(v)) | Ret::CasFailed(Some(v)),
                    ..
                },
            ) => Some(v),
            (Call::Cas { expect, .. }, _) => Some(expect),
            _ => None,
        })
        .collect();
    ops.iter()
        .filter(|op| {
            op.outcome != Outcome::Indeterminate || written(op).is_none_or(|v| seen.contains(&v))
        })
        .cloned()
        .collect()
}

/// Tries `change` at each position in turn, keeping every change after which `ops` still
/// fails; says whether it kept any.
fn greedy(
    ops: &mut Vec<Operation>,
    max_steps: u64,
    change: impl Fn(&[Operation], usize) -> Option<Vec<Operation>>,
) -> bool {
    let mut kept = false;
    let mut i = 0;
    while i < ops.len() {
        match change(ops, i) {
            Some(candidate) if fails(&candidate, max_steps) => {
                let shorter = candidate.len() < ops.len();
                *ops = candidate;
                kept = true;
                if !shorter {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    kept
}

fn without(ops: &[Operation], i: usize) -> Vec<Operation> {
    let mut out = ops.to_vec();
    out.remove(i);
    out
}

/// A small sub-history of the non-linearizable `ops` (one key) that is still not
/// linearizable, in invocation order.
pub fn smallest_failing(ops: &[Operation], max_steps: u64) -> Vec<Operation> {
    let mut ops = shortest_prefix(ops, max_steps);
    let drop_unobserved = |ops: &[Operation], i: usize| {
        let v = written(&ops[i])?;
        if has_failed_cas(ops) || ops.iter().any(|o| observes(o, v)) {
            return None;
        }
        Some(without(ops, i))
    };
    greedy(&mut ops, max_steps, |ops, i| {
        is_observer(&ops[i]).then(|| without(ops, i))
    });
    // Dropping one write can leave the write it observed unobserved in turn.
    while greedy(&mut ops, max_steps, drop_unobserved) {}
    greedy(&mut ops, max_steps, |ops, i| {
        let op = &ops[i];
        if op.call == Call::Read || op.outcome == Outcome::Indeterminate {
            return None;
        }
        let mut out = ops.to_vec();
        out[i].outcome = Outcome::Indeterminate;
        Some(out)
    });
    while greedy(&mut ops, max_steps, drop_unobserved) {}
    ops.sort_by_key(|op| (op.invoke, op.complete()));
    ops
}
