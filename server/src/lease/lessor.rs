//! The lessor: every lease this member knows of, and, on the leader only, when each one
//! expires.
//!
//! Which leases exist is replicated state (the store's `lease_grants` table); the lessor
//! mirrors it, told by the apply thread of every grant and revoke. Expiry times are not
//! replicated: only the leader keeps them, in a min-heap, and only the leader renews
//! (keep-alives) and expires (by proposing revokes through the log). When a member becomes
//! leader it restarts every lease's full TTL (etcd 3.4's rule): a lease never expires because
//! its leader died, at the price of living up to one TTL (and an election timeout) longer
//! across a leader change. It starts them when it applies the first entry of its term, so it
//! has applied every grant and revoke of the terms before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed; the lease's granted TTL in seconds.
    Renewed(i64),
    /// No such lease.
    NotFound,
    /// The lease has expired and its revoke is due or under way: ask again once it is
    /// through (etcd answers then, so no renewal seems to succeed while the keys go).
    Expiring,
    /// This member does not lead: the leader renews.
    NotLeader,
}

/// A lease's remaining and granted TTL, in seconds, as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeToLive {
    pub remaining: i64,
    pub granted: i64,
}

pub struct Lessor {
    min_ttl: i64,
    extend: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Lease id -> granted TTL in seconds.
    leases: HashMap<i64, i64>,
    /// The term in which this member leads and keeps expiry times, if it does.
    leading: Option<u64>,
    /// On the leader: when each lease expires.
    expiry: HashMap<i64, Instant>,
    /// On the leader: (expiry, id), earliest first. Renewals push a new pair and leave the
    /// old one, which is skipped when it surfaces (its time no longer matches `expiry`).
    heap: BinaryHeap<Reverse<(Instant, i64)>>,
    /// On the leader: expired leases whose revoke has been proposed but not yet applied.
    revoking: HashSet<i64>,
}

impl Lessor {
    /// A lessor that knows `leases` (id, granted TTL) and leads nothing yet; `extend` is
    /// added to every TTL when it starts leading.
    pub fn new(
        min_ttl: i64,
        extend: Duration,
        leases: impl IntoIterator<Item = (i64, i64)>,
    ) -> Lessor {
        let state = State {
            leases: leases.into_iter().collect(),
            ..Default::default()
        };
        Lessor {
            min_ttl,
            extend: extend.min(FAR),
            state: Mutex::new(state),
        }
    }

    /// The smallest TTL a grant gets (etcd: 1.5 election timeouts, in whole seconds rounded
    /// up), so that a lease outlives the election that may follow its leader's death.
    pub fn min_ttl(&self) -> i64 {
        self.min_ttl
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic in a holder: every change is one step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts leading in `term`: called when this member, as leader, applies its term's
    /// first (empty) entry, so every lease granted in earlier terms is known. Every lease
    /// gets its full TTL, plus `extend` (etcd: an election timeout), from now.
    pub fn promote(&self, term: u64) {
        let mut s = self.lock();
        if s.leading == Some(term) {
            return;
        }
        s.clear_expiries();
        s.leading = Some(term);
        let from = Instant::now() + self.extend;
        let all: Vec<(i64, i64)> = s.leases.iter().map(|(id, ttl)| (*id, *ttl)).collect();
        for (id, ttl) in all {
            s.start(id, from + seconds(ttl));
        }
    }

    /// Follows raft's view: `leading` is the term this member leads in now, if it leads. A
    /// lessor promoted in another term stops leading and forgets its expiry times.
    pub fn follow(&self, leading: Option<u64>) {
        let mut s = self.lock();
        if s.leading.is_some() && s.leading != leading {
            s.leading = None;
            s.clear_expiries();
        }
    }

    /// A grant was applied.
    pub fn granted(&self, id: i64, ttl: i64) {
        let mut s = self.lock();
        s.leases.insert(id, ttl);
        if s.leading.is_some() {
            s.start(id, Instant::now() + seconds(ttl));
        }
    }

    /// A revoke (or expiry) of `id` was applied, or found it gone.
    pub fn revoked(&self, id: i64) {
        let mut s = self.lock();
        s.leases.remove(&id);
        s.expiry.remove(&id);
        s.revoking.remove(&id);
    }

    /// Replaces what the lessor knows by `leases`, after the store was replaced by a
    /// snapshot; leases it already knew keep their expiry time.
    pub fn reload(&self, leases: impl IntoIterator<Item = (i64, i64)>) {
        let mut s = self.lock();
        s.leases = leases.into_iter().collect();
        let State {
            leases,
            expiry,
            revoking,
            ..
        } = &mut *s;
        expiry.retain(|id, _| leases.contains_key(id));
        revoking.retain(|id| leases.contains_key(id));
        if s.leading.is_some() {
            let now = Instant::now();
            let fresh: Vec<(i64, i64)> = s
                .leases
                .iter()
                .filter(|(id, _)| !s.expiry.contains_key(id))
                .map(|(id, ttl)| (*id, *ttl))
                .collect();
            for (id, ttl) in fresh {
                s.start(id, now + seconds(ttl));
            }
        }
    }

    /// A keep-alive: on the leader, the lease's full TTL starts again from now.
    pub fn renew(&self, id: i64) -> Renewal {
        let mut s = self.lock();
        if s.leading.is_none() {
            return Renewal::NotLeader;
        }
        let Some(ttl) = s.leases.get(&id).copied() else {
            return Renewal::NotFound;
        };
        let now = Instant::now();
        let expired = s.expiry.get(&id).is_none_or(|at| *at <= now);
        if expired || s.revoking.contains(&id) {
            return Renewal::Expiring;
        }
        s.start(id, now + seconds(ttl));
        Renewal::Renewed(ttl)
    }

    /// On the leader: the lease's remaining and granted TTL, `None` for an unknown lease.
    pub fn time_to_live(&self, id: i64) -> Result<Option<TimeToLive>, NotLeading> {
        let s = self.lock();
        if s.leading.is_none() {
            return Err(NotLeading);
        }
        let Some(granted) = s.leases.get(&id).copied() else {
            return Ok(None);
        };
        let left = s.expiry.get(&id).map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        Ok(Some(TimeToLive {
            // etcd truncates to whole seconds.
            remaining: left.as_secs() as i64,
            granted,
        }))
    }

    /// Every lease id: by expiry on the leader (as etcd lists them), by id elsewhere.
    pub fn ids(&self) -> Vec<i64> {
        let s = self.lock();
        let mut ids: Vec<i64> = s.leases.keys().copied().collect();
        ids.sort_by_key(|id| (s.expiry.get(id).copied(), *id));
        ids
    }

    /// On the leader: up to `limit` leases that expired by `now` and whose revoke is not
    /// under way yet; they count as under way from here on.
    pub fn take_expired(&self, now: Instant, limit: usize) -> Vec<i64> {
        let mut s = self.lock();
        let mut out = Vec::new();
        if s.leading.is_none() {
            return out;
        }
        while out.len() < limit {
            let Some(Reverse((at, id))) = s.heap.peek().copied() else {
                break;
            };
            if at > now {
                break;
            }
            s.heap.pop();
            if s.expiry.get(&id) == Some(&at) && s.revoking.insert(id) {
                out.push(id);
            }
        }
        out
    }

    /// The revoke of `ids` was not applied (lost in a leader change, timed out): the leases
    /// that still exist are due again at once.
    pub fn revoke_failed(&self, ids: &[i64]) {
        let mut s = self.lock();
        let now = Instant::now();
        for id in ids {
            if s.revoking.remove(id) && s.leases.contains_key(id) && s.leading.is_some() {
                s.start(*id, now);
            }
        }
    }
}

/// Returned when a question only the leader answers reaches a member that does not lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLeading;

impl State {
    fn clear_expiries(&mut self) {
        self.expiry.clear();
        self.heap.clear();
        self.revoking.clear();
    }

