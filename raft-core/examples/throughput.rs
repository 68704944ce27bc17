//! Throughput of a 3-member in-memory cluster driven through ready/advance.
//!
//! Each turn the leader receives `batch` proposals, then every member runs its
//! ready loop (persist to `MemStorage`, send, apply, advance) and messages are
//! delivered in memory. Reports committed proposals per second as applied on
//! the leader. Run with `cargo run --release -p raft-core --example throughput`.

use std::collections::VecDeque;
use std::time::Instant;

use raft_core::{ConfState, Config, MemStorage, Message, RawNode, StateRole};

const MEMBERS: u64 = 3;
const PAYLOAD: usize = 16;
/// Entries applied between log compactions.
const COMPACT_EVERY: u64 = 8192;
/// Each measurement is repeated and the best run reported.
const RUNS: usize = 3;

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    inbox: VecDeque<Message>,
    applied_on_leader: u64,
    last_compact: Vec<u64>,
}

impl Cluster {
    fn new() -> Cluster {
        let voters: Vec<u64> = (1..=MEMBERS).collect();
        let nodes = (1..=MEMBERS)
            .map(|id| {
                let store = MemStorage::new_with_conf_state(ConfState::with_voters(voters.clone()));
                let cfg = Config {
                    max_inflight_msgs: 256,
                    max_size_per_msg: 1 << 20,
                    ..Config::new(id)
                };
                RawNode::new(&cfg, store).unwrap()
            })
            .collect();
        Cluster {
            nodes,
            inbox: VecDeque::new(),
            applied_on_leader: 0,
            last_compact: vec![0; MEMBERS as usize],
        }
    }

    /// One turn of every member's event loop.
    fn turn(&mut self) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if !node.has_ready() {
                continue;
            }
            let mut rd = node.ready();
            self.inbox.extend(rd.messages.drain(..));
            let store = node.mut_store();
            if let Some(s) = &rd.snapshot {
                store.apply_snapshot(s.clone()).unwrap();
            }
            store.append_owned(std::mem::take(&mut rd.entries)).unwrap();
            if let Some(hs) = rd.hard_state {
                store.set_hard_state(hs);
            }
            self.inbox.extend(rd.persisted_messages.drain(..));
            if i == 0 {
                self.applied_on_leader += rd
                    .committed_entries
                    .iter()
                    .filter(|e| !e.data.is_empty())
                    .count() as u64;
            }
            let applied_to = rd.committed_entries.last().map(|e| e.index);
            node.advance(rd);
            if let Some(applied) = applied_to {
                if applied >= self.last_compact[i] + COMPACT_EVERY {
                    let cs = node.applied_conf_state().clone();
                    let store = node.mut_store();
                    store.create_snapshot(applied, cs, Vec::new()).unwrap();
                    store.compact(applied).unwrap();
                    self.last_compact[i] = applied;
                }
            }
        }
        while let Some(m) = self.inbox.pop_front() {
            let to = (m.to - 1) as usize;
            self.nodes[to].step(m).unwrap();
        }
    }
}

/// CPU seconds this process has used (Linux `/proc`), to report a rate that a
/// busy shared machine does not distort. `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 per second
    // on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Returns committed proposals per wall-clock second, per CPU second (if
/// known) and turns per wall-clock second.
fn run(batch: usize, total: u64) -> (f64, Option<f64>, f64) {
    let mut c = Cluster::new();
    c.nodes[0].campaign();
    while c.nodes[0].soft_state().role != StateRole::Leader {
        c.turn();
    }
    for _ in 0..4 {
        c.turn();
    }
    let payload = vec![7u8; PAYLOAD];
    let mut proposed = 0u64;
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut turns = 0u64;
    while c.applied_on_leader < total {
        if proposed < total {
            for _ in 0..batch {
                c.nodes[0].propose(payload.clone()).unwrap();
            }
            proposed += batch as u64;
        }
        c.turn();
        turns += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) if b > a => Some(c.applied_on_leader as f64 / (b - a)),
        _ => None,
    };
    (c.applied_on_leader as f64 / secs, cpu, turns as f64 / secs)
}

fn main() {
    println!("raft-core throughput: {MEMBERS} members in memory, {PAYLOAD}-byte proposals");
    println!("(best of {RUNS} runs; per wall second, and per CPU second of this process)");
    println!(
        "{:>6} {:>10} {:>14} {:>16} {:>10}",
        "batch", "proposals", "committed/s", "committed/cpu-s", "turns/s"
    );
    for (batch, total) in [(1usize, 200_000u64), (64, 2_000_000)] {
        let (rate, cpu, turns) = (0..RUNS)
            .map(|_| run(batch, total))
            .fold((0.0, None, 0.0), |a, b| if b.0 > a.0 { b } else { a });
        let cpu = cpu.map_or("-".to_string(), |c| format!("{c:.0}"));
        println!("{batch:>6} {total:>10} {rate:>14.0} {cpu:>16} {turns:>10.0}");
    }
}
