//! `etcdserverpb.Cluster`: the member list and run-time membership changes (add, remove,
//! update, promote), with etcd's safety checks and errors.
//!
//! Adds, removals and promotions are raft membership changes (raft-core changes one member at
//! a time and refuses a second change while one is in progress); each carries the resulting
//! member set, which every member writes into the store when it applies the change. A peer
//! URL update changes no vote and travels as a normal entry.

use std::sync::Arc;

use api::etcdserverpb as pb;
use pb::cluster_server::Cluster;
use raft_core::ConfChangeType;
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::EtcdError;
use crate::membership::Membership;

/// Marks a promote forwarded to the leader, so that it is not forwarded again.
const FORWARDED: &str = "etcr-forwarded";

/// etcd 3.4 admits one learner at a time.
const MAX_LEARNERS: usize = 1;

/// A learner may be promoted once its log reaches this share of the leader's (etcd's rule).
const PROMOTE_READY_RATIO: f64 = 0.9;

pub struct ClusterService {
    ctx: Arc<Context>,
}

fn pb_member(m: &crate::membership::Member) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// Peer URLs as etcd accepts them: `http(s)://host:port`, normalized like `--initial-cluster`
/// and sorted, as etcd keeps them.
fn parse_peer_urls(urls: &[String]) -> Result<Vec<String>, EtcdError> {
    if urls.is_empty() {
        return Err(EtcdError::MemberBadUrls);
    }
    let mut urls = urls
        .iter()
        .map(|u| crate::config::normalize_url(u).map_err(|_| EtcdError::MemberBadUrls))
        .collect::<Result<Vec<_>, _>>()?;
    urls.sort();
    Ok(urls)
}

/// etcd's `IsReadyToAddVotingMember`: after the add, the members that have started (published
/// their name) must still be a quorum.
fn ready_to_add_voter(m: &Membership) -> bool {
    let voters: Vec<_> = m.members.iter().filter(|m| !m.is_learner).collect();
    let started = voters.iter().filter(|m| !m.name.is_empty()).count();
    let after = voters.len() + 1;
    (started == 1 && after == 2) || started > after / 2
}

/// etcd 3.4's removal check: a member that is down may go; otherwise the voters this member
/// reaches (itself included), less the one removed, must stay a quorum of the voters left.
fn removal_keeps_quorum(m: &Membership, id: u64, connected: impl Fn(u64) -> bool) -> bool {
    if id != m.local_id && !connected(id) {
        return true;
    }
    let voters: Vec<u64> = m
        .members
        .iter()
        .filter(|x| !x.is_learner)
        .map(|x| x.id)
        .collect();
    let active = voters.iter().filter(|v| connected(**v)).count();
    active.saturating_sub(1) > voters.len().saturating_sub(1) / 2
}

impl ClusterService {
    pub fn new(ctx: Arc<Context>) -> Self {
        ClusterService { ctx }
    }

    fn members(&self) -> Vec<pb::Member> {
        self.ctx
            .membership()
            .members
            .iter()
            .map(pb_member)
            .collect()
    }

    /// The members of a set this member proposed, with the names and client URLs it knows:
    /// the answer to a change, which may come before this member applied it.
    fn members_of(&self, set: &mvcc::MemberSet) -> Vec<pb::Member> {
        let m = self.ctx.membership();
        set.members
            .iter()
            .map(|r| {
                let known = m.members.iter().find(|x| x.id == r.id);
                pb::Member {
                    id: r.id,
                    name: known.map(|x| x.name.clone()).unwrap_or_default(),
                    peer_ur_ls: r.peer_urls.clone(),
                    client_ur_ls: known.map(|x| x.client_urls.clone()).unwrap_or_default(),
                    is_learner: r.is_learner,
                }
            })
            .collect()
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        // etcd's member headers carry no revision: membership is not in the keyspace.
        self.ctx.header_info().at(0)
    }

