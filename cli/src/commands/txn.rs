//! `txn [-i]`: compares, success requests and failure requests read from stdin, each
//! section ended by an empty line.

use std::io::BufRead;

use api::etcdserverpb::{Compare, RequestOp, TxnRequest};

use super::{emit, Ctx};
use crate::args::{flag, Kind};
use crate::error::{exit, CliError, Result};
use crate::help::Spec;
use crate::txn_grammar::{parse_compare, parse_request};

pub const SPEC: Spec = Spec {
    name: "txn",
    args: "[flags]",
    summary: "run requests atomically, depending on compares, read from stdin",
    about: "Reads three blocks from standard input, each ended by an empty line:
  1. compares, one a line, such as   mod(\"k1\") > \"5\"   or   value(\"k2\") = \"on\":
     what is compared is ver|version, c|create or m|mod (a number) or val|value, and
     the operator is =, !=, < or >;
  2. the requests to run if every compare holds;
  3. the requests to run if any does not.
A request is a get, put or del line with that command's arguments and flags, such as
  put k3 \"a b\" --prev-kv
Quote words with \"...\" (Go escapes allowed) or '...'. The server runs it all in one
transaction; etcrctl prints SUCCESS or FAILURE, then each request's result.",
    flags: &[flag(
        "interactive",
        Some('i'),
        Kind::Bool,
        "false",
        "prompt before each block",
    )],
};

/// Go's `bufio.Reader.ReadString('\n')` then `strings.TrimSpace`; a missing final newline is `EOF`.
fn read_line(input: &mut dyn BufRead) -> Result<String> {
    let mut buf = Vec::new();
    let eof = || CliError::exit(exit::INVALID_INPUT, "EOF");
    input.read_until(b'\n', &mut buf).map_err(|_| eof())?;
    if buf.last() != Some(&b'\n') {
        return Err(eof());
    }
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

fn read_compares(input: &mut dyn BufRead) -> Result<Vec<Compare>> {
    let mut out = Vec::new();
    loop {
        let line = read_line(input)?;
        if line.is_empty() {
            return Ok(out);
        }
        out.push(parse_compare(&line)?);
    }
}

fn read_ops(input: &mut dyn BufRead) -> Result<Vec<RequestOp>> {
    let mut out = Vec::new();
    loop {
        let line = read_line(input)?;
        if line.is_empty() {
            return Ok(out);
        }
        out.push(parse_request(&line)?);
    }
}

fn prompt(interactive: bool, text: &str) {
    if interactive {
        println!("{text}");
    }
}

pub async fn run(ctx: &mut Ctx) -> Result<()> {
    if !ctx.parsed.args.is_empty() {
        return Err(CliError::bad_args("txn command does not accept argument"));
    }
    let (client, printer) = ctx.connect()?;
    let interactive = ctx.parsed.bool("interactive");
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    prompt(interactive, "compares:");
    let compare = read_compares(&mut input)?;
    prompt(interactive, "success requests (get, put, del):");
    let success = read_ops(&mut input)?;
    prompt(interactive, "failure requests (get, put, del):");
    let failure = read_ops(&mut input)?;
    let req = TxnRequest {
        compare,
        success,
        failure,
    };
    let resp = client
        .unary(|ch| {
            let req = req.clone();
            async move { crate::client::kv(ch).txn(req).await }
        })
        .await?;
    emit(&printer.txn(&resp)?);
    Ok(())
}
