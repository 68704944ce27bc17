//! Replicated cluster state kept beside the keyspace: raised alarms, the member set (ids,
//! peer URLs, learners, the cluster id) and the attributes each member published (name,
//! client URLs).
//!
//! It lives in the store's `cluster` table, written in the same transaction as the applied
//! index, so a snapshot carries it and a restart keeps it. It is changed only by
//! [`ClusterCommand`]s applied from the log ([`crate::Writer::apply_cluster`]), so every
//! member holds the same state at the same index, and refuses the same commands while an
//! alarm is raised.
//!
//! Rows: `a` ‖ alarm kind (1 byte) ‖ member id (8 bytes) → empty; `m` ‖ member id → the
//! member's attributes (name and URLs, each a 4-byte length and the bytes); `p` ‖ member id →
//! learner flag (1 byte) then its peer URLs (as above); `c` → the cluster id (8 bytes).

use heed::{RoTxn, RwTxn};
use serde::{Deserialize, Serialize};

use crate::codec::corrupt;
use crate::error::{Error, Result};
use crate::tables::Table;
use crate::types::{Command, RequestOp, TxnRequest};

/// Kinds of alarm, numbered as etcd's `AlarmType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlarmKind {
    /// The store passed its space quota: writes that take space are refused.
    Nospace,
    /// Members' stores disagree.
    Corrupt,
}

impl AlarmKind {
    fn code(self) -> u8 {
        match self {
            AlarmKind::Nospace => 1,
            AlarmKind::Corrupt => 2,
        }
    }

    fn from_code(code: u8) -> Result<AlarmKind> {
        match code {
            1 => Ok(AlarmKind::Nospace),
            2 => Ok(AlarmKind::Corrupt),
            _ => Err(corrupt("unknown alarm kind")),
        }
    }
}

/// An alarm raised by one member, as etcd's `AlarmMember`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Alarm {
    /// The member that raised it.
    pub member: u64,
    /// What it is about.
    pub kind: AlarmKind,
}

/// The attributes a member publishes about itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct MemberInfo {
    /// Member id.
    pub id: u64,
    /// The member's `--name`.
    pub name: String,
    /// The member's advertised client URLs.
    pub client_urls: Vec<String>,
}

/// A member of the set, as membership changes record it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct MemberRecord {
    /// Member id.
    pub id: u64,
    /// Where its peers reach it.
    pub peer_urls: Vec<String>,
    /// Whether it is a learner (receives the log, does not vote).
    pub is_learner: bool,
}

/// Who is in the cluster, as of the last membership change applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct MemberSet {
    /// The cluster's id, so that a member that joined later learns it from the log.
    pub cluster_id: u64,
    /// Every member, by id.
    pub members: Vec<MemberRecord>,
}

/// A change to the cluster state, applied from the log with [`crate::Writer::apply_cluster`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ClusterCommand {
    /// Raise an alarm (etcd's `AlarmRequest` ACTIVATE).
    ActivateAlarm(Alarm),
    /// Clear an alarm (etcd's `AlarmRequest` DEACTIVATE).
    DeactivateAlarm(Alarm),
    /// Record a member's attributes.
    PublishMember(MemberInfo),
    /// Replace the member set; the published attributes of members no longer in it go.
    SetMembers(MemberSet),
}

/// What an applied [`ClusterCommand`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterOutcome {
    /// The alarm raised (also when it was already raised) or cleared; empty when a cleared
    /// alarm was not raised (etcd's answers).
    Alarms(Vec<Alarm>),
    /// The attributes are recorded.
    Published,
    /// The member set is replaced.
    MembersSet,
    /// The entry was at or below the applied index: already applied before.
    Skipped,
}

const ALARM: u8 = b'a';
const MEMBER: u8 = b'm';
const PEER: u8 = b'p';
const CLUSTER_ID: [u8; 1] = [b'c'];

fn alarm_key(a: &Alarm) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = ALARM;
    k[1] = a.kind.code();
    k[2..].copy_from_slice(&a.member.to_be_bytes());
    k
}

