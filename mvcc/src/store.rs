//! [`Store`]: opening the LMDB environment, applying command batches, serving reads.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use heed::{CompactionOption, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use crate::cluster_state::{self, Alarm, ClusterCommand, MemberInfo, MemberSet};
use crate::codec::{self, HistoryRecord, Revision};
use crate::error::{Error, Result};
use crate::index::KeyIndex;
use crate::lease::Lease;
use crate::read::{self, ReadView};
use crate::tables::{KeySpan, Tables};
use crate::types::{
    Applied, Command, CommandResponse, Event, EventKind, KeyValue, Outcome, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::write::{self, Change, Counters};

/// Options for [`Store::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// LMDB map size in bytes: the most the database file may grow to. It is virtual address
    /// space, not memory; must be a multiple of the OS page size.
    pub map_size: usize,
    /// Maximum number of concurrent read transactions.
    pub max_readers: u32,
    /// History rows a pending compaction drops after each applied batch (at least 1).
    pub compaction_rows_per_batch: usize,
    /// What a committed write transaction promises about the disk.
    pub durability: Durability,
    /// Whether [`Store::apply`] reports each command's changes as [`Event`]s. Building them
    /// copies every written value and the previous pair; a caller without watchers can skip
    /// it and read changes later with [`Store::events`].
    pub apply_events: bool,
}

/// How much of each commit is on disk when the commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is on disk when it returns (two fsyncs: data pages, then the meta page).
    #[default]
    Full,
    /// One fsync per commit (LMDB's `NOMETASYNC`): data pages are flushed before the meta page
    /// that points to them is written, so a machine crash leaves a consistent store that may
    /// lack the last commit. Suits a store whose commands can be replayed from a log, as
    /// [`Store::apply`] records the applied index with the data.
    Ordered,
    /// No fsync at commit (LMDB's `NOSYNC`): only a process crash is survived. A machine crash
    /// can lose or corrupt anything written since the last [`Store::sync`]. For tests and
    /// benchmarks.
    None,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            map_size: 8 << 30,
            max_readers: 1024,
            compaction_rows_per_batch: 16 * 1024,
            durability: Durability::Full,
            apply_events: true,
        }
    }
}

/// Name of the LMDB table of alarms and published members.
const CLUSTER_TABLE: &str = "cluster";

/// Most history rows [`Store::events`] examines in one call (it stops only between main
/// revisions, so it may go slightly past this).
const EVENTS_SCAN_BUDGET: usize = 65_536;

/// What reads see: the key index as of `revision`, published once the batch that reached
/// `revision` has committed.
pub(crate) struct Published {
    pub(crate) index: KeyIndex,
    revision: i64,
    compacted: i64,
}

impl Published {
    pub(crate) fn view(&self) -> ReadView {
        ReadView {
            current: self.revision,
            compacted: self.compacted,
        }
    }
}

/// An etcd-v3 revisioned key-value store in one LMDB environment (a directory).
///
/// All methods take `&self`: reads run on their own LMDB read transactions and never block
/// the writer; [`Store::apply`] calls are serialised.
pub struct Store {
    /// The LMDB environment; replaced (under the write lock) when a defragmentation swaps in
    /// a compacted copy. Readers hold the one they started on until they finish.
    backend: RwLock<Arc<Backend>>,
    /// The store's directory (a defragmented environment was opened elsewhere, then moved).
    dir: PathBuf,
    /// Tells apart the directories of defragmentations.
    pub(crate) defrags: AtomicU64,
    /// Held by a defragmentation: one at a time.
    pub(crate) defrag_lock: Mutex<()>,
    /// Snapshots installed: a defragmentation that saw one install meanwhile starts over.
    pub(crate) installs: AtomicU64,
    pub(crate) options: StoreOptions,
    pub(crate) write_lock: Mutex<()>,
    published: RwLock<Arc<Published>>,
    pub(crate) compaction_rows: usize,
    apply_events: bool,
    pub(crate) revision: AtomicI64,
    pub(crate) compacted: AtomicI64,
    pub(crate) applied: AtomicU64,
}

/// An LMDB environment and the handles of its tables, which belong to it alone.
pub(crate) struct Backend {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) t: Tables,
    /// Alarms, members and the auth state (see `cluster_state`, `auth_state`).
    pub(crate) cluster: crate::tables::Table,
}

/// A read transaction and the backend it reads, kept alive by it.
pub(crate) struct Reader {
    txn: RoTxn<'static, WithoutTls>,
    pub(crate) b: Arc<Backend>,
}

