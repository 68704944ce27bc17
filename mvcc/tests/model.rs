//! Property test: random command sequences applied to the store and to a plain in-memory
//! model (a full key map per revision) must give the same responses, events and reads at
//! every revision, before and after compaction, after replaying batches and after reopening.

use std::collections::BTreeMap;

use mvcc::{
    check_txn, Command, CommandResponse, CompactRequest, CompactResponse, Compare, CompareResult,
    CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Error, Event, EventKind, KeyValue,
    Outcome, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
    ResponseOp, SortOrder, SortTarget, Store, StoreOptions, TxnRequest, TxnResponse,
};
use proptest::prelude::*;

type Snapshot = BTreeMap<Vec<u8>, KeyValue>;

/// The key alphabet: short keys, keys around the 480-byte index prefix, and long keys that
/// share that prefix so they fall into one index group.
fn keys() -> Vec<Vec<u8>> {
    let long = |n: usize, tail: &[u8]| {
        let mut k = vec![b'm'; n];
        k.extend_from_slice(tail);
        k
    };
    vec![
        b"a".to_vec(),
        b"ab".to_vec(),
        b"b".to_vec(),
        b"b\0".to_vec(),
        b"c".to_vec(),
        long(480, b""),
        long(480, b"\0"),
        long(500, b"z"),
        long(500, b"a"),
        long(2000, b"q"),
        b"n".to_vec(),
        Vec::new(),
    ]
}

