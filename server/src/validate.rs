//! Request checks made before a request is proposed or served, with etcd's errors and in
//! etcd's order, so that bad input is refused before it reaches the log.

use api::etcdserverpb::{
    request_op::Request, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use crate::errors::EtcdError;

pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    // Unknown enum values arrive as raw integers; etcd refuses them.
    if !(0..=2).contains(&r.sort_order) || !(0..=4).contains(&r.sort_target) {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// Checks a txn: sizes, every op, then that no key is written twice on any path.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    check_txn_ops(r, max_txn_ops)?;
    check_writes_disjoint(&r.success)?;
    check_writes_disjoint(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let widest = r.compare.len().max(r.success.len()).max(r.failure.len());
    if widest > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_op(op, max_txn_ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(r)) => check_put(r),
        Some(Request::RequestDeleteRange(r)) => check_delete(r),
        Some(Request::RequestTxn(r)) => check_txn_ops(r, max_txn_ops),
        // etcd answers an empty op this way.
        None => Err(EtcdError::KeyNotFound),
    }
}

/// What a delete op removes: one key, `[start, end)`, or everything from `start` on.
enum Deleted<'a> {
    Key(&'a [u8]),
    Until(&'a [u8], &'a [u8]),
    FromKey(&'a [u8]),
}

impl<'a> Deleted<'a> {
    fn of(r: &'a DeleteRangeRequest) -> Self {
        match r.range_end.as_slice() {
            [] => Deleted::Key(&r.key),
            [0] => Deleted::FromKey(&r.key),
            end => Deleted::Until(&r.key, end),
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        match *self {
            Deleted::Key(k) => k == key,
            Deleted::Until(start, end) => key >= start && key < end,
            Deleted::FromKey(start) => key >= start,
        }
    }
}

/// Puts and deletes gathered from one branch of a txn, including nested txns.
#[derive(Default)]
struct Writes<'a> {
    puts: Vec<&'a [u8]>,
    dels: Vec<Deleted<'a>>,
}

impl Writes<'_> {
    fn deleted(&self, key: &[u8]) -> bool {
        self.dels.iter().any(|d| d.contains(key))
    }
}

/// etcd refuses a txn branch that puts one key twice, or puts a key that the same branch
/// deletes, because the outcome would depend on op order. The two branches of a nested txn
/// exclude each other, so a key put in both of them is fine.
fn check_writes_disjoint(ops: &[RequestOp]) -> Result<(), EtcdError> {
    collect_writes(ops).map(|_| ())
}

fn collect_writes(ops: &[RequestOp]) -> Result<Writes<'_>, EtcdError> {
    let mut w = Writes::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            w.dels.push(Deleted::of(d));
        }
    }
    let mut nested_dels = Vec::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let then = collect_writes(&t.success)?;
        let otherwise = collect_writes(&t.failure)?;
        for k in &then.puts {
            if w.puts.contains(k) || w.deleted(k) {
                return Err(EtcdError::DuplicateKey);
            }
            w.puts.push(k);
        }
        for k in &otherwise.puts {
            if (w.puts.contains(k) && !then.puts.contains(k)) || w.deleted(k) {
                return Err(EtcdError::DuplicateKey);
            }
            w.puts.push(k);
        }
        nested_dels.extend(then.dels);
        nested_dels.extend(otherwise.dels);
    }
    w.dels.extend(nested_dels);
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if w.puts.contains(&p.key.as_slice()) || w.deleted(&p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        w.puts.push(&p.key);
    }
    Ok(w)
}

/// Whether a txn (and every txn nested in it) only reads, so it can be served without the log.
pub fn txn_is_read_only(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(t)) => txn_is_read_only(t),
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
        })
}

