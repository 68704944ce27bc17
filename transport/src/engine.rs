//! The connection engine shared by every implementation: per-peer queues and writer tasks,
//! handshakes, the raft and snapshot stream protocols, counters, task tracking and shutdown.
//!
//! An implementation only supplies streams ([`PeerStream`]: a [`PeerRead`] and a [`PeerWrite`]
//! half): a [`Connector`] that dials a peer, and an accept loop that hands each accepted stream to
//! [`Inbound::serve`]. Everything above the stream (framing, identity, batching, backoff,
//! snapshots) is written once, here.
//!
//! Streams (one per direction of a peer pair for raft messages, one per snapshot):
//! 1. the dialer sends a `Hello` (cluster, from, to, stream kind); the acceptor checks it against
//!    its cluster id, its own id and its member list and answers with a `HelloAck` verdict;
//! 2. raft stream: the dialer writes `Message` frames until the connection breaks; every batch
//!    drained from the peer's queue is written as one buffer;
//! 3. snapshot stream: `SnapshotMeta`, then `SnapshotChunk`s, then `SnapshotEnd(total)`; the
//!    acceptor answers `SnapshotAck` once every byte has been handed to the reader.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::frame::{
    decode_payload, encode_frame, raw_header, FrameKind, Hello, StreamKind, Verdict, HEADER_LEN,
};
use crate::incoming::{Chunk, IncomingSnapshot, SnapshotReader};
use crate::stats::PeerCounters;
use crate::stream::{FrameStream, Recycler};
pub use crate::stream::{IoReader, IoWriter, PeerRead, PeerStream, PeerWrite};
use crate::{
    Error, Incoming, IncomingReceiver, MemberId, Message, PeerStats, Result, SnapshotSource,
    Transport, TransportConfig,
};

/// A bidirectional byte stream to a peer (TCP, TLS over TCP, a QUIC stream pair), as tests and
/// tools speaking the wire protocol by hand use it; [`PeerStream::from_io`] adapts one.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerIo for T {}

/// Dials peers: the one transport-specific piece of the sending side.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Opens a new stream to `peer` at `addr` for `kind` of traffic, with TLS already established
    /// if configured. Implementations may use `kind` to prioritise raft traffic over snapshots.
    async fn connect(
        &self,
        peer: MemberId,
        addr: SocketAddr,
        kind: StreamKind,
    ) -> io::Result<PeerStream>;
    /// Releases transport-wide resources (sockets, endpoints) at shutdown, after every task ended.
    async fn close(&self) {}
}

/// How long an accepted stream may take to present its `Hello`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a snapshot sender waits for the receiver's acknowledgement after the last byte.
pub const SNAPSHOT_ACK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a snapshot receiver waits for the sender's next frame.
pub const SNAPSHOT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many queued messages are drained per write.
const MAX_BATCH: usize = 256;
/// A batch buffer is written out early once it holds this many bytes.
const FLUSH_BYTES: usize = 1 << 20;
/// The smallest batch buffer allocated.
const BATCH_BUFFER_BYTES: usize = 64 << 10;
/// Batch buffers (of up to `4 * FLUSH_BYTES`) kept for reuse per peer.
const BATCH_BUFFERS_KEPT: usize = 4;
/// Snapshot chunk buffers kept for reuse per snapshot: about what a stream holds unacknowledged.
const CHUNK_BUFFERS_KEPT: usize = 8;

struct PeerEntry<M> {
    addr: SocketAddr,
    queue: mpsc::Sender<M>,
    counters: Arc<PeerCounters>,
    writer: Option<AbortHandle>,
}

/// State shared by the engine's tasks.
struct Shared<M> {
    cfg: TransportConfig,
    local_addr: SocketAddr,
    peers: RwLock<HashMap<MemberId, PeerEntry<M>>>,
    incoming: RwLock<Option<mpsc::Sender<Incoming<M>>>>,
    tasks: Mutex<JoinSet<()>>,
    closed: AtomicBool,
}

