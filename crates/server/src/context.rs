//! What every request handler shares: the store, the write path, identity and limits.

use std::sync::Arc;

use crate::convert::HeaderInfo;
use crate::errors::EtcdError;
use crate::membership::Membership;
use crate::metrics::{Metrics, StoreGauges};
use crate::node::Node;

/// The etcd API version etcr speaks. Clients gate features on the version a server reports,
/// so etcr reports the etcd release whose API it implements, not its own version.
pub const ETCD_API_VERSION: &str = "3.4.0";

pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
}

pub struct Context {
    pub store: Arc<mvcc::Store>,
    pub node: Node,
    pub membership: Membership,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn header_info(&self) -> HeaderInfo {
        HeaderInfo {
            cluster_id: self.membership.cluster_id,
            member_id: self.membership.local_id,
            raft_term: self.raft_term(),
        }
    }

    /// The raft term. A single member is its own leader from the first term on.
    pub fn raft_term(&self) -> u64 {
        1
    }

    pub fn leader(&self) -> Option<u64> {
        Some(self.membership.local_id)
    }

    /// Refuses requests whose encoded size exceeds `--max-request-bytes`.
    pub fn check_size(&self, encoded_len: usize) -> Result<(), EtcdError> {
        if encoded_len > self.limits.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        Ok(())
    }

    pub fn store_gauges(&self) -> StoreGauges {
        StoreGauges {
            revision: self.store.current_revision(),
            compacted: self.store.compacted_revision(),
            db_size: self.store.db_size_bytes().unwrap_or(0),
            db_size_in_use: self.store.db_size_in_use_bytes().unwrap_or(0),
            applied_index: self.store.applied_index(),
        }
    }
}