    /// etcd's `isConnectedFullySince`: this member reaches every other voter now, so a change
    /// that raises the quorum does not wait on a member that is down.
    fn connected_to_voters(&self, m: &Membership) -> bool {
        m.members
            .iter()
            .filter(|x| !x.is_learner)
            .all(|x| self.connected(x.id))
    }

    /// Whether this member's raft stream to `id` is up (always, for itself).
    fn connected(&self, id: u64) -> bool {
        id == self.ctx.member_id
            || self
                .ctx
                .raft
                .peer_stats()
                .iter()
                .any(|s| s.id == id && s.connected)
    }

    /// Asks the leader, which alone knows how far the learner is, to promote it (etcd
    /// forwards the same way, over its peer API).
    async fn promote_on_leader(
        &self,
        id: u64,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let leader = self.ctx.raft.leader().ok_or(EtcdError::NoLeader)?;
        let url = self
            .ctx
            .membership()
            .members
            .iter()
            .find(|m| m.id == leader)
            .and_then(|m| m.client_urls.first().cloned())
            .ok_or(EtcdError::NotLeader)?;
        let call = async {
            let mut client = pb::cluster_client::ClusterClient::connect(url)
                .await
                .map_err(|_| Status::from(EtcdError::NotLeader))?;
            let mut req = Request::new(pb::MemberPromoteRequest { id });
            req.metadata_mut()
                .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
            client.member_promote(req).await
        };
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), call)
            .await
            .map_err(|_| Status::from(EtcdError::Timeout))??
            .into_inner();
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.header(),
            members: answer.members,
        }))
    }

    /// The member `id`, or etcd's not-found.
    fn member(&self, id: u64) -> Result<crate::membership::Member, EtcdError> {
        self.ctx
            .membership()
            .members
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .ok_or(EtcdError::MemberNotFound)
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let r = req.into_inner();
        let urls = parse_peer_urls(&r.peer_ur_ls)?;
        // Ids are derived like bootstrap ones (peer URLs and cluster token), so the new member
        // knows its own id from the `--initial-cluster` list it is started with.
        let (id, set) = {
            let m = self.ctx.membership();
            if m.members
                .iter()
                .any(|x| x.peer_urls.iter().any(|u| urls.contains(u)))
            {
                return Err(EtcdError::PeerUrlExist.into());
            }
            let id = mvcc::ids::member_id(&urls, &self.ctx.cluster_token);
            if m.members.iter().any(|x| x.id == id) {
                return Err(EtcdError::MemberExist.into());
            }
            if r.is_learner && m.members.iter().filter(|x| x.is_learner).count() >= MAX_LEARNERS {
                return Err(EtcdError::TooManyLearners.into());
            }
            if self.ctx.strict_reconfig_check && !r.is_learner && !ready_to_add_voter(&m) {
                return Err(EtcdError::NotEnoughStartedMembers.into());
            }
            if self.ctx.strict_reconfig_check && !self.connected_to_voters(&m) {
                return Err(EtcdError::Unhealthy.into());
            }
            let mut set = m.to_set();
            set.members.push(mvcc::MemberRecord {
                id,
                peer_urls: urls.clone(),
                is_learner: r.is_learner,
            });
            (id, set)
        };
        let kind = if r.is_learner {
            ConfChangeType::AddLearner
        } else {
            ConfChangeType::AddNode
        };
        self.ctx
            .raft
            .change_membership(kind, id, set.clone())
            .await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: self.header(),
            member: Some(pb::Member {
                id,
                peer_ur_ls: urls,
                is_learner: r.is_learner,
                ..Default::default()
            }),
            members: self.members_of(&set),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = req.into_inner().id;
        let target = self.member(id)?;
        let set = {
            let m = self.ctx.membership();
            if self.ctx.strict_reconfig_check
                && !target.is_learner
                && !removal_keeps_quorum(&m, id, |x| self.connected(x))
            {
                return Err(EtcdError::Unhealthy.into());
            }
            let mut set = m.to_set();
            set.members.retain(|x| x.id != id);
            set
        };
        self.ctx
            .raft
            .change_membership(ConfChangeType::RemoveNode, id, set.clone())
            .await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.header(),
            members: self.members_of(&set),
        }))
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let r = req.into_inner();
        let urls = parse_peer_urls(&r.peer_ur_ls)?;
        self.member(r.id)?;
        let set = {
            let m = self.ctx.membership();
            if m.members
                .iter()
                .any(|x| x.id != r.id && x.peer_urls.iter().any(|u| urls.contains(u)))
            {
                return Err(EtcdError::PeerUrlExist.into());
            }
            let mut set = m.to_set();
            for x in &mut set.members {
                if x.id == r.id {
                    x.peer_urls = urls.clone();
                }
            }
            set
        };
        self.ctx.raft.update_members(set).await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        _req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(pb::MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    /// Makes a learner a voter once its log is within 90% of the leader's. Only the leader
    /// knows how far each member is: a follower forwards the call to it.
    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let forwarded = req.metadata().contains_key(FORWARDED);
        let id = req.into_inner().id;
        let target = self.member(id)?;
        if !target.is_learner {
            return Err(EtcdError::MemberNotLearner.into());
        }
        let Some((last, progress)) = self.ctx.raft.progress().await? else {
            if forwarded {
                return Err(EtcdError::NotLeader.into());
            }
            return self.promote_on_leader(id).await;
        };
        let matched = progress
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, m)| *m)
            .unwrap_or(0);
        if (matched as f64) < (last as f64) * PROMOTE_READY_RATIO {
            return Err(EtcdError::LearnerNotReady.into());
        }
        let mut set = self.ctx.membership().to_set();
        for x in &mut set.members {
            if x.id == id {
                x.is_learner = false;
            }
        }
        self.ctx
            .raft
            .change_membership(ConfChangeType::AddNode, id, set.clone())
            .await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.header(),
            members: self.members_of(&set),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Member;

    fn membership(started: &[bool]) -> Membership {
        Membership {
            cluster_id: 1,
            local_id: 1,
            members: started
                .iter()
                .enumerate()
                .map(|(i, s)| Member {
                    id: i as u64 + 1,
                    name: if *s { format!("m{i}") } else { String::new() },
                    peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + i)],
                    client_urls: Vec::new(),
                    is_learner: false,
                })
                .collect(),
            joining: false,
        }
    }

    #[test]
    fn quorum_of_started_members_guards_changes() {
        // One member alone may take a second.
        assert!(ready_to_add_voter(&membership(&[true])));
        // 3 started of 3: 4 need 3.
        assert!(ready_to_add_voter(&membership(&[true, true, true])));
        // 2 started of 3 (one never started): 4 would need 3.
        assert!(!ready_to_add_voter(&membership(&[true, true, false])));
    }

    #[test]
    fn removals_keep_a_quorum_of_reachable_voters() {
        let m = membership(&[true, true, true]);
        // All three reachable: removing one leaves 2 of 2.
        assert!(removal_keeps_quorum(&m, 2, |_| true));
        // Member 3 is down: removing it is safe, removing member 2 leaves 1 of 2.
        let up = |id: u64| id != 3;
        assert!(removal_keeps_quorum(&m, 3, up));
        assert!(!removal_keeps_quorum(&m, 2, up));
    }

    #[test]
    fn peer_urls_are_checked() {
        assert_eq!(parse_peer_urls(&[]), Err(EtcdError::MemberBadUrls));
        assert_eq!(
            parse_peer_urls(&["not a url".into()]),
            Err(EtcdError::MemberBadUrls)
        );
        assert_eq!(
            parse_peer_urls(&["http://127.0.0.1:9".into(), "http://127.0.0.1:10".into()]),
            Ok(vec![
                "http://127.0.0.1:10".to_string(),
                "http://127.0.0.1:9".to_string()
            ])
        );
    }
}
