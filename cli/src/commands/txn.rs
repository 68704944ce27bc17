//! `txn [-i]`: compares, success requests and failure requests read from stdin, each
//! section ended by an empty line.

use std::io::BufRead;

use api::etcdserverpb::{Compare, RequestOp, TxnRequest};

use super::{emit, Ctx};
use crate::error::{exit, CliError, Result};
use crate::txn_grammar::{parse_compare, parse_request};

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
