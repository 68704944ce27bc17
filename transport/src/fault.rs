//! Fault injection over any [`Transport`]: drops, delays, partitions and one-way cuts, changeable at
//! run time. Used by server and chaos tests.
//!
//! Rules are applied on the sending side. Share one [`FaultRules`] among the wrappers of every member
//! of a test cluster and every rule (`partition`, `cut`) then holds for the whole cluster.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use crate::{Error, MemberId, Message, PeerStats, Result, SnapshotSource, Transport};

/// Messages waiting out an injected delay, per wrapper; more are dropped (and counted).
const DELAY_QUEUE: usize = 65_536;

#[derive(Debug, Default)]
struct Rules {
    drop_rate: f64,
    delay: Duration,
    groups: Vec<HashSet<MemberId>>,
    cuts: HashSet<(MemberId, MemberId)>,
    rng: u64,
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered after this delay (zero: at once).
    Deliver(Duration),
    /// Dropped.
    Drop,
}

/// The fault rules, shared by the wrappers of a test cluster. All methods take effect at once.
#[derive(Debug)]
pub struct FaultRules {
    rules: Mutex<Rules>,
}

impl FaultRules {
    /// No faults; `seed` drives the random drops deterministically.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            rules: Mutex::new(Rules {
                rng: seed | 1,
                ..Rules::default()
            }),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Rules) -> T) -> T {
        f(&mut self.rules.lock().expect("fault rules poisoned"))
    }

    /// Drops each message with probability `p` (0.0..=1.0).
    pub fn set_drop_rate(&self, p: f64) {
        self.with(|r| r.drop_rate = p.clamp(0.0, 1.0));
    }

    /// Delays every message by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.with(|r| r.delay = d);
    }

    /// Splits the cluster: members in different groups cannot reach each other. Members in no group
    /// are unaffected. Replaces any previous partition.
    pub fn partition<G, I>(&self, groups: G)
    where
        G: IntoIterator<Item = I>,
        I: IntoIterator<Item = MemberId>,
    {
        let groups = groups
            .into_iter()
            .map(|g| g.into_iter().collect())
            .collect();
        self.with(|r| r.groups = groups);
    }

    /// Isolates `id` from every other member, keeping any one-way cuts.
    pub fn isolate(&self, id: MemberId, all: &[MemberId]) {
        let rest: Vec<MemberId> = all.iter().copied().filter(|m| *m != id).collect();
        self.partition([vec![id], rest]);
    }

    /// Cuts the link from `from` to `to` in that direction only.
    pub fn cut(&self, from: MemberId, to: MemberId) {
        self.with(|r| r.cuts.insert((from, to)));
    }

    /// Restores a link cut by [`Self::cut`].
    pub fn restore(&self, from: MemberId, to: MemberId) {
        self.with(|r| r.cuts.remove(&(from, to)));
    }

    /// Removes partitions and cuts (drop rate and delay stay).
    pub fn heal(&self) {
        self.with(|r| {
            r.groups.clear();
            r.cuts.clear();
        });
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.with(|r| {
            r.groups.clear();
            r.cuts.clear();
            r.drop_rate = 0.0;
            r.delay = Duration::ZERO;
        });
    }

    /// Whether `from` can reach `to` under the partitions and cuts (ignoring random drops).
    pub fn connected(&self, from: MemberId, to: MemberId) -> bool {
        self.with(|r| Self::linked(r, from, to))
    }

    fn linked(r: &Rules, from: MemberId, to: MemberId) -> bool {
        if r.cuts.contains(&(from, to)) {
            return false;
        }
        let group_of = |m: MemberId| r.groups.iter().position(|g| g.contains(&m));
        match (group_of(from), group_of(to)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    /// Decides the fate of one message from `from` to `to`.
    pub fn fate(&self, from: MemberId, to: MemberId) -> Fate {
        self.with(|r| {
            if !Self::linked(r, from, to) {
                return Fate::Drop;
            }
            if r.drop_rate > 0.0 {
                // xorshift64*: deterministic for a seed, good enough for loss decisions.
                r.rng ^= r.rng >> 12;
                r.rng ^= r.rng << 25;
                r.rng ^= r.rng >> 27;
                let x = r.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
                if ((x >> 11) as f64 / (1u64 << 53) as f64) < r.drop_rate {
                    return Fate::Drop;
                }
            }
            Fate::Deliver(r.delay)
        })
    }
}

/// A [`Transport`] that applies [`FaultRules`] before handing messages to the wrapped transport.
pub struct FaultyTransport<M> {
    inner: Arc<dyn Transport<M>>,
    rules: Arc<FaultRules>,
    delayed: mpsc::Sender<(Instant, MemberId, M)>,
    delayer: Mutex<Option<JoinHandle<()>>>,
    injected_drops: Mutex<HashMap<MemberId, u64>>,
}

impl<M: Message> FaultyTransport<M> {
    /// Wraps `inner` (must run inside a tokio runtime: a task delivers delayed messages).
    pub fn new(inner: Arc<dyn Transport<M>>, rules: Arc<FaultRules>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Instant, MemberId, M)>(DELAY_QUEUE);
        let target = inner.clone();
        let delayer = tokio::spawn(async move {
            while let Some((at, to, msg)) = rx.recv().await {
                tokio::time::sleep_until(at).await;
                target.send(to, msg);
            }
        });
        Self {
            inner,
            rules,
            delayed: tx,
            delayer: Mutex::new(Some(delayer)),
            injected_drops: Mutex::new(HashMap::new()),
        }
    }

    /// The rules (shared).
    pub fn rules(&self) -> &Arc<FaultRules> {
        &self.rules
    }

    fn count_drop(&self, to: MemberId) {
        *self
            .injected_drops
            .lock()
            .expect("drops poisoned")
            .entry(to)
            .or_default() += 1;
    }
}

