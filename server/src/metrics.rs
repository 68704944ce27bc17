//! Counters for `/metrics`, in Prometheus' text format, named like etcd's where one exists.

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::histogram::Histogram;

/// One metric with its help and type lines, in Prometheus' text format.
pub fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[derive(Default)]
pub struct Metrics {
    applied: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    batched_commands: AtomicU64,
    /// Each synced write of the raft log (entries and hard state of one ready batch).
    pub wal_fsync: Histogram,
    /// Each apply batch: running its commands in the store's open transaction.
    pub apply_batch: Histogram,
    /// Each commit of the store's transaction (one covers the batches of up to 5 ms).
    pub backend_commit: Histogram,
    pub grpc: crate::grpc_metrics::GrpcMetrics,
}

/// Store gauges read at scrape time.
pub struct StoreGauges {
    pub revision: i64,
    pub compacted: i64,
    pub keys: usize,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub applied_index: u64,
}

impl Metrics {
    pub fn proposal_applied(&self) {
        self.applied.fetch_add(1, Relaxed);
    }

    pub fn proposal_failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    pub fn observe_batch(&self, commands: usize) {
        self.batches.fetch_add(1, Relaxed);
        self.batched_commands.fetch_add(commands as u64, Relaxed);
    }

    pub fn render(&self, store: &StoreGauges, has_leader: bool) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            write_metric(&mut out, name, kind, help, value);
        };
        metric(
            "etcd_server_has_leader",
            "gauge",
            "1 while this member knows a raft leader, 0 otherwise.",
            u8::from(has_leader).to_string(),
        );
        metric(
            "etcd_server_proposals_applied_total",
            "gauge",
            "Raft entries this member has applied to its store.",
            self.applied.load(Relaxed).to_string(),
        );
        metric(
            "etcd_server_proposals_failed_total",
            "counter",
            "Proposals of this member that ended in an error.",
            self.failed.load(Relaxed).to_string(),
        );
        metric(
            "etcr_apply_batches_total",
            "counter",
            "Number of batches of committed entries the apply loop ran.",
            self.batches.load(Relaxed).to_string(),
        );
        metric(
            "etcr_apply_batched_commands_total",
            "counter",
            "Number of commands applied in those batches.",
            self.batched_commands.load(Relaxed).to_string(),
        );
        metric(
            "etcd_debugging_mvcc_current_revision",
            "gauge",
            "The store's newest revision.",
            store.revision.to_string(),
        );
        metric(
            "etcd_debugging_mvcc_compact_revision",
            "gauge",
            "The revision the store was last compacted at.",
            store.compacted.to_string(),
        );
        metric(
            "etcd_debugging_mvcc_keys_total",
            "gauge",
            "Keys the store holds now (deleted keys not counted).",
            store.keys.to_string(),
        );
        metric(
            "etcd_mvcc_db_total_size_in_bytes",
            "gauge",
            "Bytes the store's database file takes on disk.",
            store.db_size.to_string(),
        );
        metric(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "gauge",
            "Bytes of the store's database file that hold live pages.",
            store.db_size_in_use.to_string(),
        );
        metric(
            "etcd_server_applied_index",
            "gauge",
            "Index of the last raft entry the store has committed.",
            store.applied_index.to_string(),
        );
        self.wal_fsync.render(
            &mut out,
            "etcd_disk_wal_fsync_duration_seconds",
            "Seconds each fsync of the raft log took.",
        );
        self.apply_batch.render(
            &mut out,
            "etcr_apply_batch_duration_seconds",
            "Time to apply one batch of committed entries to the store's open transaction.",
        );
        self.backend_commit.render(
            &mut out,
            "etcd_disk_backend_commit_duration_seconds",
            "Seconds each commit of the store's write transaction took.",
        );
        out
    }

    /// Per-peer transport counters, labelled with the peer's id in hex as etcd labels them.
    pub fn render_peers(&self, peers: &[transport::PeerStats]) -> String {
        type Family = (&'static str, &'static str, fn(&transport::PeerStats) -> u64);
        let families: [Family; 5] = [
            (
                "etcd_network_peer_sent_bytes_total",
                "Bytes of raft traffic sent to other members.",
                |p| p.bytes_sent,
            ),
            (
                "etcd_network_peer_received_bytes_total",
                "Bytes of raft traffic received from other members.",
                |p| p.bytes_received,
            ),
            (
                "etcr_network_peer_sent_messages_total",
                "Raft messages sent to other members.",
                |p| p.msgs_sent,
            ),
            (
                "etcd_network_peer_sent_failures_total",
                "Raft messages dropped because a member's queue was full or its connection down.",
                |p| p.dropped,
            ),
            (
                "etcr_network_peer_reconnects_total",
                "Connections to other members opened again after a failure.",
                |p| p.reconnects,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for p in peers {
                let _ = writeln!(out, "{name}{{To=\"{:x}\"}} {}", p.id, value(p));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.proposal_applied();
        m.observe_batch(3);
        let g = StoreGauges {
            revision: 7,
            compacted: 2,
            keys: 5,
            db_size: 4096,
            db_size_in_use: 1024,
            applied_index: 9,
        };
        let text = m.render(&g, true);
        assert!(text.contains("\netcd_server_has_leader 1\n"), "{text}");
        assert!(text.contains("\netcd_server_proposals_applied_total 1\n"));
        assert!(text.contains("\netcr_apply_batched_commands_total 3\n"));
        assert!(text.contains("\netcd_debugging_mvcc_current_revision 7\n"));
        assert!(text.contains("\netcd_debugging_mvcc_keys_total 5\n"));
    }
}