fn member_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = MEMBER;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn put_strings<'a>(v: &mut Vec<u8>, strings: impl IntoIterator<Item = &'a String>) {
    for s in strings {
        v.extend_from_slice(&(s.len() as u32).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
    }
}

fn encode_member(m: &MemberInfo) -> Vec<u8> {
    let mut v = Vec::new();
    put_strings(&mut v, std::iter::once(&m.name).chain(&m.client_urls));
    v
}

fn encode_record(m: &MemberRecord) -> Vec<u8> {
    let mut v = vec![u8::from(m.is_learner)];
    put_strings(&mut v, &m.peer_urls);
    v
}

fn decode_record(id: u64, b: &[u8]) -> Result<MemberRecord> {
    let (learner, rest) = b
        .split_first()
        .ok_or_else(|| corrupt("member set record without a learner flag"))?;
    Ok(MemberRecord {
        id,
        peer_urls: decode_strings(rest)?,
        is_learner: *learner == 1,
    })
}

fn decode_member(id: u64, b: &[u8]) -> Result<MemberInfo> {
    let mut strings = decode_strings(b)?.into_iter();
    let name = strings
        .next()
        .ok_or_else(|| corrupt("member record without a name"))?;
    Ok(MemberInfo {
        id,
        name,
        client_urls: strings.collect(),
    })
}

fn decode_strings(mut b: &[u8]) -> Result<Vec<String>> {
    let mut strings = Vec::new();
    while !b.is_empty() {
        let (len, rest) = b
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("member record length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(corrupt("member record too short"));
        }
        let (s, rest) = rest.split_at(len);
        strings.push(String::from_utf8(s.to_vec()).map_err(|_| corrupt("member record text"))?);
        b = rest;
    }
    Ok(strings)
}

/// Every raised alarm, by kind then member.
pub(crate) fn alarms(table: &Table, txn: &RoTxn) -> Result<Vec<Alarm>> {
    let mut out = Vec::new();
    for row in table.prefix_iter(txn, &[ALARM])? {
        let (k, _) = row?;
        if k.len() != 10 {
            return Err(corrupt("alarm key length"));
        }
        let member = crate::codec::be_u64(&k[2..])?;
        out.push(Alarm {
            member,
            kind: AlarmKind::from_code(k[1])?,
        });
    }
    Ok(out)
}

/// Whether an alarm of `kind` is raised.
pub(crate) fn raised(table: &Table, txn: &RoTxn, kind: AlarmKind) -> Result<bool> {
    Ok(table
        .prefix_iter(txn, &[ALARM, kind.code()])?
        .next()
        .transpose()?
        .is_some())
}

/// What the raised alarms refuse when applying: every write under CORRUPT, writes that take
/// space under NOSPACE (etcd's corrupt and capped appliers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Gate {
    corrupt: bool,
    nospace: bool,
}

impl Gate {
    pub fn load(table: &Table, txn: &RoTxn) -> Result<Gate> {
        Ok(Gate {
            corrupt: raised(table, txn, AlarmKind::Corrupt)?,
            nospace: raised(table, txn, AlarmKind::Nospace)?,
        })
    }

    /// The refusal of `cmd`, if the alarms refuse it.
    pub fn refusal(&self, cmd: &Command) -> Option<Error> {
        if self.corrupt {
            Some(Error::CorruptCluster)
        } else if self.nospace && takes_space(cmd) {
            Some(Error::NoSpace)
        } else {
            None
        }
    }
}

/// Every published member, by id.
/// Drops every member's published attributes: a store restored for a new cluster keeps its
/// data, not the old cluster's members.
pub(crate) fn forget_members(table: &Table, txn: &mut heed::RwTxn) -> Result<()> {
    let ids: Vec<u64> = members(table, txn)?.into_iter().map(|m| m.id).collect();
    for id in ids {
        table.delete(txn, &member_key(id))?;
    }
    // The member set of the old cluster's last membership change would override the new
    // cluster's bootstrap members.
    for id in ids_with_prefix(table, txn, PEER)? {
        let mut key = vec![PEER];
        key.extend_from_slice(&id.to_be_bytes());
        table.delete(txn, &key)?;
    }
    table.delete(txn, &CLUSTER_ID)?;
    Ok(())
}

pub(crate) fn members(table: &Table, txn: &RoTxn) -> Result<Vec<MemberInfo>> {
    let mut out = Vec::new();
    for row in table.prefix_iter(txn, &[MEMBER])? {
        let (k, v) = row?;
        if k.len() != 9 {
            return Err(corrupt("member key length"));
        }
        out.push(decode_member(crate::codec::be_u64(&k[1..])?, v)?);
    }
    Ok(out)
}

