//! Who is in the cluster. The bootstrap identity (cluster id, this member's id, the initial
//! members' peer URLs) is kept in the data directory so that a restarted member keeps it
//! whatever flags it is given. Once a membership change is applied, the member set lives in
//! the store (replicated through the log, carried by snapshots) and overrides the bootstrap
//! list here; so do the names and client URLs members publish through the log.
//!
//! A member started with `--initial-cluster-state existing` joins a running cluster: it
//! takes its id from the `--initial-cluster` list (ids of added members are derived like
//! bootstrap ones, from peer URLs and the cluster token), does not know the cluster id
//! (0) until the log or a snapshot tells it, and starts with no voters, so it never
//! campaigns on its own.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Flags;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub cluster_id: u64,
    pub local_id: u64,
    /// Sorted by id, the order etcd lists members in.
    pub members: Vec<Member>,
    /// Started with `--initial-cluster-state existing`: the member set comes from the log.
    #[serde(default)]
    pub joining: bool,
}

const FILE: &str = "membership.json";

impl Membership {
    /// The membership stored in `member_dir`, or a new one from the flags on first start.
    pub fn load_or_bootstrap(member_dir: &Path, flags: &Flags) -> anyhow::Result<Membership> {
        let path = member_dir.join(FILE);
        if path.exists() {
            let text = fs::read_to_string(&path)?;
            return serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is damaged ({e}); restore it or start with an empty --data-dir",
                    path.display()
                )
            });
        }
        let m = Membership::bootstrap(flags)?;
        m.save(member_dir)?;
        Ok(m)
    }

    /// Writes the membership atomically (temporary file, fsync, rename).
    pub fn save(&self, member_dir: &Path) -> anyhow::Result<()> {
        let tmp = member_dir.join(format!("{FILE}.tmp"));
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, member_dir.join(FILE))?;
        Ok(())
    }

    /// Takes a member's published attributes (applied from the log).
    pub fn publish(&mut self, info: mvcc::MemberInfo) {
        if let Some(member) = self.members.iter_mut().find(|m| m.id == info.id) {
            member.name = info.name;
            member.client_urls = info.client_urls;
        }
    }

    /// Takes the attributes the store holds (at start, and after installing a snapshot).
    pub fn overlay_published(&mut self, published: Vec<mvcc::MemberInfo>) {
        for info in published {
            self.publish(info);
        }
    }

    /// Takes the member set and published attributes the store holds (at start, and after
    /// installing a snapshot).
    pub fn overlay_store(&mut self, store: &mvcc::Store) -> mvcc::Result<()> {
        if let Some(set) = store.member_set()? {
            self.apply_set(&set);
        }
        self.overlay_published(store.members()?);
        Ok(())
    }

    /// Takes the member set of an applied membership change, keeping what members published.
    pub fn apply_set(&mut self, set: &mvcc::MemberSet) {
        if self.cluster_id == 0 {
            self.cluster_id = set.cluster_id;
        }
        let old = std::mem::take(&mut self.members);
        self.members = set
            .members
            .iter()
            .map(|r| {
                let known = old.iter().find(|m| m.id == r.id);
                Member {
                    id: r.id,
                    name: known.map(|m| m.name.clone()).unwrap_or_default(),
                    peer_urls: r.peer_urls.clone(),
                    client_urls: known.map(|m| m.client_urls.clone()).unwrap_or_default(),
                    is_learner: r.is_learner,
                }
            })
            .collect();
        self.members.sort_by_key(|m| m.id);
        // A joining member replays changes from before its own add: it has joined once a set
        // holds it.
        self.joining &= !self.members.iter().any(|m| m.id == self.local_id);
    }

    /// The member set as a membership change records it.
    pub fn to_set(&self) -> mvcc::MemberSet {
        mvcc::MemberSet {
            cluster_id: self.cluster_id,
            members: self
                .members
                .iter()
                .map(|m| mvcc::MemberRecord {
                    id: m.id,
                    peer_urls: m.peer_urls.clone(),
                    is_learner: m.is_learner,
                })
                .collect(),
        }
    }

    /// The raft membership to start from when the log and snapshot say nothing newer.
    pub fn conf_state(&self) -> raft_core::ConfState {
        if self.joining {
            return raft_core::ConfState::default();
        }
        let ids = |learner: bool| {
            self.members
                .iter()
                .filter(|m| m.is_learner == learner)
                .map(|m| m.id)
                .collect::<Vec<_>>()
        };
        let mut cs = raft_core::ConfState::with_voters(ids(false));
        cs.learners = ids(true);
        cs
    }

    pub fn bootstrap(flags: &Flags) -> anyhow::Result<Membership> {
        let token = &flags.initial_cluster_token;
        // Client URLs, this member's included, arrive through the log once each member
        // publishes them; until then a member is not healthy, as in etcd.
        let mut members: Vec<Member> = flags
            .initial_members()?
            .into_iter()
            .map(|m| Member {
                id: mvcc::ids::member_id(&m.peer_urls, token),
                client_urls: Vec::new(),
                name: m.name,
                peer_urls: m.peer_urls,
                is_learner: false,
            })
            .collect();
        members.sort_by_key(|m| m.id);
        let local_id = members
            .iter()
            .find(|m| m.name == flags.name)
            .map(|m| m.id)
            .ok_or_else(|| {
                anyhow::anyhow!("--initial-cluster has no member named {:?}", flags.name)
            })?;
        let member_ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let joining = flags.initial_cluster_state == crate::config::ClusterState::Existing;
        Ok(Membership {
            cluster_id: if joining {
                0
            } else {
                mvcc::ids::cluster_id(&member_ids)
            },
            local_id,
            members,
            joining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn bootstrap_is_deterministic_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let flags = Flags::parse_from([
            "etcr",
            "--name",
            "m2",
            "--initial-cluster",
            "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:12380",
            "--advertise-client-urls",
            "http://127.0.0.1:12379",
        ]);
        let a = Membership::load_or_bootstrap(dir.path(), &flags).unwrap();
        assert_eq!(a.members.len(), 2);
        assert!(a.members[0].id < a.members[1].id);
        let local = a.members.iter().find(|m| m.id == a.local_id).unwrap();
        assert_eq!(local.name, "m2");
        assert!(
            local.client_urls.is_empty(),
            "client URLs come from the log, not the flags"
        );
        // A restart with other flags keeps the stored identity.
        let other = Flags::parse_from(["etcr", "--name", "zzz"]);
        let b = Membership::load_or_bootstrap(dir.path(), &other).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_joining_member_learns_the_set_and_joins_once_it_holds_it() {
        let flags = Flags::parse_from([
            "etcr",
            "--name",
            "m3",
            "--initial-cluster",
            "m1=http://127.0.0.1:2380,m3=http://127.0.0.1:2382",
            "--initial-cluster-state",
            "existing",
        ]);
        let mut m = Membership::bootstrap(&flags).unwrap();
        assert_eq!(
            m.cluster_id, 0,
            "a joiner learns the cluster id from the log"
        );
        assert!(
            m.conf_state().voters.is_empty(),
            "a joiner never campaigns alone"
        );
        let m1 = m.members.iter().find(|x| x.name == "m1").unwrap().id;
        let record = |id, learner| mvcc::MemberRecord {
            id,
            peer_urls: vec![],
            is_learner: learner,
        };
        // A change from before its own add leaves it joining.
        m.apply_set(&mvcc::MemberSet {
            cluster_id: 7,
            members: vec![record(m1, false)],
        });
        assert!(m.joining);
        assert_eq!(m.cluster_id, 7);
        m.apply_set(&mvcc::MemberSet {
            cluster_id: 7,
            members: vec![record(m1, false), record(m.local_id, true)],
        });
        assert!(!m.joining);
        assert_eq!(m.conf_state().learners, vec![m.local_id]);
    }
}