impl std::ops::Deref for Reader {
    type Target = RoTxn<'static, WithoutTls>;

    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

impl Backend {
    /// Opens the environment in `dir` (a directory) and its tables, creating what is missing.
    pub(crate) fn open(dir: &Path, options: &StoreOptions) -> Result<Backend> {
        // SAFETY: LMDB requires that the file is not modified by other means while mapped and
        // that an environment is opened once per process; heed rejects a second open of the
        // same path, and this crate never writes the file except through LMDB.
        let env = unsafe {
            let mut opts = EnvOpenOptions::new().read_txn_without_tls();
            opts.map_size(options.map_size)
                .max_readers(options.max_readers)
                .max_dbs(8);
            match options.durability {
                Durability::Full => {}
                Durability::Ordered => {
                    opts.flags(heed::EnvFlags::NO_META_SYNC);
                }
                Durability::None => {
                    opts.flags(heed::EnvFlags::NO_SYNC);
                }
            }
            opts.open(dir)?
        };
        let mut wtxn = env.write_txn()?;
        let t = Tables {
            meta: env.create_database(&mut wtxn, Some("meta"))?,
            history: env.create_database(&mut wtxn, Some("history"))?,
            leases: env.create_database(&mut wtxn, Some("leases"))?,
            lease_grants: env.create_database(&mut wtxn, Some("lease_grants"))?,
        };
        let cluster = env.create_database(&mut wtxn, Some(CLUSTER_TABLE))?;
        wtxn.commit()?;
        Ok(Backend { env, t, cluster })
    }
}

/// A write transaction on `b`'s environment that is not tied to a borrow of `b`.
///
/// The caller keeps a clone of `b` beside the transaction, dropped after it.
pub(crate) fn static_write_txn(b: &Arc<Backend>) -> Result<RwTxn<'static>> {
    let txn = b.env.write_txn()?;
    // SAFETY: the transaction borrows `b.env`, which lives in the `Arc`'s heap allocation and
    // never moves; every caller keeps a clone of that `Arc` alive until the transaction is
    // committed or dropped.
    Ok(unsafe { std::mem::transmute::<RwTxn<'_>, RwTxn<'static>>(txn) })
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.dir)
            .field("revision", &self.current_revision())
            .field("compacted", &self.compacted_revision())
            .field("applied_index", &self.applied_index())
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `dir`, and builds the in-memory key
    /// index by reading the history table once: the cost grows with the history kept.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir)?;
        crate::defrag::remove_leftovers(dir);
        let b = Arc::new(Backend::open(dir, &options)?);
        let t = b.t;
        let env = &b.env;
        let mut wtxn = env.write_txn()?;
        match t.meta.get(&wtxn, codec::META_FORMAT)? {
            None => {
                let c = Counters {
                    revision: 1,
                    compacted: 0,
                    next_key_id: 1,
                    compact_cursor: Revision::default(),
                    compact_target: 0,
                };
                c.save(&t, &mut wtxn)?;
                t.meta
                    .put(&mut wtxn, codec::META_APPLIED, &0u64.to_be_bytes())?;
                t.meta.put(
                    &mut wtxn,
                    codec::META_FORMAT,
                    &codec::FORMAT_VERSION.to_be_bytes(),
                )?;
            }
            Some(v) => match codec::be_u64(v)? {
                codec::FORMAT_VERSION => {}
                codec::FORMAT_WITH_KEYS_TABLE => upgrade_from_keys_table(env, &t, &mut wtxn)?,
                format => return Err(Error::Corrupt(format!("unknown store format {format}"))),
            },
        }
        let c = Counters::load(&t, &wtxn)?;
        let applied = t.meta_u64(&wtxn, codec::META_APPLIED)?;
        let index = KeyIndex::rebuild(&t, &wtxn)?;
        wtxn.commit()?;
        Ok(Store {
            backend: RwLock::new(b.clone()),
            dir: dir.to_path_buf(),
            defrags: AtomicU64::new(0),
            defrag_lock: Mutex::new(()),
            installs: AtomicU64::new(0),
            options: options.clone(),
            write_lock: Mutex::new(()),
            published: RwLock::new(Arc::new(Published {
                index,
                revision: c.revision,
                compacted: c.compacted,
            })),
            compaction_rows: options.compaction_rows_per_batch.max(1),
            apply_events: options.apply_events,
            revision: AtomicI64::new(c.revision),
            compacted: AtomicI64::new(c.compacted),
            applied: AtomicU64::new(applied),
        })
    }

    /// Applies an ordered batch of `(raft log index, command)` in one durable LMDB write
    /// transaction, together with the new applied index.
    ///
    /// Commands whose index is at or below the stored applied index are [`Outcome::Skipped`],
    /// so replaying a batch changes nothing. A command that fails deterministically (for
    /// example [`Error::Compacted`]) is reported as [`Outcome::Failed`], changes nothing and
    /// does not stop the batch. Only storage failures fail the call, and then nothing of the
    /// batch is kept. The result has one entry per command, in order.
    pub fn apply(&self, batch: &[(u64, Command)]) -> Result<Vec<Applied>> {
        let mut out = Vec::new();
        self.apply_then(batch, |applied| out = applied)?;
        Ok(out)
    }

    /// Like [`Store::apply`], but hands the outcomes to `before_commit` as soon as the
    /// commands have run, before the transaction commits (and, depending on
    /// [`StoreOptions::durability`], waits for the disk).
    ///
    /// Readers do not see the batch until the commit. For a store fed from a replicated log
    /// this lets a member answer its callers without the commit's fsync in their latency: the
    /// outcomes are final, since a commit that fails leaves the applied index behind and the
    /// same commands, applied again from the log, give the same outcomes.
    pub fn apply_then(
        &self,
        batch: &[(u64, Command)],
        before_commit: impl FnOnce(Vec<Applied>),
    ) -> Result<()> {
        let mut writer = self.writer();
        writer.apply_then(batch, before_commit)?;
        writer.commit()
    }

    /// Whether a compaction still has history rows to drop (invisible to reads; only the
    /// file's free space depends on it).
    pub fn compaction_pending(&self) -> Result<bool> {
        let txn = self.read_txn()?;
        Ok(Counters::load(&txn.b.t, &txn)?.compaction_pending())
    }

    /// Continues a pending compaction by up to about `max_rows` history rows in one durable
    /// write transaction, outside the raft log (the work does not change what reads see).
    /// Returns whether compaction is complete. [`Store::apply`] does this too, a bounded
    /// amount per batch; call this when the store is otherwise idle.
    pub fn run_compaction(&self, max_rows: usize) -> Result<bool> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let b = self.backend();
        let mut wtxn = b.env.write_txn()?;
        let mut c = Counters::load(&b.t, &wtxn)?;
        if !c.compaction_pending() {
            return Ok(true);
        }
        let mut index = self.published().index.clone();
        let done = write::compact_step(&b.t, &mut wtxn, &mut index, &mut c, max_rows)?;
        c.save(&b.t, &mut wtxn)?;
        wtxn.commit()?;
        self.publish(index, &c);
        Ok(done)
    }

    pub(crate) fn published(&self) -> Arc<Published> {
        Arc::clone(&self.published.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn publish(&self, index: KeyIndex, c: &Counters) {
        let next = Arc::new(Published {
            index,
            revision: c.revision,
            compacted: c.compacted,
        });
        *self.published.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    pub(crate) fn run(
        &self,
        t: &Tables,
        wtxn: &mut RwTxn,
        index: &mut KeyIndex,
        c: &mut Counters,
        cmd: &Command,
    ) -> Result<Outcome> {
        let mut ch = Change::new(t, index, c, self.apply_events);
        let result = match cmd {
            Command::Put(r) => ch.put(wtxn, r).map(CommandResponse::Put),
            Command::DeleteRange(r) => ch.delete_range(wtxn, r).map(CommandResponse::DeleteRange),
            Command::Txn(r) => ch.txn(wtxn, r).map(CommandResponse::Txn),
            Command::Compact(r) => ch.compact(r).map(CommandResponse::Compact),
            Command::DeleteKeys(keys) => {
                ch.delete_keys(wtxn, keys).map(CommandResponse::DeleteRange)
            }
            Command::RevokeLease(lease) => ch
                .lease_revoke(wtxn, *lease)
                .map(CommandResponse::DeleteRange),
            Command::LeaseGrant(r) => ch.lease_grant(wtxn, r).map(CommandResponse::LeaseGrant),
            Command::ExpireLeases(ids) => ch
                .expire_leases(wtxn, ids)
                .map(CommandResponse::LeasesExpired),
        };
        match result {
            Ok(response) => Ok(Outcome::Done {
                response,
                events: ch.finish(),
            }),
            Err(e) if e.is_deterministic() => {
                if ch.changed() {
                    // Every request is validated before its first write; reaching this is a
                    // bug, and failing the whole batch keeps the partial write out.
                    return Err(Error::Corrupt(format!("command failed after writing: {e}")));
                }
                Ok(Outcome::Failed(e))
            }
            Err(e) => Err(e),
        }
    }

    /// The current backend.
    pub(crate) fn backend(&self) -> Arc<Backend> {
        Arc::clone(&self.backend.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes `b` the backend; the caller holds the write lock.
    pub(crate) fn swap_backend(&self, b: Backend) -> Arc<Backend> {
        let mut current = self.backend.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *current, Arc::new(b))
    }

    pub(crate) fn read_txn(&self) -> Result<Reader> {
        let b = self.backend();
        let txn = b.env.clone().static_read_txn()?;
        Ok(Reader { txn, b })
    }

    fn view(&self, txn: &Reader) -> Result<ReadView> {
        Ok(Counters::load(&txn.b.t, txn)?.view())
    }

    /// The published index and a read transaction that holds every history row it refers to.
    ///
    /// The transaction may already see a batch that is committed but not yet published. Its
    /// rows are ignored (reads go by the index, at the published revision), but a compaction
    /// in it may have dropped rows the published index still needs: then wait for the
    /// publication, which follows the commit at once.
    pub(crate) fn reader(&self) -> Result<(Arc<Published>, Reader)> {
        loop {
            let published = self.published();
            let txn = self.read_txn()?;
            if txn.b.t.meta_i64(&txn, codec::META_COMPACTED)? == published.compacted {
                return Ok((published, txn));
            }
            drop(txn);
            std::thread::yield_now();
        }
    }

    /// Reads a key or key range (see [`RangeRequest`]) on a read transaction.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let (p, txn) = self.reader()?;
        let view = p.view();
        read::range(&txn.b.t, &txn, &p.index, req, view, view)
    }

    /// Evaluates a transaction whose every branch only reads, without going through the log.
    /// Fails with [`Error::NotReadOnly`] if any branch (taken or not) writes.
    pub fn txn_read_only(&self, req: &TxnRequest) -> Result<TxnResponse> {
        if !is_read_only(req) {
            return Err(Error::NotReadOnly);
        }
        let (p, txn) = self.reader()?;
        let view = p.view();
        let mut path = Vec::new();
        write::txn_path(&txn.b.t, &txn, &p.index, req, view.current, &mut path)?;
        let mut path = path.into_iter();
        let mut resp = self.read_txn_branch(&txn, &p.index, req, view, &mut path)?;
        resp.header = ResponseHeader {
            revision: view.current,
        };
        Ok(resp)
    }

    fn read_txn_branch(
        &self,
        txn: &Reader,
        index: &KeyIndex,
        req: &TxnRequest,
        view: ReadView,
        path: &mut impl Iterator<Item = bool>,
    ) -> Result<TxnResponse> {
        let succeeded = path
            .next()
            .ok_or_else(|| codec::corrupt("txn path exhausted"))?;
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => {
                    ResponseOp::Range(read::range(&txn.b.t, txn, index, r, view, view)?)
                }
                RequestOp::Txn(n) => {
                    ResponseOp::Txn(self.read_txn_branch(txn, index, n, view, path)?)
                }
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => return Err(Error::NotReadOnly),
            });
        }
        Ok(TxnResponse {
            header: ResponseHeader::default(),
            succeeded,
            responses,
        })
    }

    /// Changes of keys in `key`/`range_end` (same rules as [`RangeRequest`]) from main
    /// revision `from_rev` on, in revision order, for watchers.
    ///
    /// `from_rev` of 0 or less means 1 (all retained history).
    /// Returns the events and the revision to continue from. It stops only between main
    /// revisions: once at least `limit` events (0 = no limit) were found, or after examining
    /// a bounded number of history rows; call again from the returned revision until it is
    /// past [`Store::current_revision`]. Fails with [`Error::Compacted`] when `from_rev` is
    /// below the compaction revision. `prev_kv` is set when the previous state is still in
    /// history.
    pub fn events(
        &self,
        from_rev: i64,
        key: &[u8],
        range_end: &[u8],
        limit: usize,
    ) -> Result<(Vec<Event>, i64)> {
        let txn = self.read_txn()?;
        let view = self.view(&txn)?;
        let from_rev = from_rev.max(1);
        if from_rev < view.compacted {
            return Err(Error::Compacted);
        }
        let from = Revision::new(from_rev, 0).to_bytes();
        let span = KeySpan::new(key, range_end);
        let mut events = Vec::new();
        let mut current_main = 0i64;
        let bounds = (
            std::ops::Bound::Included(&from[..]),
            std::ops::Bound::Unbounded,
        );
        for (scanned, item) in txn.b.t.history.range(&txn, &bounds)?.enumerate() {
            let (k, v) = item?;
            let rev = Revision::from_bytes(k)?;
            if rev.main != current_main {
                let full = limit > 0 && events.len() >= limit;
                if full || scanned >= EVENTS_SCAN_BUDGET {
                    return Ok((events, rev.main));
                }
                current_main = rev.main;
            }
            let rec = HistoryRecord::decode(v)?;
            if !span.contains(rec.key) {
                continue;
            }
            events.push(self.event_of(&txn, rev, &rec, true)?);
        }
        Ok((events, view.current + 1))
    }

    /// The event of one history row; its `prev_kv` is read only when `with_prev`.
    pub(crate) fn event_of(
        &self,
        txn: &Reader,
        rev: Revision,
        rec: &HistoryRecord,
        with_prev: bool,
    ) -> Result<Event> {
        let prev_kv = if with_prev && rec.prev.main > 0 {
            match txn.b.t.history.get(txn, &rec.prev.to_bytes())? {
                Some(b) => {
                    let p = HistoryRecord::decode(b)?;
                    (!p.tombstone).then(|| kv_of(rec.prev, &p))
                }
                None => None,
            }
        } else {
            None
        };
        Ok(if rec.tombstone {
            Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: rec.key.to_vec(),
                    mod_revision: rev.main,
                    ..Default::default()
                },
                prev_kv,
            }
        } else {
            Event {
                kind: EventKind::Put,
                kv: kv_of(rev, rec),
                prev_kv,
            }
        })
    }

    /// Every raised alarm (committed), by kind then member.
    pub fn alarms(&self) -> Result<Vec<Alarm>> {
        let txn = self.read_txn()?;
        cluster_state::alarms(&txn.b.cluster, &txn)
    }

    /// The committed auth state (users, roles, whether auth is enabled).
    pub fn auth_state(&self) -> Result<crate::AuthState> {
        let txn = self.read_txn()?;
        crate::auth_state::load(&txn.b.cluster, &txn)
    }

    /// Every member's published attributes (committed), by member id.
    pub fn members(&self) -> Result<Vec<MemberInfo>> {
        let txn = self.read_txn()?;
        cluster_state::members(&txn.b.cluster, &txn)
    }

    /// The member set of the last membership change applied, if any (committed).
    pub fn member_set(&self) -> Result<Option<cluster_state::MemberSet>> {
        let txn = self.read_txn()?;
        cluster_state::member_set(&txn.b.cluster, &txn)
    }

    /// Keys whose current state carries `lease` (for the lessor; no full scan needed).
    pub fn leased_keys(&self, lease: i64) -> Result<Vec<Vec<u8>>> {
        let txn = self.read_txn()?;
        txn.b.t.leased_keys(&txn, lease)
    }

    /// The lease `id` as last committed, if it exists.
    pub fn lease(&self, id: i64) -> Result<Option<Lease>> {
        let txn = self.read_txn()?;
        Ok(txn.b.t.lease_ttl(&txn, id)?.map(|ttl| Lease { id, ttl }))
    }

    /// Every lease as last committed.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        let txn = self.read_txn()?;
        txn.b.t.all_leases(&txn)
    }

    /// Keys in the index: every key with history, deleted ones included until a compaction
    /// forgets them (etcd's `keys_total`).
    pub fn keys_total(&self) -> usize {
        self.published().index.len()
    }

    /// Current main revision (1 for an empty store).
    pub fn current_revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Revision of the last compaction (0 when never compacted).
    pub fn compacted_revision(&self) -> i64 {
        self.compacted.load(Ordering::Acquire)
    }

    /// Raft log index of the last applied command (0 when none).
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Size of the database file in bytes.
    pub fn db_size_bytes(&self) -> Result<u64> {
        Ok(self.backend().env.real_disk_size()?)
    }

    /// Bytes of the database file in use (file size minus free pages).
    pub fn db_size_in_use_bytes(&self) -> Result<u64> {
        Ok(self.backend().env.non_free_pages_size()?)
    }

    /// Directory of the environment.
    pub fn path(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Flushes every committed transaction to disk, whatever [`StoreOptions::durability`] says.
    pub fn sync(&self) -> Result<()> {
        self.backend().env.force_sync()?;
        Ok(())
    }

    /// Writes a compacted copy of the whole database (free pages dropped) to the new file
    /// `file`, consistent at one point in time; writers are not blocked. This is the raft
    /// snapshot and `Maintenance.Snapshot`'s file. It is not synced: both stream it and
    /// delete it, and syncing a 1 GiB copy cost more than taking it; a caller that keeps the
    /// file syncs it.
    pub fn snapshot_to(&self, file: impl AsRef<Path>) -> Result<()> {
        self.backend()
            .env
            .copy_to_path(file.as_ref(), CompactionOption::Enabled)?;
        Ok(())
    }

    /// Replaces this open store's contents with the snapshot file `file` (made by
    /// [`Store::snapshot_to`], typically on another member), in one durable write transaction.
    ///
    /// Unlike [`Store::restore`] the store stays open, so handles shared with readers stay
    /// valid: readers see the old contents until the transaction commits, then the new ones.
    pub fn replace_with_snapshot(&self, file: impl AsRef<Path>) -> Result<()> {
        let file = file.as_ref();
        let size = fs::metadata(file)?.len() as usize;
        let page = 4096;
        let map_size = (size + 2 * page).div_ceil(page) * page;
        // SAFETY: the snapshot file is private to this call: nothing else maps or writes it
        // while it is open, and it is opened once.
        let snap = unsafe {
            let mut opts = EnvOpenOptions::new().read_txn_without_tls();
            opts.map_size(map_size).max_dbs(8);
            opts.flags(heed::EnvFlags::NO_SUB_DIR);
            opts.open(file)?
        };
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.installs.fetch_add(1, Ordering::SeqCst);
        let b = self.backend();
        let rtxn = snap.read_txn()?;
        let mut wtxn = b.env.write_txn()?;
        let tables = [
            ("meta", b.t.meta),
            ("history", b.t.history),
            ("leases", b.t.leases),
            ("lease_grants", b.t.lease_grants),
        ];
        for (name, dst) in tables {
            let src: Option<crate::tables::Table> = snap.open_database(&rtxn, Some(name))?;
            let src = src.ok_or_else(|| {
                Error::Corrupt(format!("snapshot {} has no {name} table", file.display()))
            })?;
            dst.clear(&mut wtxn)?;
            for row in src.iter(&rtxn)? {
                let (k, v) = row?;
                dst.put(&mut wtxn, k, v)?;
            }
        }
        // A snapshot from a member that predates the table has no cluster state to carry.
        let src: Option<crate::tables::Table> = snap.open_database(&rtxn, Some(CLUSTER_TABLE))?;
        b.cluster.clear(&mut wtxn)?;
        if let Some(src) = src {
            for row in src.iter(&rtxn)? {
                let (k, v) = row?;
                b.cluster.put(&mut wtxn, k, v)?;
            }
        }
        let format = b.t.meta_u64(&wtxn, codec::META_FORMAT)?;
        if format != codec::FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "snapshot {} has store format {format}, this member reads {}",
                file.display(),
                codec::FORMAT_VERSION
            )));
        }
        let c = Counters::load(&b.t, &wtxn)?;
        let applied = b.t.meta_u64(&wtxn, codec::META_APPLIED)?;
        let index = KeyIndex::rebuild(&b.t, &wtxn)?;
        wtxn.commit()?;
        self.publish(index, &c);
        // Whatever the durability setting: the caller's log forgets what came before this.
        b.env.force_sync()?;
        self.revision.store(c.revision, Ordering::SeqCst);
        self.compacted.store(c.compacted, Ordering::SeqCst);
        self.applied.store(applied, Ordering::SeqCst);
        drop(rtxn);
        drop(snap);
        let _ = fs::remove_file(file.with_extension("mdb-lock"));
        let lock = format!("{}-lock", file.display());
        let _ = fs::remove_file(lock);
        Ok(())
    }

    /// Makes the store in `dir` (a snapshot's database, copied there) the start of a new
    /// cluster of `members`, as `snapshot restore` does: keys, revisions, leases and alarms
    /// stay; the applied raft index goes back to 0, since the new cluster's log starts empty
    /// (entries at or below the applied index would be taken for ones already applied); the
    /// old cluster's members are forgotten and `members` becomes the member set (the new
    /// members publish their names and client URLs themselves).
    pub fn reset_for_new_cluster(dir: impl AsRef<Path>, members: &MemberSet) -> Result<()> {
        let dir = dir.as_ref();
        let size = fs::metadata(dir.join("data.mdb"))?.len() as usize;
        let options = StoreOptions {
            map_size: (size + (64 << 20)).div_ceil(4096) * 4096,
            apply_events: false,
            ..StoreOptions::default()
        };
        let store = Store::open(dir, options)?;
        let b = store.backend();
        let mut wtxn = b.env.write_txn()?;
        b.t.meta
            .put(&mut wtxn, codec::META_APPLIED, &0u64.to_be_bytes())?;
        cluster_state::forget_members(&b.cluster, &mut wtxn)?;
        cluster_state::apply(
            &b.cluster,
            &mut wtxn,
            &ClusterCommand::SetMembers(members.clone()),
        )?;
        wtxn.commit()?;
        b.env.force_sync()?;
        Ok(())
    }

    /// Replaces the store in directory `dir` with the snapshot file `from_file` (made by
    /// [`Store::snapshot_to`]) and opens it. No store may be open on `dir`.
    pub fn restore(
        dir: impl AsRef<Path>,
        from_file: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Store> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir)?;
        let tmp = dir.join("data.mdb.restore");
        fs::copy(from_file.as_ref(), &tmp)?;
        fs::File::open(&tmp)?.sync_all()?;
        let _ = fs::remove_file(dir.join("lock.mdb"));
        fs::rename(&tmp, dir.join("data.mdb"))?;
        fs::File::open(dir)?.sync_all()?;
        Store::open(dir, options)
    }
}