fn span_contains(key: &[u8], end: &[u8], k: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

#[derive(Clone, Copy)]
struct View {
    current: i64,
    compacted: i64,
}

impl View {
    fn resolve(&self, rev: i64) -> Result<i64, Error> {
        if rev > self.current {
            return Err(Error::FutureRev);
        }
        let rev = if rev <= 0 { self.current } else { rev };
        if rev < self.compacted {
            return Err(Error::Compacted);
        }
        Ok(rev)
    }
}

fn model_range(snap: &Snapshot, req: &RangeRequest, header: i64) -> RangeResponse {
    let all: Vec<KeyValue> = snap
        .values()
        .filter(|kv| span_contains(&req.key, &req.range_end, &kv.key))
        .cloned()
        .collect();
    let count = all.len() as i64;
    let mut kvs = if req.count_only { Vec::new() } else { all };
    let mut order = req.sort_order;
    let default_order = |o: SortOrder| {
        o == SortOrder::None || (req.sort_target == SortTarget::Key && o == SortOrder::Ascend)
    };
    let filters = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    if default_order(req.sort_order) && !filters && req.limit > 0 {
        kvs.truncate(req.limit as usize + 1);
    }
    kvs.retain(|kv| {
        (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
    });
    if req.sort_target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if !default_order(order) {
        let key = |kv: &KeyValue| -> (Vec<u8>, i64) {
            match req.sort_target {
                SortTarget::Key => (kv.key.clone(), 0),
                SortTarget::Version => (vec![], kv.version),
                SortTarget::Create => (vec![], kv.create_revision),
                SortTarget::Mod => (vec![], kv.mod_revision),
                SortTarget::Value => (kv.value.clone(), 0),
            }
        };
        kvs.sort_by_key(key);
        if order == SortOrder::Descend {
            // Descending, ties keep ascending key order as a stable sort would.
            kvs.sort_by_key(|kv| std::cmp::Reverse(key(kv)));
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() as i64 > req.limit {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    RangeResponse {
        header: ResponseHeader { revision: header },
        kvs,
        more,
        count,
    }
}

fn model_compare(snap: &Snapshot, c: &Compare) -> bool {
    let kvs: Vec<&KeyValue> = snap
        .values()
        .filter(|kv| span_contains(&c.key, &c.range_end, &kv.key))
        .collect();
    let check = |kv: &KeyValue| {
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
            CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
            CompareTarget::Value(v) => kv.value.cmp(v),
            CompareTarget::Lease(v) => kv.lease.cmp(v),
        };
        match c.result {
            CompareResult::Equal => ord.is_eq(),
            CompareResult::NotEqual => ord.is_ne(),
            CompareResult::Greater => ord.is_gt(),
            CompareResult::Less => ord.is_lt(),
        }
    };
    if kvs.is_empty() {
        return !matches!(c.target, CompareTarget::Value(_)) && check(&KeyValue::default());
    }
    kvs.into_iter().all(check)
}

/// The reference implementation: one full key map per revision.
struct Model {
    snaps: Vec<Snapshot>,
    compacted: i64,
    events: Vec<Event>,
    leases: std::collections::BTreeSet<i64>,
}

struct Work<'m> {
    model: &'m Model,
    cur: Snapshot,
    begin: i64,
    changed: bool,
    events: Vec<Event>,
}

impl Work<'_> {
    fn main(&self) -> i64 {
        self.begin + 1
    }
    fn header(&self) -> i64 {
        if self.changed {
            self.main()
        } else {
            self.begin
        }
    }
    fn put(&mut self, p: &PutRequest) -> PutResponse {
        let prev = self.cur.get(&p.key).cloned();
        let value = if p.ignore_value {
            prev.as_ref().unwrap().value.clone()
        } else {
            p.value.clone()
        };
        let lease = if p.ignore_lease {
            prev.as_ref().unwrap().lease
        } else {
            p.lease
        };
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(self.main(), |k| k.create_revision),
            mod_revision: self.main(),
            version: prev.as_ref().map_or(1, |k| k.version + 1),
            value,
            lease,
        };
        self.cur.insert(p.key.clone(), kv.clone());
        self.changed = true;
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        PutResponse {
            header: ResponseHeader {
                revision: self.main(),
            },
            prev_kv: if p.prev_kv { prev } else { None },
        }
    }
    fn check_lease(&self, p: &PutRequest) -> Result<(), Error> {
        if !p.ignore_lease && p.lease != 0 && !self.model.leases.contains(&p.lease) {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> KeyValue {
        let prev = self.cur.remove(key).unwrap();
        self.changed = true;
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: self.main(),
                ..Default::default()
            },
            prev_kv: Some(prev.clone()),
        });
        prev
    }
    fn delete_range(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let victims: Vec<Vec<u8>> = self
            .cur
            .keys()
            .filter(|k| span_contains(&d.key, &d.range_end, k))
            .cloned()
            .collect();
        let mut prev_kvs = Vec::new();
        for k in &victims {
            let p = self.delete(k);
            if d.prev_kv {
                prev_kvs.push(p);
            }
        }
        DeleteRangeResponse {
            header: ResponseHeader {
                revision: self.header(),
            },
            deleted: victims.len() as i64,
            prev_kvs,
        }
    }
    fn path(&self, t: &TxnRequest, path: &mut Vec<bool>) {
        let ok = t.compare.iter().all(|c| model_compare(&self.cur, c));
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(n) = op {
                self.path(n, path);
            }
        }
    }
    fn precheck(
        &self,
        t: &TxnRequest,
        before: View,
        path: &mut std::vec::IntoIter<bool>,
    ) -> Result<(), Error> {
        let ok = path.next().unwrap();
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Range(r) => {
                    before.resolve(r.revision)?;
                }
                RequestOp::Put(p) => {
                    if p.key.is_empty() {
                        return Err(Error::EmptyKey);
                    }
                    if (p.ignore_value || p.ignore_lease) && !self.cur.contains_key(&p.key) {
                        return Err(Error::KeyNotFound);
                    }
                    self.check_lease(p)?;
                }
                RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(n) => self.precheck(n, before, path)?,
            }
        }
        Ok(())
    }
    fn run_txn(
        &mut self,
        t: &TxnRequest,
        before: View,
        path: &mut std::vec::IntoIter<bool>,
    ) -> TxnResponse {
        let succeeded = path.next().unwrap();
        let mut responses = Vec::new();
        for op in if succeeded { &t.success } else { &t.failure } {
            responses.push(match op {
                RequestOp::Range(r) => {
                    before.resolve(r.revision).unwrap();
                    let view = View {
                        current: self.header(),
                        compacted: self.model.compacted,
                    };
                    let rev = view.resolve(r.revision).unwrap();
                    let snap = if rev == self.main() {
                        &self.cur
                    } else {
                        &self.model.snaps[rev as usize]
                    };
                    ResponseOp::Range(model_range(snap, r, view.current))
                }
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_range(d)),
                RequestOp::Txn(n) => ResponseOp::Txn(self.run_txn(n, before, path)),
            });
        }
        TxnResponse {
            header: ResponseHeader::default(),
            succeeded,
            responses,
        }
    }
}

impl Model {
    fn new() -> Self {
        Model {
            snaps: vec![Snapshot::new(), Snapshot::new()],
            compacted: 0,
            leases: Default::default(),
            events: Vec::new(),
        }
    }
    fn current(&self) -> i64 {
        self.snaps.len() as i64 - 1
    }
    fn view(&self) -> View {
        View {
            current: self.current(),
            compacted: self.compacted,
        }
    }

