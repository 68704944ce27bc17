//! `etcr`: an etcd v3 compatible, strongly consistent key-value store.
//!
//! The binary is glue: it parses etcd's flags, opens the store, starts the write path and
//! serves etcd's gRPC API (with `/health`, `/metrics` and `/version` beside it) on every
//! `--listen-client-urls` address.

mod auth;
mod cluster;
mod compactor;
mod config;
mod context;
mod convert;
mod election;
mod errors;
mod gateway;
mod grpc;
mod grpc_metrics;
mod histogram;
mod http;
mod kv;
mod lease;
mod lock;
mod logging;
mod maintenance;
mod membership;
mod metrics;
mod process_metrics;
mod quota;
mod raft;
mod snapshot;
mod tls;
mod validate;
mod watch;

use std::fs;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::{Flags, PeerTransport};
use crate::context::{Context, Limits};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::raft::{MemberAttributes, RaftNode, RaftSettings};
use transport::fault::{FaultRules, FaultyTransport};
use transport::{TlsConfig, TransportConfig};

/// glibc's allocator showed up as a tenth of a busy member's CPU, much of it freeing on one
/// thread (raft, apply) what another allocated (connections); mimalloc's per-thread heaps
/// make those frees cheap. It is built with `no_thp`: see ARCHITECTURE.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// gRPC framing and field overhead allowed above `--max-request-bytes`, as etcd allows it: a
/// request just over the limit gets etcd's "request is too large" rather than a transport error.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Decoded request headers a client may send per call (SETTINGS_MAX_HEADER_LIST_SIZE).
/// etcd's requests carry a few short headers and at most a token of a few hundred bytes;
/// 16 KiB (hyper's default) leaves room for that many times over while bounding what a
/// header-bloat attack makes the server decode and hold (grpc-go allows 16 MiB).
const MAX_HEADER_LIST_SIZE: u32 = 16 << 10;

/// Request bytes a client connection may hold in messages still arriving.
const MAX_BUFFERED_REQUEST_BYTES: usize = 64 << 20;

/// Response bytes a client connection may hold while its client's window has no room: a
/// client that stops reading costs the server at most this much (and its streams' buffers).
const MAX_UNSENT_RESPONSE_BYTES: usize = 8 << 20;

