//! The apply thread: committed entries, in log order, into the store.
//!
//! Consecutive batches that queued up while the store was busy are applied together, in one
//! LMDB transaction that also records the applied index; the member that proposed an entry
//! then answers its caller.

use crossbeam_channel::Receiver;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use raft_core::{Entry, EntryType};
use tracing::{error, info, warn};

use super::envelope::{Envelope, MemberAttributes, Payload};
use super::shared::Shared;
use super::waiters::{Answer, Waiters};
use crate::errors::EtcdError;
use crate::lease::Lessor;
use crate::membership::Membership;
use crate::metrics::Metrics;

pub enum ApplyItem {
    Entries(Vec<Entry>),
    /// Replace the store with a snapshot received from the leader, taken at or after `index`;
    /// `done` is told once the store holds it on disk.
    Restore {
        file: PathBuf,
        index: u64,
        done: crossbeam_channel::Sender<()>,
    },
}

pub struct Applier {
    pub store: Arc<mvcc::Store>,
    pub waiters: Arc<Waiters>,
    pub shared: Arc<Shared>,
    pub membership: Arc<RwLock<Membership>>,
    pub member_dir: PathBuf,
    pub local_id: u64,
    pub metrics: Arc<Metrics>,
    /// Told of every lease grant and revoke applied, and when this member's term starts.
    pub lessor: Arc<Lessor>,
}

/// How long the store's write transaction stays open for more batches when no read waits:
/// one commit (and fsync) then covers every batch that arrives meanwhile.
const COMMIT_LINGER: Duration = Duration::from_millis(5);

/// Commands one store transaction holds at most before it is committed.
const MAX_UNCOMMITTED: usize = 10_000;

