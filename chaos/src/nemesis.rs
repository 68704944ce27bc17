//! The faults, one at a time on a schedule drawn from the seed: a quiet spell, a fault held
//! for a while, its repair, and a wait until the cluster has a leader again.

use std::fmt;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::workload::Shared;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// kill -9 of a random member, restarted on its data.
    Kill,
    KillLeader,
    /// kill -9 of every member at once, all restarted: acknowledged writes must survive it.
    KillAll,
    /// SIGSTOP, later SIGCONT.
    PauseLeader,
    PauseFollower,
    /// Every link between one member and the others cut, both ways.
    Isolate,
    IsolateLeader,
}

pub const ALL: [Fault; 7] = [
    Fault::Kill,
    Fault::KillLeader,
    Fault::KillAll,
    Fault::PauseLeader,
    Fault::PauseFollower,
    Fault::Isolate,
    Fault::IsolateLeader,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::KillLeader => "kill-leader",
            Fault::KillAll => "kill-all",
            Fault::PauseLeader => "pause-leader",
            Fault::PauseFollower => "pause-follower",
            Fault::Isolate => "isolate",
            Fault::IsolateLeader => "isolate-leader",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Fault> {
        ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
            anyhow::anyhow!("unknown fault {s:?}; faults: {}", names.join(", "))
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault as it happened, in the history's clock (nanoseconds since the start).
#[derive(Clone, Debug)]
pub struct Window {
    pub fault: Fault,
    pub member: String,
    pub start: u64,
    /// When the cluster had a leader again after the repair.
    pub recovered: u64,
}

/// How long faults last and how long the cluster is left alone between them.
pub struct Timing {
    pub quiet: (Duration, Duration),
    pub hold: (Duration, Duration),
    pub recovery_limit: Duration,
}

fn between(rng: &mut fastrand::Rng, (lo, hi): (Duration, Duration)) -> Duration {
    let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
    Duration::from_millis(if hi > lo { rng.u64(lo..=hi) } else { lo })
}

/// Runs faults from `faults` until `until`, each repaired before the next, adding each to
/// `windows` once the cluster is ready again. Fails when the cluster does not recover.
pub async fn run(
    cluster: &mut Cluster,
    shared: &Shared,
    faults: &[Fault],
    timing: &Timing,
    seed: u64,
    until: Instant,
    windows: &mut Vec<Window>,
) -> anyhow::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    loop {
        let quiet = between(&mut rng, timing.quiet);
        let fault = faults[rng.usize(0..faults.len())];
        let hold = between(&mut rng, timing.hold);
        let pick = rng.usize(0..cluster.size());
        if Instant::now() + quiet + hold >= until {
            break;
        }
        tokio::time::sleep(quiet).await;
        let leader = cluster.leader().await;
        let target = match fault {
            Fault::Kill | Fault::KillAll | Fault::Isolate => Some(pick),
            Fault::KillLeader | Fault::PauseLeader | Fault::IsolateLeader => leader,
            Fault::PauseFollower => {
                leader.map(|l| (l + 1 + pick % (cluster.size() - 1)) % cluster.size())
            }
        };
        let Some(target) = target else {
            // No agreed leader right now: leave the cluster be this round.
            continue;
        };
        let start = shared.now();
        match fault {
            Fault::Kill | Fault::KillLeader => cluster.kill9(target),
            Fault::KillAll => (0..cluster.size()).for_each(|i| cluster.kill9(i)),
            Fault::PauseLeader | Fault::PauseFollower => cluster.pause(target),
            Fault::Isolate | Fault::IsolateLeader => cluster.isolate(target).await?,
        }
        tokio::time::sleep(hold).await;
        match fault {
            Fault::Kill | Fault::KillLeader => cluster.restart(target)?,
            Fault::KillAll => {
                for i in 0..cluster.size() {
                    cluster.restart(i)?;
                }
            }
            Fault::PauseLeader | Fault::PauseFollower => cluster.resume(target),
            Fault::Isolate | Fault::IsolateLeader => cluster.heal().await?,
        }
        cluster
            .wait_ready(timing.recovery_limit)
            .await
            .map_err(|e| {
                anyhow::anyhow!("after {fault} of {}: {e}", cluster.members[target].name)
            })?;
        let w = Window {
            fault,
            member: match fault {
                Fault::KillAll => "all".to_string(),
                _ => cluster.members[target].name.clone(),
            },
            start,
            recovered: shared.now(),
        };
        println!(
            "[{:>7.1}s] {fault} {}: held {:.1}s, ready again {:.1}s after the start",
            w.start as f64 / 1e9,
            w.member,
            hold.as_secs_f64(),
            (w.recovered - w.start) as f64 / 1e9
        );
        windows.push(w);
    }
    Ok(())
}
