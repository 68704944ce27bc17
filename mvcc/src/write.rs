//! The write path: one [`Change`] per command turns requests into rows of the tables at one
//! new main revision.

use std::collections::HashMap;
use std::ops::Bound;

use heed::{RoTxn, RwTxn};

use crate::codec::{self, lease_key, HistoryRecord, Revision};
use crate::error::{Error, Result};
use crate::index::{FoundKey, IndexKey, KeyEntry, KeyIndex};
use crate::read::{self, ReadView};
use crate::tables::{KeySpan, Tables};
use crate::types::{
    CompactRequest, CompactResponse, DeleteRangeRequest, DeleteRangeResponse, Event, EventKind,
    KeyValue, PutRequest, PutResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};

/// Store-wide counters kept in the meta table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Current main revision (1 for an empty store).
    pub revision: i64,
    /// Last compaction revision (0 when never compacted).
    pub compacted: i64,
    /// Next key id to hand out.
    pub next_key_id: u64,
    /// Position in history of the compaction walk: rows before it are done.
    pub compact_cursor: Revision,
    /// Revision the compaction walk works towards (the last compaction revision).
    pub compact_target: i64,
}

impl Counters {
    pub fn load(t: &Tables, txn: &RoTxn) -> Result<Counters> {
        Ok(Counters {
            revision: t.meta_i64(txn, codec::META_REVISION)?,
            compacted: t.meta_i64(txn, codec::META_COMPACTED)?,
            next_key_id: t.meta_u64(txn, codec::META_NEXT_KEY_ID)?,
            compact_cursor: match t.meta.get(txn, codec::META_COMPACT_CURSOR)? {
                Some(b) => Revision::from_bytes(b)?,
                None => Revision::default(),
            },
            compact_target: t.meta_i64(txn, codec::META_COMPACT_TARGET)?,
        })
    }

    pub fn save(&self, t: &Tables, wtxn: &mut RwTxn) -> Result<()> {
        t.meta
            .put(wtxn, codec::META_REVISION, &self.revision.to_be_bytes())?;
        t.meta
            .put(wtxn, codec::META_COMPACTED, &self.compacted.to_be_bytes())?;
        t.meta.put(
            wtxn,
            codec::META_NEXT_KEY_ID,
            &self.next_key_id.to_be_bytes(),
        )?;
        t.meta.put(
            wtxn,
            codec::META_COMPACT_CURSOR,
            &self.compact_cursor.to_bytes(),
        )?;
        t.meta.put(
            wtxn,
            codec::META_COMPACT_TARGET,
            &self.compact_target.to_be_bytes(),
        )?;
        Ok(())
    }

    /// Whether the compaction walk has rows left before its target.
    pub fn compaction_pending(&self) -> bool {
        self.compact_cursor.main < self.compact_target
    }

    pub fn view(&self) -> ReadView {
        ReadView {
            current: self.revision,
            compacted: self.compacted,
        }
    }
}

/// The changes of one command: every write gets the next sub revision of `main`.
pub(crate) struct Change<'s> {
    t: &'s Tables,
    index: &'s mut KeyIndex,
    c: &'s mut Counters,
    begin: i64,
    main: i64,
    sub: i64,
    /// `None` when the store does not report events.
    events: Option<Vec<Event>>,
}

/// How many history rows compaction reads at a time before writing.
const COMPACT_CHUNK: usize = 1024;

impl<'s> Change<'s> {
    pub fn new(
        t: &'s Tables,
        index: &'s mut KeyIndex,
        c: &'s mut Counters,
        with_events: bool,
    ) -> Self {
        let begin = c.revision;
        Change {
            t,
            index,
            c,
            begin,
            main: begin + 1,
            sub: 0,
            events: with_events.then(Vec::new),
        }
    }

    /// Whether this command has written anything yet.
    pub fn changed(&self) -> bool {
        self.sub > 0
    }

    /// The view a read inside this command sees: its own writes so far.
    fn view(&self) -> ReadView {
        let current = if self.changed() {
            self.main
        } else {
            self.begin
        };
        ReadView {
            current,
            compacted: self.c.compacted,
        }
    }

