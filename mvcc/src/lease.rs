//! Leases in the store: the `lease_grants` table (lease id -> granted TTL) and the commands
//! that grant and revoke them.
//!
//! The store holds what every replica must agree on: which leases exist, with which TTL,
//! and which keys are attached (the `leases` table). When a lease expires is not replicated
//! state: the server's lessor keeps expiry times in memory and revokes through the log.

use heed::{RoTxn, RwTxn};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::tables::Tables;
use crate::types::{DeleteRangeResponse, ResponseHeader};
use crate::write::Change;

/// The largest TTL a lease may be granted, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Create a lease, as etcd's `LeaseGrantRequest` once the server has chosen the id (never 0)
/// and raised the TTL to its minimum.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LeaseGrantRequest {
    /// The lease id.
    pub id: i64,
    /// Time to live in seconds.
    pub ttl: i64,
}

/// Answer to a [`LeaseGrantRequest`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LeaseGrantResponse {
    /// Current store revision (a grant does not create one).
    pub header: ResponseHeader,
    /// The lease id.
    pub id: i64,
    /// The TTL granted.
    pub ttl: i64,
}

/// Answer to [`crate::Command::ExpireLeases`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ExpireLeasesResponse {
    /// Store revision after the last revocation.
    pub header: ResponseHeader,
    /// The leases that still existed and were revoked, in command order.
    pub revoked: Vec<i64>,
}

/// A lease the store holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease id.
    pub id: i64,
    /// The TTL it was granted, in seconds.
    pub ttl: i64,
}

impl Tables {
    /// The granted TTL of `lease`, if it exists.
    pub fn lease_ttl(&self, txn: &RoTxn, lease: i64) -> Result<Option<i64>> {
        match self.lease_grants.get(txn, &lease.to_be_bytes())? {
            Some(b) => Ok(Some(codec::be_i64(b)?)),
            None => Ok(None),
        }
    }

    /// Fails with [`Error::LeaseNotFound`] unless `lease` is 0 (none) or exists.
    pub fn check_lease(&self, txn: &RoTxn, lease: i64) -> Result<()> {
        if lease != 0 && self.lease_ttl(txn, lease)?.is_none() {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }

    /// Every lease, in id byte order.
    pub fn all_leases(&self, txn: &RoTxn) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        for row in self.lease_grants.iter(txn)? {
            let (k, v) = row?;
            out.push(Lease {
                id: codec::be_i64(k)?,
                ttl: codec::be_i64(v)?,
            });
        }
        Ok(out)
    }
}

impl Change<'_> {
    pub fn lease_grant(
        &mut self,
        wtxn: &mut RwTxn,
        req: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse> {
        if req.id == 0 {
            return Err(Error::LeaseNotFound);
        }
        if req.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        let t = *self.tables();
        if t.lease_ttl(wtxn, req.id)?.is_some() {
            return Err(Error::LeaseExists);
        }
        t.lease_grants
            .put(wtxn, &req.id.to_be_bytes(), &req.ttl.to_be_bytes())?;
        Ok(LeaseGrantResponse {
            header: self.header(),
            id: req.id,
            ttl: req.ttl,
        })
    }

    /// Revokes each lease of `ids` that still exists, each at its own revision as separate
    /// revokes would be, so that one log entry can carry many expiries.
    pub fn expire_leases(&mut self, wtxn: &mut RwTxn, ids: &[i64]) -> Result<ExpireLeasesResponse> {
        let t = *self.tables();
        let mut revoked = Vec::new();
        for id in ids {
            if t.lease_ttl(wtxn, *id)?.is_none() {
                continue;
            }
            self.lease_revoke(wtxn, *id)?;
            self.next_revision();
            revoked.push(*id);
        }
        Ok(ExpireLeasesResponse {
            header: self.header(),
            revoked,
        })
    }

    /// Revokes a lease: every attached key is deleted at this command's one revision.
    pub fn lease_revoke(&mut self, wtxn: &mut RwTxn, lease: i64) -> Result<DeleteRangeResponse> {
        let t = *self.tables();
        if t.lease_ttl(wtxn, lease)?.is_none() {
            return Err(Error::LeaseNotFound);
        }
        t.lease_grants.delete(wtxn, &lease.to_be_bytes())?;
        let mut keys = t.leased_keys(wtxn, lease)?;
        // The lease table is in key id order; delete in key order, like etcd.
        keys.sort();
        self.delete_keys(wtxn, &keys)
    }
}