/// Upgrades a format-2 store in place: its `keys` table is emptied (the index now lives in
/// memory) and its `leases` rows are re-keyed by key id.
fn upgrade_from_keys_table(env: &Env<WithoutTls>, t: &Tables, wtxn: &mut RwTxn) -> Result<()> {
    let keys: Option<crate::tables::Table> = env.open_database(wtxn, Some("keys"))?;
    if let Some(keys) = keys {
        keys.clear(wtxn)?;
    }
    let index = KeyIndex::rebuild(t, wtxn)?;
    t.leases.clear(wtxn)?;
    let mut leased = Vec::new();
    index.scan(&KeySpan::Range(&[], None), |found| {
        if let Some(kv) = t.current_kv(wtxn, &found)? {
            if kv.lease != 0 {
                leased.push((codec::lease_key(kv.lease, found.entry.id()), kv.key));
            }
        }
        Ok(true)
    })?;
    for (k, key) in leased {
        t.leases.put(wtxn, &k, &key)?;
    }
    t.meta.put(
        wtxn,
        codec::META_FORMAT,
        &codec::FORMAT_VERSION.to_be_bytes(),
    )?;
    Ok(())
}

fn kv_of(rev: Revision, rec: &HistoryRecord) -> KeyValue {
    KeyValue {
        key: rec.key.to_vec(),
        create_revision: rec.create,
        mod_revision: rev.main,
        version: rec.version,
        value: rec.value.to_vec(),
        lease: rec.lease,
    }
}

