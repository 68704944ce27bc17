//! `etcdserverpb.KV`: range, put, delete-range, txn and compact.
//!
//! Writes are validated, turned into store commands and proposed; reads are served from an
//! LMDB read transaction, which never blocks the writer.

use std::sync::Arc;

use api::etcdserverpb as pb;
use pb::kv_server::Kv;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::auth::{token_of, Need};
use crate::context::Context;
use crate::convert;
use crate::errors::EtcdError;
use crate::quota;
use crate::validate;

/// Ranges limited to this many keys are read on the calling task: a blocking-pool hop costs
/// more than reading them.
const SMALL_RANGE: i64 = 100;

pub struct KvService {
    ctx: Arc<Context>,
}

impl KvService {
    pub fn new(ctx: Arc<Context>) -> Self {
        KvService { ctx }
    }

    async fn propose(&self, cmd: mvcc::Command) -> Result<mvcc::CommandResponse, EtcdError> {
        self.ctx.raft.propose(cmd).await
    }
}

/// etcd's rule for transactions: READ on every compared key, and on every op of both branches
/// what the op needs, nested transactions included.
fn check_txn(checker: &crate::auth::Checker, t: &pb::TxnRequest) -> Result<(), EtcdError> {
    use pb::request_op::Request as Op;
    for c in &t.compare {
        checker.check(Need::Read, &c.key, &c.range_end)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => checker.check(Need::Read, &r.key, &r.range_end)?,
            Some(Op::RequestPut(p)) => {
                checker.check(Need::Write, &p.key, b"")?;
                if p.prev_kv {
                    checker.check(Need::Read, &p.key, b"")?;
                }
            }
            Some(Op::RequestDeleteRange(d)) => {
                checker.check(Need::Write, &d.key, &d.range_end)?;
                if d.prev_kv {
                    checker.check(Need::Read, &d.key, &d.range_end)?;
                }
            }
            Some(Op::RequestTxn(n)) => check_txn(checker, n)?,
            None => {}
        }
    }
    Ok(())
}

fn unexpected(what: &str) -> Status {
    EtcdError::Internal(format!("unexpected response to {what}")).into()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let token = token_of(&req).map(str::to_owned);
        let r = req.into_inner();
        validate::check_range(&r)?;
        self.ctx.read_barrier(r.serializable).await?;
        // After the barrier, as etcd: a permission change applied before the read counts.
        self.ctx
            .auth
            .check(token.as_deref(), Need::Read, &r.key, &r.range_end)?;
        let may_be_large = !r.range_end.is_empty() && (r.limit == 0 || r.limit > SMALL_RANGE);
        let request = convert::range_request(r);
        let resp = if may_be_large {
            // Off the connection's task, so the client's other calls keep flowing meanwhile.
            let store = self.ctx.store.clone();
            tokio::task::spawn_blocking(move || store.range(&request))
                .await
                .map_err(|e| EtcdError::Internal(format!("range: {e}")))?
        } else {
            self.ctx.store.range(&request)
        }
        .map_err(EtcdError::from)?;
        Ok(Response::new(convert::range_response(
            resp,
            &self.ctx.header_info(),
        )))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let checker = self.ctx.auth.checker(token_of(&req))?;
        let r = req.into_inner();
        checker.check(Need::Write, &r.key, b"")?;
        if r.prev_kv {
            checker.check(Need::Read, &r.key, b"")?;
        }
        // etcd's rule: attaching a key to a lease needs WRITE on the keys the lease holds
        // (revoking it would delete them all).
        if r.lease != 0 && checker.checks() {
            for k in self
                .ctx
                .store
                .leased_keys(r.lease)
                .map_err(EtcdError::from)?
            {
                checker.check(Need::Write, &k, b"")?;
            }
        }
        validate::check_put(&r)?;
        self.ctx.check_size(r.encoded_len())?;
        self.ctx.check_quota(quota::put_cost(&r)).await?;
        match self
            .propose(mvcc::Command::Put(convert::put_request(r)))
            .await?
        {
            mvcc::CommandResponse::Put(p) => Ok(Response::new(convert::put_response(
                p,
                &self.ctx.header_info(),
            ))),
            _ => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let checker = self.ctx.auth.checker(token_of(&req))?;
        let r = req.into_inner();
        checker.check(Need::Write, &r.key, &r.range_end)?;
        if r.prev_kv {
            checker.check(Need::Read, &r.key, &r.range_end)?;
        }
        validate::check_delete(&r)?;
        self.ctx.check_size(r.encoded_len())?;
        match self
            .propose(mvcc::Command::DeleteRange(convert::delete_request(r)))
            .await?
        {
            mvcc::CommandResponse::DeleteRange(d) => Ok(Response::new(convert::delete_response(
                d,
                &self.ctx.header_info(),
            ))),
            _ => Err(unexpected("delete")),
        }
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let token = token_of(&req).map(str::to_owned);
        let r = req.into_inner();
        validate::check_txn(&r, self.ctx.limits.max_txn_ops)?;
        self.ctx.check_size(r.encoded_len())?;
        let read_only = validate::txn_is_read_only(&r);
        let resp = if read_only {
            self.ctx
                .read_barrier(validate::txn_is_serializable(&r))
                .await?;
            // After the barrier, as etcd: a permission change applied before the read counts.
            check_txn(&self.ctx.auth.checker(token.as_deref())?, &r)?;
            self.ctx
                .store
                .txn_read_only(&convert::txn_request(r))
                .map_err(EtcdError::from)?
        } else {
            check_txn(&self.ctx.auth.checker(token.as_deref())?, &r)?;
            self.ctx.check_quota(quota::txn_cost(&r)).await?;
            match self
                .propose(mvcc::Command::Txn(convert::txn_request(r)))
                .await?
            {
                mvcc::CommandResponse::Txn(t) => t,
                _ => return Err(unexpected("txn")),
            }
        };
        Ok(Response::new(convert::txn_response(
            resp,
            &self.ctx.header_info(),
        )))
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        // etcd checks no permission for compaction.
        let r = req.into_inner();
        let physical = r.physical;
        match self
            .propose(mvcc::Command::Compact(convert::compaction_request(r)))
            .await?
        {
            mvcc::CommandResponse::Compact(c) => {
                if physical {
                    // The compaction is answered before the store commits it.
                    self.ctx.read_barrier(true).await?;
                    crate::compactor::physically_done(&self.ctx.store).await?;
                }
                Ok(Response::new(pb::CompactionResponse {
                    header: self.ctx.header_info().at(c.header.revision),
                }))
            }
            _ => Err(unexpected("compact")),
        }
    }
}
