//! Gateway handlers: each path decodes its JSON request, runs the service method the gRPC
//! port runs (same validation, linearizability and errors), and encodes the outcome.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{post, MethodRouter};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Status};

use super::json;

/// The largest request message the gRPC port accepts; the gateway holds JSON bodies to the
/// same limit, so a request too big for one is too big for the other.
#[derive(Clone, Copy)]
pub struct MessageLimit {
    max_message: usize,
}

impl MessageLimit {
    pub fn new(max_message: usize) -> Self {
        MessageLimit { max_message }
    }

    /// JSON spends 4 bytes of base64 on 3 of a message's bytes, plus names and quotes.
    fn max_body(self) -> usize {
        self.max_message.saturating_mul(4)
    }

    async fn read<Req>(self, body: Body) -> Result<Req, Status>
    where
        Req: DeserializeOwned + prost::Message + Default,
    {
        let max_body = self.max_body();
        // A body that cannot be read is too long, or its client hung up and hears nothing.
        let bytes = axum::body::to_bytes(body, max_body).await.map_err(|_| {
            Status::resource_exhausted(format!(
                "gateway: request body larger than {max_body} bytes"
            ))
        })?;
        let req: Req = json::decode(&bytes)?;
        let len = req.encoded_len();
        if len > self.max_message {
            return Err(Status::resource_exhausted(format!(
                "grpc: received message larger than max ({len} vs. {})",
                self.max_message
            )));
        }
        Ok(req)
    }
}

/// A unary method: `call(service, request)` answers the decoded request.
pub fn unary<S, Req, Resp, F, Fut>(limit: MessageLimit, service: Arc<S>, call: F) -> MethodRouter
where
    S: Send + Sync + 'static,
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize,
    F: Fn(Arc<S>, Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>> + Send,
{
    post_only(post(move |body: Body| async move {
        let req = match limit.read::<Req>(body).await {
            Ok(r) => r,
            Err(s) => return json::error(&s),
        };
        match call(service, Request::new(req)).await {
            Ok(resp) => json::ok(resp.get_ref()),
            Err(s) => json::error(&s),
        }
    }))
}

/// A server-streaming method: one `{"result":...}` line per message, chunked. As with
/// grpc-gateway, the status line waits for the first message, so a stream that fails at
/// once answers with the error's HTTP status; a later error is the stream's last line.
pub fn server_stream<S, Req, Resp, St, F, Fut>(
    limit: MessageLimit,
    service: Arc<S>,
    call: F,
) -> MethodRouter
where
    S: Send + Sync + 'static,
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    St: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: Fn(Arc<S>, Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<St>, Status>> + Send,
{
    post_only(post(move |body: Body| async move {
        let req = match limit.read::<Req>(body).await {
            Ok(r) => r,
            Err(s) => return json::stream_failed(&s),
        };
        let mut stream = match call(service, Request::new(req)).await {
            Ok(resp) => Box::pin(resp.into_inner()),
            Err(s) => return json::stream_failed(&s),
        };
        let first = match stream.next().await {
            None => return json::respond(StatusCode::OK, Body::empty()),
            Some(Err(s)) => return json::stream_failed(&s),
            Some(Ok(resp)) => json::stream_result(&resp),
        };
        let rest = futures::stream::unfold(Some(stream), |stream| async move {
            let mut stream = stream?;
            match stream.next().await? {
                Ok(resp) => Some((json::stream_result(&resp), Some(stream))),
                Err(s) => Some((json::stream_error(&s), None)),
            }
        });
        let lines = futures::stream::once(async move { first })
            .chain(rest)
            .map(Ok::<_, Infallible>);
        json::respond(StatusCode::OK, Body::from_stream(lines))
    }))
}

/// A unary method of a service etcr does not serve yet: grpc-go's answer for it.
pub fn missing_unary(service: &'static str) -> MethodRouter {
    post_only(post(move || async move {
        json::error(&unknown_service(service))
    }))
}

/// A streaming method of a service etcr does not serve yet.
pub fn missing_stream(service: &'static str) -> MethodRouter {
    post_only(post(move || async move {
        json::stream_failed(&unknown_service(service))
    }))
}

fn unknown_service(service: &str) -> Status {
    Status::unimplemented(format!("unknown service {service}"))
}

/// Every gateway path takes POST, and OPTIONS for a browser's CORS preflight; Go's
/// `net/http` words the refusal of any other method.
fn post_only(router: MethodRouter) -> MethodRouter {
    router
        .options(|| async { json::allow_any_origin(StatusCode::OK.into_response()) })
        .fallback(|| async {
            json::allow_any_origin(
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "Method Not Allowed\n",
                )
                    .into_response(),
            )
        })
}