/// The member set of the last membership change, if one was ever applied (a cluster that
/// kept its bootstrap members has none: its members know them from bootstrap).
pub(crate) fn member_set(table: &Table, txn: &RoTxn) -> Result<Option<MemberSet>> {
    let Some(cluster_id) = table.get(txn, &CLUSTER_ID)? else {
        return Ok(None);
    };
    let mut members = Vec::new();
    for row in table.prefix_iter(txn, &[PEER])? {
        let (k, v) = row?;
        if k.len() != 9 {
            return Err(corrupt("member set key length"));
        }
        members.push(decode_record(crate::codec::be_u64(&k[1..])?, v)?);
    }
    Ok(Some(MemberSet {
        cluster_id: crate::codec::be_u64(cluster_id)?,
        members,
    }))
}

fn ids_with_prefix(table: &Table, txn: &RoTxn, prefix: u8) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for row in table.prefix_iter(txn, &[prefix])? {
        let (k, _) = row?;
        if k.len() == 9 {
            ids.push(crate::codec::be_u64(&k[1..])?);
        }
    }
    Ok(ids)
}

fn set_members(table: &Table, txn: &mut RwTxn, set: &MemberSet) -> Result<()> {
    let keep = |id: &u64| set.members.iter().any(|m| m.id == *id);
    for prefix in [PEER, MEMBER] {
        for id in ids_with_prefix(table, txn, prefix)? {
            if !keep(&id) {
                let mut k = member_key(id);
                k[0] = prefix;
                table.delete(txn, &k)?;
            }
        }
    }
    for m in &set.members {
        let mut k = member_key(m.id);
        k[0] = PEER;
        table.put(txn, &k, &encode_record(m))?;
    }
    table.put(txn, &CLUSTER_ID, &set.cluster_id.to_be_bytes())?;
    Ok(())
}

/// Applies `cmd` in `txn`.
pub(crate) fn apply(
    table: &Table,
    txn: &mut RwTxn,
    cmd: &ClusterCommand,
) -> Result<ClusterOutcome> {
    Ok(match cmd {
        ClusterCommand::ActivateAlarm(a) => {
            table.put(txn, &alarm_key(a), &[])?;
            ClusterOutcome::Alarms(vec![*a])
        }
        ClusterCommand::DeactivateAlarm(a) => {
            let raised = table.delete(txn, &alarm_key(a))?;
            ClusterOutcome::Alarms(if raised { vec![*a] } else { Vec::new() })
        }
        ClusterCommand::PublishMember(m) => {
            table.put(txn, &member_key(m.id), &encode_member(m))?;
            ClusterOutcome::Published
        }
        ClusterCommand::SetMembers(set) => {
            set_members(table, txn, set)?;
            ClusterOutcome::MembersSet
        }
    })
}

/// Whether a command needs new space in the store, so that a NOSPACE alarm refuses it:
/// puts, and transactions with a put in either branch (etcd's quota cost is not zero).
/// Deletes and compactions free space and stay allowed. (etcd refuses lease grants too; a
/// lease grant command belongs here.)
pub fn takes_space(cmd: &Command) -> bool {
    match cmd {
        // etcd refuses grants under NOSPACE too; revokes and expiries free space.
        Command::Put(_) | Command::LeaseGrant(_) => true,
        Command::Txn(t) => txn_puts(t),
        _ => false,
    }
}

fn txn_puts(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match op {
        RequestOp::Put(_) => true,
        RequestOp::Txn(n) => txn_puts(n),
        RequestOp::Range(_) | RequestOp::DeleteRange(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_records_round_trip_and_reject_truncation() {
        let m = MemberInfo {
            id: 9,
            name: "m1".into(),
            client_urls: vec!["http://a:1".into(), "http://b:2".into()],
        };
        let b = encode_member(&m);
        assert_eq!(decode_member(9, &b).unwrap(), m);
        assert!(decode_member(9, &b[..b.len() - 1]).is_err());
        assert!(decode_member(9, &[]).is_err());
        let r = MemberRecord {
            id: 9,
            peer_urls: vec!["http://a:3".into()],
            is_learner: true,
        };
        assert_eq!(decode_record(9, &encode_record(&r)).unwrap(), r);
        assert!(decode_record(9, &[]).is_err());
    }
}
