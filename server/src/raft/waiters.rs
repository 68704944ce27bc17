//! Callers waiting for their proposal to be applied, keyed by request id.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::errors::EtcdError;

/// What applying an entry answers to the member that proposed it.
#[derive(Debug)]
pub enum Answer {
    Kv(mvcc::CommandResponse),
    Published,
    /// The alarms an alarm change raised or cleared.
    Alarms(Vec<mvcc::Alarm>),
    /// An auth change applied; `Authenticate`'s token.
    Auth(Option<String>),
    /// A membership change took effect.
    Members,
}

pub type Outcome = Result<Answer, EtcdError>;

/// A caller and the term its proposal went out in (`UNSENT` until the raft loop sends it).
struct Waiter {
    reply: oneshot::Sender<Outcome>,
    term: u64,
}

const UNSENT: u64 = u64::MAX;

#[derive(Default)]
pub struct Waiters {
    pending: Mutex<HashMap<u64, Waiter>>,
}

impl Waiters {
    pub fn register(&self, id: u64) -> oneshot::Receiver<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.lock().insert(
            id,
            Waiter {
                reply,
                term: UNSENT,
            },
        );
        rx
    }

    /// Records the term each proposal was handed to raft in.
    pub fn sent(&self, proposals: &[(u64, u64)]) {
        let mut pending = self.lock();
        for (id, term) in proposals {
            if let Some(w) = pending.get_mut(id) {
                w.term = *term;
            }
        }
    }

    /// A leader of `term` has committed its first entry, and everything before it is applied:
    /// a proposal sent in an earlier term that has not been answered by now never made it
    /// into the log (it went to a leader that lost it), so its caller learns at once instead
    /// of at its time-out.
    pub fn fail_sent_before(&self, term: u64) {
        let mut pending = self.lock();
        let lost: Vec<u64> = pending
            .iter()
            .filter(|(_, w)| w.term < term)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(w) = pending.remove(&id) {
                let _ = w.reply.send(Err(EtcdError::LeaderChanged));
            }
        }
    }

    /// Answers the caller waiting for `id`, if it still waits.
    pub fn answer(&self, id: u64, outcome: Outcome) {
        if let Some(w) = self.lock().remove(&id) {
            let _ = w.reply.send(outcome);
        }
    }

    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep going.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_proposals_sent_in_earlier_terms_fail_when_a_new_term_commits() {
        let w = Waiters::default();
        let mut old = w.register(1);
        let mut current = w.register(2);
        let mut unsent = w.register(3);
        w.sent(&[(1, 4), (2, 5)]);
        w.fail_sent_before(5);
        assert!(matches!(old.try_recv(), Ok(Err(EtcdError::LeaderChanged))));
        assert!(
            current.try_recv().is_err(),
            "sent in the new term: it may still commit"
        );
        assert!(
            unsent.try_recv().is_err(),
            "not sent yet: it goes to the new leader"
        );
    }
}
