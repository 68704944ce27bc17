//! The key range grammar `get` and `del` share: `<key> [range_end]`, `--prefix`, `--from-key`.

use crate::args::Parsed;
use crate::error::{CliError, Result};

/// Rejects `--prefix` together with `--from-key`.
pub fn check_exclusive(p: &Parsed) -> Result<()> {
    if p.bool("prefix") && p.bool("from-key") {
        return Err(CliError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    Ok(())
}

/// The request's `(key, range_end)`, as clientv3's `WithRange`, `WithPrefix` and
/// `WithFromKey` build them (an empty key with either flag means the whole keyspace).
pub fn key_range(p: &Parsed) -> Result<(Vec<u8>, Vec<u8>)> {
    let (prefix, from_key) = (p.bool("prefix"), p.bool("from-key"));
    let mut key = p.args[0].clone().into_bytes();
    let mut end = Vec::new();
    if let Some(range_end) = p.args.get(1) {
        if prefix || from_key {
            return Err(CliError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        end = range_end.clone().into_bytes();
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            end = vec![0];
        } else {
            end = api::prefix_range_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        end = vec![0];
    }
    Ok((key, end))
}
