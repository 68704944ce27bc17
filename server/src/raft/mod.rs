//! Replication: every write is a raft log entry, committed by a quorum before it is applied.
//!
//! Threads and tasks, and what flows between them:
//!
//! ```text
//! gRPC handlers ──Input──▶ raft loop (driver.rs) ──ApplyItem──▶ apply thread (apply.rs) ──▶ mvcc
//!       ▲                     │  ▲                                     │
//!       │                     │  └── peer messages ◀── transport       │
//!       └──── answers (waiters.rs, by request id) ◀────────────────────┘
//! ```
//!
//! The raft loop owns raft-core's `RawNode` and the durable log; the apply thread owns the
//! store's write side. Reads go through ReadIndex (`RaftNode::read_barrier`) and are then
//! served by the handler from an LMDB read transaction.

mod apply;
mod driver;
mod durable_log;
mod envelope;
mod peers;
mod shared;
mod snapshots;
mod waiters;

use crossbeam_channel::Sender;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raft_core::{ConfChange, ConfChangeType, Config, MemStorage, RawNode, Snapshot};
use tracing::info;

pub use envelope::MemberAttributes;
pub use peers::PeerTransport;

use crate::errors::EtcdError;
use crate::membership::Membership;
use crate::metrics::Metrics;
use driver::{Driver, Input};
use envelope::{Envelope, Payload};
use shared::Shared;
use waiters::{Answer, Waiters};

/// How the raft loop is set up.
pub struct RaftSettings {
    pub member_dir: PathBuf,
    pub heartbeat: Duration,
    pub election_ticks: usize,
    pub snapshot_count: u64,
    pub catch_up_entries: u64,
    pub request_timeout: Duration,
}

/// Who the apply thread tells what it applied.
pub struct ApplyObservers {
    /// Told after every commit: watchers get what the commit made readable.
    pub watch: crate::watch::CommitNotifier,
    /// Told of every lease grant and revoke applied, and when this member's term starts.
    pub lessor: Arc<crate::lease::Lessor>,
    /// Told the auth state after each change, and each token handed out.
    pub auth: Arc<crate::auth::AuthStore>,
}

/// The handle request handlers use: propose, read barrier, status. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    local_id: u64,
    inputs: Sender<Input>,
    waiters: Arc<Waiters>,
    shared: Arc<Shared>,
    next_id: Arc<AtomicU64>,
    request_timeout: Duration,
    transport: PeerTransport,
}

