//! Measures how opening a store scales with its number of keys.
//!
//! ```text
//! cargo run --release -p mvcc --example open_bench -- [N | --keys N] [--dir PATH] [--batch B]
//! ```
//!
//! Creates (or reuses, if it already holds at least N keys) a store with N keys of ~64-byte
//! values, written in batches of B puts per LMDB transaction, closes it, then measures in a
//! fresh child process: the time to open, and RSS (VmRSS, VmHWM from /proc/self/status) after
//! opening and after one single-key range.

use std::path::PathBuf;
use std::process::Command as Process;
use std::time::Instant;

use mvcc::{Command, PutRequest, RangeRequest, Store, StoreOptions};

struct Args {
    keys: u64,
    dir: PathBuf,
    batch: u64,
    measure_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut keys = 1_000_000u64;
    let mut dir = None;
    let mut batch = 10_000u64;
    let mut measure_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--keys" | "-n" => {
                keys = value("--keys")?
                    .parse()
                    .map_err(|e| format!("--keys: {e}"))?
            }
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--batch" => {
                batch = value("--batch")?
                    .parse()
                    .map_err(|e| format!("--batch: {e}"))?
            }
            "--measure-only" => measure_only = true,
            "-h" | "--help" => {
                return Err("usage: open_bench [N | --keys N] [--dir PATH] [--batch B]".into());
            }
            other => match other.parse() {
                // `cargo xtask bench mvcc` passes the key count alone.
                Ok(n) => keys = n,
                Err(_) => return Err(format!("unknown argument {other}")),
            },
        }
    }
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("etcr-open-bench-{keys}")));
    Ok(Args {
        keys,
        dir,
        batch: batch.max(1),
        measure_only,
    })
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_line(label: &str) {
    println!(
        "{label:<22} VmRSS {:>8} KiB   VmHWM {:>8} KiB   RssAnon {:>8} KiB",
        status_kib("VmRSS:"),
        status_kib("VmHWM:"),
        status_kib("RssAnon:")
    );
}

fn key(i: u64) -> Vec<u8> {
    format!("/registry/bench/key-{i:010}").into_bytes()
}

fn fill(args: &Args) -> Result<(), mvcc::Error> {
    let store = Store::open(&args.dir, StoreOptions::default())?;
    let have = (store.current_revision() - 1).max(0) as u64;
    if have >= args.keys {
        println!("reusing {} ({} keys written)", args.dir.display(), have);
        return Ok(());
    }
    println!(
        "writing {} keys to {} ...",
        args.keys - have,
        args.dir.display()
    );
    let start = Instant::now();
    let value = vec![b'v'; 64];
    let mut next = have;
    let mut index = store.applied_index();
    while next < args.keys {
        let end = (next + args.batch).min(args.keys);
        let batch: Vec<(u64, Command)> = (next..end)
            .map(|i| {
                index += 1;
                let put = PutRequest {
                    key: key(i),
                    value: value.clone(),
                    ..Default::default()
                };
                (index, Command::Put(put))
            })
            .collect();
        store.apply(&batch)?;
        next = end;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "wrote in {secs:.1} s ({:.0} puts/s), file {} MiB",
        (args.keys - have) as f64 / secs,
        store.db_size_bytes()? >> 20
    );
    Ok(())
}

fn measure(args: &Args) -> Result<(), mvcc::Error> {
    rss_line("before open");
    let start = Instant::now();
    let store = Store::open(&args.dir, StoreOptions::default())?;
    let open = start.elapsed();
    println!("open time              {:.3} ms", open.as_secs_f64() * 1e3);
    rss_line("after open");
    let start = Instant::now();
    let resp = store.range(&RangeRequest {
        key: key(args.keys / 2),
        ..Default::default()
    })?;
    let range = start.elapsed();
    assert_eq!(resp.kvs.len(), 1, "the middle key must exist");
    println!("first range            {:.3} ms", range.as_secs_f64() * 1e3);
    rss_line("after one range");
    println!(
        "keys {}  revision {}  file {} MiB  in use {} MiB",
        args.keys,
        store.current_revision(),
        store.db_size_bytes()? >> 20,
        store.db_size_in_use_bytes()? >> 20
    );
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if args.measure_only {
        if let Err(e) = measure(&args) {
            eprintln!("open_bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = fill(&args) {
        eprintln!("open_bench: {e}");
        std::process::exit(1);
    }
    // Measure in a fresh process so that the fill does not count towards RSS.
    let exe = std::env::current_exe().expect("current executable");
    let status = Process::new(exe)
        .args(["--measure-only", "--keys", &args.keys.to_string(), "--dir"])
        .arg(&args.dir)
        .status()
        .expect("spawn measuring process");
    std::process::exit(status.code().unwrap_or(1));
}
