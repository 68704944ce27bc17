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

#[derive(Default)]
pub struct Waiters {
    pending: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

impl Waiters {
    pub fn register(&self, id: u64) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        rx
    }

    /// Answers the caller waiting for `id`, if it still waits.
    pub fn answer(&self, id: u64, outcome: Outcome) {
        if let Some(tx) = self.lock().remove(&id) {
            let _ = tx.send(outcome);
        }
    }

    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep going.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}
