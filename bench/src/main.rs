//! `etcr-bench`: see the library documentation.

use clap::Parser;

#[tokio::main]
async fn main() {
    let args = etcr_bench::Args::parse();
    match etcr_bench::run(&args).await {
        Ok(report) => print!("{}", report.table()),
        Err(e) => {
            eprintln!("etcr-bench: {e}");
            std::process::exit(1);
        }
    }
}