impl<M> Drop for FaultyTransport<M> {
    fn drop(&mut self) {
        if let Ok(mut d) = self.delayer.lock() {
            if let Some(h) = d.take() {
                h.abort();
            }
        }
    }
}

#[async_trait]
impl<M: Message> Transport<M> for FaultyTransport<M> {
    fn local_id(&self) -> MemberId {
        self.inner.local_id()
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn send(&self, to: MemberId, msg: M) {
        match self.rules.fate(self.inner.local_id(), to) {
            Fate::Drop => {
                debug!(to, "fault injection dropped a message");
                self.count_drop(to);
            }
            Fate::Deliver(d) if d.is_zero() => self.inner.send(to, msg),
            Fate::Deliver(d) => {
                if self
                    .delayed
                    .try_send((Instant::now() + d, to, msg))
                    .is_err()
                {
                    self.count_drop(to);
                }
            }
        }
    }

    async fn send_snapshot(&self, to: MemberId, meta: M, data: SnapshotSource) -> Result<u64> {
        match self.rules.fate(self.inner.local_id(), to) {
            Fate::Drop => {
                self.count_drop(to);
                Err(Error::Injected)
            }
            Fate::Deliver(d) => {
                tokio::time::sleep(d).await;
                self.inner.send_snapshot(to, meta, data).await
            }
        }
    }

    fn add_peer(&self, id: MemberId, addr: SocketAddr) {
        self.inner.add_peer(id, addr);
    }

    fn remove_peer(&self, id: MemberId) {
        self.inner.remove_peer(id);
    }

    fn stats(&self) -> Vec<PeerStats> {
        let drops = self.injected_drops.lock().expect("drops poisoned");
        let mut stats = self.inner.stats();
        for s in &mut stats {
            s.dropped += drops.get(&s.id).copied().unwrap_or(0);
        }
        stats
    }

    async fn shutdown(&self) {
        let delayer = self.delayer.lock().expect("delayer poisoned").take();
        if let Some(h) = delayer {
            h.abort();
            let _ = h.await;
        }
        self.inner.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_cuts() {
        let r = FaultRules::new(7);
        assert!(r.connected(1, 2));
        r.partition([vec![1, 2], vec![3]]);
        assert!(r.connected(1, 2) && !r.connected(1, 3) && !r.connected(3, 2));
        assert!(r.connected(4, 3), "members in no group are unaffected");
        r.heal();
        r.cut(1, 2);
        assert!(!r.connected(1, 2) && r.connected(2, 1));
        r.restore(1, 2);
        assert!(r.connected(1, 2));
        r.isolate(2, &[1, 2, 3]);
        assert!(!r.connected(1, 2) && r.connected(1, 3));
    }

    #[test]
    fn drop_rate_is_roughly_honoured() {
        let r = FaultRules::new(42);
        r.set_drop_rate(0.25);
        let dropped = (0..10_000).filter(|_| r.fate(1, 2) == Fate::Drop).count();
        assert!((2000..3000).contains(&dropped), "dropped {dropped}");
        r.set_drop_rate(0.0);
        r.set_delay(Duration::from_millis(5));
        assert_eq!(r.fate(1, 2), Fate::Deliver(Duration::from_millis(5)));
    }
}