    fn apply(&mut self, cmd: &Command) -> Outcome {
        let begin = self.current();
        let mut w = Work {
            model: self,
            cur: self.snaps[begin as usize].clone(),
            begin,
            changed: false,
            events: Vec::new(),
        };
        let result: Result<CommandResponse, Error> = (|| match cmd {
            Command::Put(p) => {
                if p.key.is_empty() {
                    return Err(Error::EmptyKey);
                }
                if (p.ignore_value || p.ignore_lease) && !w.cur.contains_key(&p.key) {
                    return Err(Error::KeyNotFound);
                }
                w.check_lease(p)?;
                Ok(CommandResponse::Put(w.put(p)))
            }
            Command::DeleteRange(d) => Ok(CommandResponse::DeleteRange(w.delete_range(d))),
            Command::DeleteKeys(keys) => {
                let mut deleted = 0;
                for k in keys {
                    if w.cur.contains_key(k) {
                        w.delete(k);
                        deleted += 1;
                    }
                }
                Ok(CommandResponse::DeleteRange(DeleteRangeResponse {
                    header: ResponseHeader {
                        revision: w.header(),
                    },
                    deleted,
                    prev_kvs: vec![],
                }))
            }
            Command::LeaseGrant(g) => {
                if w.model.leases.contains(&g.id) {
                    return Err(Error::LeaseExists);
                }
                Ok(CommandResponse::LeaseGrant(mvcc::LeaseGrantResponse {
                    header: ResponseHeader { revision: begin },
                    id: g.id,
                    ttl: g.ttl,
                }))
            }
            Command::ExpireLeases(_) => unimplemented!("covered by tests/leases.rs"),
            Command::RevokeLease(lease) => {
                if !w.model.leases.contains(lease) {
                    return Err(Error::LeaseNotFound);
                }
                let keys: Vec<Vec<u8>> = w
                    .cur
                    .values()
                    .filter(|kv| kv.lease == *lease)
                    .map(|kv| kv.key.clone())
                    .collect();
                for k in &keys {
                    w.delete(k);
                }
                Ok(CommandResponse::DeleteRange(DeleteRangeResponse {
                    header: ResponseHeader {
                        revision: w.header(),
                    },
                    deleted: keys.len() as i64,
                    prev_kvs: vec![],
                }))
            }
            Command::Txn(t) => {
                check_txn(t)?;
                let before = w.model.view();
                let mut path = Vec::new();
                w.path(t, &mut path);
                w.precheck(t, before, &mut path.clone().into_iter())?;
                let mut resp = w.run_txn(t, before, &mut path.into_iter());
                resp.header = ResponseHeader {
                    revision: w.header(),
                };
                Ok(CommandResponse::Txn(resp))
            }
            Command::Compact(c) => {
                if c.revision <= w.model.compacted {
                    return Err(Error::Compacted);
                }
                if c.revision > begin {
                    return Err(Error::FutureRev);
                }
                Ok(CommandResponse::Compact(CompactResponse {
                    header: ResponseHeader { revision: begin },
                }))
            }
        })();
        match result {
            Ok(response) => {
                let Work {
                    cur,
                    changed,
                    events,
                    ..
                } = w;
                if let CommandResponse::Compact(_) = response {
                    if let Command::Compact(c) = cmd {
                        self.compacted = c.revision;
                    }
                }
                match cmd {
                    Command::LeaseGrant(g) => {
                        self.leases.insert(g.id);
                    }
                    Command::RevokeLease(id) => {
                        self.leases.remove(id);
                    }
                    _ => {}
                }
                if changed {
                    self.snaps.push(cur);
                }
                self.events.extend(events.iter().cloned());
                Outcome::Done { response, events }
            }
            Err(e) => Outcome::Failed(e),
        }
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse, Error> {
        let view = self.view();
        let rev = view.resolve(req.revision)?;
        Ok(model_range(&self.snaps[rev as usize], req, view.current))
    }

    fn events_from(&self, from: i64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.kv.mod_revision >= from)
            .cloned()
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// strategies

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    let ks = keys();
    (0..ks.len()).prop_map(move |i| ks[i].clone())
}

fn end_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => Just(vec![0u8]),
        2 => key_strategy(),
    ]
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(b'0'..b'4', 0..3),
        1 => Just(vec![b'v'; 3000]),
    ]
}

