//! `etcr-bench`: see the library documentation.

use clap::Parser;
use etcr_bench::Workload;

/// The generator shares the cores with the members it measures; every cycle it spends in
/// malloc is taken from them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args = etcr_bench::Args::parse();
    // h2 opens tracing spans for every frame it reads and writes; a subscriber that wants
    // none of them makes them free.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let table = match args.workload {
        Workload::Watch => etcr_bench::watch::run(&args).await.map(|r| r.table()),
        Workload::LeaseKeepalive | Workload::LeaseExpiry => {
            etcr_bench::lease::run(&args).await.map(|r| r.table())
        }
        Workload::BigRange => etcr_bench::big_range::run(&args).await.map(|r| r.table()),
        _ => etcr_bench::run(&args).await.map(|r| r.table()),
    };
    match table {
        Ok(table) => print!("{table}"),
        Err(e) => {
            eprintln!("etcr-bench: {e}");
            std::process::exit(1);
        }
    }
}