    /// Closes the current revision if it wrote anything, so that the writes that follow get
    /// a revision of their own: one command, several revisions (lease expiries).
    pub fn next_revision(&mut self) {
        if self.changed() {
            self.c.revision = self.main;
            self.begin = self.main;
            self.main += 1;
            self.sub = 0;
        }
    }

    /// Ends the command: bumps the store revision if it wrote, returns its events.
    pub fn finish(self) -> Vec<Event> {
        if self.changed() {
            self.c.revision = self.main;
        }
        self.events.unwrap_or_default()
    }

    fn next_rev(&mut self) -> Revision {
        let r = Revision::new(self.main, self.sub);
        self.sub += 1;
        r
    }

    // -----------------------------------------------------------------------------------------
    // primitive writes (inputs already validated: only storage errors remain)

    /// Writes `key = value`; returns the previous live pair when `want_prev`.
    fn write_put(
        &mut self,
        wtxn: &mut RwTxn,
        key: &[u8],
        value: &[u8],
        lease: i64,
        found: Option<FoundKey>,
        want_prev: bool,
    ) -> Result<Option<KeyValue>> {
        let t = *self.t;
        let rev = self.next_rev();
        // The index entry gives the create revision, version and lease; the previous row is
        // read only for a caller or an event that shows its value.
        let with_value = want_prev || self.events.is_some();
        let prev_kv = match &found {
            Some(f) if !f.entry.tombstone() && with_value => {
                Some(t.kv_of_row(wtxn, &f.key, f.entry.latest(), true)?)
            }
            _ => None,
        };
        let (id, create, version, prev_rev, old_lease) = match &found {
            Some(f) if !f.entry.tombstone() => (
                f.entry.id(),
                f.entry.create(),
                f.entry.version() + 1,
                f.entry.latest(),
                f.entry.lease(),
            ),
            // The key's latest change is a deletion: a new generation.
            Some(f) => (f.entry.id(), rev.main, 1, f.entry.latest(), 0),
            None => {
                let id = self.c.next_key_id;
                self.c.next_key_id += 1;
                (id, rev.main, 1, Revision::default(), 0)
            }
        };
        let record = HistoryRecord {
            id,
            tombstone: false,
            create,
            version,
            lease,
            prev: prev_rev,
            key,
            value,
        };
        crate::tables::append(t.history, wtxn, &rev.to_bytes(), &record.encode())?;
        self.index
            .set(key, KeyEntry::live(id, rev, create, version, lease)?);
        if old_lease != 0 && old_lease != lease {
            t.leases.delete(wtxn, &lease_key(old_lease, id))?;
        }
        if lease != 0 && lease != old_lease {
            t.leases.put(wtxn, &lease_key(lease, id), key)?;
        }
        if let Some(events) = &mut self.events {
            events.push(Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: key.to_vec(),
                    create_revision: create,
                    mod_revision: rev.main,
                    version,
                    value: value.to_vec(),
                    lease,
                },
                prev_kv: prev_kv.clone(),
            });
        }
        Ok(prev_kv.filter(|_| want_prev))
    }

    /// Deletes a live key; returns its last pair.
    fn write_delete(&mut self, wtxn: &mut RwTxn, found: FoundKey) -> Result<KeyValue> {
        let t = *self.t;
        let prev = t
            .current_kv(wtxn, &found)?
            .ok_or_else(|| codec::corrupt("deleting a key that is not live"))?;
        let rev = self.next_rev();
        let id = found.entry.id();
        let record = HistoryRecord {
            id,
            tombstone: true,
            create: 0,
            version: 0,
            lease: 0,
            prev: found.entry.latest(),
            key: &found.key,
            value: &[],
        };
        crate::tables::append(t.history, wtxn, &rev.to_bytes(), &record.encode())?;
        self.index.set(&found.key, KeyEntry::deleted(id, rev)?);
        if prev.lease != 0 {
            t.leases.delete(wtxn, &lease_key(prev.lease, id))?;
        }
        if let Some(events) = &mut self.events {
            events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: found.key.to_vec(),
                    mod_revision: rev.main,
                    ..Default::default()
                },
                prev_kv: Some(prev.clone()),
            });
        }
        Ok(prev)
    }

    pub(crate) fn tables(&self) -> &'s Tables {
        self.t
    }

    pub(crate) fn header(&self) -> ResponseHeader {
        ResponseHeader {
            revision: self.view().current,
        }
    }

    // -----------------------------------------------------------------------------------------
    // requests

    pub fn put(&mut self, wtxn: &mut RwTxn, req: &PutRequest) -> Result<PutResponse> {
        if req.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        let found = self.index.lookup(&req.key);
        let mut lease = req.lease;
        let mut current_value = None;
        if req.ignore_value || req.ignore_lease {
            let current = match &found {
                Some(f) => self.t.current_kv(wtxn, f)?,
                None => None,
            };
            let Some(current) = current else {
                return Err(Error::KeyNotFound);
            };
            if req.ignore_lease {
                lease = current.lease;
            }
            if req.ignore_value {
                current_value = Some(current.value);
            }
        }
        self.t.check_lease(wtxn, lease)?;
        let value = current_value.as_deref().unwrap_or(&req.value);
        let prev_kv = self.write_put(wtxn, &req.key, value, lease, found, req.prev_kv)?;
        Ok(PutResponse {
            header: self.header(),
            prev_kv,
        })
    }

    /// Deletes every live key of `span`.
    fn delete_span(
        &mut self,
        wtxn: &mut RwTxn,
        span: &KeySpan,
        want_prev: bool,
    ) -> Result<(i64, Vec<KeyValue>)> {
        let mut victims = Vec::new();
        self.index.scan(span, |found| {
            if !found.entry.tombstone() {
                victims.push(found);
            }
            Ok(true)
        })?;
        let deleted = victims.len() as i64;
        let mut prev_kvs = Vec::new();
        for found in victims {
            let prev = self.write_delete(wtxn, found)?;
            if want_prev {
                prev_kvs.push(prev);
            }
        }
        Ok((deleted, prev_kvs))
    }

    pub fn delete_range(
        &mut self,
        wtxn: &mut RwTxn,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        let span = KeySpan::new(&req.key, &req.range_end);
        let (deleted, prev_kvs) = self.delete_span(wtxn, &span, req.prev_kv)?;
        Ok(DeleteRangeResponse {
            header: self.header(),
            deleted,
            prev_kvs,
        })
    }

    /// Deletes exactly the given keys (missing or deleted ones are ignored).
    pub fn delete_keys(
        &mut self,
        wtxn: &mut RwTxn,
        keys: &[Vec<u8>],
    ) -> Result<DeleteRangeResponse> {
        let mut deleted = 0;
        for key in keys {
            if let Some(found) = self.index.lookup(key) {
                if !found.entry.tombstone() {
                    self.write_delete(wtxn, found)?;
                    deleted += 1;
                }
            }
        }
        Ok(DeleteRangeResponse {
            header: self.header(),
            deleted,
            prev_kvs: Vec::new(),
        })
    }

    /// Runs a transaction: validation and every compare (nested ones included) happen on the
    /// state before the transaction, then the chosen operations run in order.
    pub fn txn(&mut self, wtxn: &mut RwTxn, req: &TxnRequest) -> Result<TxnResponse> {
        check_txn(req)?;
        let before = self.view();
        let mut path = Vec::new();
        txn_path(self.t, wtxn, self.index, req, before.current, &mut path)?;
        precheck(
            self.t,
            wtxn,
            self.index,
            req,
            before,
            &mut path.iter().copied(),
        )?;
        let mut path = path.into_iter();
        let mut resp = self.run_txn(wtxn, req, before, &mut path)?;
        resp.header = self.header();
        Ok(resp)
    }

    fn run_txn(
        &mut self,
        wtxn: &mut RwTxn,
        req: &TxnRequest,
        before: ReadView,
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
            let r = match op {
                RequestOp::Range(r) => {
                    let view = self.view();
                    ResponseOp::Range(read::range(self.t, wtxn, self.index, r, before, view)?)
                }
                RequestOp::Put(p) => ResponseOp::Put(self.put(wtxn, p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_range(wtxn, d)?),
                RequestOp::Txn(t) => ResponseOp::Txn(self.run_txn(wtxn, t, before, path)?),
            };
            responses.push(r);
        }
        // Like etcd, a nested transaction's header stays empty; the caller sets the top one.
        Ok(TxnResponse {
            header: ResponseHeader::default(),
            succeeded,
            responses,
        })
    }

    /// Compacts history at `req.revision` (etcd's keyIndex.compact rules): for every key the
    /// latest revision at or below it survives unless it is a deletion, so reads at or after
    /// the compaction revision are unchanged.
    ///
    /// Reads below the revision fail from this command on. The physical work, dropping the
    /// history rows up to the revision that are no longer needed, is done by
    /// [`compact_step`], which [`crate::Store::apply`] runs for a bounded number of rows after
    /// every batch, so no batch stalls on a large compaction. Leftover rows are invisible to
    /// reads. Rows at exactly the compaction revision stay in history (a watch may start
    /// there) and are dropped by the next compaction.
    pub fn compact(&mut self, req: &CompactRequest) -> Result<CompactResponse> {
        let at = req.revision;
        if at <= self.c.compacted {
            return Err(Error::Compacted);
        }
        if at > self.c.revision {
            return Err(Error::FutureRev);
        }
        // Rows at the previous target were kept for watchers; a walk still in progress may
        // have passed them, so make sure this walk covers them.
        let previous = Revision::new(self.c.compact_target, 0);
        self.c.compact_cursor = self.c.compact_cursor.min(previous);
        self.c.compacted = at;
        self.c.compact_target = at;
        Ok(CompactResponse {
            header: self.header(),
        })
    }
}