fn put_strategy() -> impl Strategy<Value = PutRequest> {
    (
        key_strategy(),
        value_strategy(),
        0i64..3,
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(key, value, lease, prev_kv, ignore_value, ignore_lease)| PutRequest {
                key,
                value: if ignore_value { vec![] } else { value },
                lease,
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
}

fn delete_strategy() -> impl Strategy<Value = DeleteRangeRequest> {
    (key_strategy(), end_strategy(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| {
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        }
    })
}

fn range_strategy() -> impl Strategy<Value = RangeRequest> {
    let order = prop_oneof![
        Just(SortOrder::None),
        Just(SortOrder::Ascend),
        Just(SortOrder::Descend)
    ];
    let target = prop_oneof![
        3 => Just(SortTarget::Key),
        1 => Just(SortTarget::Version),
        1 => Just(SortTarget::Create),
        1 => Just(SortTarget::Mod),
        1 => Just(SortTarget::Value),
    ];
    let filter = prop_oneof![4 => Just(0i64), 1 => 1i64..12];
    (
        (key_strategy(), end_strategy(), 0i64..4, order, target),
        (prop::bool::weighted(0.2), prop::bool::weighted(0.1)),
        (filter.clone(), filter.clone(), filter.clone(), filter),
    )
        .prop_map(
            |((key, range_end, limit, sort_order, sort_target), (keys_only, count_only), f)| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision: 0,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only,
                    min_mod_revision: f.0,
                    max_mod_revision: f.1,
                    min_create_revision: f.2,
                    max_create_revision: f.3,
                }
            },
        )
}

fn compare_strategy() -> impl Strategy<Value = Compare> {
    let result = prop_oneof![
        Just(CompareResult::Equal),
        Just(CompareResult::Greater),
        Just(CompareResult::Less),
        Just(CompareResult::NotEqual)
    ];
    let target = prop_oneof![
        (0i64..4).prop_map(CompareTarget::Version),
        (0i64..10).prop_map(CompareTarget::CreateRevision),
        (0i64..10).prop_map(CompareTarget::ModRevision),
        value_strategy().prop_map(CompareTarget::Value),
        (0i64..3).prop_map(CompareTarget::Lease),
    ];
    let end = prop_oneof![3 => Just(Vec::new()), 1 => end_strategy()];
    (result, target, key_strategy(), end).prop_map(|(result, target, key, range_end)| Compare {
        result,
        target,
        key,
        range_end,
    })
}

fn flat_op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        put_strategy().prop_map(RequestOp::Put),
        delete_strategy().prop_map(RequestOp::DeleteRange),
        (range_strategy(), -1i64..3).prop_map(|(mut r, back)| {
            // Revision relative to "now" is resolved at run time; keep small absolute values.
            r.revision = if back < 0 { 0 } else { back * 3 };
            RequestOp::Range(r)
        }),
    ]
}

