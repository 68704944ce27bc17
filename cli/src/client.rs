//! The gRPC connection to the cluster and etcd clientv3's error behaviour: waiting for a
//! reachable endpoint until the command deadline, the retry interceptor's warning line, and
//! the mapping of gRPC statuses to the error text etcdctl prints.

use std::future::Future;
use std::io::Read;
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use crate::auth::{Credentials, TokenSlot};

use crate::error::{exit, CliError, Result};
use crate::gofmt;
use crate::tls::Security;

/// A connection to one endpoint; it sends the client's token, once it has one.
pub type Conn = InterceptedService<Channel, TokenSlot>;

/// A client over one or more endpoints, used like clientv3 with a command timeout.
pub struct Client {
    channels: Vec<Conn>,
    command_timeout: Duration,
    target: String,
    credentials: Option<Credentials>,
    token: TokenSlot,
}

impl Client {
    /// Builds lazy channels for `endpoints` (`host:port`, `http://host:port` or
    /// `https://host:port`), TLS ones as `security` says.
    pub fn new(
        endpoints: &[String],
        dial_timeout: Duration,
        command_timeout: Duration,
        security: &Security,
    ) -> Result<Self> {
        let token = TokenSlot::default();
        let mut channels = Vec::new();
        for ep in endpoints {
            let (url, tls) = match ep.split_once("://") {
                None => (format!("http://{ep}"), security.default.clone()),
                Some(("http", _)) => (ep.clone(), None),
                Some(("https", _)) => (ep.clone(), Some(security.https.clone())),
                Some((scheme, _)) => return Err(refused_endpoint(ep, scheme)),
            };
            let endpoint = Endpoint::from_shared(url)
                .map_err(|e| CliError::exit(exit::ERROR, e.to_string()))?
                .connect_timeout(dial_timeout);
            channels.push(InterceptedService::new(
                endpoint.connect_with_connector_lazy(Connector { tls }),
                token.clone(),
            ));
        }
        let first = endpoints.first().map(String::as_str).unwrap_or_default();
        let host = first.split_once("://").map_or(first, |(_, h)| h);
        Ok(Client {
            channels,
            command_timeout,
            target: format!("endpoint://client-{}/{host}", uuid_v4()),
            credentials: None,
            token,
        })
    }

    /// Authenticates as `credentials` before the first call (etcdctl's `--user`).
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// clientv3 authenticates when it connects; a refusal ends etcdctl with its
    /// bad-connection code.
    async fn authenticate(&self) -> Result<()> {
        let Some(c) = self.credentials.clone().filter(|_| !self.token.is_set()) else {
            return Ok(());
        };
        let req = api::etcdserverpb::AuthenticateRequest {
            name: c.name,
            password: c.password,
        };
        let resp = self
            .call(|ch| {
                let req = req.clone();
                async move {
                    api::etcdserverpb::auth_client::AuthClient::new(ch)
                        .authenticate(req)
                        .await
                }
            })
            .await
            .map_err(|e| e.with_code(exit::BAD_CONNECTION))?;
        self.token.set(&resp.token)
    }

    /// Names the connection as grpc's passthrough resolver does for a single dialled
    /// endpoint (clientv3's `Maintenance.Status(ctx, endpoint)`).
    pub fn passthrough(mut self, endpoint: &str) -> Self {
        self.target = format!("passthrough:///{endpoint}");
        self
    }

