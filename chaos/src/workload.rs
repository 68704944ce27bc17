//! The clients: each sticks to one member (as an etcd client with one endpoint does) and
//! reads, writes and compare-and-sets a handful of keys as registers, recording every call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::response_op::Response;
use api::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use linearizability::{Call, Operation, Outcome, Ret, Value};
use tonic::transport::{Channel, Endpoint};

/// How a call ended, as the summary counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// An error came back. A read that failed is left out of the check; a write that failed
    /// may still have been committed, so it is indeterminate.
    Failed,
    /// No answer within the deadline: indeterminate.
    TimedOut,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub op: Operation,
    pub answer: Answer,
    /// The store revision its answer carried: for an acknowledged write, the write's own.
    pub revision: Option<i64>,
}

/// What every client shares.
pub struct Shared {
    pub start: Instant,
    pub stop: AtomicBool,
    /// The next value to write: unique over the run, so a read names the write it saw.
    pub next_value: AtomicU64,
    /// What every key of the run starts with: the watchers' range.
    pub prefix: String,
    pub keys: Vec<String>,
    pub op_timeout: Duration,
    pub serializable_reads: bool,
}

impl Shared {
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

pub fn connect(endpoint: &str) -> anyhow::Result<KvClient<Channel>> {
    let channel = Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    Ok(KvClient::new(channel))
}

/// A value as the store holds it; anything else (nobody writes it) as a value never written.
fn parse(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Sends `call` on `key` and waits for its answer up to the deadline; the answer and the
/// revision in its header.
pub async fn perform(
    kv: &mut KvClient<Channel>,
    key: &str,
    call: Call,
    serializable: bool,
    timeout: Duration,
) -> Result<(Ret, i64), Answer> {
    let k = key.as_bytes().to_vec();
    let sent = async {
        match call {
            Call::Read => {
                let r = kv
                    .range(RangeRequest {
                        key: k,
                        serializable,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok((
                    Ret::Read(r.kvs.first().map(|kv| parse(&kv.value))),
                    revision(r.header),
                ))
            }
            Call::Write(v) => {
                let r = kv
                    .put(PutRequest {
                        key: k,
                        value: v.to_string().into_bytes(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok((Ret::Write, revision(r.header)))
            }
            Call::Cas { expect, new } => {
                let r = kv
                    .txn(TxnRequest {
                        compare: vec![Compare {
                            result: CompareResult::Equal as i32,
                            target: CompareTarget::Value as i32,
                            key: k.clone(),
                            target_union: Some(TargetUnion::Value(expect.to_string().into_bytes())),
                            ..Default::default()
                        }],
                        success: vec![RequestOp {
                            request: Some(Request::RequestPut(PutRequest {
                                key: k.clone(),
                                value: new.to_string().into_bytes(),
                                ..Default::default()
                            })),
                        }],
                        // A failed compare reads the key, so the answer says what it found.
                        failure: vec![RequestOp {
                            request: Some(Request::RequestRange(RangeRequest {
                                key: k,
                                ..Default::default()
                            })),
                        }],
                    })
                    .await?
                    .into_inner();
                let rev = revision(r.header);
                if r.succeeded {
                    return Ok((Ret::Cas(true), rev));
                }
                let seen = match r.responses.first().and_then(|o| o.response.as_ref()) {
                    Some(Response::ResponseRange(range)) => {
                        range.kvs.first().map(|kv| parse(&kv.value))
                    }
                    _ => return Ok((Ret::Cas(false), rev)),
                };
                Ok((Ret::CasFailed(seen), rev))
            }
        }
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok(ret)) => Ok(ret),
        Ok(Err::<_, tonic::Status>(_)) => Err(Answer::Failed),
        Err(_) => Err(Answer::TimedOut),
    }
}

pub fn revision(header: Option<api::etcdserverpb::ResponseHeader>) -> i64 {
    header.map(|h| h.revision).unwrap_or_default()
}

/// The value a call found or left in its key, when its answer says.
fn seen(call: Call, outcome: Outcome) -> Option<Value> {
    let Outcome::Done { ret, .. } = outcome else {
        return None;
    };
    match (call, ret) {
        (_, Ret::Read(v) | Ret::CasFailed(v)) => v,
        (Call::Write(v) | Call::Cas { new: v, .. }, Ret::Write | Ret::Cas(true)) => Some(v),
        _ => None,
    }
}

/// One client's loop until `shared.stop`: returns everything it did.
pub async fn client(id: u32, endpoint: String, shared: Arc<Shared>, seed: u64) -> Vec<Record> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut records = Vec::new();
    let Ok(mut kv) = connect(&endpoint) else {
        return records;
    };
    // The last value this client saw on each key: what its compare-and-sets expect.
    let mut last: HashMap<usize, Value> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let k = rng.usize(0..shared.keys.len());
        let fresh = || shared.next_value.fetch_add(1, Ordering::Relaxed);
        let call = match (rng.u8(0..10), last.get(&k)) {
            (0..=3, _) => Call::Read,
            (4..=6, Some(&expect)) => Call::Cas {
                expect,
                new: fresh(),
            },
            _ => Call::Write(fresh()),
        };
        let invoke = shared.now();
        let result = perform(
            &mut kv,
            &shared.keys[k],
            call,
            shared.serializable_reads,
            shared.op_timeout,
        )
        .await;
        let at = shared.now();
        let (outcome, answer, revision) = match result {
            Ok((ret, rev)) => (Outcome::Done { at, ret }, Answer::Ok, Some(rev)),
            Err(answer) => (Outcome::Indeterminate, answer, None),
        };
        if let Some(v) = seen(call, outcome) {
            last.insert(k, v);
        }
        records.push(Record {
            op: Operation {
                client: id,
                key: shared.keys[k].clone(),
                call,
                invoke,
                outcome,
            },
            answer,
            revision,
        });
        // A member that is down answers at once; do not spin on it.
        let pause = if answer == Answer::Ok {
            rng.u64(0..5)
        } else {
            rng.u64(50..150)
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    records
}
