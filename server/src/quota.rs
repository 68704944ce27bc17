//! The space quota (`--quota-backend-bytes`), checked as etcd checks it: before a write is
//! proposed, the store's size plus an estimate of what the write adds is compared with the
//! quota. A write over it is refused with `etcdserver: mvcc: database space exceeded` and a
//! NOSPACE alarm is raised through the log; while the alarm is raised every member refuses
//! writes that take space when it applies them, the same answer everywhere.
//!
//! The LMDB map is only address space: it is made far larger than the quota, so that writes
//! already in flight when the alarm goes up never fill it. A full map depends on each
//! member's page layout and cannot itself be the refusal.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use api::etcdserverpb as pb;
use tracing::debug;

use crate::context::Context;
use crate::errors::EtcdError;
use crate::metrics::write_metric;

/// The quota when the flag is 0, as etcd's default.
const DEFAULT_QUOTA: u64 = 2 << 30;

/// Map room beyond the quota: at least this much, and at least the quota again.
const MIN_HEADROOM: u64 = 8 << 30;

/// etcd's estimate of a key's metadata, added to each put's key and value.
const KV_OVERHEAD: usize = 256;

/// How long a reading of the store's size serves later checks: measuring it opens a read
/// transaction and reads every table's statistics, too much for every put. Writes let in
/// on a reading this old are few, and the map's headroom takes them.
const SIZE_READING_MS: u64 = 10;

pub struct Quota {
    bytes: u64,
    started: Instant,
    /// The last reading of the store's pages in use, and when it was taken (ms since
    /// `started`, plus one so that 0 means never).
    in_use: AtomicU64,
    read_at: AtomicU64,
}

impl Quota {
    /// From `--quota-backend-bytes`: 0 means etcd's default of 2 GiB.
    pub fn new(flag: u64) -> Quota {
        Quota {
            bytes: if flag == 0 { DEFAULT_QUOTA } else { flag },
            started: Instant::now(),
            in_use: AtomicU64::new(0),
            read_at: AtomicU64::new(0),
        }
    }

    /// The store's pages in use, read at most every [`SIZE_READING_MS`]. A store that
    /// cannot report its size reads as empty: applying refuses writes once an alarm is
    /// raised, and the map has room beyond the quota.
    fn in_use(&self, store: &mvcc::Store) -> u64 {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let at = self.read_at.load(Relaxed);
        if at != 0 && now - at.min(now) < SIZE_READING_MS {
            return self.in_use.load(Relaxed);
        }
        let in_use = store.db_size_in_use_bytes().unwrap_or(0);
        self.in_use.store(in_use, Relaxed);
        self.read_at.store(now, Relaxed);
        in_use
    }

    /// The LMDB map size for this quota, a multiple of the page size.
    pub fn map_size(&self) -> anyhow::Result<usize> {
        let map = self.bytes.saturating_add(self.bytes.max(MIN_HEADROOM));
        usize::try_from(map)
            .map(|m| m.next_multiple_of(4096))
            .map_err(|_| {
                anyhow::anyhow!("--quota-backend-bytes does not fit this machine's address space")
            })
    }

    /// etcd's `etcd_server_quota_backend_bytes` gauge, in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        write_metric(
            out,
            "etcd_server_quota_backend_bytes",
            "gauge",
            "Current backend storage quota size in bytes.",
            self.bytes,
        );
    }

    /// Whether a write estimated at `cost` fits beside `in_use` bytes of the store. The
    /// store's pages in use, not its file size, are the measure: LMDB reuses freed pages, so
    /// a compaction makes room without a defragmentation.
    pub fn fits(&self, in_use: u64, cost: usize) -> bool {
        in_use.saturating_add(cost as u64) < self.bytes
    }
}

impl Context {
    /// Refuses a write estimated at `cost` bytes if the store is over its quota, raising
    /// this member's NOSPACE alarm through the log (once: while it is raised, the apply step
    /// refuses writes anyway).
    pub async fn check_quota(&self, cost: usize) -> Result<(), EtcdError> {
        if cost == 0 {
            return Ok(());
        }
        let in_use = self.quota.in_use(&self.store);
        if self.quota.fits(in_use, cost) {
            return Ok(());
        }
        let alarm = mvcc::Alarm {
            member: self.member_id,
            kind: mvcc::AlarmKind::Nospace,
        };
        if !self.store.alarms().unwrap_or_default().contains(&alarm) {
            if let Err(e) = self
                .raft
                .change_alarm(mvcc::ClusterCommand::ActivateAlarm(alarm))
                .await
            {
                debug!("raising the NOSPACE alarm: {e}");
            }
        }
        Err(EtcdError::NoSpace)
    }
}

/// What a put adds to the store, by etcd's estimate.
pub fn put_cost(r: &pb::PutRequest) -> usize {
    KV_OVERHEAD + r.key.len() + r.value.len()
}

/// What a transaction adds: the costlier branch's puts (nested transactions included).
pub fn txn_cost(r: &pb::TxnRequest) -> usize {
    let branch = |ops: &[pb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(pb::request_op::Request::RequestPut(p)) => put_cost(p),
                Some(pb::request_op::Request::RequestTxn(t)) => txn_cost(t),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_etcds_estimate() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![0; 100],
            ..Default::default()
        };
        assert_eq!(put_cost(&put), 357);
        let op = |p: &pb::PutRequest| pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(p.clone())),
        };
        let txn = pb::TxnRequest {
            success: vec![op(&put)],
            failure: vec![op(&put), op(&put)],
            ..Default::default()
        };
        assert_eq!(txn_cost(&txn), 714);
        let q = Quota::new(1000);
        let mut text = String::new();
        q.render(&mut text);
        assert!(
            text.ends_with("\netcd_server_quota_backend_bytes 1000\n"),
            "{text}"
        );
        assert!(q.fits(600, 357));
        assert!(!q.fits(700, 357));
        assert!(Quota::new(0).map_size().unwrap() >= (10 << 30));
    }
}
