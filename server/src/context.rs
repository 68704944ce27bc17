//! What every request handler shares: the store, the raft handle, identity and limits.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::convert::HeaderInfo;
use crate::errors::EtcdError;
use crate::membership::Membership;
use crate::metrics::{Metrics, StoreGauges};
use crate::raft::RaftNode;

/// The etcd API version etcr speaks. Clients gate features on the version a server reports,
/// so etcr reports the etcd release whose API it implements, not its own version.
pub const ETCD_API_VERSION: &str = "3.4.0";

pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
}

pub struct Context {
    pub store: Arc<mvcc::Store>,
    pub raft: RaftNode,
    pub membership: Arc<RwLock<Membership>>,
    pub cluster_id: u64,
    pub member_id: u64,
    pub limits: Limits,
    pub quota: crate::quota::Quota,
    pub metrics: Arc<Metrics>,
    pub lessor: Arc<crate::lease::Lessor>,
    /// Set with `--experimental-fault-injection` only.
    pub faults: Option<Arc<transport::fault::FaultRules>>,
    /// Users, roles, tokens: the permission checks of every call.
    pub auth: Arc<crate::auth::AuthStore>,
}

impl Context {
    pub fn header_info(&self) -> HeaderInfo {
        HeaderInfo {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            raft_term: self.raft.term(),
        }
    }

    /// Ready to serve as etcd is: no alarm is raised, a leader is known, this member applies
    /// the log, and its client URLs have been replicated, so every member can list it.
    pub fn is_healthy(&self) -> bool {
        self.store.alarms().is_ok_and(|a| a.is_empty())
            && self.raft.halted().is_none()
            && self.raft.leader().is_some()
            && self
                .membership()
                .members
                .iter()
                .any(|m| m.id == self.member_id && !m.client_urls.is_empty())
    }

    pub fn membership(&self) -> RwLockReadGuard<'_, Membership> {
        self.membership.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses requests whose encoded size exceeds `--max-request-bytes`.
    pub fn check_size(&self, encoded_len: usize) -> Result<(), EtcdError> {
        if encoded_len > self.limits.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        Ok(())
    }

    /// Waits until a read may be served: when serializable, once the store holds what this
    /// member has acknowledged (at once, but for a commit in flight); after a ReadIndex round
    /// otherwise.
    pub async fn read_barrier(&self, serializable: bool) -> Result<(), EtcdError> {
        if serializable {
            return self.raft.local_barrier().await;
        }
        self.raft.read_barrier().await
    }

    pub fn store_gauges(&self) -> StoreGauges {
        StoreGauges {
            revision: self.store.current_revision(),
            compacted: self.store.compacted_revision(),
            keys: self.store.keys_total(),
            db_size: self.store.db_size_bytes().unwrap_or(0),
            db_size_in_use: self.store.db_size_in_use_bytes().unwrap_or(0),
            applied_index: self.raft.applied_index(),
        }
    }
}