impl<M: Message> Shared<M> {
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) -> Option<AbortHandle> {
        let mut tasks = self.tasks.lock().expect("task set poisoned");
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        while tasks.try_join_next().is_some() {}
        Some(tasks.spawn(fut))
    }

    fn counters(&self, id: MemberId) -> Option<Arc<PeerCounters>> {
        let peers = self.peers.read().expect("peers poisoned");
        peers.get(&id).map(|p| p.counters.clone())
    }

    fn incoming_sender(&self) -> Option<mpsc::Sender<Incoming<M>>> {
        self.incoming.read().expect("incoming poisoned").clone()
    }

    fn hello(&self, to: MemberId, stream: StreamKind) -> Hello {
        Hello {
            cluster_id: self.cfg.cluster_id,
            from: self.cfg.local_id,
            to,
            stream,
        }
    }
}

/// The accepting side of an engine, handed to an implementation's accept loop.
pub struct Inbound<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for Inbound<M> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<M: Message> Inbound<M> {
    /// Runs `fut` as a task of the engine: aborted and awaited by shutdown. Returns false (and drops
    /// `fut`) if the engine is already shut down.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) -> bool {
        self.shared.spawn(fut).is_some()
    }

    /// This member.
    pub fn local_id(&self) -> MemberId {
        self.shared.cfg.local_id
    }

    /// The configuration limits.
    pub fn config(&self) -> &TransportConfig {
        &self.shared.cfg
    }

    /// Serves one accepted stream to its end: handshake, then raft messages or one snapshot.
    /// Errors are logged and close the stream; they never panic.
    pub async fn serve(&self, stream: PeerStream, remote: SocketAddr) {
        let span = info_span!("peer_stream", local = self.shared.cfg.local_id, %remote);
        if let Err(e) = serve_stream(self.shared.clone(), stream)
            .instrument(span.clone())
            .await
        {
            span.in_scope(|| warn!(error = %e, "closing peer stream"));
        }
    }
}

/// One frame with a bincode payload, ready to write.
fn frame<T: serde::Serialize>(kind: FrameKind, value: &T, max_frame_bytes: usize) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, kind, value, max_frame_bytes)?;
    Ok(buf.freeze())
}

/// Writes one frame and flushes it; returns its size.
async fn send_frame(w: &mut dyn PeerWrite, frame: Bytes) -> Result<usize> {
    let len = frame.len();
    w.write_chunks(&mut [frame]).await?;
    w.flush().await?;
    Ok(len)
}

async fn serve_stream<M: Message>(shared: Arc<Shared<M>>, stream: PeerStream) -> Result<()> {
    let PeerStream { reader, mut writer } = stream;
    let max = shared.cfg.max_frame_bytes;
    let mut reader = FrameStream::new(reader, max);
    let hello: Hello =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.read_expected(FrameKind::Hello))
            .await
            .map_err(|_| Error::Timeout("peer handshake"))??;
    // Cluster id 0 is a member joining a running cluster, which learns the id from the log.
    let joining = hello.cluster_id == 0 || shared.cfg.cluster_id == 0;
    let refusal = if !joining && hello.cluster_id != shared.cfg.cluster_id {
        Some(format!(
            "cluster {} is not this cluster ({})",
            hello.cluster_id, shared.cfg.cluster_id
        ))
    } else if hello.to != shared.cfg.local_id {
        Some(format!(
            "this is member {}, not {}",
            shared.cfg.local_id, hello.to
        ))
    } else {
        None
    };
    let counters = shared.counters(hello.from);
    let refusal = refusal.or_else(|| {
        counters
            .is_none()
            .then(|| format!("member {} is not in the cluster", hello.from))
    });
    let verdict = Verdict {
        ok: refusal.is_none(),
        reason: refusal.clone().unwrap_or_default(),
    };
    send_frame(&mut *writer, frame(FrameKind::HelloAck, &verdict, max)?).await?;
    if let Some(reason) = refusal {
        let _ = writer.shutdown().await;
        return Err(Error::Rejected(reason));
    }
    let counters = counters.expect("checked above");
    let from = hello.from;
    debug!(from, stream = ?hello.stream, "peer stream accepted");
    let Some(tx) = shared.incoming_sender() else {
        return Err(Error::Shutdown);
    };
    match hello.stream {
        StreamKind::Raft => {
            let generation = counters.raft_stream.fetch_add(1, Ordering::AcqRel) + 1;
            receive_raft(reader, from, &counters, generation, tx).await
        }
        StreamKind::Snapshot => {
            receive_snapshot(reader, writer, from, &counters, tx, &shared.cfg).await
        }
    }
}