fn txn_strategy() -> impl Strategy<Value = TxnRequest> {
    let leaf = (
        prop::collection::vec(compare_strategy(), 0..3),
        prop::collection::vec(flat_op(), 0..3),
        prop::collection::vec(flat_op(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    let op = prop_oneof![4 => flat_op(), 1 => leaf.prop_map(RequestOp::Txn)];
    (
        prop::collection::vec(compare_strategy(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

#[derive(Clone, Debug)]
enum Step {
    Cmd(Command),
    /// Compact at `current - back` (may be invalid on purpose).
    CompactBack(i64),
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => put_strategy().prop_map(|p| Step::Cmd(Command::Put(p))),
        2 => delete_strategy().prop_map(|d| Step::Cmd(Command::DeleteRange(d))),
        3 => txn_strategy().prop_map(|t| Step::Cmd(Command::Txn(t))),
        1 => (-1i64..6).prop_map(Step::CompactBack),
        1 => prop::collection::vec(key_strategy(), 0..3).prop_map(|k| Step::Cmd(Command::DeleteKeys(k))),
        1 => (1i64..3).prop_map(|l| Step::Cmd(Command::RevokeLease(l))),
        1 => (1i64..3).prop_map(|id| Step::Cmd(Command::LeaseGrant(mvcc::LeaseGrantRequest { id, ttl: 5 }))),
    ]
}

// ---------------------------------------------------------------------------------------------
// checks

fn check_reads(
    store: &Store,
    model: &Model,
    queries: &[RangeRequest],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.current_revision(), model.current());
    prop_assert_eq!(store.compacted_revision(), model.compacted);
    for rev in 0..=model.current() + 1 {
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        };
        prop_assert_eq!(
            store.range(&all),
            model.range(&all),
            "full range at rev {}",
            rev
        );
        for q in queries {
            let q = RangeRequest {
                revision: rev,
                ..q.clone()
            };
            prop_assert_eq!(store.range(&q), model.range(&q), "{:?}", q);
        }
    }
    for from in [
        0,
        model.compacted - 1,
        model.compacted,
        model.compacted + 1,
        model.current(),
    ] {
        let got = store.events(from, &[0], &[0], 0);
        if from.max(1) < model.compacted {
            prop_assert_eq!(got, Err(Error::Compacted));
        } else {
            let (events, next) = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut want = model.events_from(from.max(1));
            // prev_kv of an event is only promised while the previous state is not compacted.
            let mut events = events;
            for (g, w) in events.iter_mut().zip(want.iter_mut()) {
                let compacted_away = w
                    .prev_kv
                    .as_ref()
                    .is_some_and(|p| p.mod_revision < model.compacted);
                if g.prev_kv.is_none() && compacted_away {
                    w.prev_kv = None;
                }
            }
            prop_assert_eq!(events, want);
            prop_assert_eq!(next, model.current() + 1);
        }
    }
    Ok(())
}

fn resolve_step(step: &Step, model: &Model) -> Command {
    match step {
        Step::Cmd(c) => c.clone(),
        Step::CompactBack(back) => Command::Compact(CompactRequest {
            revision: model.current() - back,
            physical: false,
        }),
    }
}

fn run_case(
    steps: Vec<Step>,
    batch_sizes: Vec<usize>,
    queries: Vec<RangeRequest>,
    compaction_rows: usize,
    apply_events: bool,
    commit_every: usize,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    // A tiny compaction budget leaves compactions half done across batches.
    let opts = StoreOptions {
        map_size: 64 << 20,
        compaction_rows_per_batch: compaction_rows,
        apply_events,
        ..Default::default()
    };
    let mut store = Store::open(dir.path(), opts.clone()).unwrap();
    let mut model = Model::new();
    let mut index = 0u64;
    let mut steps = steps.into_iter().peekable();
    let mut sizes = batch_sizes.into_iter().cycle();
    {
        // Batches go through one writer, committed every `commit_every` batches.
        let mut writer = store.writer();
        let mut batches = 0;
        while steps.peek().is_some() {
            let n = sizes.next().unwrap_or(1).max(1);
            let mut batch = Vec::new();
            let mut want = Vec::new();
            for step in steps.by_ref().take(n) {
                // Compaction targets depend on the model's state when the step runs.
                let cmd = resolve_step(&step, &model);
                index += 1;
                let mut outcome = model.apply(&cmd);
                if let (Outcome::Done { events, .. }, false) = (&mut outcome, apply_events) {
                    events.clear();
                }
                want.push(mvcc::Applied { index, outcome });
                batch.push((index, cmd));
            }
            let mut got = Vec::new();
            writer.apply_then(&batch, |a| got = a).unwrap();
            prop_assert_eq!(got, want);
            // Replaying the batch, committed or not, is a no-op.
            let mut replay = Vec::new();
            writer.apply_then(&batch, |a| replay = a).unwrap();
            prop_assert!(replay.iter().all(|a| a.outcome == Outcome::Skipped));
            batches += 1;
            if batches % commit_every == 0 {
                writer.commit().unwrap();
                prop_assert_eq!(store.applied_index(), index);
                prop_assert_eq!(store.current_revision(), model.current());
            }
        }
        writer.commit().unwrap();
    }
    prop_assert_eq!(store.applied_index(), index);
    prop_assert_eq!(store.current_revision(), model.current());
    check_reads(&store, &model, &queries)?;
    drop(store);
    store = Store::open(dir.path(), opts).unwrap();
    prop_assert_eq!(store.applied_index(), index);
    check_reads(&store, &model, &queries)?;
    // Finishing the compaction changes nothing visible.
    while !store.run_compaction(3).unwrap() {}
    prop_assert!(!store.compaction_pending().unwrap());
    check_reads(&store, &model, &queries)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(
        steps in prop::collection::vec(step_strategy(), 1..40),
        batch_sizes in prop::collection::vec(1usize..6, 1..4),
        queries in prop::collection::vec(range_strategy(), 0..4),
        compaction_rows in prop_oneof![Just(1usize), Just(4), Just(1 << 20)],
        apply_events in any::<bool>(),
        commit_every in 1usize..4,
    ) {
        run_case(steps, batch_sizes, queries, compaction_rows, apply_events, commit_every)?;
    }
}
