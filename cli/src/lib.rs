//! `etcrctl`: etcr's command-line client. It speaks the etcd v3 API (3.4), so it works
//! against etcr and etcd alike, and it keeps etcdctl 3.4's command grammar, flag names and
//! defaults, output formats, error messages and exit codes, which scripts depend on.
//!
//! Commands: `get`, `put`, `del`, `txn [-i]`, `compaction [--physical]`, `watch [-i]`,
//! `lease grant|revoke|timetolive|list|keep-alive`, `member list|add|remove|update|promote`,
//! `endpoint status|health|hashkv [--cluster]`, `move-leader`, `alarm list|disarm`,
//! `auth enable|disable`,
//! `defrag [--cluster]`, `snapshot save|status`, `version` and `help`, with cobra's prefix
//! matching and suggestions; global flags `--endpoints`, `--dial-timeout`,
//! `--command-timeout`, `-w/--write-out simple|json|fields|table|protobuf`, `--hex`, the TLS
//! flags `--cacert`, `--cert`, `--key`, `--insecure-skip-tls-verify`, `--insecure-transport`
//! ([`tls`]), `--user`/`--password` ([`auth`]: authenticate once, then send the token), and
//! their `ETCDCTL_*` environment forms. etcdctl's other commands are unknown commands, and its
//! discovery, keepalive and `--debug` flags are refused (see [`args::REFUSED_FLAGS`]).
//!
//! Layout: [`args`] parses the command line as cobra/pflag do, [`commands`] holds one module
//! per command (each with its help [`help::Spec`]), [`help`] renders the help pages,
//! [`printer`] holds one module per output format, [`txn_grammar`] the `txn` input,
//! [`client`] the gRPC connection and clientv3's error behaviour, [`gofmt`] the Go
//! formatting (`%q`, JSON strings, durations, sizes) that byte-exact output needs.
//!
//! ```
//! // The txn grammar is etcdctl's: a comparison, then requests with their own flags.
//! let cmp = etcrctl::txn_grammar::parse_compare(r#"mod("key") > "3""#).unwrap();
//! assert_eq!(cmp.key, b"key");
//! ```

pub mod args;
pub mod auth;
mod bolt;
pub mod client;
mod clock;
pub mod commands;
pub mod error;
pub mod gofmt;
pub mod help;
pub mod printer;
mod sha256;
pub mod tls;
pub mod txn_grammar;

use std::io::Write;

use args::Invocation;
use error::CliError;

/// etcdctl 3.4 runs its v3 client for `ETCDCTL_API` unset, empty or `3`, and its v2 client
/// for `2`; etcrctl has only the former.
fn check_api(env: &[(String, String)]) -> error::Result<()> {
    match env.iter().find(|(k, _)| k == "ETCDCTL_API") {
        None => Ok(()),
        Some((_, v)) if v.is_empty() || v == "3" => Ok(()),
        Some((_, v)) if v == "2" => Err(CliError::bad_feature(
            "ETCDCTL_API=2 is refused: etcrctl speaks only the v3 API",
        )),
        Some((_, v)) => Err(CliError::Raw {
            stderr: format!("unsupported API version {v}\n"),
            code: error::exit::ERROR,
        }),
    }
}

/// Runs etcrctl with `argv` (without the program name) and `env`; returns the exit code.
pub fn run(argv: Vec<String>, env: Vec<(String, String)>) -> i32 {
    let result = check_api(&env).and_then(|()| match args::parse(&argv)? {
        Invocation::Usage(text) => {
            print!("{text}");
            Ok(())
        }
        Invocation::Run(command, parsed) => {
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
    });
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            let (err, code) = e.render();
            eprint!("{err}");
            code
        }
    }
}
