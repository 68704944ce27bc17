//! The `txn` input grammar of etcdctl 3.4: comparisons such as `mod("key") > "3"` and
//! request lines (`get`, `put`, `del` with their flags), split with etcdctl's `Argify`.

use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::{Compare, RequestOp};

use crate::args::{parse_flags, HELP};
use crate::commands::Command;
use crate::error::{exit, CliError, Result};
use crate::gofmt::{parse_int, quote};

fn invalid_input(message: String) -> CliError {
    CliError::exit(exit::INVALID_INPUT, message)
}

/// Go's `strconv.Unquote` for `"..."` and `` `...` `` strings (bytes: `\x` escapes may
/// produce invalid UTF-8). `None` when malformed.
pub fn go_unquote(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() < 2 {
        return None;
    }
    let (open, close) = (b[0], b[b.len() - 1]);
    if open != close {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    match open {
        b'`' => (!inner.contains('`')).then(|| inner.replace('\r', "").into_bytes()),
        b'"' => unescape(inner),
        _ => None,
    }
}

fn unescape(inner: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => return None,
            '\\' => {
                let e = chars.next()?;
                match e {
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => {
                        let h: String = (0..2).filter_map(|_| chars.next()).collect();
                        out.push(u8::from_str_radix(&h, 16).ok().filter(|_| h.len() == 2)?);
                    }
                    '0'..='7' => {
                        let mut o = String::from(e);
                        o.extend((0..2).filter_map(|_| chars.next()));
                        let v = u32::from_str_radix(&o, 8).ok().filter(|_| o.len() == 3)?;
                        out.push(u8::try_from(v).ok()?);
                    }
                    'u' | 'U' => {
                        let n = if e == 'u' { 4 } else { 8 };
                        let h: String = (0..n).filter_map(|_| chars.next()).collect();
                        let v = u32::from_str_radix(&h, 16).ok().filter(|_| h.len() == n)?;
                        let ch = char::from_u32(v)?;
                        out.extend_from_slice(ch.to_string().as_bytes());
                    }
                    _ => return None,
                }
            }
            c => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    Some(out)
}

/// etcdctl's `Argify`: `"..."` (Go escapes), `'...'` (literal) and bare words.
pub fn argify(line: &str) -> Vec<Vec<u8>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let mut j = i + 1;
                let mut closed = None;
                while j < b.len() {
                    match b[j] {
                        b'\\' if j + 1 < b.len() => j += 2,
                        b'\\' => break,
                        b'"' => {
                            closed = Some(j);
                            break;
                        }
                        _ => j += 1,
                    }
                }
                match closed {
                    Some(end) => {
                        out.push(go_unquote(&line[i..=end]).unwrap_or_default());
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            b'\'' => match line[i + 1..].find('\'') {
                Some(off) => {
                    out.push(line.as_bytes()[i + 1..i + 1 + off].to_vec());
                    i += off + 2;
                }
                None => i += 1,
            },
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let end = line[i..]
                    .find(|c: char| c.is_whitespace())
                    .map_or(b.len(), |o| i + o);
                out.push(b[i..end].to_vec());
                i = end;
            }
        }
    }
    out
}

/// A minimal `fmt.Sscanf(s, "%q) %s %q", &key, &op, &val)`: the values scanned before the
/// first failure, and how many there were.
fn scan_compare(s: &str) -> (usize, Vec<u8>, String, Vec<u8>) {
    let (mut key, mut op, mut val) = (Vec::new(), String::new(), Vec::new());
    let mut rest = s;
    let Some((k, r)) = scan_quoted(rest) else {
        return (0, key, op, val);
    };
    key = k;
    rest = r;
    let Some(r) = rest.strip_prefix(')') else {
        return (1, key, op, val);
    };
    let Some(r) = scan_space(r) else {
        return (1, key, op, val);
    };
    let end = r.find(char::is_whitespace).unwrap_or(r.len());
    if end == 0 {
        return (1, key, op, val);
    }
    op = r[..end].to_string();
    let Some(r) = scan_space(&r[end..]) else {
        return (2, key, op, val);
    };
    if let Some((v, _)) = scan_quoted(r) {
        val = v;
        return (3, key, op, val);
    }
    (2, key, op, val)
}

/// A format space must match at least one input space.
fn scan_space(s: &str) -> Option<&str> {
    let t = s.trim_start_matches([' ', '\t', '\r']);
    (t.len() < s.len()).then_some(t)
}

/// `%q`: skip spaces, then a double- or back-quoted Go string.
fn scan_quoted(s: &str) -> Option<(Vec<u8>, &str)> {
    let s = s.trim_start_matches([' ', '\t', '\r']);
    let b = s.as_bytes();
    match b.first()? {
        b'`' => {
            let end = s[1..].find('`')? + 1;
            Some((s.as_bytes()[1..end].to_vec(), &s[end + 1..]))
        }
        b'"' => {
            let mut j = 1;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 2,
                    b'"' => {
                        return go_unquote(&s[..=j]).map(|v| (v, &s[j + 1..]));
                    }
                    _ => j += 1,
                }
            }
            None
        }
        _ => None,
    }
}