impl RaftNode {
    /// Recovers the durable log, connects the peers and starts the raft loop and apply thread.
    pub fn start(
        settings: RaftSettings,
        store: Arc<mvcc::Store>,
        membership: Arc<RwLock<Membership>>,
        transport: PeerTransport,
        incoming: transport::IncomingReceiver<raft_core::Message>,
        metrics: Arc<Metrics>,
        observers: ApplyObservers,
    ) -> anyhow::Result<RaftNode> {
        // The caller overlaid the store's member set on the bootstrap identity.
        let (local_id, conf_state, removed) = {
            let m = membership.read().unwrap_or_else(|p| p.into_inner());
            let removed = !m.joining && !m.members.iter().any(|x| x.id == m.local_id);
            (m.local_id, m.conf_state(), removed)
        };
        let voters = conf_state.voters.clone();
        let (log, recovered) = durable_log::DurableLog::open(&settings.member_dir.join("wal"))?;
        let mut storage = MemStorage::new_with_conf_state(conf_state);
        let mut snapshot_index = 0;
        if let Some(meta) = recovered.snapshot {
            snapshot_index = meta.index;
            storage
                .apply_snapshot(Snapshot {
                    data: Vec::new(),
                    metadata: meta,
                })
                .map_err(|e| anyhow::anyhow!("recovering the raft snapshot record: {e}"))?;
        }
        storage
            .append(&recovered.entries)
            .map_err(|e| anyhow::anyhow!("recovering the raft log: {e}"))?;
        let hard_state = recovered.hard_state.unwrap_or_default();
        storage.set_hard_state(hard_state);
        // Entries the store already holds are not handed out again (the store would skip them
        // anyway); raft-core needs applied <= commit.
        let applied = store
            .applied_index()
            .min(hard_state.commit)
            .max(snapshot_index);
        let last_index = recovered
            .entries
            .last()
            .map(|e| e.index)
            .unwrap_or(snapshot_index);
        info!(
            term = hard_state.term,
            commit = hard_state.commit,
            applied,
            last_index,
            "raft log recovered"
        );

        let mut config = Config::new(local_id);
        config.election_tick = settings.election_ticks;
        config.heartbeat_tick = 1;
        config.applied = applied;
        config.seed = local_id ^ now_nanos();
        // etcd's figure: a leader cut off from its quorum stops taking writes after 1 GiB.
        config.max_uncommitted_entries_size = 1 << 30;
        let mut node =
            RawNode::new(&config, storage).map_err(|e| anyhow::anyhow!("starting raft: {e}"))?;
        if voters == [local_id] {
            // Alone in the cluster: no need to wait an election timeout to lead.
            node.campaign();
        }

        let (shared, commit_wake) = Shared::new(
            store.applied_index().max(snapshot_index),
            hard_state.term,
            hard_state.commit,
        );
        let shared = Arc::new(shared);
        if removed {
            // Restarted after its removal: it says why again, and its raft loop (which has
            // no vote) never campaigns.
            tracing::error!("{}; this member does not serve", apply::REMOVED);
            shared.halt(apply::REMOVED.to_string());
        }
        let waiters = Arc::new(Waiters::default());
        let (inputs_tx, inputs_rx) = crossbeam_channel::unbounded();
        let (apply_tx, apply_rx) = crossbeam_channel::unbounded();
        // Snapshot files left by a crash are transfers that never finished; raft asks for
        // the data again if it still needs it.
        let snap_dir = settings.member_dir.join("snap");
        if snap_dir.exists() {
            std::fs::remove_dir_all(&snap_dir)?;
        }
        let snapshots = snapshots::Snapshots {
            store: store.clone(),
            dir: snap_dir,
            rt: tokio::runtime::Handle::current(),
            inputs: inputs_tx.clone(),
            shared: shared.clone(),
            sending: Default::default(),
            seq: Default::default(),
        };
        peers::pump_incoming(incoming, inputs_tx.clone(), snapshots.clone());

        let applier = apply::Applier {
            store: store.clone(),
            waiters: waiters.clone(),
            shared: shared.clone(),
            membership,
            local_id,
            metrics: metrics.clone(),
            lessor: observers.lessor,
            watch: observers.watch,
            auth: observers.auth,
            transport: transport.clone(),
            rt: tokio::runtime::Handle::current(),
            member_dir: settings.member_dir.clone(),
            inputs: inputs_tx.clone(),
        };
        std::thread::Builder::new()
            .name("etcr-apply".into())
            .spawn(move || applier.run(apply_rx, commit_wake))?;
        let driver = Driver {
            node,
            log,
            inputs: inputs_rx,
            transport: transport.clone(),
            apply: apply_tx,
            shared: shared.clone(),
            waiters: waiters.clone(),
            snapshots,
            store,
            metrics,
            tick: settings.heartbeat,
            snapshot_count: settings.snapshot_count,
            catch_up_entries: settings.catch_up_entries,
            reads: Default::default(),
            received_snapshot: None,
            handed_out: applied,
            pending_change: None,
            sent: Vec::new(),
            reads_under: (0, hard_state.term),
        };
        std::thread::Builder::new()
            .name("etcr-raft".into())
            .spawn(move || driver.run())?;

        Ok(RaftNode {
            local_id,
            inputs: inputs_tx,
            waiters,
            shared,
            // Request ids must not repeat across restarts (an old entry replayed after a
            // restart must not answer a new caller): start from the clock.
            next_id: Arc::new(AtomicU64::new(now_nanos())),
            request_timeout: settings.request_timeout,
            transport,
        })
    }

    async fn propose_payload(&self, payload: Payload) -> Result<Answer, EtcdError> {
        if let Some(reason) = self.shared.halted() {
            return Err(EtcdError::Halted(reason));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let data = Envelope {
            origin: self.local_id,
            id,
            payload,
        }
        .encode()?;
        self.wait_answer(id, Input::Propose { id, data }).await
    }

    async fn wait_answer(&self, id: u64, input: Input) -> Result<Answer, EtcdError> {
        if let Some(reason) = self.shared.halted() {
            return Err(EtcdError::Halted(reason));
        }
        // Proposals count against the raft loop's queue (`Shared::admit_proposal`).
        let counted = matches!(input, Input::Propose { .. });
        if counted {
            self.shared.admit_proposal()?;
        }
        let answer = self.waiters.register(id);
        if self.inputs.send(input).is_err() {
            if counted {
                self.shared.proposal_taken();
            }
            self.waiters.forget(id);
            return Err(self.stopped());
        }
        match tokio::time::timeout(self.request_timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => {
                self.waiters.forget(id);
                Err(if self.shared.leader().is_none() {
                    EtcdError::NoLeader
                } else {
                    EtcdError::Timeout
                })
            }
        }
    }

    /// Proposes a store command and waits until it is committed and applied.
    pub async fn propose(&self, cmd: mvcc::Command) -> Result<mvcc::CommandResponse, EtcdError> {
        match self.propose_payload(Payload::Kv(cmd)).await? {
            Answer::Kv(r) => Ok(r),
            _ => Err(EtcdError::Internal("unexpected answer to a command".into())),
        }
    }

    /// Raises or clears an alarm through the log; answers the alarms changed.
    pub async fn change_alarm(
        &self,
        cmd: mvcc::ClusterCommand,
    ) -> Result<Vec<mvcc::Alarm>, EtcdError> {
        match self.propose_payload(Payload::Cluster(cmd)).await? {
            Answer::Alarms(a) => Ok(a),
            _ => Err(EtcdError::Internal(
                "unexpected answer to an alarm change".into(),
            )),
        }
    }

    /// Changes the auth state through the log; answers `Authenticate`'s token.
    pub async fn change_auth(
        &self,
        command: mvcc::AuthCommand,
        token_prefix: Option<String>,
    ) -> Result<Option<String>, EtcdError> {
        match self
            .propose_payload(Payload::Auth {
                command,
                token_prefix,
            })
            .await?
        {
            Answer::Auth(token) => Ok(token),
            _ => Err(EtcdError::Internal(
                "unexpected answer to an auth change".into(),
            )),
        }
    }

    /// Proposes a raft membership change carrying the resulting member set; waits until it
    /// is applied. A change already in progress refuses it (etcd's answer: a timeout).
    pub async fn change_membership(
        &self,
        change_type: ConfChangeType,
        node_id: u64,
        set: mvcc::MemberSet,
    ) -> Result<(), EtcdError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let context = Envelope {
            origin: self.local_id,
            id,
            payload: Payload::Members(set),
        }
        .encode()?;
        let cc = ConfChange {
            change_type,
            node_id,
            context,
        };
        self.wait_answer(id, Input::ConfChange { id, cc })
            .await
            .map(|_| ())
    }

