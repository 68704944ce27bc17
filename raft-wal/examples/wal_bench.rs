//! Group-commit throughput of the WAL against an LMDB table (heed) for the
//! same workload: 256-byte entries, batches of 1, 16 and 128, one sync per
//! batch.
//!
//! ```text
//! cargo run --release -p raft-wal --example wal_bench -- [seconds_per_case] [dir]
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{Database, EnvOpenOptions};
use raft_wal::{Entry, HardState, Options, Preallocate, Wal};

const ENTRY_BYTES: usize = 256;
const BATCHES: [u64; 3] = [1, 16, 128];

struct Stats {
    batches: u64,
    entries: u64,
    elapsed: Duration,
    /// Latency of the durability step of each batch (fdatasync / commit).
    syncs: Vec<Duration>,
}

impl Stats {
    fn print(&mut self, store: &str, batch: u64) {
        self.syncs.sort();
        let pct = |p: f64| {
            let i =
                ((self.syncs.len() as f64 * p) as usize).min(self.syncs.len().saturating_sub(1));
            self.syncs.get(i).copied().unwrap_or_default()
        };
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{store:<17} batch {batch:>3}: {:>8.0} batches/s {:>9.0} entries/s {:>7.2} MB/s  sync p50 {:>7.3} ms p99 {:>7.3} ms",
            self.batches as f64 / secs,
            self.entries as f64 / secs,
            (self.entries * ENTRY_BYTES as u64) as f64 / secs / 1e6,
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        );
    }
}

fn bench_wal(dir: &Path, batch: u64, dur: Duration, preallocate: Preallocate) -> Stats {
    let opts = Options {
        preallocate,
        ..Options::default()
    };
    let mut wal = Wal::open(dir, opts).expect("open wal");
    let payload = vec![0xABu8; ENTRY_BYTES];
    let mut stats = Stats {
        batches: 0,
        entries: 0,
        elapsed: Duration::ZERO,
        syncs: Vec::new(),
    };
    let start = Instant::now();
    let mut next = wal.last_index() + 1;
    while start.elapsed() < dur {
        let entries: Vec<Entry> = (next..next + batch)
            .map(|i| Entry::new(i, 1, payload.clone()))
            .collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: next,
        };
        wal.append_nosync(&entries, Some(hs)).expect("append");
        let t = Instant::now();
        wal.sync().expect("sync");
        stats.syncs.push(t.elapsed());
        next += batch;
        stats.batches += 1;
        stats.entries += batch;
    }
    stats.elapsed = start.elapsed();
    stats
}

fn bench_lmdb(dir: &Path, batch: u64, dur: Duration) -> Stats {
    std::fs::create_dir_all(dir).expect("mkdir");
    // SAFETY: the environment is opened once in this process and its files
    // are not modified by other means while mapped.
    let env = unsafe {
        EnvOpenOptions::new()
            .map_size(8 << 30)
            .max_dbs(2)
            .open(dir)
            .expect("open lmdb")
    };
    let mut wtxn = env.write_txn().expect("txn");
    let log: Database<Bytes, Bytes> = env.create_database(&mut wtxn, Some("log")).expect("db");
    let meta: Database<Bytes, Bytes> = env.create_database(&mut wtxn, Some("meta")).expect("db");
    wtxn.commit().expect("commit");
    let payload = vec![0xABu8; ENTRY_BYTES];
    let mut stats = Stats {
        batches: 0,
        entries: 0,
        elapsed: Duration::ZERO,
        syncs: Vec::new(),
    };
    let start = Instant::now();
    let mut next = 1u64;
    while start.elapsed() < dur {
        let mut wtxn = env.write_txn().expect("txn");
        for i in next..next + batch {
            log.put(&mut wtxn, &i.to_be_bytes(), &payload).expect("put");
        }
        meta.put(&mut wtxn, b"hard_state", &next.to_le_bytes())
            .expect("put");
        let t = Instant::now();
        wtxn.commit().expect("commit");
        stats.syncs.push(t.elapsed());
        next += batch;
        stats.batches += 1;
        stats.entries += batch;
    }
    stats.elapsed = start.elapsed();
    stats
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let dur = Duration::from_secs_f64(secs);
    let base = match args.next() {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    println!(
        "{ENTRY_BYTES}-byte entries, one sync per batch, {secs} s per case, in {}",
        base.path().display()
    );
    let modes = [
        ("wal (zeroed)", Preallocate::Zero),
        ("wal (fallocate)", Preallocate::Reserve),
        ("wal (growing)", Preallocate::None),
    ];
    // Segment creation cost (paid at every rotation, on the append path).
    for (k, (name, mode)) in modes.iter().enumerate() {
        let t = Instant::now();
        let opts = Options {
            preallocate: *mode,
            ..Options::default()
        };
        drop(Wal::open(base.path().join(format!("create-{k}")), opts).expect("open"));
        println!(
            "{name:<17} create a 64 MiB segment: {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    for batch in BATCHES {
        for (k, (name, mode)) in modes.iter().enumerate() {
            let dir = base.path().join(format!("wal-{k}-{batch}"));
            bench_wal(&dir, batch, dur, *mode).print(name, batch);
        }
        bench_lmdb(&base.path().join(format!("lmdb-{batch}")), batch, dur)
            .print("lmdb (heed)", batch);
    }
}