/// Advances the compaction walk by up to about `max_rows` history rows; returns whether it
/// has finished.
pub(crate) fn compact_step(
    t: &Tables,
    wtxn: &mut RwTxn,
    index: &mut KeyIndex,
    c: &mut Counters,
    max_rows: usize,
) -> Result<bool> {
    let at = c.compact_target;
    let end = Revision::new(at, i64::MAX).to_bytes();
    let mut survivors = HashMap::new();
    let mut done_rows = 0;
    while c.compaction_pending() {
        if done_rows >= max_rows {
            return Ok(false);
        }
        let take = COMPACT_CHUNK.min(max_rows - done_rows);
        let mut chunk = Vec::with_capacity(take);
        {
            let lo = c.compact_cursor.to_bytes();
            let bounds: (Bound<&[u8]>, Bound<&[u8]>) =
                (Bound::Included(&lo), Bound::Included(&end));
            for item in t.history.range(wtxn, &bounds)?.take(take) {
                let (k, v) = item?;
                let rev = Revision::from_bytes(k)?;
                let rec = HistoryRecord::decode(v)?;
                chunk.push((rev, rec.id, rec.prev, rec.key.to_vec()));
            }
        }
        let Some(last) = chunk.last() else {
            // Walked everything up to the target; the next compaction starts at its rows.
            c.compact_cursor = Revision::new(at, 0);
            break;
        };
        c.compact_cursor = Revision::new(last.0.main, last.0.sub + 1);
        done_rows += chunk.len();
        for (rev, id, prev, key) in chunk {
            let survivor = match survivors.get(&id) {
                Some(s) => Survivor::clone(s),
                None => {
                    let s = survivor(t, wtxn, index, at, id, &key)?;
                    survivors.insert(id, s.clone());
                    s
                }
            };
            compact_row(t, wtxn, index, at, rev, prev, survivor)?;
        }
    }
    Ok(true)
}

