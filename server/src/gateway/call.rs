//! Gateway handlers: each path decodes its JSON request, runs the service method the gRPC
//! port runs (same validation, linearizability and errors), and encodes the outcome.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{post, MethodRouter};
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
    pub fn max_body(self) -> usize {
        self.max_message.saturating_mul(4)
    }

    pub fn body_too_large(self) -> Status {
        Status::resource_exhausted(format!(
            "gateway: request body larger than {} bytes",
            self.max_body()
        ))
    }

    /// grpc-go's refusal of a message over the limit, which etcd's gateway passes on.
    pub fn check<Req: prost::Message>(self, req: &Req) -> Result<(), Status> {
        let len = req.encoded_len();
        if len > self.max_message {
            return Err(Status::resource_exhausted(format!(
                "grpc: received message larger than max ({len} vs. {})",
                self.max_message
            )));
        }
        Ok(())
    }

    /// Reads and decodes a whole request body.
    pub async fn read<Req>(self, body: Body) -> Result<Req, Status>
    where
        Req: DeserializeOwned + prost::Message + Default,
    {
        // A body that cannot be read is too long, or its client hung up and hears nothing.
        let bytes = axum::body::to_bytes(body, self.max_body())
            .await
            .map_err(|_| self.body_too_large())?;
        let req: Req = json::decode(&bytes)?;
        self.check(&req)?;
        Ok(req)
    }
}

/// The caller's token: etcd takes the gateway's from the `Authorization` header, as it is.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
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
    post_only(post(move |headers: HeaderMap, body: Body| async move {
        let req = match limit.read::<Req>(body).await {
            Ok(r) => r,
            Err(s) => return json::error(&s),
        };
        let token = authorization(&headers);
        match call(service, crate::auth::with_token(Request::new(req), token)).await {
            Ok(resp) => json::ok(resp.get_ref()),
            Err(s) => json::error(&s),
        }
    }))
}

/// Every gateway path takes POST, and OPTIONS for a browser's CORS preflight; Go's
/// `net/http` words the refusal of any other method.
pub fn post_only(router: MethodRouter) -> MethodRouter {
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

#[cfg(test)]
mod tests {
    use super::*;
    use api::etcdserverpb as pb;
    use tonic::Code;

    #[tokio::test]
    async fn a_body_past_four_times_the_message_limit_is_refused_unread() {
        let limit = MessageLimit::new(100);
        let body = Body::from(format!("{{\"key\":\"{}\"}}", "A".repeat(400)));
        let e = limit.read::<pb::PutRequest>(body).await.unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(e.message(), "gateway: request body larger than 400 bytes");

        let body = Body::from(format!("{{\"key\":\"{}\"}}", "A".repeat(200)));
        let e = limit.read::<pb::PutRequest>(body).await.unwrap_err();
        assert_eq!(
            e.message(),
            "grpc: received message larger than max (153 vs. 100)"
        );
    }
}
