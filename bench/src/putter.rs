//! The unary load of the watch and lease workloads (puts, lease grants): closed-loop calls
//! like the put workload's, but each answer is decoded, so the revision it was written at
//! (and when that answer came) is known to the watchers that measure delivery, and a
//! granted lease's id to the workload that uses it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use api::etcdserverpb::{LeaseGrantResponse, PutResponse};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use grpc_h2::client::Client;
use prost::Message;

use crate::histogram::Histogram;
use crate::runner::{authority, code_name, open};
use crate::BenchError;

/// When each revision's put was answered, for the watchers to measure against. A ring indexed
/// by revision: a slot holds its revision next to the time, so a watcher can tell an answer
/// still to come (the event may beat the answer) from an older revision's.
pub struct Answers {
    start: Instant,
    slots: Vec<(AtomicI64, AtomicU64)>,
}

/// Revisions the ring remembers: far more than are written while one event is in flight.
const RING: usize = 1 << 21;

impl Answers {
    /// An empty ring; times count from `start`.
    pub fn new(start: Instant) -> Arc<Answers> {
        Arc::new(Answers {
            start,
            slots: (0..RING)
                .map(|_| (AtomicI64::new(0), AtomicU64::new(0)))
                .collect(),
        })
    }

    fn slot(&self, revision: i64) -> &(AtomicI64, AtomicU64) {
        &self.slots[revision.rem_euclid(RING as i64) as usize]
    }

    /// Notes that the put of `revision` was answered now.
    pub fn answered(&self, revision: i64) {
        let (rev, at) = self.slot(revision);
        at.store(self.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        rev.store(revision, Ordering::Release);
    }

    /// Microseconds from the answer of `revision` to now, or 0 when the answer is not in yet
    /// (the event came first).
    pub fn since_answer_us(&self, revision: i64) -> u64 {
        let (rev, at) = self.slot(revision);
        if rev.load(Ordering::Acquire) != revision {
            return 0;
        }
        let now = self.start.elapsed().as_nanos() as u64;
        now.saturating_sub(at.load(Ordering::Relaxed)) / 1000
    }
}

/// When a load stops.
#[derive(Clone, Debug)]
pub enum Until {
    /// After this many requests.
    Total(u64),
    /// After this long.
    Elapsed(Duration),
    /// Once the flag is set.
    Flag(Arc<AtomicBool>),
}

/// The unary call a load makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// KV.Put.
    Put,
    /// Lease.LeaseGrant.
    LeaseGrant,
}

impl Call {
    fn path(self) -> &'static str {
        match self {
            Call::Put => "/etcdserverpb.KV/Put",
            Call::LeaseGrant => "/etcdserverpb.Lease/LeaseGrant",
        }
    }

    /// The answer's revision and, for a grant, the lease id.
    fn decode(self, bytes: Bytes) -> Result<(i64, i64), String> {
        let bad = |e: prost::DecodeError| format!("Internal: {e}");
        match self {
            Call::Put => PutResponse::decode(bytes)
                .map(|r| (r.header.map_or(0, |h| h.revision), 0))
                .map_err(bad),
            Call::LeaseGrant => {
                let r = LeaseGrantResponse::decode(bytes).map_err(bad)?;
                if r.error.is_empty() {
                    Ok((r.header.map_or(0, |h| h.revision), r.id))
                } else {
                    Err(format!("LeaseGrant: {}", r.error))
                }
            }
        }
    }
}

/// The encoded request with sequence number `n` of a load.
pub type MakeRequest = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// One answered call of a `timeline` load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The request's sequence number.
    pub n: u64,
    /// The answer's revision.
    pub revision: i64,
    /// The granted lease (0 for puts).
    pub id: i64,
    /// When the answer came, in µs from the load's start.
    pub at_us: u64,
}

/// A closed-loop load: `clients` loops over `conns` connections to `targets`.
#[derive(Clone)]
pub struct PutLoad {
    /// The call.
    pub call: Call,
    /// Client URLs; connections go round-robin.
    pub targets: Vec<String>,
    /// HTTP/2 connections.
    pub conns: usize,
    /// Concurrent request loops.
    pub clients: usize,
    /// The requests.
    pub make: MakeRequest,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Where to note each answer's revision.
    pub answers: Option<Arc<Answers>>,
    /// Keep each request's send time and latency (for loads small enough to keep them).
    pub timeline: bool,
    /// Requests per second over all clients (request n goes out n/rate s after the start,
    /// or as soon as a client is free after that); `None`: as fast as answers come.
    pub rate: Option<f64>,
}

/// What a put load did.
#[derive(Clone, Debug, Default)]
pub struct PutResult {
    /// Answered puts.
    pub puts: u64,
    /// Failed puts.
    pub errors: u64,
    /// The first error's code and message.
    pub first_error: Option<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Latency of the answered puts.
    pub latency: Histogram,
    /// Lowest and highest revision answered (0 if none).
    pub revisions: (i64, i64),
    /// With `timeline`: (ms from the start the request was sent, latency in µs).
    pub timeline: Vec<(u32, u32)>,
    /// With `timeline`: each answered call.
    pub answered: Vec<Answered>,
    /// When the load started.
    pub started: Option<Instant>,
}

impl PutResult {
    fn absorb(&mut self, other: PutResult) {
        self.puts += other.puts;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.merge(&other.latency);
        self.revisions = merge_range(self.revisions, other.revisions);
        self.timeline.extend(other.timeline);
        self.answered.extend(other.answered);
    }