    fn start(&mut self, id: i64, at: Instant) {
        self.expiry.insert(id, at);
        self.heap.push(Reverse((at, id)));
    }
}

/// Longer than any lease is kept alive for, short enough that `Instant` arithmetic with it
/// never overflows.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A TTL in seconds as a duration; absurd TTLs (up to etcd's maximum of 9e9 s) saturate
/// at [`FAR`].
fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64).min(FAR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_leader_renews_and_expires() {
        let l = Lessor::new(1, Duration::ZERO, [(1, 10)]);
        assert_eq!(l.renew(1), Renewal::NotLeader);
        assert!(l.take_expired(Instant::now() + seconds(60), 10).is_empty());
        l.promote(3);
        assert_eq!(l.renew(1), Renewal::Renewed(10));
        assert_eq!(l.renew(2), Renewal::NotFound);
        let ttl = l.time_to_live(1).unwrap().unwrap();
        assert_eq!((ttl.granted, ttl.remaining >= 9), (10, true));
        l.follow(Some(3));
        assert_eq!(l.renew(1), Renewal::Renewed(10), "still leading in term 3");
        l.follow(Some(4));
        assert_eq!(l.time_to_live(1), Err(NotLeading));
        assert_eq!(l.ids(), vec![1]);
    }

    #[test]
    fn expired_leases_are_handed_out_once_and_again_after_a_failed_revoke() {
        let l = Lessor::new(1, Duration::ZERO, [(1, 1), (2, 1), (3, 100)]);
        l.promote(1);
        let later = Instant::now() + seconds(2);
        let mut due = l.take_expired(later, 10);
        due.sort();
        assert_eq!(due, vec![1, 2]);
        assert!(l.take_expired(later, 10).is_empty(), "revokes under way");
        assert_eq!(l.renew(1), Renewal::Expiring, "expired, revoke under way");
        l.revoked(1);
        l.revoke_failed(&[1, 2]);
        assert_eq!(l.take_expired(later, 10), vec![2]);
        assert_eq!(l.ids(), vec![2, 3]);
    }

    #[test]
    fn a_renewal_moves_the_expiry_and_a_new_leader_restarts_every_ttl() {
        let l = Lessor::new(1, Duration::ZERO, [(1, 5)]);
        l.promote(1);
        let in_six = Instant::now() + seconds(6);
        assert_eq!(l.take_expired(in_six, 10), vec![1]);
        l.revoke_failed(&[1]);
        // Leading again in a new term: the full TTL from now, nothing due in six seconds'
        // worth of the old schedule.
        l.follow(None);
        l.promote(2);
        assert!(l.take_expired(Instant::now() + seconds(4), 10).is_empty());
        assert_eq!(l.take_expired(in_six, 1), vec![1]);
    }

    #[test]
    fn take_expired_is_bounded() {
        let l = Lessor::new(1, Duration::ZERO, (1..=10).map(|id| (id, 1)));
        l.promote(1);
        let later = Instant::now() + seconds(2);
        assert_eq!(l.take_expired(later, 4).len(), 4);
        assert_eq!(l.take_expired(later, 4).len(), 4);
        assert_eq!(l.take_expired(later, 4).len(), 2);
    }
}
