//! [`Writer`]: one LMDB write transaction kept open across several batches, so that a caller
//! fed from a replicated log pays one commit (and one fsync) for many small batches.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use heed::RwTxn;

use crate::auth_state::{self, AuthCommand, AuthOutcome};
use crate::cluster_state::{self, ClusterCommand, ClusterOutcome, Gate};
use crate::codec;
use crate::error::{Error, Result};
use crate::index::KeyIndex;
use crate::store::{static_write_txn, Backend, Store};
use crate::types::{Applied, Command, Outcome};
use crate::write::{self, Counters};

/// Applies batches into one write transaction until [`Writer::commit`].
///
/// Readers see nothing of the applied batches until the commit, and the commit is what makes
/// them durable: batches still open when the writer is dropped (or the process dies) are lost,
/// and must be applied again from the caller's log. While a transaction is open it holds the
/// store's write lock, so other writes ([`Store::apply`], [`Store::run_compaction`],
/// [`Store::replace_with_snapshot`]) wait for the commit: commit before calling them from the
/// thread that holds the writer.
pub struct Writer<'s> {
    store: &'s Store,
    open: Option<Open<'s>>,
}

/// The state of an open transaction.
struct Open<'s> {
    _lock: MutexGuard<'s, ()>,
    /// Borrows `b`'s environment: declared first, so dropped first.
    txn: RwTxn<'static>,
    b: Arc<Backend>,
    keys: KeyIndex,
    c: Counters,
    applied: u64,
    opened: Instant,
    commands: usize,
    /// What the alarms raised in this transaction's state refuse.
    gate: Gate,
}

impl<'s> Writer<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Writer { store, open: None }
    }

    /// Like [`Store::apply_then`], but into the open transaction (opened if needed), without
    /// committing it. `before_commit` gets the outcomes at once. After an error the open
    /// transaction may hold part of the batch: drop the writer, which discards it.
    pub fn apply_then(
        &mut self,
        batch: &[(u64, Command)],
        before_commit: impl FnOnce(Vec<Applied>),
    ) -> Result<()> {
        let store = self.store;
        let open = self.open()?;
        let mut out = Vec::with_capacity(batch.len());
        let mut ran = 0;
        for (index, cmd) in batch {
            if *index <= open.applied {
                out.push(Applied {
                    index: *index,
                    outcome: Outcome::Skipped,
                });
                continue;
            }
            let outcome = match open.gate.refusal(cmd) {
                Some(refused) => Outcome::Failed(refused),
                None => store.run(&open.b.t, &mut open.txn, &mut open.keys, &mut open.c, cmd)?,
            };
            open.applied = *index;
            ran += 1;
            out.push(Applied {
                index: *index,
                outcome,
            });
        }
        if ran > 0 && open.c.compaction_pending() {
            write::compact_step(
                &open.b.t,
                &mut open.txn,
                &mut open.keys,
                &mut open.c,
                store.compaction_rows,
            )?;
        }
        open.commands += ran;
        before_commit(out);
        Ok(())
    }

    /// Applies a change to the cluster state (alarms, members) at log index `index` into the
    /// open transaction (opened if needed), in order with the batches around it.
    pub fn apply_cluster(&mut self, index: u64, cmd: &ClusterCommand) -> Result<ClusterOutcome> {
        let open = self.open()?;
        if index <= open.applied {
            return Ok(ClusterOutcome::Skipped);
        }
        let outcome = cluster_state::apply(&open.b.cluster, &mut open.txn, cmd)?;
        open.gate = Gate::load(&open.b.cluster, &open.txn)?;
        open.applied = index;
        open.commands += 1;
        Ok(outcome)
    }

    /// Applies a change to the auth state at log index `index` into the open transaction
    /// (opened if needed), in order with the batches around it.
    pub fn apply_auth(&mut self, index: u64, cmd: &AuthCommand) -> Result<AuthOutcome> {
        let open = self.open()?;
        if index <= open.applied {
            return Ok(AuthOutcome::Skipped);
        }
        let outcome = auth_state::apply(&open.b.cluster, &mut open.txn, cmd)?;
        open.applied = index;
        open.commands += 1;
        Ok(outcome)
    }

    fn open(&mut self) -> Result<&mut Open<'s>> {
        let store = self.store;
        if self.open.is_none() {
            let lock = store.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            // The batches change a private copy of the index (an O(1) clone) that readers see
            // only once it is published after the commit.
            let keys = store.published().index.clone();
            // The backend cannot change while the write lock is held.
            let b = store.backend();
            let txn = static_write_txn(&b)?;
            let c = Counters::load(&b.t, &txn)?;
            let applied = b.t.meta_u64(&txn, codec::META_APPLIED)?;
            let gate = Gate::load(&b.cluster, &txn)?;
            self.open = Some(Open {
                _lock: lock,
                txn,
                b,
                keys,
                c,
                applied,
                opened: Instant::now(),
                commands: 0,
                gate,
            });
        }
        self.open
            .as_mut()
            .ok_or_else(|| Error::Storage("no open write transaction".into()))
    }

    /// How long the open transaction has been open and how many commands it holds, if one
    /// is open.
    pub fn pending(&self) -> Option<(Duration, usize)> {
        self.open.as_ref().map(|o| (o.opened.elapsed(), o.commands))
    }

    /// Commits the open transaction, if any, and publishes it to readers.
    pub fn commit(&mut self) -> Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        if open.commands == 0 {
            // Only replayed (skipped) commands: nothing to write.
            return Ok(());
        }
        let store = self.store;
        let t = &open.b.t;
        open.c.save(t, &mut open.txn)?;
        t.meta.put(
            &mut open.txn,
            codec::META_APPLIED,
            &open.applied.to_be_bytes(),
        )?;
        open.txn.commit()?;
        store.publish(open.keys, &open.c);
        store.revision.store(open.c.revision, Ordering::Release);
        store.compacted.store(open.c.compacted, Ordering::Release);
        store.applied.store(open.applied, Ordering::Release);
        Ok(())
    }
}

impl Store {
    /// A [`Writer`] on this store.
    pub fn writer(&self) -> Writer<'_> {
        Writer::new(self)
    }
}
