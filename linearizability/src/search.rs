//! Wing and Gong's search for a linearization of one key's history, with Lowe's memo of
//! configurations already tried (the linearized set and the register state), as porcupine
//! and Knossos do it.
//!
//! The calls and answers form one list in time order. The search walks it from the front:
//! a call whose answer the register can give at this point is linearized (taken out of the
//! list with its answer) and the walk starts over; reaching an answer whose call is not
//! linearized means an earlier choice was wrong, so the last one is undone and the walk goes
//! on after it. An indeterminate call's answer sits at the end of time, so once only those
//! remain every answered call has its place.
//!
//! The memo keeps a 128-bit Zobrist hash of the linearized set (the XOR of a random key per
//! call) instead of the set itself: one configuration costs 32 bytes however long the
//! history, and updating it costs one XOR. Two different sets collide with probability
//! about 2^-128 per pair.

use std::collections::HashSet;

use crate::history::Operation;
use crate::model::{step, State};

/// What the search found for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Linearizable,
    NotLinearizable,
    /// The search took more steps than allowed; the history may be either.
    GaveUp,
}

const NONE: usize = usize::MAX;

struct Event {
    op: usize,
    /// For a call, the index of its answer; `NONE` for an answer.
    answer: usize,
    /// Answer of an indeterminate call: placed after every real event.
    open_ended: bool,
}

/// The events in time order as a list that links can be cut out of and put back into, last
/// out first in.
struct Events {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The list's head sentinel, at index `events.len()`.
    head: usize,
}

impl Events {
    fn new(ops: &[Operation]) -> Events {
        // (time, answers after calls at the same time, op): touching intervals overlap.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke, 0, i));
            order.push((op.complete(), 1, i));
        }
        order.sort_unstable();
        let mut events: Vec<Event> = order
            .iter()
            .map(|&(time, kind, op)| Event {
                op,
                answer: NONE,
                open_ended: kind == 1 && time == u64::MAX,
            })
            .collect();
        let mut call_of = vec![NONE; ops.len()];
        for (i, &(_, kind, op)) in order.iter().enumerate() {
            if kind == 0 {
                call_of[op] = i;
            } else {
                events[call_of[op]].answer = i;
            }
        }
        let n = events.len();
        let head = n;
        let mut next: Vec<usize> = (1..=n).collect();
        next[n - 1] = NONE;
        next.push(if n > 0 { 0 } else { NONE });
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { head } else { i - 1 }).collect();
        prev.push(NONE);
        Events {
            events,
            next,
            prev,
            head,
        }
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NONE {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NONE {
            self.prev[n] = e;
        }
    }

    /// Takes call `e` and its answer out of the list.
    fn lift(&mut self, e: usize) {
        self.unlink(e);
        self.unlink(self.events[e].answer);
    }

    fn unlift(&mut self, e: usize) {
        self.relink(self.events[e].answer);
        self.relink(e);
    }
}

/// Searches for a linearization of `ops`, which must all be on one key, in at most
/// `max_steps` steps.
pub fn search(ops: &[Operation], max_steps: u64) -> Found {
    if ops.is_empty() {
        return Found::Linearizable;
    }
    let mut list = Events::new(ops);
    let zobrist: Vec<u128> = (0..ops.len() as u64).map(zobrist_key).collect();
    let mut linearized: u128 = 0;
    let mut state: State = None;
    let mut seen: HashSet<(u128, State)> = HashSet::new();
    // Each linearized call, with the state before it.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut e = list.next[list.head];
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > max_steps {
            return Found::GaveUp;
        }
        if e == NONE || list.events[e].open_ended {
            return Found::Linearizable;
        }
        let ev = &list.events[e];
        if ev.answer != NONE {
            let op = ev.op;
            if let Some(after) = step(state, &ops[op]) {
                if seen.insert((linearized ^ zobrist[op], after)) {
                    linearized ^= zobrist[op];
                    stack.push((e, state));
                    state = after;
                    list.lift(e);
                    e = list.next[list.head];
                    continue;
                }
            }
            e = list.next[e];
        } else {
            // An answered call that could not be placed before its answer: back up.
            let Some((call, before)) = stack.pop() else {
                return Found::NotLinearizable;
            };
            linearized ^= zobrist[list.events[call].op];
            state = before;
            list.unlift(call);
            e = list.next[call];
        }
    }
}

/// A fixed pseudo-random 128-bit key for call `i` (two rounds of splitmix64), so the same
/// history is searched the same way every time.
fn zobrist_key(i: u64) -> u128 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix(i
        .wrapping_mul(2)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = mix(i
        .wrapping_mul(2)
        .wrapping_add(2)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15));
    ((a as u128) << 64) | b as u128
}
