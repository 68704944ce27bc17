//! ReadIndex bookkeeping (§6.4 of the Raft thesis).
//!
//! Requests that arrive during one turn of the application's loop (between two
//! [`crate::RawNode::ready`] calls) are collected into a batch; the batch
//! becomes one *round*: the leader records its commit index and sends one
//! heartbeat tagged with the round number. When a majority echoes the tag,
//! that round and every earlier round are answered.

use std::collections::{BTreeSet, VecDeque};

/// A read request: `from` is the member that asked (the leader itself for
/// local requests).
#[derive(Clone, Debug)]
pub(crate) struct ReadRequest {
    pub(crate) from: u64,
    pub(crate) ctx: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct ReadRound {
    pub(crate) id: u64,
    pub(crate) index: u64,
    pub(crate) acks: BTreeSet<u64>,
    pub(crate) requests: Vec<ReadRequest>,
}

#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    /// Requests waiting for the next round.
    pub(crate) batch: Vec<ReadRequest>,
    /// Rounds sent, oldest first.
    pub(crate) rounds: VecDeque<ReadRound>,
    next_round: u64,
}

impl ReadOnly {
    pub(crate) fn reset(&mut self) {
        self.batch.clear();
        self.rounds.clear();
    }

    /// Turns the batch into a round at commit index `index` acknowledged by
    /// `self_id`; returns the round's tag.
    pub(crate) fn start_round(&mut self, index: u64, self_id: u64) -> Vec<u8> {
        self.next_round += 1;
        let id = self.next_round;
        self.rounds.push_back(ReadRound {
            id,
            index,
            acks: BTreeSet::from([self_id]),
            requests: std::mem::take(&mut self.batch),
        });
        encode_tag(id)
    }

    /// Records that `from` echoed `ctx`; returns the round's id if it exists.
    pub(crate) fn recv_ack(&mut self, from: u64, ctx: &[u8]) -> Option<&ReadRound> {
        let id = decode_tag(ctx)?;
        let round = self.rounds.iter_mut().find(|r| r.id == id)?;
        round.acks.insert(from);
        Some(round)
    }

    /// Removes and returns every round up to and including `id`.
    pub(crate) fn advance(&mut self, id: u64) -> Vec<ReadRound> {
        let mut done = Vec::new();
        while self.rounds.front().is_some_and(|r| r.id <= id) {
            done.extend(self.rounds.pop_front());
        }
        done
    }
}

fn encode_tag(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

fn decode_tag(ctx: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(ctx.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_round_acks_release_earlier_rounds() {
        let mut ro = ReadOnly::default();
        ro.batch.push(ReadRequest {
            from: 1,
            ctx: b"a".to_vec(),
        });
        let t1 = ro.start_round(5, 1);
        ro.batch.push(ReadRequest {
            from: 2,
            ctx: b"b".to_vec(),
        });
        let t2 = ro.start_round(6, 1);
        assert_eq!(ro.recv_ack(2, &t2).unwrap().acks.len(), 2);
        let done = ro.advance(2);
        assert_eq!(done.len(), 2);
        assert!(ro.recv_ack(3, &t1).is_none());
        assert!(ro.recv_ack(3, b"junk").is_none());
    }
}
