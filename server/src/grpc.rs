//! The client port: gRPC calls go to the etcd services through `grpc-h2` (gRPC over h2),
//! plain HTTP/1 (`/health`, `/metrics`, `/version`) to the axum routes.
//!
//! grpc-h2 runs every call of a connection as a future of that connection's task; here the
//! calls are routed by path, their messages decoded and encoded with prost, and tonic's
//! statuses (which the services return) turned into grpc-h2's.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb as pb;
use bytes::Bytes;
use futures::future::FutureExt;
use futures::stream::{BoxStream, StreamExt};
use grpc_h2::{CallKind, Metadata, Request, Response};
use pb::cluster_server::Cluster;
use pb::kv_server::Kv;
use pb::maintenance_server::Maintenance;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::cluster::ClusterService;
use crate::context::Context;
use crate::errors::EtcdError;
use crate::kv::KvService;
use crate::lease::{LeaseService, RENEW_PATH, TIME_TO_LIVE_PATH};
use crate::maintenance::MaintenanceService;
use crate::metrics::Metrics;
use crate::snapshot;

/// How long open connections may take to finish their calls once the server stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Responses at least this large are encoded on a blocking thread.
const ENCODE_OFF_TASK: usize = 1 << 20;

/// Routes a call's path to the service method that answers it.
pub struct Dispatch {
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
    kv: Arc<KvService>,
    maintenance: Arc<MaintenanceService>,
    cluster: Arc<ClusterService>,
    lease: Arc<LeaseService>,
    watch: Arc<crate::watch::WatchService>,
    auth: Arc<crate::auth::AuthService>,
    lock: Arc<crate::lock::LockService>,
    election: Arc<crate::election::ElectionService>,
}

impl Dispatch {
    pub fn new(ctx: Arc<Context>, hub: crate::watch::Hub) -> Self {
        let watch = Arc::new(crate::watch::WatchService::new(ctx.clone(), hub));
        let kv = Arc::new(KvService::new(ctx.clone()));
        let keys = Arc::new(crate::lock::Keys::new(
            kv.clone(),
            watch.clone(),
            ctx.clone(),
        ));
        Dispatch {
            lock: Arc::new(crate::lock::LockService::new(keys.clone())),
            election: Arc::new(crate::election::ElectionService::new(keys)),
            watch,
            metrics: ctx.metrics.clone(),
            kv,
            maintenance: Arc::new(MaintenanceService::new(ctx.clone())),
            cluster: Arc::new(ClusterService::new(ctx.clone())),
            lease: Arc::new(LeaseService::new(ctx.clone())),
            auth: Arc::new(crate::auth::AuthService::new(ctx.clone())),
            ctx,
        }
    }

    /// The member's one Lease service: lease ids come from its generator, so the gateway
    /// must grant through the same one.
    pub fn lease(&self) -> Arc<LeaseService> {
        self.lease.clone()
    }

    pub fn watch(&self) -> Arc<crate::watch::WatchService> {
        self.watch.clone()
    }

    pub fn lock(&self) -> Arc<crate::lock::LockService> {
        self.lock.clone()
    }

    pub fn election(&self) -> Arc<crate::election::ElectionService> {
        self.election.clone()
    }
}

fn status(s: tonic::Status) -> grpc_h2::Status {
    grpc_h2::Status::new(s.code() as i32, s.message())
}

fn unmarshal_error(e: prost::DecodeError) -> grpc_h2::Status {
    grpc_h2::Status::new(
        tonic::Code::Internal as i32,
        format!("grpc: error unmarshalling request: {e}"),
    )
}

/// Decodes the request, runs `call` and encodes its response, as a tonic server would.
pub fn unary<Req, Resp, F, Fut>(message: Bytes, call: F) -> Response
where
    Req: Message + Default,
    Resp: Message + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>> + Send + 'static,
{
    let request = match Req::decode(message) {
        Ok(r) => r,
        Err(e) => return Response::Unary(futures::future::ready(Err(unmarshal_error(e))).boxed()),
    };
    let response = call(tonic::Request::new(request));
    Response::Unary(
        async move {
            let response = response.await.map_err(status)?.into_inner();
            if response.encoded_len() < ENCODE_OFF_TASK {
                return Ok(Bytes::from(response.encode_to_vec()));
            }
            // Off the connection's task, so the client's other calls keep flowing meanwhile.
            tokio::task::spawn_blocking(move || Bytes::from(response.encode_to_vec()))
                .await
                .map_err(|e| grpc_h2::Status::new(tonic::Code::Internal as i32, e.to_string()))
        }
        .boxed(),
    )
}

