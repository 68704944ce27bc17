//! etcd's Election service (`v3electionpb.Election`), clientv3's `concurrency.Election` run
//! in process over [`Keys`], as the Lock service is.
//!
//! A candidacy is the key `<name>/<lease id in hex>` holding the candidate's value, put with
//! its lease; the candidate whose key was created first leads. A leadership is named by its
//! key and that key's create revision (`LeaderKey.rev`): proclaiming and resigning compare
//! it, so a leadership that ended (its key deleted with its lease) cannot act.

use std::sync::Arc;

use api::etcdserverpb as pb;
use api::mvccpb;
use api::v3electionpb as epb;
use futures::stream::{BoxStream, StreamExt};
use pb::range_request::{SortOrder, SortTarget};
use tonic::{Request, Response, Status};

use crate::lock::{as_etcd_does, Keys};

/// etcd's errors, plain Go errors there, so gRPC code Unknown.
fn no_leader() -> Status {
    Status::unknown("election: no leader")
}

fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

fn missing_leader_key() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

fn compare_created(key: &[u8], rev: i64) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(pb::compare::TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

pub struct ElectionService {
    keys: Arc<Keys>,
}

impl ElectionService {
    pub fn new(keys: Arc<Keys>) -> Self {
        ElectionService { keys }
    }

    pub async fn campaign(
        &self,
        req: Request<epb::CampaignRequest>,
    ) -> Result<Response<epb::CampaignResponse>, Status> {
        let keys = self.keys.for_caller(&req);
        try_campaign(&keys, req.into_inner())
            .await
            .map_err(as_etcd_does)
    }

    pub async fn proclaim(
        &self,
        req: Request<epb::ProclaimRequest>,
    ) -> Result<Response<epb::ProclaimResponse>, Status> {
        let keys = self.keys.for_caller(&req);
        let req = req.into_inner();
        let leader = req.leader.ok_or_else(missing_leader_key)?;
        let header = proclaim_as(&keys, &leader, req.value)
            .await
            .map_err(as_etcd_does)?;
        Ok(Response::new(epb::ProclaimResponse {
            header: Some(header),
        }))
    }

    pub async fn resign(
        &self,
        req: Request<epb::ResignRequest>,
    ) -> Result<Response<epb::ResignResponse>, Status> {
        let keys = self.keys.for_caller(&req);
        let leader = req.into_inner().leader.ok_or_else(missing_leader_key)?;
        let delete = pb::DeleteRangeRequest {
            key: leader.key.clone(),
            ..Default::default()
        };
        // Resigning a leadership that already ended changes nothing, as in etcd.
        let answer = keys
            .txn(pb::TxnRequest {
                compare: vec![compare_created(&leader.key, leader.rev)],
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestDeleteRange(delete)),
                }],
                failure: Vec::new(),
            })
            .await
            .map_err(as_etcd_does)?;
        Ok(Response::new(epb::ResignResponse {
            header: answer.header,
        }))
    }

    pub async fn leader(
        &self,
        req: Request<epb::LeaderRequest>,
    ) -> Result<Response<epb::LeaderResponse>, Status> {
        let keys = self.keys.for_caller(&req);
        let (header, kv) = first_candidate(&keys, &req.into_inner().name)
            .await
            .map_err(as_etcd_does)?;
        let kv = kv.ok_or_else(no_leader)?;
        Ok(Response::new(epb::LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        }))
    }

    /// Every leader in turn, and each value a leader proclaims, until the client goes away;
    /// read and watched as the caller holding `token`.
    pub fn observe(
        &self,
        req: epb::LeaderRequest,
        token: Option<String>,
    ) -> BoxStream<'static, Result<epb::LeaderResponse, Status>> {
        let keys = self.keys.with_token(token);
        let (tx, rx) = futures::channel::mpsc::channel(16);
        let observing = async move {
            let mut tx = tx;
            if let Err(e) = observe(&keys, &req.name, &mut tx).await {
                let _ = futures::SinkExt::send(&mut tx, Err(as_etcd_does(e))).await;
            }
        };
        // The observation runs as the stream is polled: dropped with it, no task left behind.
        futures::stream::select(
            rx,
            futures::stream::once(observing).filter_map(|()| async { None }),
        )
        .boxed()
    }
}