async fn receive_raft<M: Message>(
    mut reader: FrameStream,
    from: MemberId,
    counters: &PeerCounters,
    generation: u64,
    tx: mpsc::Sender<Incoming<M>>,
) -> Result<()> {
    loop {
        let Some((kind, len)) = reader.read_header().await? else {
            debug!(from, "raft stream closed by peer");
            return Ok(());
        };
        if kind != FrameKind::Message {
            return Err(Error::Frame(format!(
                "unexpected {kind:?} on a raft stream"
            )));
        }
        let payload = reader.read_payload(len).await?;
        if counters.removed.load(Ordering::Relaxed) {
            return Err(Error::Rejected(format!(
                "member {from} left the cluster; dropping its messages"
            )));
        }
        if counters.raft_stream.load(Ordering::Acquire) != generation {
            return Err(Error::Rejected(format!(
                "member {from} opened a newer raft stream; closing this one"
            )));
        }
        let msg: M = decode_payload(&payload)?;
        PeerCounters::add(&counters.msgs_received, 1);
        PeerCounters::add(&counters.bytes_received, (len + HEADER_LEN) as u64);
        if tx.send(Incoming::Message { from, msg }).await.is_err() {
            return Ok(());
        }
    }
}

async fn receive_snapshot<M: Message>(
    mut reader: FrameStream,
    mut w: Box<dyn PeerWrite>,
    from: MemberId,
    counters: &PeerCounters,
    tx: mpsc::Sender<Incoming<M>>,
    cfg: &TransportConfig,
) -> Result<()> {
    let meta: M = reader.read_expected(FrameKind::SnapshotMeta).await?;
    let (chunks, rx) = mpsc::channel(cfg.snapshot_buffered_chunks);
    let snapshot = IncomingSnapshot {
        from,
        meta,
        data: SnapshotReader::new(rx),
    };
    if tx.send(Incoming::Snapshot(snapshot)).await.is_err() {
        return Err(Error::Shutdown);
    }
    drop(tx);
    info!(from, "receiving snapshot");
    let mut total: u64 = 0;
    let verdict = 'frames: loop {
        let header = tokio::time::timeout(SNAPSHOT_IDLE_TIMEOUT, reader.read_header()).await;
        let Ok(header) = header else {
            let _ = chunks
                .send(Chunk::Failed("snapshot sender went silent".into()))
                .await;
            return Err(Error::Timeout("snapshot data"));
        };
        let Some((kind, len)) = header? else {
            let _ = chunks
                .send(Chunk::Failed("snapshot stream closed early".into()))
                .await;
            return Err(Error::Frame("snapshot stream closed before its end".into()));
        };
        PeerCounters::add(&counters.bytes_received, (len + HEADER_LEN) as u64);
        match kind {
            FrameKind::SnapshotChunk => {
                // Passed on as it arrives: no buffer the size of a chunk, and no copy where the
                // stream hands out what it received.
                let mut left = len;
                while left > 0 {
                    let piece = reader.read_piece(left).await?;
                    left -= piece.len();
                    total += piece.len() as u64;
                    if chunks.send(Chunk::Data(piece)).await.is_err() {
                        break 'frames Verdict {
                            ok: false,
                            reason: "the receiver dropped the snapshot".into(),
                        };
                    }
                }
            }
            FrameKind::SnapshotEnd => {
                let announced: u64 = decode_payload(&reader.read_payload(len).await?)?;
                if announced != total {
                    let reason =
                        format!("snapshot ended after {total} bytes, sender announced {announced}");
                    let _ = chunks.send(Chunk::Failed(reason.clone())).await;
                    break Verdict { ok: false, reason };
                }
                let _ = chunks.send(Chunk::End).await;
                PeerCounters::add(&counters.snapshots_received, 1);
                info!(from, bytes = total, "snapshot received");
                break Verdict {
                    ok: true,
                    reason: String::new(),
                };
            }
            other => {
                let _ = chunks
                    .send(Chunk::Failed("corrupt snapshot stream".into()))
                    .await;
                return Err(Error::Frame(format!(
                    "unexpected {other:?} on a snapshot stream"
                )));
            }
        }
    };
    send_frame(
        &mut *w,
        frame(FrameKind::SnapshotAck, &verdict, cfg.max_frame_bytes)?,
    )
    .await?;
    let _ = w.shutdown().await;
    if verdict.ok {
        Ok(())
    } else {
        Err(Error::Rejected(verdict.reason))
    }
}