/// Encodes a stream of typed responses; its first error ends the call with that status.
fn encode_stream<Resp: Message + 'static>(
    responses: BoxStream<'static, Result<Resp, tonic::Status>>,
) -> Response {
    Response::Stream(
        responses
            .map(|r| r.map(|m| Bytes::from(m.encode_to_vec())).map_err(status))
            .boxed(),
    )
}

/// One request, a stream of responses (`Maintenance.Snapshot`).
pub fn server_streaming<Req, Resp, F>(message: Bytes, call: F) -> Response
where
    Req: Message + Default,
    Resp: Message + 'static,
    F: FnOnce(Req) -> BoxStream<'static, Result<Resp, tonic::Status>>,
{
    match Req::decode(message) {
        Ok(request) => encode_stream(call(request)),
        Err(e) => {
            Response::Stream(futures::stream::once(async move { Err(unmarshal_error(e)) }).boxed())
        }
    }
}

/// Streams both ways (`Lease.LeaseKeepAlive`): the handler gets the decoded
/// requests (an undecodable one arrives as an error) and returns its responses.
pub fn bidirectional<Req, Resp, F>(
    requests: BoxStream<'static, Result<Bytes, grpc_h2::Status>>,
    call: F,
) -> Response
where
    Req: Message + Default + 'static,
    Resp: Message + 'static,
    F: FnOnce(
        BoxStream<'static, Result<Req, tonic::Status>>,
    ) -> BoxStream<'static, Result<Resp, tonic::Status>>,
{
    encode_stream(call(decode_requests(requests)))
}

/// A bidirectional call's requests, decoded.
fn decode_requests<Req: Message + Default + 'static>(
    requests: BoxStream<'static, Result<Bytes, grpc_h2::Status>>,
) -> BoxStream<'static, Result<Req, tonic::Status>> {
    requests
        .map(|m| match m {
            Ok(bytes) => Req::decode(bytes).map_err(|e| {
                tonic::Status::internal(format!("grpc: error unmarshalling request: {e}"))
            }),
            Err(s) => Err(tonic::Status::new(tonic::Code::from_i32(s.code), s.message)),
        })
        .boxed()
}

/// Routes a unary call to a service method; the call's token rides in the request's
/// metadata, where the service's permission check finds it (`auth::token_of`).
macro_rules! route {
    ($service:expr, $method:ident, $message:expr, $token:expr) => {{
        let service = $service.clone();
        let token = $token.clone();
        unary($message, move |r| async move {
            token.ready().await;
            let r = crate::auth::with_token(r, token.as_deref());
            service.$method(r).await
        })
    }};
}

/// Routes a unary call to an Auth service method, which takes the token beside the request.
macro_rules! route_auth {
    ($service:expr, $method:ident, $message:expr, $token:expr) => {{
        let service = $service.clone();
        let token = $token.clone();
        unary($message, move |r| async move {
            token.ready().await;
            service
                .$method(token.as_deref(), r.into_inner())
                .await
                .map(tonic::Response::new)
        })
    }};
}

/// The streaming calls etcr answers, with their shape; `Dispatch::route` routes each.
const STREAMING_CALLS: &[(&str, CallKind)] = &[
    (
        "/etcdserverpb.Maintenance/Snapshot",
        CallKind::ServerStreaming,
    ),
    ("/etcdserverpb.Watch/Watch", CallKind::Bidirectional),
    (
        "/etcdserverpb.Lease/LeaseKeepAlive",
        CallKind::Bidirectional,
    ),
    ("/v3electionpb.Election/Observe", CallKind::ServerStreaming),
];

fn unimplemented(message: String) -> grpc_h2::Status {
    grpc_h2::Status::new(tonic::Code::Unimplemented as i32, message)
}

impl grpc_h2::Handler for Dispatch {
    fn kind(&self, path: &str) -> Result<CallKind, grpc_h2::Status> {
        if UNARY_CALLS.contains(&path) {
            return Ok(CallKind::Unary);
        }
        if let Some((_, kind)) = STREAMING_CALLS.iter().find(|(p, _)| *p == path) {
            return Ok(*kind);
        }
        // grpc-go's words, as etcd answers them.
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .unwrap_or((path, ""));
        let known_service = UNARY_CALLS
            .iter()
            .chain(STREAMING_CALLS.iter().map(|(p, _)| p))
            .any(|c| c[1..].starts_with(&format!("{service}/")));
        Err(unimplemented(if known_service {
            format!("unknown method {method} for service {service}")
        } else {
            format!("unknown service {service}")
        }))
    }

