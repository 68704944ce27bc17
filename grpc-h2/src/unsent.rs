//! Response bytes a connection holds because its client's window has no room for them.
//!
//! A client that never opens its window (or never reads) would otherwise make the server
//! hold every response it asks for. Past the limit the connection starts no new call until
//! the client takes what it was sent; calls wait for that in a queue of bounded length, and
//! calls beyond the queue fail with RESOURCE_EXHAUSTED. Calls already running finish, so a
//! well-behaved client with several large responses in flight gets them all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::status::Status;

/// Calls a connection may have waiting to start.
const MAX_WAITING: usize = 1000;

pub(crate) struct Unsent {
    held: AtomicUsize,
    waiting: AtomicUsize,
    max: usize,
    drained: Notify,
}

impl Unsent {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Unsent {
            held: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            max,
            drained: Notify::new(),
        })
    }

    fn has_room(&self) -> bool {
        self.held.load(Ordering::Relaxed) < self.max
    }

    /// Resolves once a new call may start.
    pub(crate) async fn admit(&self) -> Result<(), Status> {
        if self.has_room() {
            return Ok(());
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Status::new(
                Status::RESOURCE_EXHAUSTED,
                "grpc-h2: this connection's client leaves too many responses unread; retry",
            ));
        }
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _waiting = Waiting(&self.waiting);
        loop {
            // Created before the check, so a release in between still wakes it.
            let drained = self.drained.notified();
            if self.has_room() {
                return Ok(());
            }
            drained.await;
        }
    }

    /// Counts `n` bytes until the returned guard drops.
    pub(crate) fn hold(self: &Arc<Self>, n: usize) -> Held {
        self.held.fetch_add(n, Ordering::Relaxed);
        Held {
            unsent: self.clone(),
            n,
        }
    }
}

pub(crate) struct Held {
    unsent: Arc<Unsent>,
    n: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        let before = self.unsent.held.fetch_sub(self.n, Ordering::Relaxed);
        if before >= self.unsent.max && before - self.n < self.unsent.max {
            self.unsent.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn calls_wait_while_too_much_is_unsent_and_start_once_it_drains() {
        let unsent = Unsent::new(100);
        assert!(unsent.admit().now_or_never().is_some());
        let held = unsent.hold(150);
        let mut waiting = Box::pin(unsent.admit());
        assert!(waiting.as_mut().now_or_never().is_none());
        drop(held);
        assert_eq!(waiting.await, Ok(()));
    }

    #[tokio::test]
    async fn the_queue_of_waiting_calls_is_bounded() {
        let unsent = Unsent::new(1);
        let _held = unsent.hold(1);
        let mut queue: Vec<_> = (0..MAX_WAITING).map(|_| Box::pin(unsent.admit())).collect();
        for w in &mut queue {
            assert!(w.as_mut().now_or_never().is_none());
        }
        let refused = unsent.admit().now_or_never().expect("refused at once");
        assert_eq!(refused.unwrap_err().code, Status::RESOURCE_EXHAUSTED);
        drop(queue);
        assert!(Box::pin(unsent.admit()).as_mut().now_or_never().is_none());
    }
}
