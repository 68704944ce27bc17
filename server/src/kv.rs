//! `etcdserverpb.KV`: range, put, delete-range, txn and compact.
//!
//! Writes are validated, turned into store commands and proposed; reads are served from an
//! LMDB read transaction, which never blocks the writer.

use std::sync::Arc;

use api::etcdserverpb as pb;
use pb::kv_server::Kv;
use prost::Message;
use tonic::{Request, Response, Status};

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

fn unexpected(what: &str) -> Status {
    EtcdError::Internal(format!("unexpected response to {what}")).into()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = req.into_inner();
        validate::check_range(&r)?;
        self.ctx.read_barrier(r.serializable).await?;
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
        let r = req.into_inner();
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
        let r = req.into_inner();
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
        let r = req.into_inner();
        validate::check_txn(&r, self.ctx.limits.max_txn_ops)?;
        self.ctx.check_size(r.encoded_len())?;
        let read_only = validate::txn_is_read_only(&r);
        if !read_only {
            self.ctx.check_quota(quota::txn_cost(&r)).await?;
        }
        let serializable = validate::txn_is_serializable(&r);
        let txn = convert::txn_request(r);
        let resp = if read_only {
            self.ctx.read_barrier(serializable).await?;
            self.ctx
                .store
                .txn_read_only(&txn)
                .map_err(EtcdError::from)?
        } else {
            match self.propose(mvcc::Command::Txn(txn)).await? {
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
        let r = req.into_inner();
        match self
            .propose(mvcc::Command::Compact(convert::compaction_request(r)))
            .await?
        {
            mvcc::CommandResponse::Compact(c) => Ok(Response::new(pb::CompactionResponse {
                header: self.ctx.header_info().at(c.header.revision),
            })),
            _ => Err(unexpected("compact")),
        }
    }
}