/// Dials, sends the `Hello` and waits for an accepting `HelloAck`.
async fn open_stream<C: Connector>(
    connector: &C,
    hello: Hello,
    addr: SocketAddr,
    max_frame_bytes: usize,
) -> Result<(FrameStream, Box<dyn PeerWrite>)> {
    let to = hello.to;
    let PeerStream { reader, mut writer } = connector.connect(to, addr, hello.stream).await?;
    send_frame(
        &mut *writer,
        frame(FrameKind::Hello, &hello, max_frame_bytes)?,
    )
    .await?;
    let mut reader = FrameStream::new(reader, max_frame_bytes);
    let verdict: Verdict = reader.read_expected(FrameKind::HelloAck).await?;
    if !verdict.ok {
        return Err(Error::Rejected(verdict.reason));
    }
    Ok((reader, writer))
}

async fn run_writer<M: Message, C: Connector>(
    shared: Arc<Shared<M>>,
    connector: Arc<C>,
    peer: MemberId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<M>,
    counters: Arc<PeerCounters>,
) {
    let cfg = &shared.cfg;
    let mut delay = cfg.backoff.initial;
    let mut connected_before = false;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut buffers = Recycler::new(BATCH_BUFFERS_KEPT);
    let mut batch_bytes = BATCH_BUFFER_BYTES;
    loop {
        let opened = tokio::time::timeout(
            cfg.connect_timeout,
            open_stream(
                &*connector,
                shared.hello(peer, StreamKind::Raft),
                addr,
                cfg.max_frame_bytes,
            ),
        )
        .await
        .unwrap_or(Err(Error::Timeout("connect")));
        let (mut r, mut w) = match opened {
            Ok(stream) => stream,
            Err(e) => {
                debug!(error = %e, ?delay, "connect failed; backing off");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(cfg.backoff.max);
                continue;
            }
        };
        delay = cfg.backoff.initial;
        if connected_before {
            PeerCounters::add(&counters.reconnects, 1);
        }
        connected_before = true;
        counters.connected.store(true, Ordering::Relaxed);
        info!("raft stream connected");
        loop {
            tokio::select! {
                n = queue.recv_many(&mut batch, MAX_BATCH) => {
                    if n == 0 {
                        // The peer was removed or the transport is shutting down.
                        let _ = w.shutdown().await;
                        counters.connected.store(false, Ordering::Relaxed);
                        return;
                    }
                    let sent_before = counters.msgs_sent.load(Ordering::Relaxed);
                    let write = write_batch(&mut *w, &mut batch, &mut buffers, &mut batch_bytes, &counters, cfg.max_frame_bytes);
                    match tokio::time::timeout(cfg.write_timeout, write).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            warn!(error = %e, "raft stream broken; reconnecting");
                            break;
                        }
                        Err(_) => {
                            // A vanished host never answers; a fresh connection finds out sooner.
                            let sent = counters.msgs_sent.load(Ordering::Relaxed) - sent_before;
                            PeerCounters::add(&counters.dropped, (n as u64).saturating_sub(sent));
                            batch.clear();
                            warn!(timeout = ?cfg.write_timeout, "raft stream write stalled; reconnecting");
                            break;
                        }
                    }
                }
                res = r.closed() => {
                    match res {
                        Ok(()) => info!("raft stream closed by peer; reconnecting"),
                        Err(e) => info!(error = %e, "raft stream failed; reconnecting"),
                    }
                    break;
                }
            }
        }
        counters.connected.store(false, Ordering::Relaxed);
    }
}