/// Whether every read of a read-only txn asked for serializable consistency (etcd then skips
/// the linearizable read barrier for the whole txn).
pub fn txn_is_serializable(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(r)) => r.serializable,
            Some(Request::RequestTxn(t)) => txn_is_serializable(t),
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                compare: vec![],
                success,
                failure,
            })),
        }
    }
    fn check(success: Vec<RequestOp>) -> Result<(), EtcdError> {
        check_txn(
            &TxnRequest {
                compare: vec![],
                success,
                failure: vec![],
            },
            128,
        )
    }

    #[test]
    fn duplicate_puts_are_refused() {
        assert_eq!(
            check(vec![put("a"), put("a")]),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(check(vec![put("a"), put("b")]), Ok(()));
    }

    #[test]
    fn put_inside_deleted_range_is_refused() {
        assert_eq!(
            check(vec![del("a", "c"), put("b")]),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            check(vec![del("a", ""), put("a")]),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(check(vec![del("a", ""), put("ab")]), Ok(()));
        assert_eq!(
            check(vec![del("a", "\0"), put("zzz")]),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(check(vec![del("a", "c"), put("c")]), Ok(()));
        // Overlapping deletes are fine.
        assert_eq!(check(vec![del("a", "c"), del("b", "d")]), Ok(()));
    }

    #[test]
    fn nested_branches_exclude_each_other() {
        assert_eq!(check(vec![txn(vec![put("a")], vec![put("a")])]), Ok(()));
        assert_eq!(
            check(vec![txn(vec![put("a")], vec![]), put("a")]),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            check(vec![txn(vec![del("a", "b")], vec![]), put("a")]),
            Err(EtcdError::DuplicateKey)
        );
    }

    #[test]
    fn sizes_and_empty_ops() {
        let many: Vec<RequestOp> = (0..3).map(|i| put(&format!("k{i}"))).collect();
        let r = TxnRequest {
            compare: vec![],
            success: many,
            failure: vec![],
        };
        assert_eq!(check_txn(&r, 2), Err(EtcdError::TooManyOps));
        assert_eq!(check_txn(&r, 3), Ok(()));
        assert_eq!(
            check(vec![RequestOp { request: None }]),
            Err(EtcdError::KeyNotFound)
        );
        assert_eq!(check(vec![put("")]), Err(EtcdError::EmptyKey));
    }

    #[test]
    fn put_checks() {
        let p = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(EtcdError::ValueProvided));
        let p = PutRequest {
            key: b"k".to_vec(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(EtcdError::LeaseProvided));
    }

    #[test]
    fn read_only_txns_are_recognised() {
        let range = RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            })),
        };
        let ro = TxnRequest {
            compare: vec![],
            success: vec![range.clone()],
            failure: vec![txn(vec![range], vec![])],
        };
        assert!(txn_is_read_only(&ro));
        let rw = TxnRequest {
            compare: vec![],
            success: vec![],
            failure: vec![txn(vec![], vec![put("a")])],
        };
        assert!(!txn_is_read_only(&rw));
    }
}

/// Requests as a client can send them: mutated encodings of valid requests (nested txns
/// included) decoded as every KV request type, then validated and converted to store
/// commands as the KV service does. Nothing may panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::convert;
    use api::etcdserverpb::{compare, CompactionRequest, Compare};
    use proptest::prelude::*;
    use prost::Message;

    fn seeds() -> Vec<Vec<u8>> {
        let put = |k: &str| RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                value: b"v".to_vec(),
                lease: 7,
                prev_kv: true,
                ..Default::default()
            })),
        };
        let range = RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                limit: 3,
                revision: 2,
                sort_order: 1,
                sort_target: 3,
                ..Default::default()
            })),
        };
        let inner = TxnRequest {
            compare: vec![Compare {
                result: 1,
                target: 2,
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                target_union: Some(compare::TargetUnion::ModRevision(3)),
            }],
            success: vec![put("a"), range.clone()],
            failure: vec![put("b")],
        };
        let nested = TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(Request::RequestTxn(inner.clone())),
            }],
            failure: vec![range],
        };
        vec![
            nested.encode_to_vec(),
            inner.encode_to_vec(),
            put("key").encode_to_vec(),
            CompactionRequest {
                revision: 9,
                physical: true,
            }
            .encode_to_vec(),
        ]
    }

    fn run_all(bytes: &[u8]) {
        if let Ok(r) = RangeRequest::decode(bytes) {
            if check_range(&r).is_ok() {
                let _ = convert::range_request(r);
            }
        }
        if let Ok(r) = PutRequest::decode(bytes) {
            if check_put(&r).is_ok() {
                let _ = convert::put_request(r);
            }
        }
        if let Ok(r) = DeleteRangeRequest::decode(bytes) {
            if check_delete(&r).is_ok() {
                let _ = convert::delete_request(r);
            }
        }
        if let Ok(r) = TxnRequest::decode(bytes) {
            let _ = txn_is_read_only(&r);
            let _ = txn_is_serializable(&r);
            if check_txn(&r, 128).is_ok() {
                let _ = convert::txn_request(r);
            }
        }
        if let Ok(r) = CompactionRequest::decode(bytes) {
            let _ = convert::compaction_request(r);
        }
    }

    /// Runs `test` on `strategy`'s values: `ETCR_FUZZ_CASES` per batch (512 by default), and
    /// with `ETCR_FUZZ_SECONDS` batches with fresh seeds until that much time has passed.
    fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value)) {
        use proptest::test_runner::{Config, TestRunner};
        use std::time::{Duration, Instant};
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let cases = env("ETCR_FUZZ_CASES").unwrap_or(512) as u32;
        let until = env("ETCR_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
        let mut total = 0u64;
        loop {
            let mut runner = TestRunner::new(Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            });
            if let Err(e) = runner.run(&strategy, |v| {
                test(v);
                Ok(())
            }) {
                panic!("{e}");
            }
            total += u64::from(cases);
            if until.is_none_or(|t| Instant::now() >= t) {
                break;
            }
        }
        // Test threads bear their test's name.
        let name = std::thread::current().name().unwrap_or("fuzz").to_string();
        eprintln!("{name}: {total} cases, no failure");
    }

    #[test]
    fn arbitrary_bytes() {
        fuzz(prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            run_all(&bytes)
        });
    }

    #[test]
    fn mutated_requests() {
        let mutations = (
            0usize..4,
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            proptest::option::of(any::<prop::sample::Index>()),
        );
        fuzz(mutations, |(seed, flips, cut)| {
            let mut bytes = seeds()[seed].clone();
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            run_all(&bytes);
        });
    }
}
