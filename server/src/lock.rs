//! etcd's Lock service (`v3lockpb.Lock`), as etcd builds it on its own KV and Watch API
//! (clientv3's `concurrency.Mutex`), but run in process: the txns go through the member's
//! `KvService` (validated and proposed through raft like any client's) and the waits through
//! its watch hub.
//!
//! A hold is the key `<name>/<lease id in hex>`, put with the caller's lease. Holders are
//! ordered by the create revision of their keys: a caller holds the lock once no key under
//! the name was created before its own, and until then waits for the deletion of the key
//! created just before its own only, so one release wakes one waiter. A hold ends when its
//! key is deleted: by `Unlock`, or with its lease (revoked or expired).
//!
//! Every txn, range and watch is the caller's, with its token, so auth checks them as it
//! checks a client's (etcd's servers call clientv3 with the caller's context): a lock needs
//! READ and WRITE on its key and READ on the name's prefix.

use std::sync::Arc;

use api::etcdserverpb as pb;
use api::mvccpb;
use api::v3lockpb as lockpb;
use futures::StreamExt;
use pb::kv_server::Kv;
use pb::range_request::{SortOrder, SortTarget};
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::kv::KvService;
use crate::watch::WatchService;

/// The concurrency services' shared machinery: txns, ranges and waits for deletions, on
/// behalf of one caller (see [`Keys::for_caller`]).
#[derive(Clone)]
pub struct Keys {
    kv: Arc<KvService>,
    watch: Arc<WatchService>,
    ctx: Arc<Context>,
    /// The caller's token (or certificate credential), sent with every call made for it.
    token: Option<String>,
}

impl Keys {
    pub fn new(kv: Arc<KvService>, watch: Arc<WatchService>, ctx: Arc<Context>) -> Self {
        Keys {
            kv,
            watch,
            ctx,
            token: None,
        }
    }

    /// These keys acting as the caller of `req`.
    pub fn for_caller<T>(&self, req: &Request<T>) -> Arc<Keys> {
        self.with_token(crate::auth::token_of(req).map(str::to_owned))
    }

    pub fn with_token(&self, token: Option<String>) -> Arc<Keys> {
        Arc::new(Keys {
            token,
            ..self.clone()
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        crate::auth::with_token(Request::new(message), self.token.as_deref())
    }

    pub async fn txn(&self, txn: pb::TxnRequest) -> Result<pb::TxnResponse, Status> {
        Ok(self.kv.txn(self.request(txn)).await?.into_inner())
    }

    pub async fn range(&self, range: pb::RangeRequest) -> Result<pb::RangeResponse, Status> {
        Ok(self.kv.range(self.request(range)).await?.into_inner())
    }

    pub async fn delete(&self, key: Vec<u8>) -> Result<pb::DeleteRangeResponse, Status> {
        let delete = pb::DeleteRangeRequest {
            key,
            ..Default::default()
        };
        Ok(self
            .kv
            .delete_range(self.request(delete))
            .await?
            .into_inner())
    }

    /// Creates `key` with `lease` and `value` unless it exists; returns the key's create
    /// revision, the txn's header and the key as it was if it existed: this lease's earlier
    /// hold (the key names the lease), which etcd counts as the same acquisition.
    pub async fn create(
        &self,
        key: &[u8],
        lease: i64,
        value: Vec<u8>,
    ) -> Result<(i64, pb::ResponseHeader, Option<mvccpb::KeyValue>), Status> {
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: pb::compare::CompareResult::Equal as i32,
                target: pb::compare::CompareTarget::Create as i32,
                key: key.to_vec(),
                target_union: Some(pb::compare::TargetUnion::CreateRevision(0)),
                ..Default::default()
            }],
            success: vec![request_put(pb::PutRequest {
                key: key.to_vec(),
                value,
                lease,
                ..Default::default()
            })],
            failure: vec![request_range(pb::RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })],
        };
        let answer = self.txn(txn).await?;
        let header = answer.header.unwrap_or_default();
        if answer.succeeded {
            return Ok((header.revision, header, None));
        }
        let existing = answer.responses.into_iter().find_map(|r| match r.response {
            Some(pb::response_op::Response::ResponseRange(r)) => r.kvs.into_iter().next(),
            _ => None,
        });
        match existing {
            Some(kv) => Ok((kv.create_revision, header, Some(kv))),
            // Deleted between the compare and now: its lease ended.
            None => Err(Status::from(crate::errors::EtcdError::LeaseNotFound)),
        }
    }

    /// Waits until no key under `prefix` has a create revision below `rev`: each time for the
    /// deletion of the latest such key only. Returns the last header read.
    pub async fn wait_older_deleted(
        &self,
        prefix: &[u8],
        rev: i64,
    ) -> Result<pb::ResponseHeader, Status> {
        loop {
            let older = self
                .range(pb::RangeRequest {
                    key: prefix.to_vec(),
                    range_end: api::prefix_range_end(prefix),
                    limit: 1,
                    sort_order: SortOrder::Descend as i32,
                    sort_target: SortTarget::Create as i32,
                    max_create_revision: rev - 1,
                    ..Default::default()
                })
                .await?;
            let header = older.header.unwrap_or_default();
            let Some(kv) = older.kvs.into_iter().next() else {
                return Ok(header);
            };
            self.wait_deleted(kv.key, header.revision + 1).await?;
        }
    }

    /// Waits for a delete event of `key` at `from` or later. A watch canceled by a
    /// compaction ends the wait too: the caller reads again.
    pub async fn wait_deleted(&self, key: Vec<u8>, from: i64) -> Result<(), Status> {
        let noput = pb::watch_create_request::FilterType::Noput as i32;
        self.first_event(key, Vec::new(), from, vec![noput]).await?;
        Ok(())
    }

    /// The first key put under `prefix` at `from` or later (read again after a compaction).
    pub async fn wait_put(&self, prefix: &[u8], from: i64) -> Result<mvccpb::KeyValue, Status> {
        let nodelete = pb::watch_create_request::FilterType::Nodelete as i32;
        let mut from = from;
        loop {
            let range_end = api::prefix_range_end(prefix);
            match self
                .first_event(prefix.to_vec(), range_end, from, vec![nodelete])
                .await?
            {
                Some((_, event)) => return Ok(event.kv.unwrap_or_default()),
                None => from = 0,
            }
        }
    }

    /// The next put of `key` at `from` or later, with its header; `None` once the key is
    /// deleted (or its history compacted, which the caller treats alike: it reads again).
    pub async fn next_change(
        &self,
        key: &[u8],
        from: i64,
    ) -> Result<Option<(pb::ResponseHeader, mvccpb::KeyValue)>, Status> {
        match self
            .first_event(key.to_vec(), Vec::new(), from, Vec::new())
            .await?
        {
            Some((header, event)) if event.r#type == mvccpb::event::EventType::Put as i32 => {
                Ok(Some((header, event.kv.unwrap_or_default())))
            }
            _ => Ok(None),
        }
    }

    /// The first event a watch from `from` delivers; `None` if the watch is canceled.
    async fn first_event(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        from: i64,
        filters: Vec<i32>,
    ) -> Result<Option<(pb::ResponseHeader, mvccpb::Event)>, Status> {
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key,
                    range_end,
                    start_revision: from,
                    filters,
                    ..Default::default()
                },
            )),
        };
        // The request side stays open for as long as the wait: the watch is this stream's.
        let requests = futures::stream::iter([Ok(create)])
            .chain(futures::stream::pending())
            .boxed();
        let permit = crate::auth::watch_permit(self.ctx.clone(), self.token.clone());
        let mut responses = self.watch.watch(requests, Some(permit));
        while let Some(answer) = responses.next().await {
            let answer = answer?;
            // A create refused for the caller's permissions has no watch id.
            if answer.canceled && answer.watch_id == -1 {
                return Err(crate::errors::EtcdError::PermissionDenied.into());
            }
            if answer.canceled {
                return Ok(None);
            }
            if let Some(event) = answer.events.into_iter().next() {
                return Ok(Some((answer.header.unwrap_or_default(), event)));
            }
        }
        Err(crate::errors::EtcdError::Stopped.into())
    }
}

