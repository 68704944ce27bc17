//! Random sequences of append / overwrite / snapshot / compact / reopen,
//! checked after every step against an in-memory model of the log.

use proptest::prelude::*;
use raft_wal::{Entry, HardState, Options, Preallocate, SnapshotMeta, Wal};

#[derive(Clone, Debug)]
enum Op {
    /// Append `count` entries starting `back` entries before `last + 1`
    /// (clamped to what the snapshot allows), optionally in a new term.
    Append {
        back: u64,
        count: u64,
        new_term: bool,
        hard_state: bool,
        sync: bool,
    },
    /// Snapshot of local state `back` entries before the last index.
    Snapshot {
        back: u64,
    },
    /// Snapshot installed from a leader, `ahead` entries past the last index.
    Install {
        ahead: u64,
    },
    /// Compact up to `back` entries before `snapshot.index + 1`.
    Compact {
        back: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..4, 0u64..12, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(back, count, new_term, hard_state, sync)| Op::Append {
                back,
                count,
                new_term,
                hard_state,
                sync,
            }
        ),
        1 => (0u64..6).prop_map(|back| Op::Snapshot { back }),
        1 => (0u64..4).prop_map(|ahead| Op::Install { ahead }),
        2 => (0u64..6).prop_map(|back| Op::Compact { back }),
        1 => Just(Op::Reopen),
    ]
}

/// The log as the contract describes it.
#[derive(Debug, Default)]
struct Model {
    first: u64,
    prev_term: u64,
    entries: Vec<Entry>,
    hard_state: HardState,
    snapshot: SnapshotMeta,
    term: u64,
}

impl Model {
    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    fn term_of(&self, i: u64) -> Option<u64> {
        if i + 1 == self.first {
            Some(self.prev_term)
        } else if i == self.snapshot.index {
            Some(self.snapshot.term)
        } else if i >= self.first && i <= self.last() {
            Some(self.entries[(i - self.first) as usize].term)
        } else {
            None
        }
    }
}

fn data(index: u64, term: u64) -> Vec<u8> {
    // Varying sizes so that records straddle segment boundaries differently.
    let mut d = format!("{index}:{term}:").into_bytes();
    d.resize(d.len() + ((index * 7 + term) % 40) as usize, b'x');
    d
}

fn opts() -> Options {
    Options {
        segment_size: 700,
        preallocate: Preallocate::Zero,
        cache_bytes: 300,
    }
}