/// How long a new client connection has to send the HTTP/2 preface and SETTINGS.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let flags = Flags::parse();
    logging::init(flags.log_format, &flags.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(flags)) {
        error!("{e:#}");
        eprintln!("etcr: {e:#}");
        std::process::exit(1);
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    // Before touching the data directory or a port: a bad certificate path or token option
    // is the likeliest mistake, and its message should not hide behind another.
    let tls = tls::acceptor(&flags)?;
    let token_kind =
        auth::token_kind(&flags.auth_token).map_err(|e| anyhow::anyhow!("--auth-token: {e}"))?;
    let data_dir = flags.data_dir();
    let member_dir = data_dir.join("member");
    fs::create_dir_all(&member_dir)
        .with_context(|| format!("cannot create the data directory {}", member_dir.display()))?;
    let membership = Membership::load_or_bootstrap(&member_dir, &flags)?;
    let (cluster_id, member_id) = (membership.cluster_id, membership.local_id);
    let quota = quota::Quota::new(flags.quota_backend_bytes);
    let mut store_options = mvcc::StoreOptions {
        map_size: quota.map_size()?,
        ..Default::default()
    };
    // The raft log is the durable copy of every applied entry and the store records the applied
    // index with the data: one fsync per commit keeps the store consistent across a machine
    // crash, and entries it lost are applied again from the log.
    store_options.durability = mvcc::Durability::Ordered;
    // Watchers read each commit's changes back from history (`watch::Hub`), once for all.
    store_options.apply_events = false;
    // Opening rebuilds the key index from the store's history: it takes longer as history grows.
    let opened = std::time::Instant::now();
    let store = mvcc::Store::open(member_dir.join("kv"), store_options)
        .map(Arc::new)
        .with_context(|| format!("cannot open the store in {}", member_dir.display()))?;
    info!(
        name = %flags.name,
        member_id = %format!("{member_id:x}"),
        cluster_id = %format!("{cluster_id:x}"),
        data_dir = %data_dir.display(),
        revision = store.current_revision(),
        keys = store.keys_total(),
        store_open_ms = opened.elapsed().as_millis() as u64,
        "starting etcr"
    );
    // The member set of the last change applied, not the bootstrap list, says whom to reach.
    let mut membership = membership;
    membership
        .overlay_store(&store)
        .with_context(|| "cannot read the members from the store")?;
    let (mut transport, incoming) = peer_transport(&flags, &membership).await?;
    let faults = flags.fault_injection.then(|| {
        tracing::warn!("fault injection is on: /debug/faults can cut this member off its peers");
        let rules = FaultRules::new(member_id);
        transport = Arc::new(FaultyTransport::new(transport.clone(), rules.clone()));
        rules
    });
    let membership = Arc::new(RwLock::new(membership));
    let metrics = Arc::new(Metrics::default());
    let heartbeat = Duration::from_millis(flags.heartbeat_interval.max(1));
    let election_ticks = (flags.election_timeout / flags.heartbeat_interval.max(1)).max(2);
    let leases = store
        .leases()
        .context("cannot read the leases from the store")?;
    let lessor = Arc::new(lease::Lessor::new(
        lease::min_ttl(heartbeat, election_ticks),
        Duration::from_millis(flags.election_timeout),
        leases.into_iter().map(|l| (l.id, l.ttl)),
    ));
    let (watch_hub, watch_commits) = watch::Hub::start(
        store.clone(),
        watch::HubSettings {
            progress_interval: flags.watch_progress_notify_interval,
            stream_bytes: watch::STREAM_BYTES,
        },
    )?;
    let auth = Arc::new(
        auth::AuthStore::new(
            store
                .auth_state()
                .map_err(|e| anyhow::anyhow!("reading the auth state from the store: {e}"))?,
            auth::AuthSettings {
                bcrypt_cost: flags.bcrypt_cost,
                token_ttl: Duration::from_secs(flags.auth_token_ttl),
            },
        )
        .with_tokens(token_kind),
    );
    let raft = RaftNode::start(
        RaftSettings {
            member_dir: member_dir.clone(),
            heartbeat,
            election_ticks: election_ticks as usize,
            snapshot_count: flags.snapshot_count.max(1),
            catch_up_entries: CATCH_UP_ENTRIES.min(flags.snapshot_count),
            request_timeout: Duration::from_secs(5)
                + 2 * Duration::from_millis(flags.election_timeout),
        },
        store.clone(),
        membership.clone(),
        transport,
        incoming,
        metrics.clone(),
        raft::ApplyObservers {
            watch: watch_commits,
            lessor: lessor.clone(),
            auth: auth.clone(),
        },
    )?;
    lease::spawn_expiry(lessor.clone(), raft.clone());
    compactor::spawn(store.clone());
    let ctx = Arc::new(Context {
        store,
        raft: raft.clone(),
        membership,
        member_id,
        cluster_token: flags.initial_cluster_token.clone(),
        strict_reconfig_check: flags.strict_reconfig_check,
        limits: Limits {
            max_request_bytes: flags.max_request_bytes,
            max_txn_ops: flags.max_txn_ops,
        },
        quota,
        metrics,
        lessor,
        faults,
        auth,
    });
    publish_attributes(raft, &flags, member_id)?;

    let limits = grpc::PortLimits {
        grpc: grpc_h2::Limits {
            max_message: flags.max_request_bytes + GRPC_OVERHEAD_BYTES,
            max_concurrent_streams: flags.max_concurrent_streams,
            max_header_list_size: MAX_HEADER_LIST_SIZE,
            max_buffered: MAX_BUFFERED_REQUEST_BYTES,
            max_unsent: MAX_UNSENT_RESPONSE_BYTES,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: Some(flags.client_idle_timeout).filter(|t| !t.is_zero()),
            keepalive_interval: flags.grpc_keepalive_interval,
            keepalive_timeout: flags.grpc_keepalive_timeout,
            min_ping_interval: flags.grpc_keepalive_min_time,
        },
        connections: Arc::new(tokio::sync::Semaphore::new(
            flags.max_client_connections.max(1),
        )),
    };
    let dispatch = Arc::new(grpc::Dispatch::new(ctx.clone(), watch_hub));
    let routes = http::routes(ctx.clone(), &dispatch);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for (addr, https) in config::listen_urls(&flags.listen_client_urls)? {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for clients on {addr}; is another etcd or etcr running there?")
        })?;
        info!(%addr, tls = https, "ready to serve client requests");
        servers.push(tokio::spawn(grpc::serve(
            listener,
            tls.clone().filter(|_| https),
            dispatch.clone(),
            routes.clone(),
            limits.clone(),
            stop_rx.clone(),
        )));
    }

    shutdown_signal().await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    for s in servers {
        if let Err(e) = s.await {
            error!("client server: {e}");
        }
    }
    Ok(())
}

