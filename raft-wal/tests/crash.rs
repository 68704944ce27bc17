//! SIGKILL a process that appends and syncs in a loop; every index it
//! reported as synced must be in the log after reopen.
//!
//! The child is this test binary re-executed with `RAFT_WAL_CRASH_DIR` set,
//! running only `crash_child`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use raft_wal::{Entry, HardState, Options, Preallocate, SnapshotMeta, Wal};

const DIR_VAR: &str = "RAFT_WAL_CRASH_DIR";

fn opts() -> Options {
    Options {
        segment_size: 64 << 10,
        preallocate: Preallocate::Reserve,
        cache_bytes: 1 << 20,
    }
}

fn data(index: u64, term: u64) -> Vec<u8> {
    let mut d = format!("entry-{index}-{term}-").into_bytes();
    d.resize(64 + (index % 200) as usize, (index % 251) as u8);
    d
}

/// The child: appends batches of 1..=32 entries, now and then overwrites the
/// last three entries in a new term (a leader change) or snapshots and
/// compacts, syncs, and reports `synced <last index> <its term>`, forever.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let mut wal = Wal::open(&dir, opts()).expect("child open");
    let mut seed = wal.last_index().wrapping_mul(6_364_136_223_846_793_005) | 1;
    let mut term = wal.term(wal.last_index()).unwrap_or(1).max(1);
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let last = wal.last_index();
        let floor = wal.snapshot().index.max(wal.first_index() - 1) + 1;
        let lo = if seed.is_multiple_of(10) {
            term += 1;
            last.saturating_sub(2).max(floor)
        } else {
            last + 1
        };
        let n = 1 + (seed >> 8) % 32;
        let batch: Vec<Entry> = (lo..lo + n)
            .map(|i| Entry::new(i, term, data(i, term)))
            .collect();
        let hs = HardState {
            term,
            vote: 1,
            commit: wal.snapshot().index,
        };
        wal.append(&batch, Some(hs)).expect("child append");
        if seed % 50 == 1 && wal.last_index() > 20 {
            let index = wal.last_index() - 10;
            let meta = SnapshotMeta {
                index,
                term: wal.term(index).expect("term"),
                conf_state: b"cs".to_vec(),
            };
            wal.set_snapshot(meta).expect("snapshot");
            wal.sync().expect("sync");
            wal.compact(index + 1 - (seed >> 16) % 5).expect("compact");
        }
        let last = wal.last_index();
        println!("synced {last} {}", wal.term(last).unwrap_or(0));
    }
}

/// Runs the child for `after`, SIGKILLs it and returns its last report.
fn run_child_until_killed(dir: &Path, after: Duration) -> (u64, u64) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            if words.next() != Some("synced") {
                continue;
            }
            let last = words.next().and_then(|w| w.parse::<u64>().ok());
            let term = words.next().and_then(|w| w.parse::<u64>().ok());
            if let (Some(last), Some(term)) = (last, term) {
                let _ = tx.send((last, term));
            }
        }
    });
    // Wait for the first report (the child has opened the log), then let it run.
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("child reported");
    thread::sleep(after);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    reader.join().expect("reader");
    rx.try_iter().last().unwrap_or(first)
}

#[test]
fn sigkill_never_loses_a_synced_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut rounds = 0;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    while rounds < 3 || (Instant::now() < deadline && rounds < 12) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_millis(20 + seed % 200);
        let (synced, synced_term) = run_child_until_killed(dir.path(), after);
        let wal = Wal::open(dir.path(), opts()).expect("reopen after SIGKILL");
        // After the last report the child may have started an overwrite of
        // its last three entries (whose truncation is durable at once).
        assert!(
            wal.last_index() + 3 >= synced,
            "round {rounds}: child reported {synced} synced, log ends at {}",
            wal.last_index()
        );
        // (Unless the child compacted past it after reporting.)
        if wal.last_index() >= synced && synced + 1 >= wal.first_index() {
            let t = wal.term(synced).unwrap_or_else(|| {
                panic!(
                    "term({synced}) unknown: first {} last {} snapshot {}",
                    wal.first_index(),
                    wal.last_index(),
                    wal.snapshot().index
                )
            });
            assert!(
                t >= synced_term,
                "round {rounds}: term({synced}) = {t} < {synced_term}"
            );
        }
        let got = wal
            .entries(wal.first_index(), wal.last_index() + 1, u64::MAX)
            .expect("read back");
        let mut prev_term = 0;
        for (k, e) in got.iter().enumerate() {
            assert_eq!(e.index, wal.first_index() + k as u64);
            assert_eq!(e.data, data(e.index, e.term), "entry {}", e.index);
            assert!(e.term >= prev_term, "terms never decrease");
            prev_term = e.term;
        }
        rounds += 1;
        eprintln!(
            "round {rounds}: killed after {after:?}, {synced} reported synced, [{}, {}] recovered in {} segments, torn tail: {:?}",
            wal.first_index(),
            wal.last_index(),
            wal.segment_count(),
            wal.recovery().torn_tail.as_ref().map(|t| t.offset)
        );
    }
}