    /// Replicates a member set that changes no vote (a member's new peer URLs).
    pub async fn update_members(&self, set: mvcc::MemberSet) -> Result<(), EtcdError> {
        self.propose_payload(Payload::Members(set))
            .await
            .map(|_| ())
    }

    /// On the leader: every member's match index and the leader's own last index.
    pub async fn progress(&self) -> Result<Option<driver::LeaderProgress>, EtcdError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inputs
            .send(Input::Progress(tx))
            .map_err(|_| self.stopped())?;
        rx.await.map_err(|_| self.stopped())
    }

    /// Hands leadership to `to` and waits until it leads, or the transfer times out.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), EtcdError> {
        if !self.shared.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        self.inputs
            .send(Input::TransferLeader(to))
            .map_err(|_| self.stopped())?;
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        while tokio::time::Instant::now() < deadline {
            if self.shared.leader() == Some(to) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(EtcdError::LeaderTransferTimeout)
    }

    /// Why this member stopped applying the log, if it has.
    pub fn halted(&self) -> Option<String> {
        self.shared.halted()
    }

    /// Replicates this member's name and client URLs so every member can list them.
    pub async fn publish(&self, attrs: MemberAttributes) -> Result<(), EtcdError> {
        self.propose_payload(Payload::Publish(attrs))
            .await
            .map(|_| ())
    }

    /// Waits until this member has applied everything committed before the call: a read
    /// served after it is linearizable.
    pub async fn read_barrier(&self) -> Result<(), EtcdError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(reason) = self.shared.halted() {
            return Err(EtcdError::Halted(reason));
        }
        self.inputs
            .send(Input::Read(tx))
            .map_err(|_| self.stopped())?;
        let index = match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(self.stopped()),
            Err(_) => {
                return Err(if self.shared.leader().is_none() {
                    EtcdError::NoLeader
                } else {
                    EtcdError::Timeout
                })
            }
        };
        self.shared.wait_applied(index, self.request_timeout).await
    }

    /// The error for a raft loop that is gone: it halts, saying why.
    fn stopped(&self) -> EtcdError {
        self.shared
            .halted()
            .map(EtcdError::Halted)
            .unwrap_or(EtcdError::Stopped)
    }

    pub fn leader(&self) -> Option<u64> {
        self.shared.leader()
    }

    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// The term this member leads in, if it is the leader.
    pub fn leader_term(&self) -> Option<u64> {
        self.shared.is_leader().then(|| self.shared.term())
    }

    /// How long a proposal may take before its caller gets `request timed out`.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub fn term(&self) -> u64 {
        self.shared.term()
    }

    pub fn committed_index(&self) -> u64 {
        self.shared.committed()
    }

    /// Waits until the store holds every entry this member has answered for, so that a
    /// serializable read sees this member's own acknowledged writes.
    pub async fn local_barrier(&self) -> Result<(), EtcdError> {
        self.shared
            .wait_applied(self.shared.answered(), self.request_timeout)
            .await
    }

    /// Waits (up to the request timeout) until this member has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), EtcdError> {
        self.shared.wait_applied(index, self.request_timeout).await
    }

    pub fn applied_index(&self) -> u64 {
        self.shared.applied()
    }

    pub fn peer_stats(&self) -> Vec<transport::PeerStats> {
        self.transport.stats()
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}