    fn call(&self, path: &str, metadata: Metadata, request: Request) -> Response {
        // etcd's `hasleader` (clientv3.WithRequireLeader): refuse rather than answer from a
        // member that has lost its leader.
        let answer = if metadata.has_leader && self.ctx.raft.leader().is_none() {
            let refused = status(EtcdError::NoLeader.into());
            match grpc_h2::Handler::kind(self, path) {
                Ok(CallKind::Unary) => {
                    Response::Unary(futures::future::ready(Err(refused)).boxed())
                }
                _ => Response::Stream(futures::stream::once(async move { Err(refused) }).boxed()),
            }
        } else {
            self.route(path, metadata, request)
        };
        let Some(call) = UNARY_CALLS.iter().position(|c| *c == path) else {
            return answer;
        };
        let Response::Unary(answer) = answer else {
            return answer;
        };
        let metrics = self.metrics.clone();
        metrics.grpc.started(call);
        Response::Unary(
            async move {
                let result = answer.await;
                let code = result.as_ref().map_or_else(|s| s.code, |_| 0);
                metrics.grpc.handled(call, code);
                result
            }
            .boxed(),
        )
    }
}

impl Dispatch {
    /// `metadata` carries the caller's `token` for the services that will check it.
    fn route(&self, path: &str, metadata: Metadata, request: Request) -> Response {
        let token = self
            .ctx
            .auth
            .credential(metadata.token, metadata.client_common_name.as_deref());
        let token = crate::auth::CallToken::new(&self.ctx, token);
        let message = match request {
            Request::Message(m) => m,
            Request::Stream(requests) if path == "/etcdserverpb.Watch/Watch" => {
                let watch = self.watch.clone();
                let permit = crate::auth::watch_permit(self.ctx.clone(), token.owned());
                // A fresh token's entry is applied before the first create is checked.
                let requests = futures::stream::once(async move { token.ready().await })
                    .filter_map(|()| std::future::ready(None))
                    .chain(decode_requests(requests))
                    .boxed();
                // The watch stream encodes its responses itself (each event once).
                let responses = watch.watch_encoded(requests, Some(permit));
                return Response::Stream(responses.map(|r| r.map_err(status)).boxed());
            }
            Request::Stream(requests) if path == "/etcdserverpb.Lease/LeaseKeepAlive" => {
                let lease = self.lease.clone();
                return bidirectional(requests, move |r| lease.lease_keep_alive(r));
            }
            Request::Stream(_) => return refused(self, path),
        };
        match path {
            "/etcdserverpb.KV/Range" => route!(self.kv, range, message, token),
            "/etcdserverpb.KV/Put" => route!(self.kv, put, message, token),
            "/etcdserverpb.KV/DeleteRange" => route!(self.kv, delete_range, message, token),
            "/etcdserverpb.KV/Txn" => route!(self.kv, txn, message, token),
            "/etcdserverpb.KV/Compact" => route!(self.kv, compact, message, token),
            "/etcdserverpb.Maintenance/Alarm" => route!(self.maintenance, alarm, message, token),
            "/etcdserverpb.Maintenance/Status" => route!(self.maintenance, status, message, token),
            "/etcdserverpb.Maintenance/Defragment" => {
                route!(self.maintenance, defragment, message, token)
            }
            "/etcdserverpb.Maintenance/Hash" => route!(self.maintenance, hash, message, token),
            "/etcdserverpb.Maintenance/HashKV" => route!(self.maintenance, hash_kv, message, token),
            "/etcdserverpb.Maintenance/MoveLeader" => {
                route!(self.maintenance, move_leader, message, token)
            }
            "/etcdserverpb.Maintenance/Snapshot" => {
                let ctx = self.ctx.clone();
                server_streaming(message, move |r| {
                    snapshot::snapshot(ctx, token.as_deref(), r)
                })
            }
            "/etcdserverpb.Cluster/MemberAdd" => route!(self.cluster, member_add, message, token),
            "/etcdserverpb.Cluster/MemberRemove" => {
                route!(self.cluster, member_remove, message, token)
            }
            "/etcdserverpb.Cluster/MemberUpdate" => {
                route!(self.cluster, member_update, message, token)
            }
            "/etcdserverpb.Cluster/MemberList" => route!(self.cluster, member_list, message, token),
            "/etcdserverpb.Cluster/MemberPromote" => {
                route!(self.cluster, member_promote, message, token)
            }
            "/etcdserverpb.Auth/AuthEnable" => route_auth!(self.auth, auth_enable, message, token),
            "/etcdserverpb.Auth/AuthDisable" => {
                route_auth!(self.auth, auth_disable, message, token)
            }
            "/etcdserverpb.Auth/AuthStatus" => route_auth!(self.auth, auth_status, message, token),
            "/etcdserverpb.Auth/Authenticate" => {
                route_auth!(self.auth, authenticate, message, token)
            }
            "/etcdserverpb.Auth/UserAdd" => route_auth!(self.auth, user_add, message, token),
            "/etcdserverpb.Auth/UserGet" => route_auth!(self.auth, user_get, message, token),
            "/etcdserverpb.Auth/UserList" => route_auth!(self.auth, user_list, message, token),
            "/etcdserverpb.Auth/UserDelete" => route_auth!(self.auth, user_delete, message, token),
            "/etcdserverpb.Auth/UserChangePassword" => {
                route_auth!(self.auth, user_change_password, message, token)
            }
            "/etcdserverpb.Auth/UserGrantRole" => {
                route_auth!(self.auth, user_grant_role, message, token)
            }
            "/etcdserverpb.Auth/UserRevokeRole" => {
                route_auth!(self.auth, user_revoke_role, message, token)
            }
            "/etcdserverpb.Auth/RoleAdd" => route_auth!(self.auth, role_add, message, token),
            "/etcdserverpb.Auth/RoleGet" => route_auth!(self.auth, role_get, message, token),
            "/etcdserverpb.Auth/RoleList" => route_auth!(self.auth, role_list, message, token),
            "/etcdserverpb.Auth/RoleDelete" => route_auth!(self.auth, role_delete, message, token),
            "/etcdserverpb.Auth/RoleGrantPermission" => {
                route_auth!(self.auth, role_grant_permission, message, token)
            }
            "/etcdserverpb.Auth/RoleRevokePermission" => {
                route_auth!(self.auth, role_revoke_permission, message, token)
            }
            "/etcdserverpb.Lease/LeaseGrant" => route!(self.lease, lease_grant, message, token),
            "/etcdserverpb.Lease/LeaseRevoke" => route!(self.lease, lease_revoke, message, token),
            "/etcdserverpb.Lease/LeaseTimeToLive" => {
                route!(self.lease, lease_time_to_live, message, token)
            }
            "/etcdserverpb.Lease/LeaseLeases" => route!(self.lease, lease_leases, message, token),
            "/v3lockpb.Lock/Lock" => route!(self.lock, lock, message, token),
            "/v3lockpb.Lock/Unlock" => route!(self.lock, unlock, message, token),
            "/v3electionpb.Election/Campaign" => route!(self.election, campaign, message, token),
            "/v3electionpb.Election/Proclaim" => route!(self.election, proclaim, message, token),
            "/v3electionpb.Election/Leader" => route!(self.election, leader, message, token),
            "/v3electionpb.Election/Resign" => route!(self.election, resign, message, token),
            "/v3electionpb.Election/Observe" => {
                let election = self.election.clone();
                server_streaming(message, move |r| election.observe(r, token.owned()))
            }
            RENEW_PATH => route!(self.lease, forwarded_renew, message, token),
            TIME_TO_LIVE_PATH => route!(self.lease, forwarded_time_to_live, message, token),
            _ => refused(self, path),
        }
    }
}