impl Applier {
    pub fn run(self, rx: Receiver<ApplyItem>, read_waits: Receiver<()>) {
        let mut writer = self.store.writer();
        // The last entry applied but not yet committed, if any.
        let mut uncommitted = None;
        let mut next = None;
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => match writer.pending() {
                    None => match rx.recv() {
                        Ok(item) => item,
                        Err(_) => return,
                    },
                    Some((age, _)) => {
                        let left = COMMIT_LINGER.saturating_sub(age);
                        crossbeam_channel::select! {
                            recv(rx) -> item => match item {
                                Ok(item) => item,
                                Err(_) => {
                                    self.commit(&mut writer, &mut uncommitted);
                                    return;
                                }
                            },
                            recv(read_waits) -> _ => {
                                self.commit(&mut writer, &mut uncommitted);
                                continue;
                            }
                            default(left) => {
                                self.commit(&mut writer, &mut uncommitted);
                                continue;
                            }
                        }
                    }
                },
            };
            match item {
                ApplyItem::Entries(mut entries) => {
                    // Gather what else is already waiting, up to a restore.
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            ApplyItem::Entries(e) => entries.extend(e),
                            restore => {
                                next = Some(restore);
                                break;
                            }
                        }
                    }
                    let Some(last) = entries.last().map(|e| e.index) else {
                        continue;
                    };
                    self.apply_entries(&mut writer, entries);
                    match writer.pending() {
                        Some((_, commands)) => {
                            uncommitted = Some(last);
                            if commands >= MAX_UNCOMMITTED || self.shared.read_waiting() {
                                self.commit(&mut writer, &mut uncommitted);
                            }
                        }
                        None => self.shared.set_applied(last),
                    }
                }
                ApplyItem::Restore { file, index, done } => {
                    self.commit(&mut writer, &mut uncommitted);
                    self.restore(file, index);
                    let _ = done.send(());
                }
            }
        }
    }

    /// Commits the store's open transaction; entries up to `uncommitted` are then applied.
    fn commit(&self, writer: &mut mvcc::Writer, uncommitted: &mut Option<u64>) {
        if writer.pending().is_none() {
            return;
        }
        let started = Instant::now();
        let result = writer.commit();
        self.metrics.backend_commit.observe(started.elapsed());
        if let Err(e) = result {
            // The state machine cannot move past these entries; serving on would answer
            // from a store that silently lags the log.
            error!("committing applied entries failed: {e}; stopping this member");
            std::process::exit(1);
        }
        if let Some(last) = uncommitted.take() {
            self.shared.set_applied(last);
        }
    }

    fn apply_entries(&self, writer: &mut mvcc::Writer, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else {
            return;
        };
        let mut batch = Vec::with_capacity(entries.len());
        let mut callers = Vec::with_capacity(entries.len());
        for e in entries {
            // Empty entries are a new leader's no-op; membership changes are raft-core's own.
            if e.data.is_empty() || e.entry_type == EntryType::ConfChange {
                if e.data.is_empty() && self.shared.is_leader() && self.shared.term() == e.term {
                    // Every entry of earlier terms is applied: the lessor knows every lease
                    // and may start their clocks (etcd promotes its lessor here too).
                    self.lessor.promote(e.term);
                }
                continue;
            }
            match Envelope::decode(&e.data) {
                Ok(env) => match env.payload {
                    Payload::Kv(cmd) => {
                        batch.push((e.index, cmd));
                        callers.push((env.origin, env.id));
                    }
                    Payload::Publish(attrs) => {
                        self.publish(attrs);
                        if env.origin == self.local_id {
                            self.waiters.answer(env.id, Ok(Answer::Published));
                        }
                    }
                },
                Err(err) => error!(
                    index = e.index,
                    "skipping an entry that does not decode: {err}"
                ),
            }
        }
        if !batch.is_empty() {
            self.metrics.observe_batch(batch.len());
            let started = Instant::now();
            // Callers are answered before the commit: the outcomes are final (the log holds the
            // entries), and reads wait for the commit (see `Shared::answered`).
            let result = writer.apply_then(&batch, |applied| {
                self.shared.set_answered(last);
                for ((a, (origin, id)), (_, cmd)) in applied.into_iter().zip(callers).zip(&batch) {
                    let outcome = match a.outcome {
                        mvcc::Outcome::Done { response, .. } => {
                            self.tell_lessor(cmd);
                            self.metrics.proposal_applied();
                            Ok(Answer::Kv(response))
                        }
                        mvcc::Outcome::Failed(e) => {
                            self.metrics.proposal_failed();
                            Err(EtcdError::from(e))
                        }
                        // Replayed after a restart or a snapshot: its caller is long gone.
                        mvcc::Outcome::Skipped => continue,
                    };
                    if origin == self.local_id {
                        self.waiters.answer(id, outcome);
                    }
                }
            });
            self.metrics.apply_batch.observe(started.elapsed());
            if let Err(e) = result {
                // The state machine cannot move past this entry; serving on would answer
                // from a store that silently lags the log.
                error!("applying committed entries failed: {e}; stopping this member");
                std::process::exit(1);
            }
        }
    }

    fn tell_lessor(&self, cmd: &mvcc::Command) {
        match cmd {
            mvcc::Command::LeaseGrant(g) => self.lessor.granted(g.id, g.ttl),
            mvcc::Command::RevokeLease(id) => self.lessor.revoked(*id),
            // Leases of the list already gone were revoked before: gone either way.
            mvcc::Command::ExpireLeases(ids) => ids.iter().for_each(|id| self.lessor.revoked(*id)),
            _ => {}
        }
    }

    fn publish(&self, attrs: MemberAttributes) {
        let mut m = self.membership.write().unwrap_or_else(|p| p.into_inner());
        if let Some(member) = m.members.iter_mut().find(|x| x.id == attrs.id) {
            if member.name == attrs.name && member.client_urls == attrs.client_urls {
                return;
            }
            member.name = attrs.name;
            member.client_urls = attrs.client_urls;
            if let Err(e) = m.save(&self.member_dir) {
                warn!("cannot save the membership: {e}");
            }
        }
    }

    fn restore(&self, file: PathBuf, index: u64) {
        info!(index, file = %file.display(), "installing a snapshot from the leader");
        if let Err(e) = self.store.replace_with_snapshot(&file) {
            error!(
                "cannot install the snapshot {}: {e}; stopping this member",
                file.display()
            );
            std::process::exit(1);
        }
        let _ = std::fs::remove_file(&file);
        match self.store.leases() {
            Ok(leases) => self
                .lessor
                .reload(leases.into_iter().map(|l| (l.id, l.ttl))),
            Err(e) => {
                error!(
                    "cannot read the leases of the installed snapshot: {e}; stopping this member"
                );
                std::process::exit(1);
            }
        }
        self.shared
            .set_applied(index.max(self.store.applied_index()));
    }
}
