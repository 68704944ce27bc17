//! `cargo xtask test`: the whole suite, exactly what CI runs.

use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments passed to `cargo test` (for example a test name filter).
    #[arg(trailing_var_arg = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::packages::ensure_etcd()?;
    eprintln!("== cargo build (binaries the integration tests start)");
    crate::run_cmd(Command::new("cargo").args(["build", "--workspace", "--bins"]))?;
    eprintln!("== cargo test");
    crate::run_cmd(
        Command::new("cargo")
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(&args.cargo_args),
    )
}