async fn try_campaign(
    keys: &Arc<Keys>,
    req: epb::CampaignRequest,
) -> Result<Response<epb::CampaignResponse>, Status> {
    let prefix = [req.name.as_slice(), b"/"].concat();
    let key = [prefix.as_slice(), format!("{:x}", req.lease).as_bytes()].concat();
    let (rev, header, existing) = keys.create(&key, req.lease, req.value.clone()).await?;
    let leader = epb::LeaderKey {
        name: req.name,
        key: key.clone(),
        rev,
        lease: req.lease,
    };
    // A candidacy this lease already had takes the new value, as clientv3 does.
    if existing.is_some_and(|kv| kv.value != req.value) {
        proclaim_as(keys, &leader, req.value).await?;
    }
    let mut withdraw = crate::lock::Pending::new(keys.clone(), key.clone());
    keys.wait_older_deleted(&prefix, rev).await?;
    withdraw.keep();
    // The header is the candidacy's, as clientv3's election keeps it.
    Ok(Response::new(epb::CampaignResponse {
        header: Some(header),
        leader: Some(leader),
    }))
}

async fn proclaim_as(
    keys: &Keys,
    leader: &epb::LeaderKey,
    value: Vec<u8>,
) -> Result<pb::ResponseHeader, Status> {
    let put = pb::PutRequest {
        key: leader.key.clone(),
        value,
        lease: leader.lease,
        ..Default::default()
    };
    let answer = keys
        .txn(pb::TxnRequest {
            compare: vec![compare_created(&leader.key, leader.rev)],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(put)),
            }],
            failure: Vec::new(),
        })
        .await?;
    if !answer.succeeded {
        return Err(not_leader());
    }
    Ok(answer.header.unwrap_or_default())
}

type Sender = futures::channel::mpsc::Sender<Result<epb::LeaderResponse, Status>>;

async fn observe(keys: &Keys, name: &[u8], tx: &mut Sender) -> Result<(), Status> {
    use futures::SinkExt;
    let prefix = [name, b"/"].concat();
    loop {
        let (header, first) = first_candidate(keys, name).await?;
        let leader = match first {
            Some(kv) => kv,
            None => keys.wait_put(&prefix, header.revision + 1).await?,
        };
        let mut next = leader.mod_revision + 1;
        let key = leader.key.clone();
        let response = epb::LeaderResponse {
            header: Some(header),
            kv: Some(leader),
        };
        if tx.send(Ok(response)).await.is_err() {
            return Ok(());
        }
        // The leader's changes until its key goes.
        loop {
            let Some(change) = keys.next_change(&key, next).await? else {
                break;
            };
            next = change.1.mod_revision + 1;
            let response = epb::LeaderResponse {
                header: Some(change.0),
                kv: Some(change.1),
            };
            if tx.send(Ok(response)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// The election's oldest candidacy, if any.
async fn first_candidate(
    keys: &Keys,
    name: &[u8],
) -> Result<(pb::ResponseHeader, Option<mvccpb::KeyValue>), Status> {
    let prefix = [name, b"/"].concat();
    let answer = keys
        .range(pb::RangeRequest {
            range_end: api::prefix_range_end(&prefix),
            key: prefix,
            limit: 1,
            sort_order: SortOrder::Ascend as i32,
            sort_target: SortTarget::Create as i32,
            ..Default::default()
        })
        .await?;
    Ok((
        answer.header.unwrap_or_default(),
        answer.kvs.into_iter().next(),
    ))
}
