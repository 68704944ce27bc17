//! Read-side request semantics shared by plain reads and transactions: revision checks,
//! etcd's range options (limit, sort, filters, count) and transaction compares.

use std::cmp::Ordering;

use heed::RoTxn;

use crate::error::{Error, Result};
use crate::index::KeyIndex;
use crate::tables::{KeySpan, Tables};
use crate::types::{
    Compare, CompareResult, CompareTarget, KeyValue, RangeRequest, RangeResponse, ResponseHeader,
    SortOrder, SortTarget,
};

/// Revision bounds a read is checked against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadView {
    /// Revision reads default to, and the header revision.
    pub current: i64,
    /// Reads below this fail with [`Error::Compacted`] (0 when never compacted).
    pub compacted: i64,
}

impl ReadView {
    /// Resolves a requested revision (0 = current) the way etcd does.
    pub fn resolve(&self, rev: i64) -> Result<i64> {
        if rev > self.current {
            return Err(Error::FutureRev);
        }
        let rev = if rev <= 0 { self.current } else { rev };
        if rev < self.compacted {
            return Err(Error::Compacted);
        }
        Ok(rev)
    }
}

/// True when the storage order (ascending by key) already is the requested order.
fn is_default_ordering(target: SortTarget, order: SortOrder) -> bool {
    order == SortOrder::None || (target == SortTarget::Key && order == SortOrder::Ascend)
}

fn has_revision_filters(r: &RangeRequest) -> bool {
    r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0
}

/// Live pairs of a span at a revision: up to `fetch_limit` (0 = all) pairs in key order and
/// the total number of live keys.
#[allow(clippy::too_many_arguments)]
pub(crate) fn live_kvs(
    t: &Tables,
    txn: &RoTxn,
    index: &KeyIndex,
    span: &KeySpan,
    rev: i64,
    fetch_limit: usize,
    with_kvs: bool,
    with_values: bool,
) -> Result<(Vec<KeyValue>, i64)> {
    let mut kvs = Vec::new();
    let mut count = 0i64;
    index.scan(span, |found| {
        let want = with_kvs && (fetch_limit == 0 || kvs.len() < fetch_limit);
        if want {
            if let Some(kv) = t.kv_at(txn, &found, rev, with_values)? {
                kvs.push(kv);
                count += 1;
            }
        } else if t.live_rev_at(txn, &found.entry, rev)?.is_some() {
            count += 1;
        }
        Ok(true)
    })?;
    Ok((kvs, count))
}

/// Serves a range request. `check` validates the requested revision; `read_rev` is the
/// revision a request without revision reads at and `header` the header revision (these
/// differ only inside a transaction that already wrote).
pub(crate) fn range(
    t: &Tables,
    txn: &RoTxn,
    index: &KeyIndex,
    req: &RangeRequest,
    check: ReadView,
    view: ReadView,
) -> Result<RangeResponse> {
    check.resolve(req.revision)?;
    let rev = view.resolve(req.revision)?;

    let mut fetch = req.limit.max(0);
    if !is_default_ordering(req.sort_target, req.sort_order) || has_revision_filters(req) {
        fetch = 0;
    }
    if fetch > 0 && fetch < i64::MAX {
        fetch += 1;
    }
    let mut order = req.sort_order;
    if req.sort_target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    let sorting = !is_default_ordering(req.sort_target, order);
    let with_values = !req.keys_only || (sorting && req.sort_target == SortTarget::Value);

    let span = KeySpan::new(&req.key, &req.range_end);
    let fetch = usize::try_from(fetch).unwrap_or(usize::MAX);
    let (mut kvs, count) = live_kvs(
        t,
        txn,
        index,
        &span,
        rev,
        fetch,
        !req.count_only,
        with_values,
    )?;

    if req.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
    }
    if req.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
    }
    if req.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
    }
    if req.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
    }

    if sorting {
        if req.sort_target == SortTarget::Key && order == SortOrder::Descend {
            kvs.reverse();
        } else {
            let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
                match req.sort_target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                }
            };
            if order == SortOrder::Descend {
                kvs.sort_by(|a, b| cmp(b, a));
            } else {
                kvs.sort_by(cmp);
            }
        }
    }

    let mut more = false;
    if req.limit > 0 && kvs.len() as i64 > req.limit {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok(RangeResponse {
        header: ResponseHeader {
            revision: view.current,
        },
        kvs,
        more,
        count,
    })
}

fn relation_holds(result: CompareResult, ord: Ordering) -> bool {
    match result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    relation_holds(c.result, ord)
}

/// Evaluates one transaction guard at revision `rev`.
pub(crate) fn compare(
    t: &Tables,
    txn: &RoTxn,
    index: &KeyIndex,
    c: &Compare,
    rev: i64,
) -> Result<bool> {
    let span = KeySpan::new(&c.key, &c.range_end);
    let with_values = matches!(c.target, CompareTarget::Value(_));
    let (kvs, _) = live_kvs(t, txn, index, &span, rev, 0, true, with_values)?;
    if kvs.is_empty() {
        // A missing key has no value to compare; every other field compares as zero.
        if with_values {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_etcd_rules() {
        let v = ReadView {
            current: 10,
            compacted: 5,
        };
        assert_eq!(v.resolve(0), Ok(10));
        assert_eq!(v.resolve(-3), Ok(10));
        assert_eq!(v.resolve(5), Ok(5));
        assert_eq!(v.resolve(4), Err(Error::Compacted));
        assert_eq!(v.resolve(11), Err(Error::FutureRev));
    }

    #[test]
    fn compare_relations() {
        let kv = KeyValue {
            version: 3,
            value: b"b".to_vec(),
            ..Default::default()
        };
        let c = |result, target| Compare {
            result,
            target,
            key: b"k".to_vec(),
            range_end: vec![],
        };
        assert!(compare_kv(
            &c(CompareResult::Equal, CompareTarget::Version(3)),
            &kv
        ));
        assert!(compare_kv(
            &c(CompareResult::Greater, CompareTarget::Version(2)),
            &kv
        ));
        assert!(compare_kv(
            &c(CompareResult::Less, CompareTarget::Value(b"c".to_vec())),
            &kv
        ));
        assert!(compare_kv(
            &c(CompareResult::NotEqual, CompareTarget::Lease(1)),
            &kv
        ));
        assert!(!compare_kv(
            &c(CompareResult::NotEqual, CompareTarget::Version(3)),
            &kv
        ));
    }
}