/// What compaction at `at` keeps of one key id: its newest change at or before `at`.
#[derive(Clone, Debug)]
enum Survivor {
    /// The id has no index entry any more (its final deletion was compacted; a key written
    /// again later has a new id): none of its rows up to `at` are needed.
    Gone,
    /// The newest change at or before `at`, whether it is a deletion, and whether it is the
    /// key's latest change.
    Change {
        rev: Revision,
        tombstone: bool,
        latest: bool,
        key: Option<IndexKey>,
    },
}

/// Finds the newest change of key id `id` (user key `key`) at or before `at`, walking the
/// key's chain back from its latest change.
fn survivor(
    t: &Tables,
    txn: &RoTxn,
    index: &KeyIndex,
    at: i64,
    id: u64,
    key: &[u8],
) -> Result<Survivor> {
    let found = match index.lookup(key) {
        Some(f) if f.entry.id() == id => f,
        _ => return Ok(Survivor::Gone),
    };
    let mut rev = found.entry.latest();
    let mut tombstone = found.entry.tombstone();
    let mut row = if rev.main > at {
        t.change_at(txn, rev)?
    } else {
        None
    };
    while rev.main > at {
        // Rows newer than the compaction target are never removed, and the chain reaches
        // every change of the id: a row at or before `at` is being compacted.
        let prev = match row {
            Some((_, prev)) if prev != Revision::default() => prev,
            _ => return Err(codec::corrupt("broken revision chain")),
        };
        rev = prev;
        row = t.change_at(txn, rev)?;
        // A row dropped by an earlier compaction was a deletion or superseded: either way
        // nothing of it is kept.
        tombstone = row.is_none_or(|(deleted, _)| deleted);
    }
    let latest = rev == found.entry.latest();
    Ok(Survivor::Change {
        rev,
        tombstone,
        latest,
        key: latest.then_some(found.key),
    })
}

