//! The checks after the faults are healed: final reads, acknowledged writes still in effect,
//! members agreeing on the keyspace.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::HashKvRequest;
use linearizability::{Call, Operation, Outcome, Ret, Value};

use crate::cluster::Cluster;
use crate::workload::{connect, perform, Answer, Record, Shared};

/// A linearizable read of every key through member after member until one answers; the
/// reads join the history, as a client of their own.
pub async fn final_reads(
    cluster: &Cluster,
    shared: &Shared,
    client: u32,
    within: Duration,
) -> anyhow::Result<Vec<Record>> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    for key in &shared.keys {
        let mut member = 0;
        loop {
            let mut kv = connect(&cluster.endpoint(member))?;
            let invoke = shared.now();
            let result = perform(&mut kv, key, Call::Read, false, shared.op_timeout).await;
            if let Ok((ret, rev)) = result {
                out.push(Record {
                    op: Operation {
                        client,
                        key: key.clone(),
                        call: Call::Read,
                        invoke,
                        outcome: Outcome::Done {
                            at: shared.now(),
                            ret,
                        },
                    },
                    answer: Answer::Ok,
                    revision: Some(rev),
                });
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "no member answered a read of {key} within {within:?} after the heal"
                );
            }
            member = (member + 1) % cluster.size();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(out)
}

/// An acknowledged write whose effect the final read does not show.
#[derive(Debug)]
pub struct LostAck {
    pub write: Operation,
    pub final_value: Option<Value>,
}

fn written(op: &Operation) -> Option<Value> {
    match (op.call, op.outcome) {
        (Call::Write(v), _) | (Call::Cas { new: v, .. }, _) => Some(v),
        _ => None,
    }
}

fn acknowledged(op: &Operation) -> bool {
    matches!(
        op.outcome,
        Outcome::Done {
            ret: Ret::Write | Ret::Cas(true),
            ..
        }
    )
}

/// The acknowledged writes the final value of their key cannot have overwritten: those that
/// began after the write of the final value had been answered, or any at all when the key
/// reads as absent or as a value nobody wrote.
pub fn lost_acks(history: &[Operation], finals: &[Operation]) -> Vec<LostAck> {
    let writer_of: HashMap<Value, &Operation> = history
        .iter()
        .filter_map(|op| written(op).map(|v| (v, op)))
        .collect();
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history.iter().filter(|op| acknowledged(op)) {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut lost = Vec::new();
    for f in finals {
        let Outcome::Done {
            ret: Ret::Read(final_value),
            ..
        } = f.outcome
        else {
            continue;
        };
        let last_possible = final_value
            .and_then(|v| writer_of.get(&v))
            .map(|w| w.complete());
        for &a in by_key.get(f.key.as_str()).into_iter().flatten() {
            if last_possible.is_none_or(|done| a.invoke > done) {
                lost.push(LostAck {
                    write: a.clone(),
                    final_value,
                });
            }
        }
    }
    lost
}

/// Waits until every member has applied the same revision and hashes its keyspace the same
/// there; returns that revision and hash, or what they disagreed on at the deadline.
pub async fn converge(cluster: &Cluster, within: Duration) -> Result<(i64, u32), String> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match hashes(cluster).await {
            Ok(Some(agreed)) => return Ok(agreed),
            Ok(None) => {}
            Err(seen) => last = seen,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(if last.is_empty() {
        "members never reported one revision".into()
    } else {
        last
    })
}

/// `Ok(None)`: not every member answered or their revisions differ (yet).
async fn hashes(cluster: &Cluster) -> Result<Option<(i64, u32)>, String> {
    let mut revs = Vec::new();
    for i in 0..cluster.size() {
        let Some(s) = cluster.status(i).await else {
            return Ok(None);
        };
        revs.push(s.header.map(|h| h.revision).unwrap_or_default());
    }
    if revs.windows(2).any(|w| w[0] != w[1]) {
        return Ok(None);
    }
    let rev = revs[0];
    let mut seen = Vec::new();
    for i in 0..cluster.size() {
        let Ok(mut c) = MaintenanceClient::connect(cluster.endpoint(i)).await else {
            return Ok(None);
        };
        let Ok(h) = c.hash_kv(HashKvRequest { revision: rev }).await else {
            return Ok(None);
        };
        seen.push((cluster.members[i].name.clone(), h.into_inner().hash));
    }
    if seen.windows(2).all(|w| w[0].1 == w[1].1) {
        return Ok(Some((rev, seen[0].1)));
    }
    Err(format!(
        "at revision {rev} the hashes differ: {}",
        seen.iter()
            .map(|(n, h)| format!("{n} {h:#010x}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, invoke: u64, outcome: Outcome) -> Operation {
        Operation {
            client: 0,
            key: "k".into(),
            call,
            invoke,
            outcome,
        }
    }

    fn put(v: Value, invoke: u64, at: u64) -> Operation {
        op(
            Call::Write(v),
            invoke,
            Outcome::Done {
                at,
                ret: Ret::Write,
            },
        )
    }

    fn final_read(v: Option<Value>) -> Operation {
        op(
            Call::Read,
            1000,
            Outcome::Done {
                at: 1001,
                ret: Ret::Read(v),
            },
        )
    }

    #[test]
    fn a_write_acknowledged_after_the_final_value_was_written_is_lost() {
        let history = [put(1, 0, 10), put(2, 20, 30)];
        let lost = lost_acks(&history, &[final_read(Some(1))]);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].write.call, Call::Write(2));
        assert!(lost_acks(&history, &[final_read(Some(2))]).is_empty());
    }

    #[test]
    fn concurrent_writes_may_end_in_either_order() {
        let history = [put(1, 0, 30), put(2, 10, 20)];
        assert!(lost_acks(&history, &[final_read(Some(1))]).is_empty());
        assert!(lost_acks(&history, &[final_read(Some(2))]).is_empty());
    }

    #[test]
    fn a_timed_out_write_can_be_the_final_value() {
        let history = [put(1, 0, 10), op(Call::Write(2), 5, Outcome::Indeterminate)];
        assert!(lost_acks(&history, &[final_read(Some(2))]).is_empty());
    }

    #[test]
    fn an_absent_key_loses_every_acknowledged_write() {
        let history = [put(1, 0, 10), op(Call::Write(2), 5, Outcome::Indeterminate)];
        assert_eq!(lost_acks(&history, &[final_read(None)]).len(), 1);
        assert_eq!(lost_acks(&history, &[final_read(Some(77))]).len(), 1);
    }
}