    /// Runs one unary RPC, trying endpoints until one answers or the command deadline passes.
    pub async fn unary<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        self.authenticate().await?;
        self.call(call).await
    }

    async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.command_timeout;
        let mut next = 0;
        let mut transport_failure: Option<String> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || self.channels.is_empty() {
                break;
            }
            let channel = self.channels[next % self.channels.len()].clone();
            next += 1;
            match tokio::time::timeout(remaining, call(channel)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) if is_transport_failure(&status) => {
                    // The retries after a TLS refusal fail in vaguer ways; the refusal is
                    // what grpc-go reports.
                    let detail = format!("{status:?}");
                    if !transport_failure.as_deref().is_some_and(tls_refusal)
                        || tls_refusal(&detail)
                    {
                        transport_failure = Some(detail);
                    }
                    let pause = Duration::from_millis(50)
                        .min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
                Ok(Err(status)) => {
                    self.warn(&grpc_error_string(&status));
                    return Err(CliError::exit(exit::ERROR, etcd_error_string(&status)));
                }
                Err(_) => break,
            }
        }
        let desc = match (
            &transport_failure,
            self.target.strip_prefix("passthrough:///"),
        ) {
            // A single dialled endpoint reports grpc-go's dial error.
            (Some(detail), Some(ep)) if detail.to_lowercase().contains("refused") => {
                let host = ep.split_once("://").map_or(ep, |(_, h)| h);
                format!(
                    "latest balancer error: connection error: desc = \"transport: Error while dialing dial tcp {host}: connect: connection refused\""
                )
            }
            (Some(detail), Some(_)) if untrusted_server(detail) => {
                "latest balancer error: connection error: desc = \"transport: authentication handshake failed: x509: certificate signed by unknown authority\"".to_string()
            }
            // The server refused our certificate (or our lack of one) and hung up.
            (Some(detail), Some(_)) if tls_refusal(detail) => {
                "latest balancer error: connection closed".to_string()
            }
            (Some(_), _) => {
                "latest balancer error: all SubConns are in TransientFailure".to_string()
            }
            (None, _) => "context deadline exceeded".to_string(),
        };
        self.warn(&format!("rpc error: code = DeadlineExceeded desc = {desc}"));
        Err(CliError::exit(exit::ERROR, "context deadline exceeded"))
    }

    /// Opens a stream, retrying transport failures on each endpoint in turn until
    /// `deadline` (`None`: forever, as clientv3 does for a watch). The failure is the
    /// server's status, or [`deadline_exceeded`].
    pub async fn open<T, F, Fut>(
        &self,
        deadline: Option<Instant>,
        call: F,
    ) -> std::result::Result<T, Status>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        if let Err(e) = self.authenticate().await {
            let message = match e {
                CliError::Exit { message, .. } => message,
                _ => "authentication failed".to_string(),
            };
            return Err(Status::unauthenticated(message));
        }
        let mut next = 0;
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining.is_some_and(|r| r.is_zero()) || self.channels.is_empty() {
                return Err(deadline_exceeded());
            }
            let channel = self.channels[next % self.channels.len()].clone();
            next += 1;
            let attempt = call(channel);
            let outcome = match remaining {
                Some(r) => tokio::time::timeout(r, attempt).await.ok(),
                None => Some(attempt.await),
            };
            match outcome {
                Some(Ok(resp)) => return Ok(resp.into_inner()),
                Some(Err(status)) if is_transport_failure(&status) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some(Err(status)) => return Err(status),
                None => return Err(deadline_exceeded()),
            }
        }
    }

    /// When a command that uses the command timeout must be done.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.command_timeout
    }

    /// clientv3's retry interceptor logs every failed unary call at warn level (zap JSON).
    fn warn(&self, error: &str) {
        eprintln!(
            "{{\"level\":\"warn\",\"ts\":\"{}\",\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":{},\"attempt\":0,\"error\":{}}}",
            crate::clock::zap_timestamp(),
            gofmt::json_string(self.target.as_bytes()),
            gofmt::json_string(error.as_bytes())
        );
    }
}

/// Dials an endpoint over TCP, then TLS when `tls` is set (the server's name is the
/// endpoint's host, as grpc-go checks it).
#[derive(Clone)]
struct Connector {
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// A dialled connection, plaintext or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

impl tower::Service<Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<Box<dyn Io>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = std::result::Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
            let host = uri.host().ok_or_else(|| invalid("endpoint has no host"))?;
            let port = uri.port_u16().unwrap_or(2379);
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let Some(tls) = tls else {
                return Ok(hyper_util::rt::TokioIo::new(Box::new(tcp) as Box<dyn Io>));
            };
            let name = crate::tls::server_name(&host)
                .ok_or_else(|| invalid("endpoint host is not a valid TLS server name"))?;
            let session = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(
                Box::new(session) as Box<dyn Io>
            ))
        })
    }
}

/// etcdctl takes `unix://` and `unixs://` endpoints too; etcrctl would have to ignore the
/// scheme, so it says what it lacks instead.
fn refused_endpoint(ep: &str, scheme: &str) -> CliError {
    let why = match scheme {
        "unixs" => "etcrctl does not support unix sockets yet",
        _ => "etcrctl reaches host:port, http:// and https:// endpoints only",
    };
    CliError::bad_feature(format!(
        "endpoint {} is refused: {why}",
        gofmt::quote(ep.as_bytes())
    ))
}

