//! Leases under faults. A lease kept alive must not expire unless its keeper went a whole TTL
//! without a renewal getting through; a lease left alone must expire, once, not before its
//! TTL and not much after it. Times are nanoseconds on the run's clock.

use std::fmt;

const SEC: u64 = 1_000_000_000;

/// A keep-alive answered with a TTL above 0: the leader renewed the lease between `sent`
/// and `answered`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    pub sent: u64,
    pub answered: u64,
}

/// One kept lease's timeline.
#[derive(Clone, Debug, Default)]
pub struct KeptLease {
    pub id: i64,
    pub key: String,
    pub ttl_secs: i64,
    /// When its grant was sent: the lease's life starts after it.
    pub granted: u64,
    pub renewals: Vec<Renewal>,
    /// When an answer showed the lease gone (a keep-alive with TTL 0, its key absent, a
    /// TimeToLive of -1), with what showed it.
    pub gone: Vec<(u64, String)>,
}

impl KeptLease {
    /// The longest span between two renewals as the leader can have seen it: from the send
    /// of one renewal (or the grant) to the answer of the next, and from the last one to
    /// `until`.
    pub fn longest_gap(&self, until: u64) -> u64 {
        let mut longest = 0;
        let mut from = self.granted;
        for r in &self.renewals {
            if r.answered > until {
                break;
            }
            longest = longest.max(r.answered.saturating_sub(from));
            from = r.sent;
        }
        longest.max(until.saturating_sub(from))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnexpectedExpiry {
    pub id: i64,
    pub key: String,
    pub at: u64,
    pub how: String,
    pub longest_gap: u64,
    pub ttl_secs: i64,
}

impl fmt::Display for UnexpectedExpiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lease {:x} ({}) gone at {:.2}s ({}) while kept alive: longest gap between renewals {:.2}s, TTL {}s",
            self.id,
            self.key,
            self.at as f64 / 1e9,
            self.how,
            self.longest_gap as f64 / 1e9,
            self.ttl_secs
        )
    }
}

/// The kept lease's first sign of being gone, if the keeper never went a TTL without a
/// renewal before it.
pub fn check_kept(lease: &KeptLease) -> Option<UnexpectedExpiry> {
    let (at, how) = lease.gone.iter().min_by_key(|(at, _)| *at)?;
    let longest_gap = lease.longest_gap(*at);
    let ttl = lease.ttl_secs.max(0) as u64 * SEC;
    (longest_gap < ttl).then(|| UnexpectedExpiry {
        id: lease.id,
        key: lease.key.clone(),
        at: *at,
        how: how.clone(),
        longest_gap,
        ttl_secs: lease.ttl_secs,
    })
}

/// A lease granted and never renewed, watched until its key goes.
#[derive(Clone, Debug, Default)]
pub struct UnkeptLease {
    pub id: i64,
    pub key: String,
    pub ttl_secs: i64,
    pub grant_sent: u64,
    pub grant_answered: u64,
    /// Polls of its key, in the order they were sent.
    pub polls: Vec<Poll>,
    /// The raft term of the grant's answer.
    pub grant_term: u64,
    /// Delete events of its key in the final history.
    pub deletes: usize,
    /// A put of its key after its delete in the final history.
    pub put_after_delete: bool,
}

/// One read of an unkept lease's key. The read took effect somewhere between `sent` and
/// `answered`: a key found present proves the lease alive at `sent`, one found gone proves
/// it expired by `answered`, and nothing narrower (a read can wait seconds on a paused or
/// cut-off member).
#[derive(Clone, Copy, Debug, Default)]
pub struct Poll {
    pub sent: u64,
    pub answered: u64,
    /// The raft term the answer carried.
    pub term: u64,
    pub present: bool,
}

impl UnkeptLease {
    /// The answer of the first poll that found the key gone.
    pub fn gone_at(&self) -> Option<u64> {
        self.polls.iter().find(|p| !p.present).map(|p| p.answered)
    }

    /// The latest send time of a poll that still found the key.
    fn last_seen(&self) -> Option<u64> {
        self.polls
            .iter()
            .filter(|p| p.present)
            .map(|p| p.sent)
            .max()
    }

