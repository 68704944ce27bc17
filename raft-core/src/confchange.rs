//! Membership changes, one member at a time.
//!
//! # Design
//!
//! etcr changes membership one member at a time (the single-server changes of
//! chapter 4 of Ongaro's Raft thesis) and a member uses the **latest
//! membership in its log, whether or not that entry is committed**. This is
//! the thesis' rule, not etcd's "take effect when applied" rule: with
//! apply-time membership a member that has not yet applied change *n* can still
//! count votes under membership *n − 1* while the leader already commits under
//! *n + 1*, and two memberships that differ by two members can have disjoint
//! majorities.
//!
//! # Safety argument
//!
//! 1. Any two memberships that differ by one voter have overlapping majorities.
//! 2. A leader appends a membership change only when (a) no membership change
//!    in its log is uncommitted and (b) it has committed an entry of its current
//!    term. (a) means that at any moment at most two adjacent memberships are in
//!    use by members that could still win an election: a member whose log lacks
//!    committed change *n* cannot be elected, because a majority of membership
//!    *n* holds that entry, that majority overlaps every majority of *n − 1* and
//!    *n + 1*, and the up-to-date check refuses candidates missing a committed
//!    entry. (b) closes the known gap where a leader of a new term could append
//!    a change on top of an uncommitted change from an earlier term that a
//!    competing leader has already overwritten.
//! 3. When a follower truncates its log, the membership falls back to the
//!    latest change still in the log (or the snapshot's).
//! 4. A leader removed from the membership keeps replicating without counting
//!    itself until the removal is committed, then steps down.
//!
//! Each membership-change entry carries the complete resulting [`ConfState`],
//! so a member that receives the log from index 1, or from a snapshot, always
//! knows the exact membership without replaying history it never saw.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::ConfState;

/// The kind of a [`ConfChange`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChangeType {
    /// Add a voter, or promote a learner to voter.
    AddNode,
    /// Add a learner (a member that receives the log but does not vote).
    AddLearner,
    /// Remove a voter or learner.
    RemoveNode,
}

/// A request to change membership by one member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConfChange {
    /// What to do.
    pub change_type: ConfChangeType,
    /// The member it concerns.
    pub node_id: u64,
    /// Opaque application context (for example the member's address).
    pub context: Vec<u8>,
}

const TAG_ADD_NODE: u8 = 1;
const TAG_ADD_LEARNER: u8 = 2;
const TAG_REMOVE_NODE: u8 = 3;

impl ConfChange {
    /// Encodes the change as proposed, without its resulting membership. The
    /// leader re-encodes it with the result when it appends the entry.
    pub fn encode(&self) -> Vec<u8> {
        encode(self, None)
    }