/// Applies compaction at `at` to the history row at `rev` (`rev.main <= at`), whose key's
/// previous change is `prev`.
fn compact_row(
    t: &Tables,
    wtxn: &mut RwTxn,
    index: &mut KeyIndex,
    at: i64,
    rev: Revision,
    prev: Revision,
    survivor: Survivor,
) -> Result<()> {
    // `prev` is superseded by this change. It may be older than this walk's start: the
    // survivor of an earlier compaction, which only now has a newer change at or before `at`.
    if prev != Revision::default() && prev.main < at {
        t.history.delete(wtxn, &prev.to_bytes())?;
    }
    let drop_row = match &survivor {
        Survivor::Gone => true,
        Survivor::Change {
            rev: keep,
            tombstone,
            ..
        } => rev < *keep || *tombstone,
    };
    // Rows at exactly `at` stay until the next compaction, for watches that start there.
    if drop_row && rev.main < at {
        t.history.delete(wtxn, &rev.to_bytes())?;
    }
    if let Survivor::Change {
        rev: keep,
        tombstone: true,
        latest: true,
        key: Some(key),
    } = survivor
    {
        if keep == rev {
            // The key's final change is a deletion at or before `at`: forget the key.
            index.remove(&key);
        }
    }
    Ok(())
}

/// The branch taken by every transaction on the path, in the order they run (etcd's
/// `compareToPath`), all evaluated at `rev`.
pub(crate) fn txn_path(
    t: &Tables,
    txn: &RoTxn,
    index: &KeyIndex,
    req: &TxnRequest,
    rev: i64,
    path: &mut Vec<bool>,
) -> Result<()> {
    let mut ok = true;
    for c in &req.compare {
        if !read::compare(t, txn, index, c, rev)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    let ops = if ok { &req.success } else { &req.failure };
    for op in ops {
        if let RequestOp::Txn(n) = op {
            txn_path(t, txn, index, n, rev, path)?;
        }
    }
    Ok(())
}

/// etcd's request checks on the chosen path, against the state before the transaction.
fn precheck(
    t: &Tables,
    txn: &RoTxn,
    index: &KeyIndex,
    req: &TxnRequest,
    before: ReadView,
    path: &mut impl Iterator<Item = bool>,
) -> Result<()> {
    let ok = path
        .next()
        .ok_or_else(|| codec::corrupt("txn path exhausted"))?;
    let ops = if ok { &req.success } else { &req.failure };
    for op in ops {
        match op {
            RequestOp::Range(r) => {
                before.resolve(r.revision)?;
            }
            RequestOp::Put(p) => {
                if p.key.is_empty() {
                    return Err(Error::EmptyKey);
                }
                if p.ignore_value || p.ignore_lease {
                    let live = index.lookup(&p.key).is_some_and(|f| !f.entry.tombstone());
                    if !live {
                        return Err(Error::KeyNotFound);
                    }
                }
                // An ignored lease is the key's own, which exists while the key carries it.
                if !p.ignore_lease {
                    t.check_lease(txn, p.lease)?;
                }
            }
            RequestOp::DeleteRange(_) => {}
            RequestOp::Txn(n) => precheck(t, txn, index, n, before, path)?,
        }
    }
    Ok(())
}

/// A half-open key interval; `None` end = unbounded.
type Interval = (Vec<u8>, Option<Vec<u8>>);

fn interval_contains(iv: &Interval, k: &[u8]) -> bool {
    k >= iv.0.as_slice() && iv.1.as_deref().is_none_or(|e| k < e)
}

/// Rejects transactions that write one key twice, or put a key that the same branch deletes
/// (etcd's `ErrDuplicateKey`). The two branches of a nested transaction exclude each other.
pub fn check_txn(req: &TxnRequest) -> Result<()> {
    check_branch(&req.success)?;
    check_branch(&req.failure)?;
    Ok(())
}

fn check_branch(ops: &[RequestOp]) -> Result<(Vec<Vec<u8>>, Vec<Interval>)> {
    let mut dels: Vec<Interval> = Vec::new();
    for op in ops {
        if let RequestOp::DeleteRange(d) = op {
            let end = if d.range_end.is_empty() {
                let mut e = d.key.clone();
                e.push(0);
                Some(e)
            } else if d.range_end == [0] {
                None
            } else {
                Some(d.range_end.clone())
            };
            dels.push((d.key.clone(), end));
        }
    }
    let mut puts: Vec<Vec<u8>> = Vec::new();
    let conflicts = |puts: &[Vec<u8>], dels: &[Interval], k: &[u8]| {
        puts.iter().any(|p| p == k) || dels.iter().any(|iv| interval_contains(iv, k))
    };
    for op in ops {
        let RequestOp::Txn(n) = op else { continue };
        let (then_puts, then_dels) = check_branch(&n.success)?;
        let (else_puts, else_dels) = check_branch(&n.failure)?;
        for k in &then_puts {
            if conflicts(&puts, &dels, k) {
                return Err(Error::DuplicateKey);
            }
        }
        let before_then = puts.len();
        puts.extend(then_puts.iter().cloned());
        for k in else_puts {
            let clash =
                puts[..before_then].contains(&k) || dels.iter().any(|iv| interval_contains(iv, &k));
            if clash {
                return Err(Error::DuplicateKey);
            }
            if !then_puts.contains(&k) {
                puts.push(k);
            }
        }
        dels.extend(then_dels);
        dels.extend(else_dels);
    }
    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if conflicts(&puts, &dels, &p.key) {
            return Err(Error::DuplicateKey);
        }
        puts.push(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PutRequest;

    fn put(k: &str) -> RequestOp {
        RequestOp::Put(PutRequest {
            key: k.as_bytes().to_vec(),
            ..Default::default()
        })
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
            prev_kv: false,
        })
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn duplicate_puts_are_rejected() {
        assert_eq!(
            check_txn(&txn(vec![put("a"), put("a")], vec![])),
            Err(Error::DuplicateKey)
        );
        assert_eq!(check_txn(&txn(vec![put("a")], vec![put("a")])), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), put("b")], vec![])),
            Err(Error::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", ""), put("a")], vec![])),
            Err(Error::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", "b"), put("b")], vec![])),
            Ok(())
        );
    }

    #[test]
    fn nested_branches_exclude_each_other() {
        let nested = RequestOp::Txn(txn(vec![put("x")], vec![put("x")]));
        assert_eq!(check_txn(&txn(vec![nested.clone()], vec![])), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![nested, put("x")], vec![])),
            Err(Error::DuplicateKey)
        );
    }
}
