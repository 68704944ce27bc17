//! Replicated cluster state kept beside the keyspace: raised alarms and the attributes each
//! member published (name, client URLs).
//!
//! It lives in the store's `cluster` table, written in the same transaction as the applied
//! index, so a snapshot carries it and a restart keeps it. It is changed only by
//! [`ClusterCommand`]s applied from the log ([`crate::Writer::apply_cluster`]), so every
//! member holds the same state at the same index, and refuses the same commands while an
//! alarm is raised.
//!
//! Rows: `a` ‖ alarm kind (1 byte) ‖ member id (8 bytes) → empty; `m` ‖ member id → the
//! member's attributes (name and URLs, each a 4-byte length and the bytes).

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

/// A change to the cluster state, applied from the log with [`crate::Writer::apply_cluster`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ClusterCommand {
    /// Raise an alarm (etcd's `AlarmRequest` ACTIVATE).
    ActivateAlarm(Alarm),
    /// Clear an alarm (etcd's `AlarmRequest` DEACTIVATE).
    DeactivateAlarm(Alarm),
    /// Record a member's attributes.
    PublishMember(MemberInfo),
}

/// What an applied [`ClusterCommand`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterOutcome {
    /// The alarm raised (also when it was already raised) or cleared; empty when a cleared
    /// alarm was not raised (etcd's answers).
    Alarms(Vec<Alarm>),
    /// The attributes are recorded.
    Published,
    /// The entry was at or below the applied index: already applied before.
    Skipped,
}

const ALARM: u8 = b'a';
const MEMBER: u8 = b'm';

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

fn encode_member(m: &MemberInfo) -> Vec<u8> {
    let mut v = Vec::new();
    for s in std::iter::once(&m.name).chain(&m.client_urls) {
        v.extend_from_slice(&(s.len() as u32).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
    }
    v
}

fn decode_member(id: u64, mut b: &[u8]) -> Result<MemberInfo> {
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
    let mut strings = strings.into_iter();
    let name = strings
        .next()
        .ok_or_else(|| corrupt("member record without a name"))?;
    Ok(MemberInfo {
        id,
        name,
        client_urls: strings.collect(),
    })
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
    }
}