    /// The membership after applying this change to `cs`.
    pub fn apply_to(&self, cs: &ConfState) -> Result<ConfState> {
        let mut out = cs.clone();
        let id = self.node_id;
        if id == 0 {
            return Err(Error::ConfChangeInvalid("node id 0".into()));
        }
        match self.change_type {
            ConfChangeType::AddNode => {
                if cs.is_voter(id) {
                    return Err(Error::ConfChangeInvalid(format!("{id} is already a voter")));
                }
                out.learners.retain(|&l| l != id);
                insert_sorted(&mut out.voters, id);
            }
            ConfChangeType::AddLearner => {
                if cs.contains(id) {
                    return Err(Error::ConfChangeInvalid(format!(
                        "{id} is already a member"
                    )));
                }
                insert_sorted(&mut out.learners, id);
            }
            ConfChangeType::RemoveNode => {
                if !cs.contains(id) {
                    return Err(Error::ConfChangeInvalid(format!("{id} is not a member")));
                }
                out.voters.retain(|&v| v != id);
                out.learners.retain(|&l| l != id);
                if out.voters.is_empty() {
                    return Err(Error::ConfChangeInvalid(
                        "cannot remove the last voter".into(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

fn insert_sorted(v: &mut Vec<u64>, id: u64) {
    if let Err(pos) = v.binary_search(&id) {
        v.insert(pos, id);
    }
}

pub(crate) fn encode(cc: &ConfChange, result: Option<&ConfState>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + cc.context.len());
    out.push(match cc.change_type {
        ConfChangeType::AddNode => TAG_ADD_NODE,
        ConfChangeType::AddLearner => TAG_ADD_LEARNER,
        ConfChangeType::RemoveNode => TAG_REMOVE_NODE,
    });
    out.extend_from_slice(&cc.node_id.to_le_bytes());
    put_bytes(&mut out, &cc.context);
    match result {
        None => out.push(0),
        Some(cs) => {
            out.push(1);
            put_ids(&mut out, &cs.voters);
            put_ids(&mut out, &cs.learners);
        }
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_ids(out: &mut Vec<u8>, ids: &[u64]) {
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::Decode("truncated".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn ids(&mut self) -> Result<Vec<u64>> {
        let n = self.u32()? as usize;
        if n > self.buf.len() / 8 {
            return Err(Error::Decode("id list too long".into()));
        }
        (0..n).map(|_| self.u64()).collect()
    }
}

/// Decodes a membership-change entry as proposed: the change and, if the
/// leader already appended it, the resulting membership.
pub(crate) fn decode_any(data: &[u8]) -> Result<(ConfChange, Option<ConfState>)> {
    let mut r = Reader { buf: data };
    let change_type = match r.u8()? {
        TAG_ADD_NODE => ConfChangeType::AddNode,
        TAG_ADD_LEARNER => ConfChangeType::AddLearner,
        TAG_REMOVE_NODE => ConfChangeType::RemoveNode,
        t => return Err(Error::Decode(format!("unknown change type {t}"))),
    };
    let node_id = r.u64()?;
    let len = r.u32()? as usize;
    let context = r.take(len)?.to_vec();
    let cc = ConfChange {
        change_type,
        node_id,
        context,
    };
    let cs = match r.u8()? {
        0 => None,
        1 => Some(ConfState {
            voters: r.ids()?,
            learners: r.ids()?,
        }),
        t => return Err(Error::Decode(format!("bad result tag {t}"))),
    };
    if !r.buf.is_empty() {
        return Err(Error::Decode("trailing bytes".into()));
    }
    Ok((cc, cs))
}

/// Decodes the data of a committed [`crate::EntryType::ConfChange`] entry into
/// the change and the membership that results from it.
pub fn decode_conf_change(data: &[u8]) -> Result<(ConfChange, ConfState)> {
    match decode_any(data)? {
        (cc, Some(cs)) => Ok((cc, cs)),
        (_, None) => Err(Error::Decode(
            "entry carries no resulting membership".into(),
        )),
    }
}

/// The memberships recorded in a member's log: the one at a base index (a
/// snapshot or a committed point) and every change after it.
#[derive(Clone, Debug)]
pub(crate) struct MembershipLog {
    base_index: u64,
    base: ConfState,
    changes: Vec<(u64, ConfState)>,
}

impl MembershipLog {
    pub(crate) fn new(base_index: u64, base: ConfState) -> MembershipLog {
        MembershipLog {
            base_index,
            base,
            changes: Vec::new(),
        }
    }

    /// The membership in force: the latest one in the log.
    pub(crate) fn current(&self) -> &ConfState {
        self.changes.last().map(|(_, cs)| cs).unwrap_or(&self.base)
    }

    /// The index of the latest membership change (or of the base).
    pub(crate) fn last_change_index(&self) -> u64 {
        self.changes
            .last()
            .map(|(i, _)| *i)
            .unwrap_or(self.base_index)
    }

    /// The membership as of log index `index`.
    pub(crate) fn at(&self, index: u64) -> &ConfState {
        self.changes
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, cs)| cs)
            .unwrap_or(&self.base)
    }

    /// Forgets changes at `index` or later (the log was truncated there).
    /// Returns whether the current membership changed.
    pub(crate) fn truncate_from(&mut self, index: u64) -> bool {
        let before = self.changes.len();
        self.changes.retain(|(i, _)| *i < index);
        before != self.changes.len()
    }

    pub(crate) fn push(&mut self, index: u64, cs: ConfState) {
        debug_assert!(index > self.last_change_index());
        self.changes.push((index, cs));
    }

    /// Folds changes at or below `index` (committed, never truncated) into the
    /// base.
    pub(crate) fn compact_to(&mut self, index: u64) {
        let n = self.changes.iter().take_while(|(i, _)| *i <= index).count();
        if n > 0 {
            let (i, cs) = self.changes.drain(..n).next_back().expect("n > 0");
            self.base_index = i;
            self.base = cs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let cc = ConfChange {
            change_type: ConfChangeType::AddLearner,
            node_id: 9,
            context: b"addr".to_vec(),
        };
        let cs = ConfState {
            voters: vec![1, 2, 3],
            learners: vec![9],
        };
        let data = encode(&cc, Some(&cs));
        assert_eq!(decode_conf_change(&data).unwrap(), (cc.clone(), cs));
        assert!(decode_conf_change(&cc.encode()).is_err());
        assert!(decode_any(&data[..data.len() - 1]).is_err());
    }

    #[test]
    fn apply_rules() {
        let cs = ConfState::with_voters(vec![1, 2, 3]);
        let add = |t, id| ConfChange {
            change_type: t,
            node_id: id,
            context: vec![],
        };
        assert!(add(ConfChangeType::AddNode, 2).apply_to(&cs).is_err());
        let l = add(ConfChangeType::AddLearner, 4).apply_to(&cs).unwrap();
        assert_eq!(l.learners, vec![4]);
        let p = add(ConfChangeType::AddNode, 4).apply_to(&l).unwrap();
        assert_eq!(p.voters, vec![1, 2, 3, 4]);
        assert!(p.learners.is_empty());
        let r = add(ConfChangeType::RemoveNode, 1).apply_to(&p).unwrap();
        assert_eq!(r.voters, vec![2, 3, 4]);
        assert!(add(ConfChangeType::RemoveNode, 1)
            .apply_to(&ConfState::with_voters(vec![1]))
            .is_err());
    }

    #[test]
    fn membership_log_truncates_and_compacts() {
        let mut m = MembershipLog::new(0, ConfState::with_voters(vec![1]));
        m.push(5, ConfState::with_voters(vec![1, 2]));
        m.push(9, ConfState::with_voters(vec![1, 2, 3]));
        assert_eq!(m.at(7).voters, vec![1, 2]);
        assert!(m.truncate_from(9));
        assert_eq!(m.current().voters, vec![1, 2]);
        m.compact_to(6);
        assert_eq!(m.last_change_index(), 5);
        assert_eq!(m.at(3).voters, vec![1, 2]);
    }
}