/// Entries kept in the log behind a raft snapshot, so a briefly lagging follower catches up
/// from the log rather than by a whole snapshot (etcd keeps the same number).
const CATCH_UP_ENTRIES: u64 = 5000;

/// Starts the transport `--peer-transport` names, listening on `--listen-peer-urls`.
async fn peer_transport(
    flags: &Flags,
    membership: &Membership,
) -> anyhow::Result<(
    raft::PeerTransport,
    transport::IncomingReceiver<raft_core::Message>,
)> {
    let listen = config::listen_addrs(&flags.listen_peer_urls)?[0];
    let mut cfg = TransportConfig::new(membership.local_id, membership.cluster_id, listen);
    for m in membership
        .members
        .iter()
        .filter(|m| m.id != membership.local_id)
    {
        let url = m
            .peer_urls
            .first()
            .ok_or_else(|| anyhow::anyhow!("member {} has no peer URL", m.name))?;
        let addr = config::listen_addrs(url)?[0];
        cfg = cfg.with_peer(m.id, addr);
    }
    let tls = match (&flags.peer_trusted_ca_file, &flags.peer_cert_file, &flags.peer_key_file) {
        (Some(ca), Some(cert), Some(key)) => Some(
            TlsConfig::from_files(ca, cert, key)
                .with_context(|| "cannot read the peer TLS files (--peer-trusted-ca-file, --peer-cert-file, --peer-key-file)")?,
        ),
        (None, None, None) => None,
        _ => anyhow::bail!("peer TLS needs all of --peer-trusted-ca-file, --peer-cert-file and --peer-key-file"),
    };
    if let Some(tls) = tls {
        cfg = cfg.with_tls(tls);
    }
    let started: (raft::PeerTransport, _) = match flags.peer_transport {
        PeerTransport::Tcp => {
            let (t, rx) = transport_tcp::TcpTransport::start(cfg)
                .await
                .with_context(|| format!("cannot start the TCP peer transport on {listen}"))?;
            (Arc::new(t), rx)
        }
        PeerTransport::Quic => {
            if cfg.tls.is_none() {
                anyhow::bail!("--peer-transport quic always uses mutual TLS: give --peer-trusted-ca-file, --peer-cert-file and --peer-key-file (`cargo xtask certs` makes them)");
            }
            let (t, rx) = transport_quic::QuicTransport::start(cfg)
                .await
                .with_context(|| format!("cannot start the QUIC peer transport on {listen}"))?;
            (Arc::new(t), rx)
        }
    };
    info!(%listen, transport = ?flags.peer_transport, "listening for peers");
    Ok(started)
}

/// Replicates this member's name and client URLs (retrying until there is a leader) so that
/// `member list` on any member shows them, as etcd does.
fn publish_attributes(raft: RaftNode, flags: &Flags, id: u64) -> anyhow::Result<()> {
    let attrs = MemberAttributes {
        id,
        name: flags.name.clone(),
        client_urls: config::split_urls(&flags.advertise_client_urls)
            .map(config::normalize_url)
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    tokio::spawn(async move {
        loop {
            // A proposal lost in an election would otherwise wait out the whole request
            // timeout; publishing is idempotent, so retry soon instead.
            match tokio::time::timeout(Duration::from_secs(1), raft.publish(attrs.clone())).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => tracing::debug!("publishing member attributes: {e}; retrying"),
                Err(_) => tracing::debug!("publishing member attributes timed out; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
