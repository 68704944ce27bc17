//! `etcr-bench`: see the library documentation.

use clap::Parser;

#[tokio::main]
async fn main() {
    let args = etcr_bench::Args::parse();
    // h2 opens tracing spans for every frame it reads and writes; a subscriber that wants
    // none of them makes them free.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    match etcr_bench::run(&args).await {
        Ok(report) => print!("{}", report.table()),
        Err(e) => {
            eprintln!("etcr-bench: {e}");
            std::process::exit(1);
        }
    }
}