    /// Answered puts per second.
    pub fn throughput(&self) -> f64 {
        self.puts as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// The union of two revision ranges, where (0, 0) is empty.
fn merge_range(a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    match (a, b) {
        ((0, 0), r) | (r, (0, 0)) => r,
        ((a0, a1), (b0, b1)) => (a0.min(b0), a1.max(b1)),
    }
}

struct Shared {
    load: PutLoad,
    until: Until,
    issued: AtomicU64,
    start: Instant,
}

impl PutLoad {
    /// Runs the load until `until`.
    pub async fn run(&self, until: Until) -> Result<PutResult, BenchError> {
        let shared = Arc::new(Shared {
            load: self.clone(),
            until,
            issued: AtomicU64::new(0),
            start: Instant::now(),
        });
        let mut tasks = Vec::new();
        for i in 0..self.conns {
            let url = &self.targets[i % self.targets.len()];
            let tcp = open(url).await?;
            let clients = self.clients / self.conns + usize::from(i < self.clients % self.conns);
            let (client, conn) = grpc_h2::client::connect(tcp, &authority(url))
                .await
                .map_err(|e| BenchError::Task(format!("connection to {url}: {e}")))?;
            tasks.push(tokio::spawn(drive(shared.clone(), client, conn, clients)));
        }
        let mut total = PutResult::default();
        for t in tasks {
            total.absorb(t.await.map_err(|e| BenchError::Task(e.to_string()))??);
        }
        total.seconds = shared.start.elapsed().as_secs_f64();
        total.started = Some(shared.start);
        Ok(total)
    }
}

impl Shared {
    /// The next request's sequence number, if the load goes on.
    fn next(&self) -> Option<u64> {
        match &self.until {
            Until::Total(n) => {
                let i = self.issued.fetch_add(1, Ordering::Relaxed);
                (i < *n).then_some(i)
            }
            Until::Elapsed(d) => {
                (self.start.elapsed() < *d).then(|| self.issued.fetch_add(1, Ordering::Relaxed))
            }
            Until::Flag(stop) => {
                (!stop.load(Ordering::Relaxed)).then(|| self.issued.fetch_add(1, Ordering::Relaxed))
            }
        }
    }

    async fn client(&self, mut client: Client) -> PutResult {
        let mut result = PutResult::default();
        while let Some(n) = self.next() {
            if let Some(rate) = self.load.rate {
                let due = self.start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let message = (self.load.make)(n);
            let sent = Instant::now();
            let call = client.unary(self.load.call.path(), &message);
            let answer = tokio::time::timeout(self.load.timeout, call).await;
            let revision = match answer {
                Ok(Ok(bytes)) => self.load.call.decode(bytes),
                Ok(Err(status)) => Err(format!("{}: {}", code_name(status.code), status.message)),
                Err(_) => Err("DeadlineExceeded: no answer in time".into()),
            };
            match revision {
                Ok((rev, id)) => {
                    if let Some(answers) = &self.load.answers {
                        answers.answered(rev);
                    }
                    let us = sent.elapsed().as_micros() as u64;
                    result.latency.record(us);
                    result.puts += 1;
                    result.revisions = merge_range(result.revisions, (rev, rev));
                    if self.load.timeline {
                        let at = sent.duration_since(self.start).as_millis() as u32;
                        result
                            .timeline
                            .push((at, us.min(u64::from(u32::MAX)) as u32));
                        result.answered.push(Answered {
                            n,
                            revision: rev,
                            id,
                            at_us: self.start.elapsed().as_micros() as u64,
                        });
                    }
                }
                Err(e) => {
                    result.errors += 1;
                    result.first_error.get_or_insert(e);
                }
            }
        }
        result
    }
}

/// One connection's clients, polled with the connection by one task.
async fn drive<C, E>(
    shared: Arc<Shared>,
    client: Client,
    conn: C,
    clients: usize,
) -> Result<PutResult, BenchError>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let mut loops: FuturesUnordered<_> = (0..clients)
        .map(|_| shared.client(client.clone()))
        .collect();
    drop(client);
    let mut total = PutResult::default();
    let mut closed = false;
    std::future::poll_fn(|cx| loop {
        let mut progress = false;
        while let Poll::Ready(Some(one)) = loops.poll_next_unpin(cx) {
            total.absorb(one);
            progress = true;
        }
        if loops.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if !closed {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                closed = true;
                progress = true;
                if let Err(e) = r {
                    return Poll::Ready(Err(BenchError::Task(format!("connection: {e}"))));
                }
            }
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_tell_pending_from_answered() {
        let answers = Answers::new(Instant::now());
        assert_eq!(answers.since_answer_us(7), 0);
        answers.answered(7);
        std::thread::sleep(Duration::from_millis(2));
        assert!(answers.since_answer_us(7) >= 2000);
        // A revision a whole ring later takes the slot: the old one reads as not answered.
        answers.answered(7 + RING as i64);
        assert_eq!(answers.since_answer_us(7), 0);
    }

    #[test]
    fn revision_ranges_merge() {
        assert_eq!(merge_range((0, 0), (5, 9)), (5, 9));
        assert_eq!(merge_range((5, 9), (0, 0)), (5, 9));
        assert_eq!(merge_range((5, 9), (2, 7)), (2, 9));
    }
}
