//! `etcdserverpb.Maintenance`: status, alarms, hashes, defragmentation and moving the
//! leader, enough for `etcdctl endpoint status|health`, `etcdctl alarm list|disarm`,
//! `etcdctl defrag` and `etcdctl move-leader`. Unlike etcd's, a defragmentation does not
//! stop the member: reads and writes go on (`mvcc::Store::defragment`).

use std::pin::Pin;
use std::sync::Arc;

use api::etcdserverpb as pb;
use futures::Stream;
use pb::maintenance_server::Maintenance;
use tonic::{Request, Response, Status};

use crate::context::{Context, ETCD_API_VERSION};
use crate::errors::EtcdError;

pub struct MaintenanceService {
    ctx: Arc<Context>,
}

impl MaintenanceService {
    pub fn new(ctx: Arc<Context>) -> Self {
        MaintenanceService { ctx }
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        self.ctx.header_info().at(self.ctx.store.current_revision())
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("etcr does not implement {what} yet"))
}

/// The store's alarm kind for etcd's `AlarmType` number (`None` for NONE and unknown ones).
fn alarm_kind(alarm: i32) -> Option<mvcc::AlarmKind> {
    match pb::AlarmType::try_from(alarm) {
        Ok(pb::AlarmType::Nospace) => Some(mvcc::AlarmKind::Nospace),
        Ok(pb::AlarmType::Corrupt) => Some(mvcc::AlarmKind::Corrupt),
        _ => None,
    }
}

fn alarm_type(kind: mvcc::AlarmKind) -> pb::AlarmType {
    match kind {
        mvcc::AlarmKind::Nospace => pb::AlarmType::Nospace,
        mvcc::AlarmKind::Corrupt => pb::AlarmType::Corrupt,
    }
}

fn alarm_member(a: &mvcc::Alarm) -> pb::AlarmMember {
    pb::AlarmMember {
        member_id: a.member,
        alarm: alarm_type(a.kind) as i32,
    }
}

/// An alarm as etcd writes it into `Status.errors`: Go's text form of `AlarmMember`,
/// trailing space included.
pub fn alarm_text(a: &mvcc::Alarm) -> String {
    format!(
        "memberID:{} alarm:{} ",
        a.member,
        alarm_type(a.kind).as_str_name()
    )
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// etcd's alarm calls: GET lists the raised alarms (of one kind, or all for NONE) after
    /// a read barrier; ACTIVATE and DEACTIVATE go through the log and answer the alarm they
    /// changed (nothing when a cleared alarm was not raised).
    async fn alarm(
        &self,
        req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let r = req.into_inner();
        let kind = alarm_kind(r.alarm);
        let alarms = match pb::alarm_request::AlarmAction::try_from(r.action) {
            Ok(pb::alarm_request::AlarmAction::Get) => {
                self.ctx.read_barrier(false).await?;
                let all = self.ctx.store.alarms().map_err(EtcdError::from)?;
                match (r.alarm, kind) {
                    (0, _) => all,
                    (_, Some(kind)) => all.into_iter().filter(|a| a.kind == kind).collect(),
                    (_, None) => Vec::new(),
                }
            }
            Ok(action) => match kind {
                Some(kind) => {
                    let alarm = mvcc::Alarm {
                        member: r.member_id,
                        kind,
                    };
                    let cmd = if action == pb::alarm_request::AlarmAction::Activate {
                        mvcc::ClusterCommand::ActivateAlarm(alarm)
                    } else {
                        mvcc::ClusterCommand::DeactivateAlarm(alarm)
                    };
                    self.ctx.raft.change_alarm(cmd).await?
                }
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        // etcd 3.4 answers alarms without a header (3.5 added one); etcdctl 3.4's json output
        // shows the difference.
        Ok(Response::new(pb::AlarmResponse {
            header: None,
            alarms: alarms.iter().map(alarm_member).collect(),
        }))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        // Writes are answered before the store commits them; the revision and sizes below
        // include every write this member has answered, as a serializable read would (a
        // script's `compaction $(revision from status)` must not miss the write just made).
        self.ctx.read_barrier(true).await?;
        let g = self.ctx.store_gauges();
        let mut errors: Vec<String> = self
            .ctx
            .store
            .alarms()
            .map_err(EtcdError::from)?
            .iter()
            .map(alarm_text)
            .collect();
        errors.extend(self.ctx.raft.halted());
        let is_learner = self
            .ctx
            .membership()
            .members
            .iter()
            .any(|m| m.id == self.ctx.member_id && m.is_learner);
        Ok(Response::new(pb::StatusResponse {
            header: self.header(),
            version: ETCD_API_VERSION.to_string(),
            db_size: g.db_size as i64,
            leader: self.ctx.raft.leader().unwrap_or(0),
            // etcd reports the committed index here.
            raft_index: self.ctx.raft.committed_index(),
            raft_term: self.ctx.raft.term(),
            raft_applied_index: g.applied_index,
            errors,
            db_size_in_use: g.db_size_in_use as i64,
            is_learner,
        }))
    }

    async fn defragment(
        &self,
        req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.ctx
            .auth
            .check_admin(crate::auth::token_of(&req))
            .map_err(crate::auth::unmapped)?;
        let store = self.ctx.store.clone();
        let done = tokio::task::spawn_blocking(move || store.defragment())
            .await
            .map_err(|e| EtcdError::Internal(format!("defragment: {e}")))?
            .map_err(EtcdError::from)?;
        tracing::info!(
            size_before = done.size_before,
            size_after = done.size_after,
            rows_under_lock = done.rows_under_lock,
            writes_waited_ms = done.locked.as_secs_f64() * 1e3,
            "defragmented the store"
        );
        // etcd answers a defragmentation without a header.
        Ok(Response::new(pb::DefragmentResponse { header: None }))
    }

    async fn hash(
        &self,
        req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        self.ctx
            .auth
            .check_admin(crate::auth::token_of(&req))
            .map_err(crate::auth::unmapped)?;
        Err(not_yet("hash"))
    }

    /// etcd's HashKV: a CRC-32C of the history kept up to a revision, computed over the
    /// same bytes etcd hashes, so it changes with compaction as etcd's does.
    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        self.ctx
            .auth
            .check_admin(crate::auth::token_of(&req))
            .map_err(crate::auth::unmapped)?;
        let rev = req.into_inner().revision;
        // This member's acknowledged writes are in the hash, as with a serializable read.
        self.ctx.read_barrier(true).await?;
        let h = self.ctx.store.hash_kv(rev).map_err(EtcdError::from)?;
        Ok(Response::new(pb::HashKvResponse {
            header: self.ctx.header_info().at(h.revision),
            hash: h.hash,
            compact_revision: h.compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        Err(not_yet("snapshot"))
    }

    /// Hands leadership to another voter through raft's leadership transfer and waits until
    /// it leads (etcd's answers for a follower, a learner or an unknown member, and a timeout).
    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.ctx
            .auth
            .check_admin(crate::auth::token_of(&req))
            .map_err(crate::auth::unmapped)?;
        let target = req.into_inner().target_id;
        if !self.ctx.raft.is_leader() {
            return Err(EtcdError::NotLeader.into());
        }
        let voter = self
            .ctx
            .membership()
            .members
            .iter()
            .any(|m| m.id == target && !m.is_learner);
        if !voter {
            return Err(EtcdError::BadLeaderTransferee.into());
        }
        if target != self.ctx.member_id {
            self.ctx.raft.transfer_leader(target).await?;
        }
        Ok(Response::new(pb::MoveLeaderResponse {
            header: self.header(),
        }))
    }
}
