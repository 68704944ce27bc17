//! The peer transport as the raft loop sees it, and the task that feeds it incoming traffic.

use crossbeam_channel::Sender;
use std::sync::Arc;

use transport::{Incoming, IncomingReceiver, Transport};

use super::driver::Input;
use super::snapshots::Snapshots;

/// Whichever transport `--peer-transport` chose.
pub type PeerTransport = Arc<dyn Transport<raft_core::Message>>;

/// Forwards peer messages to the raft loop; snapshots are first written to disk.
pub fn pump_incoming(
    mut incoming: IncomingReceiver<raft_core::Message>,
    inputs: Sender<Input>,
    snapshots: Snapshots,
) {
    tokio::spawn(async move {
        while let Some(item) = incoming.recv().await {
            match item {
                Incoming::Message { from, msg } => {
                    // The transport authenticated `from`; a message claiming another sender is
                    // either a bug or an attack, and raft must not see it.
                    if msg.from != from {
                        tracing::warn!(
                            from,
                            claimed = msg.from,
                            "dropping a peer message with a forged sender"
                        );
                        continue;
                    }
                    if inputs.send(Input::Peer(msg)).is_err() {
                        return;
                    }
                }
                Incoming::Snapshot(s) => {
                    let snapshots = snapshots.clone();
                    tokio::spawn(async move { snapshots.receive(s).await });
                }
            }
        }
    });
}
