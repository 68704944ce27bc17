//! `etcdserverpb.Lease`: grant, revoke, time-to-live, list and keep-alive.
//!
//! Grants and revokes go through the log (the store holds which leases exist); renewals and
//! remaining TTLs are the leader's business (see `lessor`): a follower asks the leader
//! (`forward`). The leader expires leases by proposing revokes (`expiry`).

mod expiry;
mod forward;
mod keepalive;
mod lessor;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::etcdserverpb as pb;
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::EtcdError;
pub use expiry::spawn as spawn_expiry;
use forward::LeaderLink;
pub use forward::{RENEW_PATH, TIME_TO_LIVE_PATH};
pub use lessor::Lessor;
use lessor::Renewal;

/// What a grant adds to the store, by etcd's quota estimate (its `leaseOverhead`).
const GRANT_COST: usize = 64;

/// How long a follower waits before asking the leader again after a failed attempt.
const RETRY: Duration = Duration::from_millis(50);

/// etcd's minimum lease TTL for these raft timings: 1.5 election timeouts (counted in whole
/// heartbeats, as etcd does), rounded up to whole seconds.
pub fn min_ttl(heartbeat: Duration, election_ticks: u64) -> i64 {
    let ticks = u32::try_from(election_ticks.saturating_mul(3) / 2).unwrap_or(u32::MAX);
    heartbeat.saturating_mul(ticks).as_secs_f64().ceil() as i64
}

/// Cheap to clone: keep-alive streams hold a clone for as long as they run.
#[derive(Clone)]
pub struct LeaseService {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Context>,
    link: LeaderLink,
    ids: IdGenerator,
}

fn unexpected(what: &str) -> Status {
    EtcdError::Internal(format!("unexpected response to {what}")).into()
}

impl LeaseService {
    pub fn new(ctx: Arc<Context>) -> Self {
        let ids = IdGenerator::new(ctx.member_id);
        LeaseService {
            inner: Arc::new(Inner {
                ctx,
                link: LeaderLink::default(),
                ids,
            }),
        }
    }

    fn ctx(&self) -> &Context {
        &self.inner.ctx
    }

    fn lessor(&self) -> &Lessor {
        &self.inner.ctx.lessor
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        let ctx = self.ctx();
        ctx.header_info().at(ctx.store.current_revision())
    }

    /// The lessor follows raft first, so that a member that lost leadership does not answer
    /// as leader.
    fn follow_raft(&self) {
        self.lessor().follow(self.ctx().raft.leader_term());
    }