fn check(wal: &Wal, m: &Model) {
    assert_eq!(wal.first_index(), m.first, "first_index");
    assert_eq!(wal.last_index(), m.last(), "last_index");
    assert_eq!(wal.hard_state(), m.hard_state);
    assert_eq!(wal.snapshot(), &m.snapshot);
    assert_eq!(wal.term(m.first - 1), Some(m.prev_term));
    assert_eq!(wal.term(m.snapshot.index), Some(m.snapshot.term));
    for i in m.first..=m.last() {
        assert_eq!(wal.term(i), m.term_of(i), "term({i})");
    }
    assert_eq!(wal.term(m.last() + 1), None);
    let got = wal
        .entries(m.first, m.last() + 1, u64::MAX)
        .expect("entries");
    assert_eq!(got, m.entries);
    // Size-limited reads from every start: the longest prefix within the
    // budget, and never nothing.
    for budget in [0u64, 40, 150] {
        for lo in m.first..=m.last() {
            let got = wal.entries(lo, m.last() + 1, budget).expect("limited");
            let from = &m.entries[(lo - m.first) as usize..];
            let mut want = 0;
            let mut total = 0;
            for e in from {
                total += e.data.len() as u64;
                if total > budget && want > 0 {
                    break;
                }
                want += 1;
            }
            assert_eq!(got, from[..want], "entries({lo}, .., {budget})");
        }
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), opts()).expect("open");
    let mut m = Model {
        first: 1,
        term: 1,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Append {
                back,
                count,
                new_term,
                hard_state,
                sync,
            } => {
                let lowest = m.snapshot.index.max(m.first - 1) + 1;
                let start = (m.last() + 1).saturating_sub(back).max(lowest);
                if new_term {
                    m.term += 1;
                }
                let batch: Vec<Entry> = (start..start + count)
                    .map(|i| Entry {
                        index: i,
                        term: m.term,
                        kind: (i % 3) as u8,
                        data: data(i, m.term),
                    })
                    .collect();
                let hs = hard_state.then_some(HardState {
                    term: m.term,
                    vote: start,
                    commit: m.snapshot.index,
                });
                if sync {
                    wal.append(&batch, hs).expect("append");
                } else {
                    wal.append_nosync(&batch, hs).expect("append_nosync");
                }
                if count > 0 {
                    m.entries.truncate((start - m.first) as usize);
                    m.entries.extend(batch);
                }
                if let Some(hs) = hs {
                    m.hard_state = hs;
                }
            }
            Op::Snapshot { back } => {
                let index = m.last().saturating_sub(back).max(m.snapshot.index);
                let Some(term) = m.term_of(index) else {
                    continue;
                };
                let meta = SnapshotMeta {
                    index,
                    term,
                    conf_state: format!("cs{index}").into_bytes(),
                };
                wal.set_snapshot(meta.clone()).expect("snapshot");
                m.snapshot = meta;
            }
            Op::Install { ahead } => {
                m.term += 1;
                let meta = SnapshotMeta {
                    index: m.last() + ahead,
                    term: m.term,
                    conf_state: b"installed".to_vec(),
                };
                wal.set_snapshot(meta.clone()).expect("install");
                m.entries.clear();
                m.first = meta.index + 1;
                m.prev_term = meta.term;
                m.snapshot = meta;
            }
            Op::Compact { back } => {
                let up_to = (m.snapshot.index + 1).saturating_sub(back);
                wal.compact(up_to).expect("compact");
                if up_to > m.first {
                    m.prev_term = m.term_of(up_to - 1).expect("term below compaction");
                    m.entries.drain(..(up_to - m.first) as usize);
                    m.first = up_to;
                }
            }
            Op::Reopen => {
                drop(wal);
                wal = Wal::open(dir.path(), opts()).expect("reopen");
                assert_eq!(wal.recovery().torn_tail, None);
            }
        }
        check(&wal, &m);
    }
    drop(wal);
    let wal = Wal::open(dir.path(), opts()).expect("final reopen");
    check(&wal, &m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

/// Builds a log of several segments, written in many synced batches, with
/// an overwrite, a snapshot and a compaction. Returns its entries.
fn build_template(dir: &std::path::Path) -> Vec<Entry> {
    let mut wal = Wal::open(dir, opts()).expect("open");
    for b in 0..8u64 {
        let batch: Vec<Entry> = (b * 5 + 1..b * 5 + 6)
            .map(|i| Entry::new(i, 1, data(i, 1)))
            .collect();
        wal.append(
            &batch,
            Some(HardState {
                term: 1,
                vote: 1,
                commit: b * 5,
            }),
        )
        .expect("append");
    }
    let over: Vec<Entry> = (38..45).map(|i| Entry::new(i, 2, data(i, 2))).collect();
    wal.append(&over, None).expect("overwrite");
    wal.set_snapshot(SnapshotMeta {
        index: 12,
        term: 1,
        conf_state: vec![1],
    })
    .expect("snapshot");
    wal.compact(13).expect("compact");
    let all = wal.entries(wal.first_index(), wal.last_index() + 1, u64::MAX);
    all.expect("read")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Damage anywhere never panics, and whatever opens is a prefix of the log.
    #[test]
    fn damaged_logs_never_panic_and_open_to_a_prefix(
        damage in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<u64>()),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let want = build_template(dir.path());
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|d| d.expect("dirent").path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        files.sort();
        for (f, pos, byte) in damage {
            let file = &files[(f % files.len() as u64) as usize];
            let mut bytes = std::fs::read(file).expect("read");
            let pos = (pos % bytes.len() as u64) as usize;
            bytes[pos] ^= byte.max(1);
            std::fs::write(file, bytes).expect("write");
        }
        if let Some(cut) = cut {
            let last = files.last().expect("segment");
            let len = std::fs::metadata(last).expect("stat").len();
            let f = std::fs::OpenOptions::new().write(true).open(last).expect("open");
            f.set_len(cut % (len + 1)).expect("cut");
        }
        if let Ok(wal) = Wal::open(dir.path(), opts()) {
            let got = wal
                .entries(wal.first_index(), wal.last_index() + 1, u64::MAX)
                .expect("a log that opens reads back");
            for e in &got {
                let orig = want.iter().find(|w| w.index == e.index);
                prop_assert_eq!(Some(e), orig);
            }
        }
    }
}