/// `kind` refused every other path before the request got here.
fn refused(dispatch: &Dispatch, path: &str) -> Response {
    let refused = grpc_h2::Handler::kind(dispatch, path).err();
    let status = refused.unwrap_or_else(|| {
        grpc_h2::Status::new(tonic::Code::Internal as i32, format!("no route for {path}"))
    });
    Response::Unary(futures::future::ready(Err(status)).boxed())
}

/// The unary calls etcr answers; `Dispatch::route` routes each of them.
pub const UNARY_CALLS: &[&str] = &[
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Maintenance/Alarm",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Defragment",
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Maintenance/HashKV",
    "/etcdserverpb.Maintenance/MoveLeader",
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberList",
    "/etcdserverpb.Cluster/MemberPromote",
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Lease/LeaseLeases",
    "/v3lockpb.Lock/Lock",
    "/v3lockpb.Lock/Unlock",
    "/v3electionpb.Election/Campaign",
    "/v3electionpb.Election/Proclaim",
    "/v3electionpb.Election/Leader",
    "/v3electionpb.Election/Resign",
    RENEW_PATH,
    TIME_TO_LIVE_PATH,
    "/etcdserverpb.Auth/AuthEnable",
    "/etcdserverpb.Auth/AuthDisable",
    "/etcdserverpb.Auth/AuthStatus",
    "/etcdserverpb.Auth/Authenticate",
    "/etcdserverpb.Auth/UserAdd",
    "/etcdserverpb.Auth/UserGet",
    "/etcdserverpb.Auth/UserList",
    "/etcdserverpb.Auth/UserDelete",
    "/etcdserverpb.Auth/UserChangePassword",
    "/etcdserverpb.Auth/UserGrantRole",
    "/etcdserverpb.Auth/UserRevokeRole",
    "/etcdserverpb.Auth/RoleAdd",
    "/etcdserverpb.Auth/RoleGet",
    "/etcdserverpb.Auth/RoleList",
    "/etcdserverpb.Auth/RoleDelete",
    "/etcdserverpb.Auth/RoleGrantPermission",
    "/etcdserverpb.Auth/RoleRevokePermission",
];