fn request_put(put: pb::PutRequest) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(put)),
    }
}

fn request_range(range: pb::RangeRequest) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(range)),
    }
}

/// etcd runs these services as clients of its own KV API, and its server passes the client's
/// errors on as plain errors: gRPC code Unknown, the message kept.
pub fn as_etcd_does(s: Status) -> Status {
    Status::unknown(s.message())
}

/// A key of this member's that must be deleted unless the call that made it completes: a
/// waiter whose client went away leaves the queue, as clientv3's `Mutex.Lock` does.
pub struct Pending {
    keys: Arc<Keys>,
    key: Option<Vec<u8>>,
}

impl Pending {
    pub fn new(keys: Arc<Keys>, key: Vec<u8>) -> Self {
        Pending {
            keys,
            key: Some(key),
        }
    }

    /// The call completed: the key stays.
    pub fn keep(&mut self) {
        self.key = None;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let keys = self.keys.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = keys.delete(key).await {
                    tracing::debug!("could not withdraw an abandoned lock key: {e}");
                }
            });
        }
    }
}

pub struct LockService {
    keys: Arc<Keys>,
}

impl LockService {
    pub fn new(keys: Arc<Keys>) -> Self {
        LockService { keys }
    }

    pub async fn lock(
        &self,
        req: Request<lockpb::LockRequest>,
    ) -> Result<Response<lockpb::LockResponse>, Status> {
        let keys = self.keys.for_caller(&req);
        try_lock(keys, req.into_inner()).await.map_err(as_etcd_does)
    }

    pub async fn unlock(
        &self,
        req: Request<lockpb::UnlockRequest>,
    ) -> Result<Response<lockpb::UnlockResponse>, Status> {
        let keys = self.keys.for_caller(&req);
        let deleted = keys
            .delete(req.into_inner().key)
            .await
            .map_err(as_etcd_does)?;
        Ok(Response::new(lockpb::UnlockResponse {
            header: deleted.header,
        }))
    }
}

async fn try_lock(
    keys: Arc<Keys>,
    req: lockpb::LockRequest,
) -> Result<Response<lockpb::LockResponse>, Status> {
    let prefix = [req.name.as_slice(), b"/"].concat();
    let key = [prefix.as_slice(), format!("{:x}", req.lease).as_bytes()].concat();
    let (rev, _, _) = keys.create(&key, req.lease, Vec::new()).await?;
    let mut pending = Pending::new(keys.clone(), key.clone());
    keys.wait_older_deleted(&prefix, rev).await?;
    // The hold is ours only if our key outlived the wait (its lease may have ended).
    let mine = keys
        .range(pb::RangeRequest {
            key: key.clone(),
            ..Default::default()
        })
        .await?;
    pending.keep();
    if !mine.kvs.iter().any(|kv| kv.create_revision == rev) {
        return Err(crate::errors::EtcdError::LeaseNotFound.into());
    }
    Ok(Response::new(lockpb::LockResponse {
        header: mine.header,
        key,
    }))
}