/// etcdctl's `parseCompare`.
pub fn parse_compare(line: &str) -> Result<Compare> {
    let Some((target, rest)) = line.split_once('(') else {
        return Err(invalid_input(format!("malformed comparison: {line}")));
    };
    let (n, key, op, val) = scan_compare(rest);
    if n != 3 {
        return Err(invalid_input(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            quote(&key),
            quote(&val)
        )));
    }
    let val_str = String::from_utf8_lossy(&val).to_string();
    let invalid = || invalid_input(format!("invalid txn compare request: {line}"));
    let (target, union) = match target {
        "ver" | "version" => (
            CompareTarget::Version,
            TargetUnion::Version(parse_int(&val_str, 10).map_err(|_| invalid())?),
        ),
        "c" | "create" => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(parse_int(&val_str, 10).map_err(|_| invalid())?),
        ),
        "m" | "mod" => (
            CompareTarget::Mod,
            TargetUnion::ModRevision(parse_int(&val_str, 10).map_err(|_| invalid())?),
        ),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(val.clone())),
        // etcdctl 3.4 accepts the word but cannot build the comparison (its client panics).
        "lease" => {
            return Err(invalid_input(format!(
                "lease comparisons are not supported: {line}"
            )))
        }
        other => {
            return Err(invalid_input(format!(
                "malformed comparison: {line} (unknown target {other})"
            )))
        }
    };
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        // etcdctl 3.4's client panics here; a clear error is better.
        _ => {
            return Err(invalid_input(format!(
                "malformed comparison: {line} (unknown operator {op}; use =, !=, < or >)"
            )))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key,
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// etcdctl's `parseRequestUnion`: one `get`/`put`/`del` line with that command's flags.
pub fn parse_request(line: &str) -> Result<RequestOp> {
    let args = argify(line);
    if args.len() < 2 {
        return Err(invalid_input(format!(
            "invalid txn compare request: {line}"
        )));
    }
    let invalid = || invalid_input(format!("invalid txn request: {line}"));
    let command = match args[0].as_slice() {
        b"get" => Command::Get,
        b"put" => Command::Put,
        b"del" => Command::Del,
        _ => return Err(invalid()),
    };
    let words: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut flags = command.flags().to_vec();
    flags.push(HELP);
    // The error is etcdctl's; the line before it says which flag did not parse.
    let parsed = parse_flags(&flags, &words).map_err(|why| CliError::Raw {
        stderr: format!(
            "etcrctl: {why} (see 'etcrctl {} --help')\nError: invalid txn request: {line}\n",
            command.spec().name
        ),
        code: exit::INVALID_INPUT,
    })?;
    let request = match command {
        Command::Get => Request::RequestRange(crate::commands::get::op(&parsed)?),
        // stdin is already buffered by the txn reader, so a missing value is an error.
        Command::Put => {
            Request::RequestPut(crate::commands::put::op(&parsed, &mut std::io::empty())?)
        }
        _ => Request::RequestDeleteRange(crate::commands::del::op(&parsed)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_like_etcdctl() {
        let words = argify(r#"put k9 "a b" 'c d' x"y"#);
        assert_eq!(
            words,
            vec![
                b"put".to_vec(),
                b"k9".to_vec(),
                b"a b".to_vec(),
                b"c d".to_vec(),
                b"x\"y".to_vec()
            ]
        );
    }

    #[test]
    fn compares_parse_and_fail_like_etcdctl() {
        let c = parse_compare(r#"mod("k2") > "0""#).unwrap();
        assert_eq!(c.key, b"k2");
        assert_eq!(c.result, CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(0)));
        let c = parse_compare(r#"value("k1") = "v1""#).unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"v1".to_vec())));

        let msg = |l: &str| match parse_compare(l).unwrap_err() {
            CliError::Exit { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg("bad"), "malformed comparison: bad");
        assert_eq!(
            msg(r#"val("k1) = 3"#),
            r#"malformed comparison: val("k1) = 3; got val("")  """#
        );
        assert_eq!(
            msg(r#"ver("k1") = 3"#),
            r#"malformed comparison: ver("k1") = 3; got ver("k1") = """#
        );
        assert_eq!(
            msg(r#"ver("k1")="1""#),
            r#"malformed comparison: ver("k1")="1"; got ver("k1")  """#
        );
        assert_eq!(
            msg(r#"foo("k1") = "3""#),
            r#"malformed comparison: foo("k1") = "3" (unknown target foo)"#
        );
        assert_eq!(
            msg(r#"ver("k1") = "x""#),
            r#"invalid txn compare request: ver("k1") = "x""#
        );
        // etcdctl 3.4 panics on these two; etcrctl explains.
        assert_eq!(
            msg(r#"lease("k1") = "5""#),
            r#"lease comparisons are not supported: lease("k1") = "5""#
        );
        assert_eq!(
            msg(r#"mod("k1") >= "5""#),
            r#"malformed comparison: mod("k1") >= "5" (unknown operator >=; use =, !=, < or >)"#
        );
    }

    #[test]
    fn requests_reuse_command_grammar() {
        let op = parse_request("get k --prefix").unwrap();
        let Some(Request::RequestRange(r)) = op.request else {
            panic!()
        };
        assert_eq!(r.range_end, b"l");
        assert!(matches!(
            parse_request("put"),
            Err(CliError::Exit { code: 3, .. })
        ));
        assert!(matches!(
            parse_request("zap a b"),
            Err(CliError::Exit { code: 3, .. })
        ));
        assert!(matches!(
            parse_request("put a"),
            Err(CliError::Exit { code: 128, .. })
        ));
        let Err(CliError::Raw { stderr, code }) = parse_request("put --bogus a b") else {
            panic!()
        };
        assert_eq!(code, exit::INVALID_INPUT);
        assert_eq!(
            stderr,
            "etcrctl: unknown flag: --bogus (see 'etcrctl put --help')\nError: invalid txn request: put --bogus a b\n"
        );
    }
}