/// Encodes and writes one drained batch, flushing early past `FLUSH_BYTES`. Each write is one
/// buffer, sized after the previous write (`batch_bytes`) so that it rarely grows by copying.
async fn write_batch<M: Message>(
    w: &mut dyn PeerWrite,
    batch: &mut Vec<M>,
    buffers: &mut Recycler,
    batch_bytes: &mut usize,
    counters: &PeerCounters,
    max_frame_bytes: usize,
) -> Result<()> {
    let total = batch.len();
    let mut written = 0usize;
    let mut pending = 0usize;
    let mut buf = BytesMut::new();
    let result: Result<()> = async {
        for msg in batch.drain(..) {
            if buf.capacity() == 0 {
                buf = buffers.take(*batch_bytes);
            }
            match encode_frame(&mut buf, FrameKind::Message, &msg, max_frame_bytes) {
                Ok(_) => pending += 1,
                Err(e) => {
                    warn!(error = %e, "dropping a message that cannot be framed");
                    PeerCounters::add(&counters.dropped, 1);
                    written += 1;
                }
            }
            if buf.len() >= FLUSH_BYTES {
                let bytes = buf.len();
                *batch_bytes = bytes.clamp(BATCH_BUFFER_BYTES, 2 * FLUSH_BYTES);
                let full = std::mem::take(&mut buf);
                w.write_chunks(&mut [buffers.lend(full, 4 * FLUSH_BYTES)])
                    .await?;
                PeerCounters::add(&counters.bytes_sent, bytes as u64);
                PeerCounters::add(&counters.msgs_sent, pending as u64);
                written += pending;
                pending = 0;
            }
        }
        if !buf.is_empty() {
            let bytes = buf.len();
            *batch_bytes = bytes.clamp(BATCH_BUFFER_BYTES, 2 * FLUSH_BYTES);
            w.write_chunks(&mut [buffers.lend(buf, 4 * FLUSH_BYTES)])
                .await?;
            PeerCounters::add(&counters.bytes_sent, bytes as u64);
        }
        w.flush().await?;
        PeerCounters::add(&counters.msgs_sent, pending as u64);
        written += pending;
        Ok(())
    }
    .await;
    if result.is_err() {
        PeerCounters::add(&counters.dropped, (total - written) as u64);
        batch.clear();
    }
    result
}

