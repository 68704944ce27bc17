//! `etcrctl`: a command-line client for etcr and etcd that reproduces `etcdctl` 3.4
//! (API v3) byte for byte: its grammar, its output formats, its errors and exit codes.
//!
//! Implemented: `get`, `put`, `del`, `txn [-i]`, `compaction [--physical]`,
//! `endpoint status|health [--cluster]`, `member list`, `version`, `help`, the usage texts,
//! cobra's prefix matching and suggestions, the global flags `--endpoints`, `--dial-timeout`,
//! `--command-timeout`, `-w/--write-out simple|json|fields|table|protobuf`, `--hex`, and
//! their `ETCDCTL_*` environment forms. Accepted but without effect: the TLS, auth, keepalive,
//! discovery and `--debug` flags (etcrctl speaks plain-text gRPC only).
//!
//! Layout: [`args`] parses the command line as cobra/pflag do, [`commands`] holds one module
//! per command, [`printer`] one module per output format, [`txn_grammar`] the `txn` input,
//! [`client`] the gRPC connection and clientv3's error behaviour, [`gofmt`] the Go
//! formatting (`%q`, JSON strings, durations, sizes) that byte-exact output needs.
//!
//! ```
//! // The txn grammar is etcdctl's: a comparison, then requests with their own flags.
//! let cmp = etcrctl::txn_grammar::parse_compare(r#"mod("key") > "3""#).unwrap();
//! assert_eq!(cmp.key, b"key");
//! ```

pub mod args;
pub mod client;
mod clock;
pub mod commands;
pub mod error;
pub mod gofmt;
pub mod printer;
pub mod txn_grammar;

use std::io::Write;

use args::Invocation;
use error::CliError;

/// Runs etcrctl with `argv` (without the program name) and `env`; returns the exit code.
pub fn run(argv: Vec<String>, env: Vec<(String, String)>) -> i32 {
    let result = match args::parse(&argv) {
        Ok(Invocation::Usage(text)) => {
            print!("{text}");
            Ok(())
        }
        Ok(Invocation::Run(command, parsed)) => {
            let mut ctx = commands::Ctx {
                command,
                parsed,
                env,
            };
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(commands::run(&mut ctx)),
                Err(e) => Err(CliError::exit(error::exit::ERROR, e.to_string())),
            }
        }
        Err(e) => Err(e),
    };
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            let (out, err, code) = e.render();
            print!("{out}");
            let _ = std::io::stdout().flush();
            eprint!("{err}");
            code
        }
    }
}