/// Whether a connection failed in its TLS handshake, either way.
fn tls_refusal(detail: &str) -> bool {
    untrusted_server(detail) || detail.contains("received fatal alert")
}

/// Whether a connection failed because the server's certificate does not chain to a CA we
/// trust (webpki reports a same-named CA with another key as a bad signature).
fn untrusted_server(detail: &str) -> bool {
    detail.contains("invalid peer certificate: UnknownIssuer")
        || detail.contains("invalid peer certificate: BadSignature")
}

/// The command deadline passing while a stream is opened (clientv3's context error).
pub fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("context deadline exceeded")
}

/// What clientv3 returns for a stream's failure: the context's own error for the command
/// deadline, else as [`etcd_error_string`].
pub fn stream_error_string(status: &Status) -> String {
    if status.code() == Code::DeadlineExceeded && status.message() == "context deadline exceeded" {
        status.message().to_string()
    } else {
        etcd_error_string(status)
    }
}

/// A stream's failure as clientv3 reports it.
pub fn stream_error(status: &Status) -> CliError {
    CliError::exit(exit::ERROR, stream_error_string(status))
}

/// A connection that could not be made or broke: retried like grpc-go's TransientFailure.
/// A TLS 1.3 server refuses a client certificate after the client's side of the handshake
/// is done, so that refusal shows as the connection breaking (`Unknown`, "transport error").
pub fn is_transport_failure(status: &Status) -> bool {
    let broken = match status.code() {
        Code::Unknown => status.message() == "transport error",
        // What the next call on a connection that broke that way gets.
        Code::Cancelled => status.message() == "operation was canceled",
        Code::Unavailable => !status.message().starts_with("etcdserver:"),
        _ => false,
    };
    broken
}

/// grpc-go's `status.Error` text.
pub fn grpc_error_string(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        code_name(status.code()),
        status.message()
    )
}

/// What clientv3 returns to etcdctl: etcd's own errors by their description, others as gRPC errors.
pub fn etcd_error_string(status: &Status) -> String {
    if status.message().starts_with("etcdserver: ") {
        status.message().to_string()
    } else {
        grpc_error_string(status)
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// A random (version 4) UUID, as clientv3 names its resolver group.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if filled.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = (nanos ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A KV client that takes responses of any size, as etcdctl does (grpc-go's receive limit is
/// raised to the maximum there; tonic's default of 4 MiB would refuse a large `get --prefix`).
pub fn kv(channel: Conn) -> api::etcdserverpb::kv_client::KvClient<Conn> {
    api::etcdserverpb::kv_client::KvClient::new(channel).max_decoding_message_size(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_keep_their_description() {
        let s = Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
        assert_eq!(
            etcd_error_string(&s),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(
            grpc_error_string(&s),
            "rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted"
        );
        let other = Status::internal("boom");
        assert_eq!(
            etcd_error_string(&other),
            "rpc error: code = Internal desc = boom"
        );
    }

    #[test]
    fn endpoints_other_than_http_and_https_are_refused() {
        // Lazy channels still need a runtime to be built in.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _in_runtime = rt.enter();
        let security = crate::tls::security(&crate::tls::TlsFlags {
            insecure_transport: true,
            ..Default::default()
        })
        .unwrap();
        let new = |ep: &str| {
            let eps = [ep.to_string()];
            let second = Duration::from_secs(1);
            Client::new(&eps, second, second, &security).map(|_| ())
        };
        assert_eq!(new("127.0.0.1:2379"), Ok(()));
        assert_eq!(new("http://127.0.0.1:2379"), Ok(()));
        assert_eq!(new("https://127.0.0.1:2379"), Ok(()));
        assert_eq!(
            new("unixs://etcd.sock"),
            Err(CliError::bad_feature(
                "endpoint \"unixs://etcd.sock\" is refused: etcrctl does not support unix sockets yet"
            ))
        );
        assert!(matches!(
            new("unix://etcd.sock"),
            Err(CliError::Exit { code: 4, .. })
        ));
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