/// Appends up to `len` bytes of `src` to `buf`, fewer only where the source ends; returns how many.
async fn read_up_to<R: AsyncRead + Unpin + ?Sized>(
    src: &mut R,
    buf: &mut BytesMut,
    len: usize,
) -> io::Result<usize> {
    let mut filled = 0;
    while filled < len {
        let n = src.read_buf(&mut buf.limit(len - filled)).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

async fn send_snapshot_stream<M: Message, C: Connector>(
    shared: Arc<Shared<M>>,
    connector: Arc<C>,
    to: MemberId,
    meta: M,
    mut data: SnapshotSource,
) -> Result<u64> {
    let cfg = &shared.cfg;
    let (addr, counters) = {
        let peers = shared.peers.read().expect("peers poisoned");
        let p = peers.get(&to).ok_or(Error::UnknownPeer(to))?;
        (p.addr, p.counters.clone())
    };
    let (mut reader, mut w) = tokio::time::timeout(
        cfg.connect_timeout,
        open_stream(
            &*connector,
            shared.hello(to, StreamKind::Snapshot),
            addr,
            cfg.max_frame_bytes,
        ),
    )
    .await
    .map_err(|_| Error::Timeout("snapshot connect"))??;
    let sent = send_frame(
        &mut *w,
        frame(FrameKind::SnapshotMeta, &meta, cfg.max_frame_bytes)?,
    )
    .await?;
    PeerCounters::add(&counters.bytes_sent, sent as u64);
    let chunk_bytes = cfg.snapshot_chunk_bytes;
    let mut buffers = Recycler::new(CHUNK_BUFFERS_KEPT);
    let mut total: u64 = 0;
    loop {
        // Each frame is one buffer, header included, handed to the stream whole.
        let mut buf = buffers.take(HEADER_LEN + chunk_bytes);
        buf.put_slice(&[0; HEADER_LEN]);
        let n = read_up_to(&mut data, &mut buf, chunk_bytes).await?;
        if n == 0 {
            break;
        }
        buf[..HEADER_LEN].copy_from_slice(&raw_header(FrameKind::SnapshotChunk, n));
        w.write_chunks(&mut [buffers.lend(buf, usize::MAX)]).await?;
        total += n as u64;
        PeerCounters::add(&counters.bytes_sent, (n + HEADER_LEN) as u64);
        // A fast source and a fast socket never return Pending: let raft traffic run between chunks.
        tokio::task::yield_now().await;
    }
    let sent = send_frame(
        &mut *w,
        frame(FrameKind::SnapshotEnd, &total, cfg.max_frame_bytes)?,
    )
    .await?;
    PeerCounters::add(&counters.bytes_sent, sent as u64);
    let verdict: Verdict = tokio::time::timeout(
        SNAPSHOT_ACK_TIMEOUT,
        reader.read_expected(FrameKind::SnapshotAck),
    )
    .await
    .map_err(|_| Error::Timeout("snapshot acknowledgement"))??;
    let _ = w.shutdown().await;
    if !verdict.ok {
        return Err(Error::Rejected(verdict.reason));
    }
    PeerCounters::add(&counters.snapshots_sent, 1);
    Ok(total)
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A complete [`Transport`] over any [`Connector`]; implementations wrap it.
pub struct Engine<M, C> {
    shared: Arc<Shared<M>>,
    connector: Arc<C>,
}

impl<M: Message, C: Connector> Engine<M, C> {
    /// Starts the engine (must run inside a tokio runtime): one writer task per configured peer.
    /// `local_addr` is where the implementation actually listens.
    pub fn start(
        cfg: TransportConfig,
        connector: C,
        local_addr: SocketAddr,
    ) -> Result<(Self, IncomingReceiver<M>)> {
        cfg.validate()?;
        let (tx, rx) = mpsc::channel(cfg.incoming_capacity);
        let peers = cfg.peers.clone();
        let shared = Arc::new(Shared {
            cfg,
            local_addr,
            peers: RwLock::new(HashMap::new()),
            incoming: RwLock::new(Some(tx)),
            tasks: Mutex::new(JoinSet::new()),
            closed: AtomicBool::new(false),
        });
        let engine = Engine {
            shared,
            connector: Arc::new(connector),
        };
        for (id, addr) in peers {
            engine.add_peer(id, addr);
        }
        Ok((engine, IncomingReceiver::new(rx)))
    }

    /// The accepting side, for the implementation's accept loop.
    pub fn inbound(&self) -> Inbound<M> {
        Inbound {
            shared: self.shared.clone(),
        }
    }

    /// The connector.
    pub fn connector(&self) -> &Arc<C> {
        &self.connector
    }

    /// Number of engine tasks not yet finished (writers, accept loops, streams).
    pub fn live_tasks(&self) -> usize {
        let mut tasks = self.shared.tasks.lock().expect("task set poisoned");
        while tasks.try_join_next().is_some() {}
        tasks.len()
    }
}

impl<M, C> Drop for Engine<M, C> {
    fn drop(&mut self) {
        // Without an orderly shutdown, at least stop every task (they hold the shared state).
        self.shared.closed.store(true, Ordering::Release);
        if let Ok(mut tasks) = self.shared.tasks.lock() {
            tasks.abort_all();
        }
    }
}

#[async_trait]
impl<M: Message, C: Connector> Transport<M> for Engine<M, C> {
    fn local_id(&self) -> MemberId {
        self.shared.cfg.local_id
    }

    fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    fn send(&self, to: MemberId, msg: M) {
        let peers = self.shared.peers.read().expect("peers poisoned");
        match peers.get(&to) {
            Some(p) => {
                if p.queue.try_send(msg).is_err() {
                    PeerCounters::add(&p.counters.dropped, 1);
                    debug!(to, "peer queue full; message dropped");
                }
            }
            None => debug!(to, "message to an unknown peer dropped"),
        }
    }

    async fn send_snapshot(&self, to: MemberId, meta: M, data: SnapshotSource) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        let span = info_span!("snapshot_send", local = self.shared.cfg.local_id, to);
        let fut = send_snapshot_stream(self.shared.clone(), self.connector.clone(), to, meta, data);
        let spawned = self.shared.spawn(
            async move {
                let r = fut.await;
                match &r {
                    Ok(bytes) => info!(bytes, "snapshot sent"),
                    Err(e) => warn!(error = %e, "snapshot failed"),
                }
                let _ = tx.send(r);
            }
            .instrument(span),
        );
        let Some(task) = spawned else {
            return Err(Error::Shutdown);
        };
        // If the caller gives up (drops this future), the stream is abandoned too.
        let _abort_on_drop = AbortOnDrop(task);
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    fn add_peer(&self, id: MemberId, addr: SocketAddr) {
        if id == self.shared.cfg.local_id || self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        let mut peers = self.shared.peers.write().expect("peers poisoned");
        let counters = match peers.get(&id) {
            Some(p) if p.addr == addr => return,
            Some(p) => p.counters.clone(),
            None => Arc::new(PeerCounters::default()),
        };
        if let Some(old) = peers.remove(&id) {
            if let Some(w) = old.writer {
                w.abort();
            }
        }
        counters.removed.store(false, Ordering::Relaxed);
        let (queue, rx) = mpsc::channel(self.shared.cfg.queue_capacity);
        let span = info_span!("peer_writer", local = self.shared.cfg.local_id, peer = id, %addr);
        let writer = self.shared.spawn(
            run_writer(
                self.shared.clone(),
                self.connector.clone(),
                id,
                addr,
                rx,
                counters.clone(),
            )
            .instrument(span),
        );
        peers.insert(
            id,
            PeerEntry {
                addr,
                queue,
                counters,
                writer,
            },
        );
    }

    fn remove_peer(&self, id: MemberId) {
        let removed = self
            .shared
            .peers
            .write()
            .expect("peers poisoned")
            .remove(&id);
        if let Some(p) = removed {
            p.counters.removed.store(true, Ordering::Relaxed);
            p.counters.connected.store(false, Ordering::Relaxed);
            if let Some(w) = p.writer {
                w.abort();
            }
        }
    }

    fn stats(&self) -> Vec<PeerStats> {
        let peers = self.shared.peers.read().expect("peers poisoned");
        let mut out: Vec<PeerStats> = peers
            .iter()
            .map(|(id, p)| p.counters.snapshot(*id))
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    async fn shutdown(&self) {
        let mut tasks = {
            let mut guard = self.shared.tasks.lock().expect("task set poisoned");
            self.shared.closed.store(true, Ordering::Release);
            std::mem::take(&mut *guard)
        };
        self.shared.peers.write().expect("peers poisoned").clear();
        *self.shared.incoming.write().expect("incoming poisoned") = None;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.connector.close().await;
        debug!(local = self.shared.cfg.local_id, "transport shut down");
    }
}
