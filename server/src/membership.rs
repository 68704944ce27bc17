//! Who is in the cluster: member ids and peer URLs, fixed at bootstrap and kept in the data
//! directory so that a restarted member keeps its identity whatever flags it is given, and
//! the names and client URLs members publish through the log, which live in the store (so a
//! member restored from a snapshot knows them too) and are overlaid here.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Flags;
use crate::ids;

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

    pub fn bootstrap(flags: &Flags) -> anyhow::Result<Membership> {
        let token = &flags.initial_cluster_token;
        // Client URLs, this member's included, arrive through the log once each member
        // publishes them; until then a member is not healthy, as in etcd.
        let mut members: Vec<Member> = flags
            .initial_members()?
            .into_iter()
            .map(|m| Member {
                id: ids::member_id(&m.peer_urls, token),
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
        Ok(Membership {
            cluster_id: ids::cluster_id(&member_ids),
            local_id,
            members,
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
}
