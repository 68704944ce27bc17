//! Runs a workload: opens the connections, drives the clients, prints progress and gathers
//! the samples into a [`Report`].
//!
//! Each connection is one task that keeps its share of the clients busy: a client sends a
//! request, waits for the answer, records it and sends the next. The clients are futures of
//! the connection's task, beside h2's connection future, so a request costs no task or
//! channel; a generator that costs less leaves more of a small machine to the servers under
//! test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::StatusRequest;
use std::future::Future;
use std::task::Poll;

use futures::stream::{FuturesUnordered, StreamExt};
use grpc_h2::client::Client;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::args::{Args, Consistency, Stop};
use crate::report::{Latency, Report};
use crate::workload::Generator;
use crate::BenchError;

/// How long to look for a leader with `--target-leader`.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Counters shared by the request loops and the progress line.
#[derive(Default)]
struct Counters {
    issued: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
}

/// What one request loop saw.
#[derive(Default)]
struct LoopResult {
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
    samples: BTreeMap<String, String>,
}

impl LoopResult {
    fn error(&mut self, code: String, message: String) {
        *self.errors.entry(code.clone()).or_default() += 1;
        self.samples.entry(code).or_insert(message);
    }
}

/// `host:port` becomes `http://host:port`; URLs stay as they are.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

pub(crate) async fn connect(url: &str) -> Result<Channel, BenchError> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| BenchError::Endpoint(url.to_string(), e.to_string()))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    endpoint.connect().await.map_err(|e| BenchError::Connect {
        endpoint: url.to_string(),
        reason: e.to_string(),
    })
}

/// The URL of the member that Maintenance.Status names as leader.
pub async fn find_leader(urls: &[String]) -> Result<String, BenchError> {
    let give_up = Instant::now() + LEADER_WAIT;
    let mut last = String::from("no endpoint answered");
    loop {
        let mut members = Vec::new();
        let mut leader = 0;
        for url in urls {
            let Ok(channel) = connect(url).await else {
                last = format!("cannot connect to {url}");
                continue;
            };
            match MaintenanceClient::new(channel)
                .status(StatusRequest {})
                .await
            {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    let id = resp.header.map_or(0, |h| h.member_id);
                    members.push((id, url.clone()));
                    leader = leader.max(resp.leader);
                }
                Err(status) => last = format!("{url}: {}", status.message()),
            }
        }
        if let Some((_, url)) = members.iter().find(|(id, _)| leader != 0 && *id == leader) {
            return Ok(url.clone());
        }
        if leader != 0 {
            last = format!("the leader {leader:x} is not among the endpoints");
        }
        if Instant::now() >= give_up {
            return Err(BenchError::NoLeader(last));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the workload that `args` describe and reports on it.
pub async fn run(args: &Args) -> Result<Report, BenchError> {
    args.validate().map_err(BenchError::Args)?;
    let urls: Vec<String> = args.endpoints.iter().map(|e| endpoint_url(e)).collect();
    let targets = if args.target_leader {
        vec![find_leader(&urls).await?]
    } else {
        urls
    };
    let metadata = crate::auth::metadata(&targets[0], args).await?;
    let generator = Generator::new(args);
    let counters = Arc::new(Counters::default());
    let stop = args.stop();
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut connections = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let url = &targets[i % targets.len()];
        let tcp = open(url).await?;
        // Clients spread over the connections as evenly as they go.
        let clients = args.clients / args.conns + usize::from(i < args.clients % args.conns);
        connections.push((
            tcp,
            ConnLoop {
                authority: authority(url),
                metadata: metadata.clone(),
                clients,
                generator: generator.clone(),
                counters: counters.clone(),
                stop,
                timeout,
            },
        ));
    }
    let start = Instant::now();
    let loops: Vec<_> = connections
        .into_iter()
        .map(|(tcp, c)| tokio::spawn(c.run(tcp, start)))
        .collect();
    let progress = (!args.quiet)
        .then(|| tokio::spawn(progress(args.workload.name(), counters.clone(), start)));

    let mut total = LoopResult::default();
    for handle in loops {
        let mut one = handle
            .await
            .map_err(|e| BenchError::Task(e.to_string()))??;
        total.latencies_us.append(&mut one.latencies_us);
        for (code, n) in one.errors {
            *total.errors.entry(code).or_default() += n;
        }
        for (code, message) in one.samples {
            total.samples.entry(code).or_insert(message);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }

    let requests = total.latencies_us.len() as u64;
    let report = Report {
        workload: args.workload.name().to_string(),
        endpoints: targets,
        conns: args.conns,
        clients: args.clients,
        key_size: args.key_size,
        value_size: args.value_size,
        consistency: match args.consistency {
            Consistency::Linearizable => "l".into(),
            Consistency::Serializable => "s".into(),
        },
        requests,
        errors: total.errors.values().sum(),
        errors_by_code: total.errors,
        error_samples: total.samples,
        seconds,
        throughput: requests as f64 / seconds.max(f64::EPSILON),
        latency_ms: Latency::from_micros(&mut total.latencies_us),
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).expect("a report serialises");
        std::fs::write(path, text + "\n").map_err(|e| BenchError::Write {
            path: path.clone(),
            source: e,
        })?;
    }
    Ok(report)
}

/// `http://host:port/...` → `host:port`.
pub(crate) fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

pub(crate) async fn open(url: &str) -> Result<TcpStream, BenchError> {
    let failed = |reason: String| BenchError::Connect {
        endpoint: url.to_string(),
        reason,
    };
    if url.starts_with("https://") {
        return Err(failed("TLS endpoints are not supported".into()));
    }
    let connect = TcpStream::connect(authority(url));
    let tcp = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| failed("no connection within 5 s".into()))?
        .map_err(|e| failed(e.to_string()))?;
    tcp.set_nodelay(true).map_err(|e| failed(e.to_string()))?;
    Ok(tcp)
}

