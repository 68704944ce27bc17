//! [`Group`]: watchers indexed by what they watch, so that finding the watchers of one
//! changed key does not look at the others.
//!
//! Single-key watchers sit in a hash map by key. Ranges (prefixes, `>= key`) are grouped by
//! their exact bounds in a map ordered by start key: a key is checked against each distinct
//! range that starts at or before it, however many watchers share that range (a thousand
//! watchers of one prefix cost one comparison per change).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;

/// The hub's handle of a watcher.
pub type Wid = u64;

/// Maps and sets by [`Wid`], which the hub looks up once per (change, watcher): a
/// thousand watchers of a prefix under a put load made SipHash the hub's largest cost.
pub type WidMap<V> = HashMap<Wid, V, BuildHasherDefault<WidHasher>>;
pub type WidSet = HashSet<Wid, BuildHasherDefault<WidHasher>>;

/// Wids are counters, not chosen by clients: a multiplication spreads them over the
/// table (the high bits pick the tag, the low ones the bucket).
#[derive(Default, Clone, Copy)]
pub struct WidHasher(u64);

const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for WidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(SPREAD);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(SPREAD);
    }
}

/// What a watcher watches, with etcd's conventions already resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Span {
    Key(Vec<u8>),
    /// `[start, end)`; `None` for no end.
    Range(Vec<u8>, Option<Vec<u8>>),
}

/// What decides whether a watcher whose span holds a change gets it, kept in the index
/// beside its wid so that matching a change looks up no watcher.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    /// The first revision it wants.
    pub min_rev: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
}

impl Filter {
    pub fn wants(&self, rev: i64, kind: mvcc::EventKind) -> bool {
        rev >= self.min_rev
            && match kind {
                mvcc::EventKind::Put => !self.no_put,
                mvcc::EventKind::Delete => !self.no_delete,
            }
    }
}

type Members = Vec<(Wid, Filter)>;

/// The watchers of one exact range, by its end (`None`: no end).
type SameRange = (Option<Vec<u8>>, Members);

#[derive(Default)]
pub struct Group {
    keys: HashMap<Vec<u8>, Members>,
    /// start key -> (end, watchers) for every distinct range starting there.
    ranges: BTreeMap<Vec<u8>, Vec<SameRange>>,
    len: usize,
}

impl Group {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, wid: Wid, filter: Filter, span: &Span) {
        let member = (wid, filter);
        match span {
            Span::Key(k) => self.keys.entry(k.clone()).or_default().push(member),
            Span::Range(start, end) => {
                let at = self.ranges.entry(start.clone()).or_default();
                match at.iter_mut().find(|(e, _)| e == end) {
                    Some((_, wids)) => wids.push(member),
                    None => at.push((end.clone(), vec![member])),
                }
            }
        }
        self.len += 1;
    }

    pub fn remove(&mut self, wid: Wid, span: &Span) {
        let removed = match span {
            Span::Key(k) => match self.keys.get_mut(k) {
                Some(wids) => {
                    let found = take(wids, wid);
                    if wids.is_empty() {
                        self.keys.remove(k);
                    }
                    found
                }
                None => false,
            },
            Span::Range(start, end) => match self.ranges.get_mut(start) {
                Some(at) => {
                    let mut found = false;
                    if let Some(i) = at.iter().position(|(e, _)| e == end) {
                        found = take(&mut at[i].1, wid);
                        if at[i].1.is_empty() {
                            at.swap_remove(i);
                        }
                    }
                    if at.is_empty() {
                        self.ranges.remove(start);
                    }
                    found
                }
                None => false,
            },
        };
        if removed {
            self.len -= 1;
        }
    }

    /// Calls `f` with every watcher whose span holds `key`, and its filter.
    pub fn for_each_match(&self, key: &[u8], mut f: impl FnMut(Wid, &Filter)) {
        if let Some(wids) = self.keys.get(key) {
            wids.iter().for_each(|(w, filter)| f(*w, filter));
        }
        let upto = (Bound::Unbounded, Bound::Included(key));
        for (_, at) in self.ranges.range::<[u8], _>(upto) {
            for (end, wids) in at {
                if end.as_ref().is_none_or(|e| key < &e[..]) {
                    wids.iter().for_each(|(w, filter)| f(*w, filter));
                }
            }
        }
    }
}

fn take(wids: &mut Members, wid: Wid) -> bool {
    match wids.iter().position(|(w, _)| *w == wid) {
        Some(i) => {
            wids.swap_remove(i);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(g: &Group, key: &[u8]) -> Vec<Wid> {
        let mut out = Vec::new();
        g.for_each_match(key, |w, _| out.push(w));
        out.sort();
        out
    }

    #[test]
    fn keys_ranges_prefixes_and_everything() {
        let mut g = Group::default();
        let key = Span::Key(b"foo".to_vec());
        let prefix = Span::Range(b"foo".to_vec(), Some(b"fop".to_vec()));
        let from = Span::Range(b"b".to_vec(), None);
        g.insert(1, Filter::default(), &key);
        g.insert(2, Filter::default(), &prefix);
        g.insert(3, Filter::default(), &prefix);
        g.insert(4, Filter::default(), &from);
        assert_eq!(matches(&g, b"foo"), [1, 2, 3, 4]);
        assert_eq!(matches(&g, b"foo/bar"), [2, 3, 4]);
        assert_eq!(matches(&g, b"fop"), [4]);
        assert_eq!(matches(&g, b"a"), Vec::<Wid>::new());
        g.remove(2, &prefix);
        g.remove(1, &key);
        g.remove(1, &key);
        assert_eq!(g.len, 2);
        assert_eq!(matches(&g, b"foo"), [3, 4]);
        g.remove(3, &prefix);
        g.remove(4, &from);
        assert!(g.is_empty());
        assert!(
            g.keys.is_empty() && g.ranges.is_empty(),
            "no empty entries left"
        );
    }
}