/// What the client port allows its clients.
#[derive(Clone)]
pub struct PortLimits {
    pub grpc: grpc_h2::Limits,
    /// Client connections open at once, over all client URLs; more wait in the kernel's
    /// accept queue until one closes.
    pub connections: Arc<Semaphore>,
}

/// One client connection's view of the handler (a [`Dispatch`]): every call carries what the
/// connection's TLS handshake verified about the client.
struct ConnectionHandler<H> {
    inner: Arc<H>,
    client_common_name: Option<String>,
}

impl<H: grpc_h2::Handler> grpc_h2::Handler for ConnectionHandler<H> {
    fn kind(&self, path: &str) -> Result<CallKind, grpc_h2::Status> {
        self.inner.kind(path)
    }

    fn call(&self, path: &str, mut metadata: Metadata, request: Request) -> Response {
        metadata
            .client_common_name
            .clone_from(&self.client_common_name);
        self.inner.call(path, metadata, request)
    }
}

/// Accepts client connections on `listener` until `stop` turns true, then lets open
/// connections finish (gRPC ones get a GOAWAY) for up to [`DRAIN_TIMEOUT`]. With `tls`
/// (an `https://` URL) each connection is a TLS session first, then served the same way.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    dispatch: Arc<Dispatch>,
    routes: axum::Router,
    limits: PortLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = limits.connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s).map(|_| ()) => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!("accepting a client connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s).map(|_| ()) => break,
        };
        let _ = tcp.set_nodelay(true);
        let (dispatch, routes, grpc) = (dispatch.clone(), routes.clone(), limits.grpc.clone());
        let (tls, stop) = (tls.clone(), stop.clone());
        connections.spawn(async move {
            let _permit = permit;
            let Some(tls) = tls else {
                return serve_connection(tcp, peer, None, dispatch, routes, grpc, stop).await;
            };
            // A client that does not speak TLS (plain HTTP, a port scan) fails here at once;
            // one that stalls is cut off by the handshake timeout.
            let handshake = tokio::time::timeout(grpc.handshake_timeout, tls.accept(tcp));
            let session = match handshake.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return debug!(%peer, "client TLS handshake failed: {e}"),
                Err(_) => return debug!(%peer, "client TLS handshake timed out"),
            };
            let common_name = crate::tls::client_common_name(session.get_ref().1);
            serve_connection(session, peer, common_name, dispatch, routes, grpc, stop).await
        });
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Serves one client connection (plaintext, or a TLS session already set up): gRPC when it
/// opens with the HTTP/2 preface, else HTTP/1 for the axum routes.
async fn serve_connection<IO>(
    mut io: IO,
    peer: std::net::SocketAddr,
    client_common_name: Option<String>,
    dispatch: Arc<Dispatch>,
    routes: axum::Router,
    grpc: grpc_h2::Limits,
    mut stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // The handshake timeout also covers showing which protocol the client speaks.
    let sniffed = tokio::time::timeout(grpc.handshake_timeout, grpc_h2::sniff(&mut io));
    let (is_h2, prefix) = match sniffed.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return debug!(%peer, "client connection: {e}"),
        Err(_) => return debug!(%peer, "client connection: sent too little in time"),
    };
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if is_h2 {
        let io = grpc_h2::AuthorityFix::new(grpc_h2::Prefixed::new(prefix, io));
        let handler = Arc::new(ConnectionHandler {
            inner: dispatch,
            client_common_name,
        });
        match grpc_h2::serve_connection(io, handler, grpc, stopped).await {
            Ok(()) => {}
            // A client that breaks the protocol is worth a line; one that hangs up is not.
            Err(grpc_h2::Error::H2(e)) if e.is_go_away() && !e.is_remote() => {
                warn!(%peer, "closed a gRPC connection: {e}")
            }
            Err(e) => debug!(%peer, "gRPC connection ended: {e}"),
        }
    } else {
        let io = hyper_util::rt::TokioIo::new(grpc_h2::Prefixed::new(prefix, io));
        let service = hyper_util::service::TowerToHyperService::new(routes);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(grpc.handshake_timeout)
            .serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => if let Err(e) = r { debug!(%peer, "HTTP connection ended: {e}") },
            _ = stopped => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(response: Response) -> Vec<Result<Bytes, grpc_h2::Status>> {
        match response {
            Response::Stream(s) => s.collect().await,
            Response::Unary(_) => panic!("a stream was expected"),
        }
    }

    #[tokio::test]
    async fn bidirectional_calls_see_typed_requests_and_send_typed_responses() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        let requests = futures::stream::iter([
            Ok(Bytes::from(put.encode_to_vec())),
            Ok(Bytes::from_static(&[0xff, 0xff])),
        ])
        .boxed();
        // Answers each request with a response carrying the request's key as its revision.
        let response = bidirectional(requests, |requests| {
            requests
                .map(|r: Result<pb::PutRequest, tonic::Status>| {
                    r.map(|p| pb::ResponseHeader {
                        revision: p.key.len() as i64,
                        ..Default::default()
                    })
                })
                .boxed()
        });
        let replies = collect(response).await;
        let first = pb::ResponseHeader::decode(replies[0].clone().unwrap()).unwrap();
        assert_eq!(first.revision, 1);
        let err = replies[1].clone().unwrap_err();
        assert_eq!(err.code, tonic::Code::Internal as i32);
        assert!(err.message.starts_with("grpc: error unmarshalling request"));
    }

    /// Answers every call with the client common name its metadata carried.
    struct EchoCommonName;

    impl grpc_h2::Handler for EchoCommonName {
        fn kind(&self, _path: &str) -> Result<CallKind, grpc_h2::Status> {
            Ok(CallKind::Unary)
        }

        fn call(&self, _path: &str, metadata: Metadata, _request: Request) -> Response {
            let cn = metadata.client_common_name.unwrap_or_default();
            Response::Unary(futures::future::ready(Ok(Bytes::from(cn))).boxed())
        }
    }

    #[tokio::test]
    async fn every_call_of_a_connection_carries_its_client_common_name() {
        let handler = ConnectionHandler {
            inner: Arc::new(EchoCommonName),
            client_common_name: Some("root".into()),
        };
        let metadata = grpc_h2::Metadata {
            authority: "127.0.0.1:2379".into(),
            token: None,
            deadline: None,
            has_leader: false,
            headers: Default::default(),
            // What a connection without TLS would leave; the wrapper overwrites it.
            client_common_name: Some("mallory".into()),
        };
        let call = grpc_h2::Handler::call(
            &handler,
            "/etcdserverpb.KV/Range",
            metadata.clone(),
            Request::Message(Bytes::new()),
        );
        let Response::Unary(answer) = call else {
            panic!("unary expected")
        };
        assert_eq!(answer.await.unwrap(), Bytes::from("root"));
        let anonymous = ConnectionHandler {
            inner: Arc::new(EchoCommonName),
            client_common_name: None,
        };
        let call = grpc_h2::Handler::call(
            &anonymous,
            "/etcdserverpb.KV/Range",
            metadata,
            Request::Message(Bytes::new()),
        );
        let Response::Unary(answer) = call else {
            panic!("unary expected")
        };
        assert_eq!(answer.await.unwrap(), Bytes::new());
    }

    #[tokio::test]
    async fn a_server_stream_with_an_undecodable_request_fails_at_once() {
        let response = server_streaming(Bytes::from_static(&[0xff]), |_: pb::SnapshotRequest| {
            futures::stream::empty::<Result<pb::SnapshotResponse, tonic::Status>>().boxed()
        });
        let replies = collect(response).await;
        assert_eq!(replies.len(), 1);
        assert!(replies[0].is_err());
    }
}