/// The clients of one connection.
struct ConnLoop {
    authority: String,
    /// Sent with every request (the `--user` token).
    metadata: http::HeaderMap,
    clients: usize,
    generator: Generator,
    counters: Arc<Counters>,
    stop: Stop,
    timeout: Duration,
}

impl ConnLoop {
    /// Whether a client may send another request.
    fn more(&self, start: Instant) -> bool {
        match self.stop {
            Stop::Total(n) => self.counters.issued.fetch_add(1, Ordering::Relaxed) < n,
            Stop::Duration(d) => start.elapsed() < d,
        }
    }

    /// One closed-loop client: send, wait for the answer, record, send the next.
    async fn client(&self, mut client: Client, start: Instant) -> LoopResult {
        let mut result = LoopResult::default();
        // One timer for all of the client's calls: moving its deadline later costs no
        // registration with tokio's timer wheel, where a `timeout` per call costs two.
        let mut deadline = std::pin::pin!(tokio::time::sleep(self.timeout));
        while self.more(start) {
            let (path, message) = self.generator.next_op().encode();
            let sent = Instant::now();
            deadline
                .as_mut()
                .reset(tokio::time::Instant::from_std(sent + self.timeout));
            let mut call = std::pin::pin!(client.unary_with(path, self.metadata.clone(), &message));
            let answer = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = call.as_mut().poll(cx) {
                    return Poll::Ready(Ok(r));
                }
                deadline.as_mut().poll(cx).map(Err)
            });
            match answer.await {
                Ok(Ok(_)) => {
                    result.latencies_us.push(sent.elapsed().as_micros() as u64);
                    self.counters.ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(status)) => {
                    result.error(code_name(status.code), status.message);
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    let message = format!("no answer within {:?}", self.timeout);
                    result.error("DeadlineExceeded".into(), message);
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        result
    }

    /// Drives the connection and its clients from this one task until every client is done.
    async fn run(self, tcp: TcpStream, start: Instant) -> Result<LoopResult, BenchError> {
        let lost = |e: String| BenchError::Task(format!("connection to {}: {e}", self.authority));
        let (client, conn) = grpc_h2::client::connect(tcp, &self.authority)
            .await
            .map_err(|e| lost(e.to_string()))?;
        let mut conn = std::pin::pin!(conn);
        let mut clients: FuturesUnordered<_> = (0..self.clients)
            .map(|_| self.client(client.clone(), start))
            .collect();
        drop(client);
        let mut total = LoopResult::default();
        let mut closed = false;
        std::future::poll_fn(|cx| loop {
            let mut progress = false;
            while let Poll::Ready(Some(mut one)) = clients.poll_next_unpin(cx) {
                total.latencies_us.append(&mut one.latencies_us);
                for (code, n) in one.errors {
                    *total.errors.entry(code).or_default() += n;
                }
                for (code, message) in one.samples {
                    total.samples.entry(code).or_insert(message);
                }
                progress = true;
            }
            if clients.is_empty() {
                return Poll::Ready(Ok(()));
            }
            // Sends what the clients queued, and reads their answers.
            if !closed {
                if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                    closed = true;
                    progress = true;
                    if let Err(e) = r {
                        return Poll::Ready(Err(lost(e.to_string())));
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
}

/// The gRPC code's name, as tonic spells it (`Unavailable`, `DeadlineExceeded`...).
pub(crate) fn code_name(code: i32) -> String {
    format!("{:?}", tonic::Code::from_i32(code))
}

/// Prints one line a second on stderr: elapsed time, totals and the last second's rate.
async fn progress(workload: &'static str, counters: Arc<Counters>, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let ok = counters.ok.load(Ordering::Relaxed);
        let errors = counters.errors.load(Ordering::Relaxed);
        eprintln!(
            "[{workload}] {:>5.1}s {ok:>9} ok {errors:>6} errors {:>9} req/s",
            start.elapsed().as_secs_f64(),
            ok - last
        );
        last = ok;
    }
}
