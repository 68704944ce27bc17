//! Histories produced by a simulated register are always linearizable, and one read changed
//! to a value nobody wrote never is.

use linearizability::{check, Call, Operation, Outcome, Ret};
use proptest::prelude::*;

/// A history of `clients` clients on `keys` keys against one real register per key: each
/// call takes effect at an instant drawn inside its interval, in the order of those
/// instants; some calls lose their answer (indeterminate), taking effect or not. A failed
/// compare-and-set reports what it found half of the time.
fn simulate(seed: u64, clients: u32, keys: u32, ops_per_client: u32) -> Vec<Operation> {
    let mut rng = fastrand::Rng::with_seed(seed);
    struct Pending {
        op: Operation,
        at: u64,
        applies: bool,
    }
    let mut pending = Vec::new();
    let mut next_value = 1u64;
    for client in 0..clients {
        let mut t = rng.u64(0..20);
        for _ in 0..ops_per_client {
            let invoke = t;
            let len = rng.u64(1..40);
            let at = invoke + rng.u64(0..=len);
            let call = match rng.u8(0..3) {
                0 => Call::Read,
                1 => {
                    next_value += 1;
                    Call::Write(next_value)
                }
                _ => {
                    next_value += 1;
                    Call::Cas {
                        expect: rng.u64(1..next_value),
                        new: next_value,
                    }
                }
            };
            let lost = rng.u8(0..10) == 0;
            pending.push(Pending {
                op: Operation {
                    client,
                    key: format!("k{}", rng.u32(0..keys)),
                    call,
                    invoke,
                    outcome: if lost {
                        Outcome::Indeterminate
                    } else {
                        Outcome::Done {
                            at: invoke + len,
                            ret: Ret::Write,
                        }
                    },
                },
                at,
                applies: !lost || rng.bool(),
            });
            // A client whose call was lost moves on; its next call starts after.
            t = invoke + len + rng.u64(1..10);
        }
    }
    pending.sort_by_key(|p| p.at);
    let mut registers = std::collections::HashMap::<String, u64>::new();
    let mut out = Vec::new();
    for p in pending {
        let mut op = p.op;
        let state = registers.get(&op.key).copied();
        let ret = match op.call {
            Call::Read => Ret::Read(state),
            Call::Write(v) => {
                if p.applies {
                    registers.insert(op.key.clone(), v);
                }
                Ret::Write
            }
            Call::Cas { expect, new } => {
                let holds = state == Some(expect);
                if holds && p.applies {
                    registers.insert(op.key.clone(), new);
                }
                if !holds && rng.bool() {
                    Ret::CasFailed(state)
                } else {
                    Ret::Cas(holds)
                }
            }
        };
        if let Outcome::Done { at, .. } = op.outcome {
            op.outcome = Outcome::Done { at, ret };
        }
        out.push(op);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn simulated_histories_are_linearizable(seed in any::<u64>(), clients in 1u32..6, keys in 1u32..4) {
        let h = simulate(seed, clients, keys, 30);
        let r = check(&h, 10_000_000).unwrap();
        prop_assert!(r.is_linearizable(), "{r:#?}");
    }

    #[test]
    fn a_read_of_an_unwritten_value_is_always_caught(seed in any::<u64>(), clients in 1u32..6, which in any::<prop::sample::Index>()) {
        let mut h = simulate(seed, clients, 1, 20);
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| matches!(h[i].outcome, Outcome::Done { ret: Ret::Read(_), .. }))
            .collect();
        prop_assume!(!reads.is_empty());
        let i = reads[which.index(reads.len())];
        if let Outcome::Done { at, .. } = h[i].outcome {
            h[i].outcome = Outcome::Done { at, ret: Ret::Read(Some(u64::MAX)) };
        }
        let r = check(&h, 10_000_000).unwrap();
        prop_assert_eq!(r.violations.len(), 1);
        let small = &r.violations[0].smallest;
        prop_assert!(!check(small, 10_000_000).unwrap().is_linearizable());
        prop_assert!(small.len() <= 2, "{:#?}", small);
    }
}
