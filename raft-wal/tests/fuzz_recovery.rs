//! Fuzzing recovery: a log's segment files damaged at random (bits flipped, cut short,
//! bytes inserted or overwritten, files dropped or replaced by garbage) must open to a log or
//! to an error, never a panic, and a log that opens must read back and take appends.
//!
//! `ETCR_FUZZ_CASES` sets the cases per batch (64 by default, each opens a log on disk); with
//! `ETCR_FUZZ_SECONDS` batches with fresh seeds run until that much time has passed
//! (`cargo xtask fuzz`).

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use raft_wal::{Entry, HardState, Options, Preallocate, SnapshotMeta, Wal};

fn opts() -> Options {
    Options {
        segment_size: 4096,
        preallocate: Preallocate::None,
        cache_bytes: 16 << 10,
    }
}

fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("ETCR_FUZZ_CASES").unwrap_or(64) as u32;
    let until = env("ETCR_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let mut total = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{e}");
        }
        total += u64::from(cases);
        if until.is_none_or(|u| Instant::now() >= u) {
            break;
        }
    }
    let test = std::thread::current().name().unwrap_or("fuzz").to_string();
    eprintln!("{test}: {total} cases, no failure");
}

/// The files of a healthy log over several segments: entries, a leader change that
/// overwrote a suffix, hard states, a snapshot and a compaction. Built once.
fn pristine() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path(), opts()).expect("open");
        for i in 1..=150u64 {
            let data = vec![(i % 251) as u8; (i % 90) as usize];
            let hs = HardState {
                term: 1,
                vote: 1,
                commit: i.saturating_sub(3),
            };
            wal.append(&[Entry::new(i, 1, data)], Some(hs))
                .expect("append");
        }
        let overwrite: Vec<Entry> = (140..=170u64)
            .map(|i| Entry::new(i, 2, format!("term two {i}")))
            .collect();
        wal.append(&overwrite, None).expect("overwrite");
        wal.set_snapshot(SnapshotMeta {
            index: 60,
            term: 1,
            conf_state: b"voters 1 2 3".to_vec(),
        })
        .expect("snapshot");
        wal.compact(50).expect("compact");
        drop(wal);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                name.ends_with(".wal")
                    .then(|| (name, std::fs::read(e.path()).expect("read segment")))
            })
            .collect();
        files.sort();
        assert!(
            files.len() >= 3,
            "want several segments, got {}",
            files.len()
        );
        files
    })
}

#[derive(Debug, Clone)]
enum Damage {
    Flip {
        file: Index,
        at: Index,
        mask: u8,
    },
    Truncate {
        file: Index,
        at: Index,
    },
    Insert {
        file: Index,
        at: Index,
        bytes: Vec<u8>,
    },
    Overwrite {
        file: Index,
        at: Index,
        bytes: Vec<u8>,
    },
    Remove {
        file: Index,
    },
    Replace {
        file: Index,
        bytes: Vec<u8>,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    let bytes = || prop::collection::vec(any::<u8>(), 1..64);
    prop_oneof![
        (any::<Index>(), any::<Index>(), 1..=255u8).prop_map(|(file, at, mask)| Damage::Flip {
            file,
            at,
            mask
        }),
        (any::<Index>(), any::<Index>()).prop_map(|(file, at)| Damage::Truncate { file, at }),
        (any::<Index>(), any::<Index>(), bytes()).prop_map(|(file, at, bytes)| Damage::Insert {
            file,
            at,
            bytes
        }),
        (any::<Index>(), any::<Index>(), bytes()).prop_map(|(file, at, bytes)| Damage::Overwrite {
            file,
            at,
            bytes
        }),
        any::<Index>().prop_map(|file| Damage::Remove { file }),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 0..2048))
            .prop_map(|(file, bytes)| Damage::Replace { file, bytes }),
    ]
}

fn apply(files: &mut Vec<(String, Vec<u8>)>, d: &Damage) {
    if files.is_empty() {
        return;
    }
    let n = files.len();
    let pick = |i: &Index| i.index(n);
    match d {
        Damage::Flip { file, at, mask } => {
            let f = &mut files[pick(file)].1;
            if !f.is_empty() {
                let i = at.index(f.len());
                f[i] ^= mask;
            }
        }
        Damage::Truncate { file, at } => {
            let f = &mut files[pick(file)].1;
            let i = at.index(f.len() + 1);
            f.truncate(i);
        }
        Damage::Insert { file, at, bytes } => {
            let f = &mut files[pick(file)].1;
            let i = at.index(f.len() + 1);
            f.splice(i..i, bytes.iter().copied());
        }
        Damage::Overwrite { file, at, bytes } => {
            let f = &mut files[pick(file)].1;
            if !f.is_empty() {
                let i = at.index(f.len());
                for (j, b) in bytes.iter().enumerate() {
                    if let Some(x) = f.get_mut(i + j) {
                        *x = *b;
                    }
                }
            }
        }
        Damage::Remove { file } => {
            files.remove(pick(file));
        }
        Damage::Replace { file, bytes } => {
            let i = pick(file);
            files[i].1 = bytes.clone();
        }
    }
}

/// Opens the damaged log; if it opens, reads it all, appends past its end and reopens.
fn recover(dir: &Path) -> Result<(), TestCaseError> {
    let Ok(mut wal) = Wal::open(dir, opts()) else {
        return Ok(());
    };
    let (first, last) = (wal.first_index(), wal.last_index());
    prop_assert!(first <= last + 1, "first {first} last {last}");
    if last >= first {
        // Reading may still find damage the open did not look at; it must say so.
        if let Ok(entries) = wal.entries(first, last + 1, u64::MAX) {
            prop_assert_eq!(entries.len() as u64, last - first + 1);
            for (e, i) in entries.iter().zip(first..) {
                prop_assert_eq!(e.index, i);
            }
        }
    }
    for i in first.saturating_sub(1)..=last {
        let _ = wal.term(i);
    }
    let next = last + 1;
    let term = wal
        .term(last)
        .unwrap_or(1)
        .max(wal.hard_state().term)
        .max(1);
    let hs = HardState {
        term,
        ..wal.hard_state()
    };
    if wal
        .append(&[Entry::new(next, term, "after recovery")], Some(hs))
        .is_ok()
    {
        drop(wal);
        let wal = Wal::open(dir, opts()).map_err(|e| {
            TestCaseError::fail(format!(
                "a log that recovered and took an append will not reopen: {e}"
            ))
        })?;
        prop_assert_eq!(wal.last_index(), next);
        prop_assert_eq!(wal.term(next), Some(term));
    }
    Ok(())
}

#[test]
fn the_pristine_log_recovers_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in pristine() {
        std::fs::write(dir.path().join(name), bytes).expect("write");
    }
    let wal = Wal::open(dir.path(), opts()).expect("open");
    assert_eq!(wal.last_index(), 170);
    assert_eq!(wal.term(170), Some(2));
    assert_eq!(wal.snapshot().index, 60);
}

#[test]
fn damaged_segments_open_or_fail_cleanly() {
    fuzz(prop::collection::vec(damage(), 1..5), |damages| {
        let mut files = pristine().clone();
        for d in &damages {
            apply(&mut files, d);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, bytes) in &files {
            std::fs::write(dir.path().join(name), bytes).expect("write");
        }
        recover(dir.path())
    });
}

#[test]
fn a_segment_of_garbage_opens_or_fails_cleanly() {
    fuzz(prop::collection::vec(any::<u8>(), 0..4096), |bytes| {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = &pristine()[0].0;
        std::fs::write(dir.path().join(name), &bytes).expect("write");
        recover(dir.path())
    });
}