    pub async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = req.into_inner();
        if r.ttl > mvcc::MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        self.ctx().check_quota(GRANT_COST).await?;
        let mut id = r.id;
        while id == 0 {
            id = self.inner.ids.next();
        }
        // Raised here, not at apply, so every member stores the same TTL.
        let ttl = r.ttl.max(self.lessor().min_ttl());
        let grant = mvcc::LeaseGrantRequest { id, ttl };
        match self
            .ctx()
            .raft
            .propose(mvcc::Command::LeaseGrant(grant))
            .await?
        {
            mvcc::CommandResponse::LeaseGrant(g) => Ok(Response::new(pb::LeaseGrantResponse {
                header: self.ctx().header_info().at(g.header.revision),
                id: g.id,
                ttl: g.ttl,
                error: String::new(),
            })),
            _ => Err(unexpected("lease grant")),
        }
    }

    pub async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let token = crate::auth::token_of(&req).map(str::to_owned);
        let id = req.into_inner().id;
        // etcd's rule: revoking deletes the lease's keys, so it needs WRITE on each of them
        // (and nothing for a lease without keys).
        let keys = self.ctx().store.leased_keys(id).map_err(EtcdError::from)?;
        if !keys.is_empty() {
            let checker = self.ctx().auth.checker(token.as_deref())?;
            for k in &keys {
                checker.check(crate::auth::Need::Write, k, b"")?;
            }
        }
        match self
            .ctx()
            .raft
            .propose(mvcc::Command::RevokeLease(id))
            .await?
        {
            mvcc::CommandResponse::DeleteRange(d) => Ok(Response::new(pb::LeaseRevokeResponse {
                header: self.ctx().header_info().at(d.header.revision),
            })),
            _ => Err(unexpected("lease revoke")),
        }
    }

    pub async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = req.into_inner();
        let deadline = Instant::now() + self.ctx().raft.request_timeout();
        loop {
            self.follow_raft();
            if let Some(mut resp) = self.local_time_to_live(&r).await? {
                resp.header = self.header();
                return Ok(Response::new(resp));
            }
            if let Some((leader, url)) = self.remote_leader() {
                match self.inner.link.time_to_live(leader, &url, r).await {
                    Ok(mut resp) => {
                        // etcd's header is the answering member's own.
                        resp.header = self.header();
                        return Ok(Response::new(resp));
                    }
                    Err(s) => tracing::debug!("asking the leader for a lease's TTL: {s}"),
                }
            }
            self.wait_to_retry(deadline).await?;
        }
    }

    pub async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        // etcd lists the member's own view: no raft round, served without a leader too.
        self.follow_raft();
        let leases = self
            .lessor()
            .ids()
            .into_iter()
            .map(|id| pb::LeaseStatus { id })
            .collect();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.header(),
            leases,
        }))
    }

    /// etcr's own call ([`RENEW_PATH`]): a follower's renewal, answered only while leading.
    pub async fn forwarded_renew(
        &self,
        req: Request<pb::LeaseKeepAliveRequest>,
    ) -> Result<Response<pb::LeaseKeepAliveResponse>, Status> {
        let id = req.into_inner().id;
        let deadline = Instant::now() + self.ctx().raft.request_timeout();
        let Some(ttl) = self.renew_here(id, deadline).await? else {
            return Err(EtcdError::NotLeader.into());
        };
        Ok(Response::new(pb::LeaseKeepAliveResponse {
            header: self.header(),
            id,
            ttl,
        }))
    }

    /// etcr's own call ([`TIME_TO_LIVE_PATH`]): a follower's question, answered only while
    /// leading.
    pub async fn forwarded_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = req.into_inner();
        self.follow_raft();
        match self.local_time_to_live(&r).await? {
            Some(resp) => Ok(Response::new(resp)),
            None => Err(EtcdError::NotLeader.into()),
        }
    }

    /// The leader's answer, or `None` when this member does not lead.
    async fn local_time_to_live(
        &self,
        r: &pb::LeaseTimeToLiveRequest,
    ) -> Result<Option<pb::LeaseTimeToLiveResponse>, EtcdError> {
        let Ok(ttl) = self.lessor().time_to_live(r.id) else {
            return Ok(None);
        };
        let Some(ttl) = ttl else {
            // etcd answers an unknown lease with TTL -1 rather than an error.
            return Ok(Some(pb::LeaseTimeToLiveResponse {
                header: self.header(),
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }));
        };
        let mut keys = Vec::new();
        if r.keys {
            // The lessor learns of leases as they are applied: wait until the store holds
            // the same, so the keys attached by then are there.
            self.ctx().raft.local_barrier().await?;
            keys = self
                .ctx()
                .store
                .leased_keys(r.id)
                .map_err(EtcdError::from)?;
            keys.sort();
        }
        Ok(Some(pb::LeaseTimeToLiveResponse {
            header: self.header(),
            id: r.id,
            ttl: ttl.remaining,
            granted_ttl: ttl.granted,
            keys,
        }))
    }

    /// Renews `id` on the leader, wherever it is; the lease's granted TTL, or 0 when it does
    /// not exist (etcd's answer to a keep-alive of an expired or unknown lease).
    async fn renew(&self, id: i64) -> Result<i64, EtcdError> {
        let deadline = Instant::now() + self.ctx().raft.request_timeout();
        loop {
            if let Some(ttl) = self.renew_here(id, deadline).await? {
                return Ok(ttl);
            }
            if let Some((leader, url)) = self.remote_leader() {
                match self.inner.link.renew(leader, &url, id).await {
                    Ok(resp) => return Ok(resp.ttl),
                    Err(s) => tracing::debug!("forwarding a keep-alive to the leader: {s}"),
                }
            }
            self.wait_to_retry(deadline).await?;
        }
    }

    /// Renews `id` if this member leads (`None` if it does not): the granted TTL, or 0 for
    /// a lease that does not exist; an expired lease is answered once its revoke is through.
    async fn renew_here(&self, id: i64, deadline: Instant) -> Result<Option<i64>, EtcdError> {
        loop {
            self.follow_raft();
            match self.lessor().renew(id) {
                Renewal::Renewed(ttl) => return Ok(Some(ttl)),
                Renewal::NotFound => return Ok(Some(0)),
                Renewal::NotLeader => return Ok(None),
                Renewal::Expiring => self.wait_to_retry(deadline).await?,
            }
        }
    }

    /// The leader and its client URL, when another member leads.
    fn remote_leader(&self) -> Option<(u64, String)> {
        let ctx = self.ctx();
        let leader = ctx.raft.leader().filter(|l| *l != ctx.member_id)?;
        let membership = ctx.membership();
        let url = membership
            .members
            .iter()
            .find(|m| m.id == leader)?
            .client_urls
            .first()?
            .clone();
        Some((leader, url))
    }

    async fn wait_to_retry(&self, deadline: Instant) -> Result<(), EtcdError> {
        if Instant::now() + RETRY > deadline {
            return Err(if self.ctx().raft.leader().is_none() {
                EtcdError::NoLeader
            } else {
                EtcdError::Timeout
            });
        }
        tokio::time::sleep(RETRY).await;
        Ok(())
    }
}

/// etcd's request id generator, which it also uses for lease ids: the member id's low 16
/// bits, then the start time in milliseconds (40 bits) and a counter (8 bits) that carries
/// into it, so ids from different members and restarts do not collide.
struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

const SUFFIX_BITS: u32 = 48;

impl IdGenerator {
    fn new(member_id: u64) -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        IdGenerator {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: AtomicU64::new((millis & ((1 << 40) - 1)) << 8),
        }
    }

    /// A positive id (0 only if the counter wraps onto it; the caller draws again).
    fn next(&self) -> i64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
        let id = self.prefix | (suffix & ((1 << SUFFIX_BITS) - 1));
        (id & (i64::MAX as u64)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        // etcd's defaults: 100 ms heartbeats, 10 per election: 1.5 s, so 2 s.
        assert_eq!(min_ttl(Duration::from_millis(100), 10), 2);
        assert_eq!(min_ttl(Duration::from_millis(50), 10), 1);
        assert_eq!(min_ttl(Duration::from_millis(500), 10), 8);
    }

    #[test]
    fn lease_ids_are_positive_and_carry_the_member_id() {
        let g = IdGenerator::new(0x8e9e_05c5_2164_694d);
        let (a, b) = (g.next(), g.next());
        assert!(a > 0 && b == a + 1);
        assert_eq!((a as u64) >> SUFFIX_BITS, 0x694d);
    }
}
