//! Between the wire (etcd protobuf messages) and the store's own types.
//!
//! The store knows nothing of protobuf; this is the one place where the two meet, so that
//! a change of either side is a change here only.

use api::etcdserverpb as pb;
use api::mvccpb;
use pb::compare::{CompareResult as PbResult, CompareTarget as PbTarget, TargetUnion};
use pb::range_request::{SortOrder as PbOrder, SortTarget as PbSortTarget};

/// What every response header carries besides the revision.
#[derive(Clone, Copy, Debug)]
pub struct HeaderInfo {
    pub cluster_id: u64,
    pub member_id: u64,
    pub raft_term: u64,
}

impl HeaderInfo {
    pub fn at(&self, revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term,
        })
    }
}

// ---- requests: wire -> store ----

pub fn range_request(r: pb::RangeRequest) -> mvcc::RangeRequest {
    let sort_order = match PbOrder::try_from(r.sort_order) {
        Ok(PbOrder::Ascend) => mvcc::SortOrder::Ascend,
        Ok(PbOrder::Descend) => mvcc::SortOrder::Descend,
        _ => mvcc::SortOrder::None,
    };
    let sort_target = match PbSortTarget::try_from(r.sort_target) {
        Ok(PbSortTarget::Version) => mvcc::SortTarget::Version,
        Ok(PbSortTarget::Create) => mvcc::SortTarget::Create,
        Ok(PbSortTarget::Mod) => mvcc::SortTarget::Mod,
        Ok(PbSortTarget::Value) => mvcc::SortTarget::Value,
        _ => mvcc::SortTarget::Key,
    };
    mvcc::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub fn put_request(r: pb::PutRequest) -> mvcc::PutRequest {
    mvcc::PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn delete_request(r: pb::DeleteRangeRequest) -> mvcc::DeleteRangeRequest {
    mvcc::DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

pub fn txn_request(r: pb::TxnRequest) -> mvcc::TxnRequest {
    mvcc::TxnRequest {
        compare: r.compare.into_iter().map(compare).collect(),
        success: r.success.into_iter().filter_map(request_op).collect(),
        failure: r.failure.into_iter().filter_map(request_op).collect(),
    }
}

pub fn compaction_request(r: pb::CompactionRequest) -> mvcc::CompactRequest {
    mvcc::CompactRequest {
        revision: r.revision,
        physical: r.physical,
    }
}

fn compare(c: pb::Compare) -> mvcc::Compare {
    let result = match PbResult::try_from(c.result) {
        Ok(PbResult::Greater) => mvcc::CompareResult::Greater,
        Ok(PbResult::Less) => mvcc::CompareResult::Less,
        Ok(PbResult::NotEqual) => mvcc::CompareResult::NotEqual,
        _ => mvcc::CompareResult::Equal,
    };
    // The operand is read by the compare's target; a missing or mismatched operand compares
    // as the zero value, as etcd does.
    let union = c.target_union;
    let target = match PbTarget::try_from(c.target) {
        Ok(PbTarget::Create) => mvcc::CompareTarget::CreateRevision(match union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Ok(PbTarget::Mod) => mvcc::CompareTarget::ModRevision(match union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Ok(PbTarget::Value) => mvcc::CompareTarget::Value(match union {
            Some(TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        Ok(PbTarget::Lease) => mvcc::CompareTarget::Lease(match union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        _ => mvcc::CompareTarget::Version(match union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
    };
    mvcc::Compare {
        result,
        target,
        key: c.key,
        range_end: c.range_end,
    }
}

/// `None` for an empty op, which validation refuses before this is reached.
fn request_op(op: pb::RequestOp) -> Option<mvcc::RequestOp> {
    use pb::request_op::Request;
    Some(match op.request? {
        Request::RequestRange(r) => mvcc::RequestOp::Range(range_request(r)),
        Request::RequestPut(r) => mvcc::RequestOp::Put(put_request(r)),
        Request::RequestDeleteRange(r) => mvcc::RequestOp::DeleteRange(delete_request(r)),
        Request::RequestTxn(r) => mvcc::RequestOp::Txn(txn_request(r)),
    })
}

// ---- responses: store -> wire ----

pub fn key_value(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn range_response(r: mvcc::RangeResponse, h: &HeaderInfo) -> pb::RangeResponse {
    pb::RangeResponse {
        header: h.at(r.header.revision),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_response(r: mvcc::PutResponse, h: &HeaderInfo) -> pb::PutResponse {
    pb::PutResponse {
        header: h.at(r.header.revision),
        prev_kv: r.prev_kv.map(key_value),
    }
}

pub fn delete_response(r: mvcc::DeleteRangeResponse, h: &HeaderInfo) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: h.at(r.header.revision),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

pub fn txn_response(r: mvcc::TxnResponse, h: &HeaderInfo) -> pb::TxnResponse {
    pb::TxnResponse {
        header: h.at(r.header.revision),
        succeeded: r.succeeded,
        responses: response_ops(r.responses),
    }
}

/// The responses inside a txn carry only a revision in their headers, as etcd's do.
fn response_ops(ops: Vec<mvcc::ResponseOp>) -> Vec<pb::ResponseOp> {
    use pb::response_op::Response;
    let bare = HeaderInfo {
        cluster_id: 0,
        member_id: 0,
        raft_term: 0,
    };
    ops.into_iter()
        .map(|op| pb::ResponseOp {
            response: Some(match op {
                mvcc::ResponseOp::Range(r) => Response::ResponseRange(range_response(r, &bare)),
                mvcc::ResponseOp::Put(r) => Response::ResponsePut(put_response(r, &bare)),
                mvcc::ResponseOp::DeleteRange(r) => {
                    Response::ResponseDeleteRange(delete_response(r, &bare))
                }
                mvcc::ResponseOp::Txn(r) => Response::ResponseTxn(pb::TxnResponse {
                    header: bare.at(r.header.revision),
                    succeeded: r.succeeded,
                    responses: response_ops(r.responses),
                }),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_operand_follows_target() {
        let c = pb::Compare {
            result: PbResult::Greater as i32,
            target: PbTarget::Mod as i32,
            key: b"k".to_vec(),
            target_union: Some(TargetUnion::ModRevision(7)),
            range_end: vec![],
        };
        let m = compare(c);
        assert_eq!(m.result, mvcc::CompareResult::Greater);
        assert_eq!(m.target, mvcc::CompareTarget::ModRevision(7));
        // A value compare without a value compares against the empty value.
        let c = pb::Compare {
            target: PbTarget::Value as i32,
            key: b"k".to_vec(),
            ..Default::default()
        };
        assert_eq!(compare(c).target, mvcc::CompareTarget::Value(vec![]));
    }

    #[test]
    fn nested_txn_responses_keep_headers() {
        let h = HeaderInfo {
            cluster_id: 1,
            member_id: 2,
            raft_term: 3,
        };
        let inner = mvcc::TxnResponse {
            header: mvcc::ResponseHeader { revision: 5 },
            succeeded: true,
            responses: vec![mvcc::ResponseOp::Put(mvcc::PutResponse {
                header: mvcc::ResponseHeader { revision: 5 },
                prev_kv: None,
            })],
        };
        let out = txn_response(inner, &h);
        assert_eq!(out.header.unwrap().revision, 5);
        assert_eq!(out.header.unwrap().member_id, 2);
        assert_eq!(out.responses.len(), 1);
        // Inner responses carry only the revision, as etcd's do.
        match &out.responses[0].response {
            Some(pb::response_op::Response::ResponsePut(p)) => {
                assert_eq!(
                    p.header,
                    Some(pb::ResponseHeader {
                        revision: 5,
                        ..Default::default()
                    })
                );
            }
            other => panic!("expected a put response, got {other:?}"),
        }
    }
}