/// True when no branch of the transaction (nested ones included) writes.
pub fn is_read_only(req: &TxnRequest) -> bool {
    req.success.iter().chain(&req.failure).all(|op| match op {
        RequestOp::Range(_) => true,
        RequestOp::Txn(n) => is_read_only(n),
        RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{CompactRequest, DeleteRangeRequest, PutRequest};

    /// A small store whose compaction walks one history row per step, so tests can stop it
    /// anywhere.
    fn one_row_compactions(dir: &Path) -> Store {
        let opts = StoreOptions {
            map_size: 16 << 20,
            compaction_rows_per_batch: 1,
            ..Default::default()
        };
        Store::open(dir, opts).unwrap()
    }

    fn put(k: &[u8]) -> Command {
        Command::Put(PutRequest {
            key: k.to_vec(),
            ..Default::default()
        })
    }

    fn compact(revision: i64) -> Command {
        Command::Compact(CompactRequest {
            revision,
            physical: false,
        })
    }

    fn rows(store: &Store) -> (u64, u64) {
        let txn = store.read_txn().unwrap();
        (
            store.published().index.len() as u64,
            txn.b.t.history.len(&txn).unwrap(),
        )
    }

    #[test]
    fn durability_chooses_the_lmdb_sync_flags_and_commits_survive_a_reopen() {
        let sync_flags = heed::EnvFlags::NO_SYNC | heed::EnvFlags::NO_META_SYNC;
        for (durability, expected) in [
            (Durability::Full, heed::EnvFlags::empty()),
            (Durability::Ordered, heed::EnvFlags::NO_META_SYNC),
            (Durability::None, heed::EnvFlags::NO_SYNC),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let opts = || StoreOptions {
                map_size: 16 << 20,
                durability,
                ..Default::default()
            };
            let store = Store::open(dir.path(), opts()).unwrap();
            let flags = store.backend().env.flags().unwrap().unwrap();
            assert_eq!(flags & sync_flags, expected, "{durability:?}");
            store.apply(&[(1, put(b"a")), (2, put(b"b"))]).unwrap();
            store.sync().unwrap();
            drop(store);
            let reopened = Store::open(dir.path(), opts()).unwrap();
            assert_eq!(reopened.applied_index(), 2, "{durability:?}");
            assert_eq!(reopened.current_revision(), 3, "{durability:?}");
        }
    }

    #[test]
    fn a_store_with_a_keys_table_is_upgraded_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Lay out a format-2 store by hand: key "a" with lease 7 at revision 2, "b" at 3.
            // SAFETY: a fresh directory, mapped once, closed before the store opens it.
            let env = unsafe {
                let mut opts = EnvOpenOptions::new().read_txn_without_tls();
                opts.map_size(16 << 20).max_dbs(8);
                opts.open(dir.path()).unwrap()
            };
            let mut wtxn = env.write_txn().unwrap();
            let db = |name, w: &mut RwTxn| -> crate::tables::Table {
                env.create_database(w, Some(name)).unwrap()
            };
            let (meta, keys, history, leases) = (
                db("meta", &mut wtxn),
                db("keys", &mut wtxn),
                db("history", &mut wtxn),
                db("leases", &mut wtxn),
            );
            let lease_grants = db("lease_grants", &mut wtxn);
            let t = Tables {
                meta,
                history,
                leases,
                lease_grants,
            };
            let c = Counters {
                revision: 3,
                compacted: 0,
                next_key_id: 3,
                compact_cursor: Revision::default(),
                compact_target: 0,
            };
            c.save(&t, &mut wtxn).unwrap();
            meta.put(&mut wtxn, codec::META_APPLIED, &2u64.to_be_bytes())
                .unwrap();
            meta.put(&mut wtxn, codec::META_FORMAT, &2u64.to_be_bytes())
                .unwrap();
            for (main, id, key, lease) in [(2, 1, &b"a"[..], 7), (3, 2, b"b", 0)] {
                let rec = HistoryRecord {
                    id,
                    tombstone: false,
                    create: main,
                    version: 1,
                    lease,
                    prev: Revision::default(),
                    key,
                    value: b"v",
                };
                history
                    .put(&mut wtxn, &Revision::new(main, 0).to_bytes(), &rec.encode())
                    .unwrap();
                keys.put(&mut wtxn, key, b"old index entry").unwrap();
            }
            leases.put(&mut wtxn, b"\0\0\0\0\0\0\0\x07a", b"a").unwrap();
            wtxn.commit().unwrap();
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let txn = store.read_txn().unwrap();
        assert_eq!(
            txn.b.t.meta_u64(&txn, codec::META_FORMAT).unwrap(),
            codec::FORMAT_VERSION
        );
        let keys: Option<crate::tables::Table> =
            txn.b.env.open_database(&txn, Some("keys")).unwrap();
        assert!(keys.unwrap().is_empty(&txn).unwrap());
        drop(txn);
        assert_eq!(store.leased_keys(7).unwrap(), vec![b"a".to_vec()]);
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        let got = store.range(&all).unwrap();
        assert_eq!(got.kvs.len(), 2);
        assert_eq!(got.kvs[0].lease, 7);
        assert_eq!(got.kvs[1].mod_revision, 3);
        assert_eq!(store.applied_index(), 2);
    }

    #[test]
    fn puts_continue_each_key_from_the_rebuilt_index_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let opts = || StoreOptions {
            map_size: 16 << 20,
            ..Default::default()
        };
        let del = |k: &[u8]| {
            Command::DeleteRange(DeleteRangeRequest {
                key: k.to_vec(),
                ..Default::default()
            })
        };
        let store = Store::open(dir.path(), opts()).unwrap();
        // a: created at 2, put again at 3; b: created at 4, deleted at 5.
        let batch = [
            (1, put(b"a")),
            (2, put(b"a")),
            (3, put(b"b")),
            (4, del(b"b")),
        ];
        store.apply(&batch).unwrap();
        drop(store);
        let store = Store::open(dir.path(), opts()).unwrap();
        store.apply(&[(5, put(b"a")), (6, put(b"b"))]).unwrap();
        let get = |k: &[u8]| {
            let got = store
                .range(&RangeRequest {
                    key: k.to_vec(),
                    ..Default::default()
                })
                .unwrap();
            let kv = &got.kvs[0];
            (kv.create_revision, kv.mod_revision, kv.version)
        };
        assert_eq!(get(b"a"), (2, 6, 3));
        assert_eq!(get(b"b"), (7, 7, 1), "a new generation after the deletion");
    }

    #[test]
    fn history_appends_fill_their_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let rows = 3000;
        let batch: Vec<_> = (0..rows)
            .map(|i| {
                let put = Command::Put(PutRequest {
                    key: format!("key{i:05}").into_bytes(),
                    value: vec![1; 1000],
                    ..Default::default()
                });
                (i + 1, put)
            })
            .collect();
        store.apply(&batch).unwrap();
        // Three rows of about 1.05 KB fit a 4 KiB page; pages split in half hold one or two.
        let per_row = store.db_size_in_use_bytes().unwrap() / rows;
        assert!(per_row < 1500, "{per_row} bytes per row");
    }

    #[test]
    fn without_apply_events_changes_are_still_in_history() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            map_size: 16 << 20,
            apply_events: false,
            ..Default::default()
        };
        let store = Store::open(dir.path(), opts).unwrap();
        let applied = store.apply(&[(1, put(b"a")), (2, put(b"a"))]).unwrap();
        for a in &applied {
            assert!(matches!(&a.outcome, Outcome::Done { events, .. } if events.is_empty()));
        }
        let (events, next) = store.events(1, b"a", b"", 0).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].prev_kv.as_ref().unwrap().mod_revision, 2);
        assert_eq!(next, 4);
    }

    #[test]
    fn compaction_drops_every_unneeded_row_even_when_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = one_row_compactions(dir.path());
        let del = Command::DeleteRange(DeleteRangeRequest {
            key: b"b".to_vec(),
            ..Default::default()
        });
        store
            .apply(&[
                (1, put(b"a")),
                (2, put(b"a")),
                (3, put(b"b")),
                (4, del),
                (5, compact(5)),
            ])
            .unwrap();
        assert!(store.compaction_pending().unwrap());
        store
            .apply(&[(6, put(b"a")), (7, put(b"c")), (8, compact(7))])
            .unwrap();
        while !store.run_compaction(1).unwrap() {}
        // Left: a@6 and c@7, nothing else.
        assert_eq!(rows(&store), (2, 2));
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: 7,
            ..Default::default()
        };
        assert_eq!(store.range(&all).unwrap().count, 2);
    }

    #[test]
    fn a_new_compaction_revisits_rows_kept_at_the_previous_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = one_row_compactions(dir.path());
        let del_all = Command::DeleteRange(DeleteRangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        });
        // Revision 4 deletes two keys: rows (4,0) and (4,1).
        store
            .apply(&[
                (1, put(b"a")),
                (2, put(b"b")),
                (3, del_all),
                (4, compact(4)),
            ])
            .unwrap();
        // Stop the walk between the two rows of revision 4.
        store.run_compaction(1).unwrap();
        store.run_compaction(1).unwrap();
        store.apply(&[(5, put(b"c")), (6, compact(5))]).unwrap();
        while !store.run_compaction(1).unwrap() {}
        assert_eq!(rows(&store), (1, 1));
    }
}