    /// The latest the lease may be gone by: its TTL after the grant, or after a leader
    /// change (a new leader restarts every lease's TTL plus an election timeout), whichever
    /// is later, plus `slack` for the expiry loop, the log and the poll. A change counts
    /// from the first poll that carried its term.
    pub fn deadline(&self, election: u64, slack: u64) -> u64 {
        let ttl = self.ttl_secs.max(0) as u64 * SEC;
        let mut deadline = self.grant_answered + ttl;
        let mut term = self.grant_term;
        for p in &self.polls {
            if p.term > term {
                term = p.term;
                deadline = deadline.max(p.answered + ttl + election);
            }
            if !p.present {
                break;
            }
        }
        deadline + slack
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpiryViolation {
    /// Gone before its TTL had run from the grant.
    Early { id: i64, at: u64, ttl_secs: i64 },
    /// Still there when a poll was sent after its deadline.
    Late { id: i64, at: u64, deadline: u64 },
    /// Still there at the end, past its deadline.
    Never { id: i64, deadline: u64, end: u64 },
    /// Deleted `deletes` times in the history (once is right), or put again after it.
    NotOnce {
        id: i64,
        deletes: usize,
        put_after: bool,
    },
}

impl fmt::Display for ExpiryViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |t: &u64| *t as f64 / 1e9;
        match self {
            ExpiryViolation::Early { id, at, ttl_secs } => write!(
                f,
                "lease {id:x} gone at {:.2}s, before its TTL of {ttl_secs}s ran out",
                s(at)
            ),
            ExpiryViolation::Late { id, at, deadline } => write!(
                f,
                "lease {id:x} expired late: still there at {:.2}s, due by {:.2}s",
                s(at),
                s(deadline)
            ),
            ExpiryViolation::Never { id, deadline, end } => write!(
                f,
                "lease {id:x} never expired: due by {:.2}s, still there at {:.2}s",
                s(deadline),
                s(end)
            ),
            ExpiryViolation::NotOnce {
                id,
                deletes,
                put_after,
            } => write!(
                f,
                "lease {id:x}'s key deleted {deletes} times{}",
                if *put_after {
                    ", and put again after"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Judges a lease nobody renewed. `end` is the last time its key was polled; a lease whose
/// deadline is past `end` and that is still there is too young to judge.
pub fn check_unkept(
    lease: &UnkeptLease,
    election: u64,
    slack: u64,
    end: u64,
) -> Vec<ExpiryViolation> {
    let mut out = Vec::new();
    let deadline = lease.deadline(election, slack);
    let ttl = lease.ttl_secs.max(0) as u64 * SEC;
    match lease.gone_at() {
        Some(at) if at < lease.grant_sent + ttl => out.push(ExpiryViolation::Early {
            id: lease.id,
            at,
            ttl_secs: lease.ttl_secs,
        }),
        Some(_) => {
            if let Some(at) = lease.last_seen().filter(|at| *at > deadline) {
                out.push(ExpiryViolation::Late {
                    id: lease.id,
                    at,
                    deadline,
                });
            }
        }
        None if end > deadline => out.push(ExpiryViolation::Never {
            id: lease.id,
            deadline,
            end,
        }),
        None => return out,
    }
    if lease.gone_at().is_some() && (lease.deletes != 1 || lease.put_after_delete) {
        out.push(ExpiryViolation::NotOnce {
            id: lease.id,
            deletes: lease.deletes,
            put_after: lease.put_after_delete,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renewals(every: u64, from: u64, to: u64) -> Vec<Renewal> {
        (from..to)
            .step_by(every as usize)
            .map(|t| Renewal {
                sent: t * SEC,
                answered: t * SEC + SEC / 10,
            })
            .collect()
    }

    fn kept(renewals: Vec<Renewal>, gone: &[u64]) -> KeptLease {
        KeptLease {
            id: 7,
            key: "chaos/lease/0".into(),
            ttl_secs: 6,
            granted: 0,
            renewals,
            gone: gone
                .iter()
                .map(|&t| (t * SEC, "key absent".into()))
                .collect(),
        }
    }

    #[test]
    fn a_lease_kept_alive_throughout_passes() {
        let l = kept(renewals(2, 1, 60), &[]);
        assert_eq!(check_kept(&l), None);
        assert!(l.longest_gap(59 * SEC) < 3 * SEC);
    }

    #[test]
    fn an_expiry_while_kept_alive_is_flagged() {
        let l = kept(renewals(2, 1, 60), &[30]);
        let v = check_kept(&l).expect("flagged");
        assert_eq!(v.at, 30 * SEC);
        assert!(v.longest_gap < 3 * SEC, "{v}");
    }

    #[test]
    fn an_expiry_after_a_keeper_went_a_whole_ttl_unheard_is_not_flagged() {
        // Renewals stop at 19 s and resume at 29 s: ten seconds, more than the TTL.
        let mut r = renewals(2, 1, 20);
        r.extend(renewals(2, 29, 40));
        assert_eq!(check_kept(&kept(r.clone(), &[33])), None);
        // The gap counts from the last renewal's send to the next one's answer.
        let l = kept(r, &[]);
        assert_eq!(l.longest_gap(40 * SEC), 29 * SEC + SEC / 10 - 19 * SEC);
        // Gone before the keeper fell silent: flagged all the same.
        let mut early = renewals(2, 1, 20);
        early.extend(renewals(2, 29, 40));
        assert!(check_kept(&kept(early, &[15])).is_some());
    }

    #[test]
    fn gone_while_the_keeper_is_still_silent_counts_the_silence() {
        // Last renewal sent at 19 s; the key is found gone at 27 s (8 s > TTL): legitimate.
        assert_eq!(check_kept(&kept(renewals(2, 1, 20), &[27])), None);
        // Found gone at 22 s, three seconds after the last renewal: flagged.
        assert!(check_kept(&kept(renewals(2, 1, 20), &[22])).is_some());
    }

    fn unkept(polls: &[(f64, u64, bool)]) -> UnkeptLease {
        UnkeptLease {
            id: 9,
            key: "chaos/unkept/0".into(),
            ttl_secs: 3,
            grant_sent: 0,
            grant_answered: SEC / 10,
            grant_term: 2,
            polls: polls
                .iter()
                .map(|&(t, term, present)| Poll {
                    sent: (t * 1e9) as u64 - SEC / 5,
                    answered: (t * 1e9) as u64,
                    term,
                    present,
                })
                .collect(),
            deletes: 1,
            put_after_delete: false,
        }
    }

    const ELECTION: u64 = SEC;
    const SLACK: u64 = 2 * SEC;

    #[test]
    fn a_lease_left_alone_that_expires_on_time_once_passes() {
        let l = unkept(&[(1.0, 2, true), (2.9, 2, true), (3.5, 2, false)]);
        assert_eq!(check_unkept(&l, ELECTION, SLACK, 10 * SEC), vec![]);
    }

    #[test]
    fn a_late_expiry_is_flagged_unless_a_leader_change_explains_it() {
        // Due by 0.1 + 3 + 2 = 5.1 s; still there at a poll sent at 5.8 s.
        let late = unkept(&[(1.0, 2, true), (6.0, 2, true), (7.0, 2, false)]);
        assert!(matches!(
            check_unkept(&late, ELECTION, SLACK, 10 * SEC)[..],
            [ExpiryViolation::Late { .. }]
        ));
        // A new term seen at 2 s restarts the TTL: due by 2 + 3 + 1 + 2 = 8 s.
        let explained = unkept(&[(1.0, 2, true), (2.0, 3, true), (6.0, 3, false)]);
        assert_eq!(check_unkept(&explained, ELECTION, SLACK, 10 * SEC), vec![]);
    }

    #[test]
    fn a_poll_answered_after_the_deadline_does_not_make_an_expiry_late() {
        // Sent at 4.8 s, before the 5.1 s deadline, answered "gone" at 5.0 s: on time.
        let mut l = unkept(&[(1.0, 2, true), (4.8, 2, true), (5.0, 2, false)]);
        l.polls[2].answered = 7 * SEC;
        assert_eq!(check_unkept(&l, ELECTION, SLACK, 10 * SEC), vec![]);
    }

    #[test]
    fn an_early_expiry_is_flagged() {
        let l = unkept(&[(1.0, 2, true), (2.0, 2, false)]);
        assert!(matches!(
            check_unkept(&l, ELECTION, SLACK, 10 * SEC)[..],
            [ExpiryViolation::Early { .. }]
        ));
    }

    #[test]
    fn a_lease_that_never_expires_is_flagged_once_past_due() {
        let l = unkept(&[(1.0, 2, true), (9.0, 2, true)]);
        assert!(matches!(
            check_unkept(&l, ELECTION, SLACK, 9 * SEC)[..],
            [ExpiryViolation::Never { .. }]
        ));
        // Not yet due: not judged.
        assert_eq!(check_unkept(&l, ELECTION, SLACK, 4 * SEC), vec![]);
    }

    #[test]
    fn an_expiry_that_is_not_exactly_one_delete_is_flagged() {
        let mut twice = unkept(&[(3.5, 2, false)]);
        twice.deletes = 2;
        assert_eq!(
            check_unkept(&twice, ELECTION, SLACK, 10 * SEC),
            vec![ExpiryViolation::NotOnce {
                id: 9,
                deletes: 2,
                put_after: false
            }]
        );
        let mut back = unkept(&[(3.5, 2, false)]);
        back.put_after_delete = true;
        assert_eq!(check_unkept(&back, ELECTION, SLACK, 10 * SEC).len(), 1);
    }
}
