//! `etcr`: an etcd v3 compatible, strongly consistent key-value store.
//!
//! The binary is glue: it parses etcd's flags, opens the store, starts the write path and
//! serves etcd's gRPC API (with `/health`, `/metrics` and `/version` beside it) on every
//! `--listen-client-urls` address.

mod config;
mod context;
mod convert;
mod errors;
mod http;
mod ids;
mod kv;
mod logging;
mod maintenance;
mod membership;
mod metrics;
mod node;
mod validate;

use std::fs;
use std::sync::Arc;

use anyhow::Context as _;
use api::etcdserverpb::{cluster_server::ClusterServer, kv_server::KvServer, maintenance_server::MaintenanceServer};
use clap::Parser;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{error, info};

use crate::config::Flags;
use crate::context::{Context, Limits};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::node::Node;

/// gRPC framing and field overhead allowed above `--max-request-bytes`, as etcd allows it: a
/// request just over the limit gets etcd's "request is too large" rather than a transport error.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

fn main() {
    let flags = Flags::parse();
    logging::init(flags.log_format, &flags.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
    let data_dir = flags.data_dir();
    let member_dir = data_dir.join("member");
    fs::create_dir_all(&member_dir)
        .with_context(|| format!("cannot create the data directory {}", member_dir.display()))?;
    let membership = Membership::load_or_bootstrap(&member_dir, &flags)?;
    if membership.members.len() > 1 {
        anyhow::bail!(
            "--initial-cluster names {} members, but this etcr build runs single-member clusters only; replication arrives with raft",
            membership.members.len()
        );
    }
    let store = mvcc::Store::open(member_dir.join("kv"), mvcc::StoreOptions::default())
        .map(Arc::new)
        .with_context(|| format!("cannot open the store in {}", member_dir.display()))?;
    let metrics = Arc::new(Metrics::default());
    let node = Node::start(store.clone(), metrics.clone())?;
    let ctx = Arc::new(Context {
        store,
        node,
        membership,
        limits: Limits { max_request_bytes: flags.max_request_bytes, max_txn_ops: flags.max_txn_ops },
        metrics,
    });
    info!(
        name = %flags.name,
        member_id = %format!("{:x}", ctx.membership.local_id),
        cluster_id = %format!("{:x}", ctx.membership.cluster_id),
        data_dir = %data_dir.display(),
        revision = ctx.store.current_revision(),
        "starting etcr"
    );

    let max_msg = flags.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let grpc = tonic::service::Routes::new(
        KvServer::new(kv::KvService::new(ctx.clone()))
            .max_decoding_message_size(max_msg)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(MaintenanceServer::new(maintenance::MaintenanceService::new(ctx.clone())).max_decoding_message_size(max_msg))
    .add_service(ClusterServer::new(maintenance::ClusterService::new(ctx.clone())).max_decoding_message_size(max_msg));
    let router = grpc.into_axum_router().merge(http::routes(ctx.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for addr in config::listen_addrs(&flags.listen_client_urls)? {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for clients on {addr}; is another etcd or etcr running there?"))?;
        info!(%addr, "ready to serve client requests");
        let routes = tonic::service::Routes::from(router.clone());
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(
            tonic::transport::Server::builder()
                .accept_http1(true)
                .tcp_nodelay(true)
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        ));
    }

    shutdown_signal().await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    for s in servers {
        if let Ok(Err(e)) = s.await {
            error!("client server: {e}");
        }
    }
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
