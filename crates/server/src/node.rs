//! The write path: commands in, applied responses out.
//!
//! Every write becomes an `mvcc::Command`, is given the next log index and applied by one
//! apply thread, in order. The thread drains every proposal that arrived while the previous
//! batch was being written and applies them in one LMDB transaction: one fsync acknowledges
//! the whole batch (group commit). A caller is answered only after that commit, so an
//! acknowledged write survives `kill -9`.
//!
//! In a single-member cluster the index is simply the next one after the store's applied
//! index. With raft the same commands arrive as committed log entries instead; the apply
//! side does not change.

use std::thread;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::errors::EtcdError;
use crate::metrics::Metrics;
use std::sync::Arc;

/// Most commands applied in one LMDB transaction.
const MAX_BATCH: usize = 4096;
/// Proposals waiting for the apply thread before callers wait for room.
const QUEUE_DEPTH: usize = 16 * 1024;

type Reply = oneshot::Sender<Result<mvcc::CommandResponse, EtcdError>>;

struct Proposal {
    cmd: mvcc::Command,
    reply: Reply,
}

/// Handle for proposing commands; cheap to clone.
#[derive(Clone)]
pub struct Node {
    proposals: mpsc::Sender<Proposal>,
}

impl Node {
    /// Starts the apply thread over `store`.
    pub fn start(store: Arc<mvcc::Store>, metrics: Arc<Metrics>) -> std::io::Result<Node> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        thread::Builder::new()
            .name("etcr-apply".into())
            .spawn(move || apply_loop(store, rx, metrics))?;
        Ok(Node { proposals: tx })
    }

    /// Proposes `cmd` and waits until it has been applied durably.
    pub async fn propose(&self, cmd: mvcc::Command) -> Result<mvcc::CommandResponse, EtcdError> {
        let (reply, answer) = oneshot::channel();
        self.proposals
            .send(Proposal { cmd, reply })
            .await
            .map_err(|_| EtcdError::Stopped)?;
        answer.await.map_err(|_| EtcdError::Stopped)?
    }
}

fn apply_loop(store: Arc<mvcc::Store>, mut rx: mpsc::Receiver<Proposal>, metrics: Arc<Metrics>) {
    let mut next_index = store.applied_index() + 1;
    let mut batch: Vec<(u64, mvcc::Command)> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut push = |p: Proposal, batch: &mut Vec<(u64, mvcc::Command)>| {
            batch.push((next_index, p.cmd));
            replies.push(p.reply);
            next_index += 1;
        };
        push(first, &mut batch);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => push(p, &mut batch),
                Err(_) => break,
            }
        }
        metrics.observe_batch(batch.len());
        match store.apply(&batch) {
            Ok(applied) => {
                for (a, reply) in applied.into_iter().zip(replies.drain(..)) {
                    let answer = match a.outcome {
                        mvcc::Outcome::Done { response, .. } => {
                            metrics.proposal_applied();
                            Ok(response)
                        }
                        mvcc::Outcome::Failed(e) => {
                            metrics.proposal_failed();
                            Err(EtcdError::from(e))
                        }
                        mvcc::Outcome::Skipped => {
                            warn!(index = a.index, "command skipped as already applied");
                            Err(EtcdError::Internal("command was already applied".into()))
                        }
                    };
                    // The caller may have gone away (timeout, cancelled); the write stands.
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                // The transaction was rolled back: nothing of this batch is applied, so its
                // indexes are free again.
                error!(error = %e, "applying a batch failed; its requests get an error");
                next_index -= batch.len() as u64;
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(EtcdError::Internal(e.to_string())));
                }
            }
        }
        batch.clear();
    }
}
