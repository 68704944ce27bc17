//! Streaming methods on the gateway, as grpc-gateway runs them over HTTP/1: the request body
//! is a sequence of JSON requests, the response a chunked sequence of `{"result":...}` lines.
//! The status line waits for the first response, so a stream that fails at once answers with
//! its error's HTTP status; a later error is the stream's last line.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, BodyDataStream};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tonic::Status;

use super::call::{authorization, post_only, MessageLimit};
use super::json;

type Responses<Resp> = BoxStream<'static, Result<Resp, Status>>;

/// One request (and the caller's token), a stream of responses (`Maintenance.Snapshot`,
/// `Election.Observe`).
pub fn server_stream<S, Req, Resp, F>(limit: MessageLimit, service: Arc<S>, call: F) -> MethodRouter
where
    S: Send + Sync + 'static,
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Arc<S>, Option<String>, Req) -> Responses<Resp> + Clone + Send + Sync + 'static,
{
    post_only(post(move |headers: HeaderMap, body: Body| async move {
        match limit.read::<Req>(body).await {
            Ok(req) => {
                respond(call(
                    service,
                    authorization(&headers).map(str::to_owned),
                    req,
                ))
                .await
            }
            Err(s) => json::stream_failed(&s),
        }
    }))
}

/// Streams both ways (`Watch.Watch`, `Lease.LeaseKeepAlive`). As in etcd's gateway, a first
/// request that cannot be decoded fails the call (code 2, as Go's decoder error is no gRPC
/// status), and a later one ends the requests, leaving the responses running.
pub fn bidirectional<S, Req, Resp, F>(limit: MessageLimit, service: Arc<S>, call: F) -> MethodRouter
where
    S: Send + Sync + 'static,
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Arc<S>, Option<String>, BoxStream<'static, Result<Req, Status>>) -> Responses<Resp>
        + Clone
        + Send
        + Sync
        + 'static,
{
    post_only(post(move |headers: HeaderMap, body: Body| async move {
        let token = authorization(&headers).map(str::to_owned);
        let mut requests = requests::<Req>(body, limit);
        let first = match requests.next().await {
            Some(Ok(req)) => Some(Ok(req)),
            Some(Err(s)) => return json::error(&Status::unknown(s.message())),
            None => None,
        };
        let requests = futures::stream::iter(first)
            .chain(requests.take_while(|r| std::future::ready(r.is_ok())))
            .boxed();
        respond(call(service, token, requests)).await
    }))
}

/// The response to a stream: headed by its first message's outcome.
async fn respond<Resp: Serialize + Send + 'static>(mut responses: Responses<Resp>) -> Response {
    let first = match responses.next().await {
        None => return json::respond(StatusCode::OK, Body::empty()),
        Some(Err(s)) => return json::stream_failed(&s),
        Some(Ok(resp)) => json::stream_result(&resp),
    };
    let rest = futures::stream::unfold(Some(responses), |responses| async move {
        let mut responses = responses?;
        match responses.next().await? {
            Ok(resp) => Some((json::stream_result(&resp), Some(responses))),
            Err(s) => Some((json::stream_error(&s), None)),
        }
    });
    let lines = futures::stream::once(async move { first })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    json::respond(StatusCode::OK, Body::from_stream(lines))
}

/// The JSON values of a request body as they arrive, as Go's `json.Decoder` reads them: a
/// value may span chunks, and whitespace between values is skipped. The first undecodable
/// value, or one over the message limit, is the stream's last item.
fn requests<Req>(body: Body, limit: MessageLimit) -> BoxStream<'static, Result<Req, Status>>
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
{
    struct Reading {
        data: BodyDataStream,
        buffer: Vec<u8>,
        ended: bool,
    }
    let reading = Reading {
        data: body.into_data_stream(),
        buffer: Vec::new(),
        ended: false,
    };
    futures::stream::unfold(Some(reading), move |reading| async move {
        let mut r = reading?;
        loop {
            match next_value::<Req>(&mut r.buffer, r.ended) {
                Some(Ok(req)) => {
                    return Some(match limit.check(&req) {
                        Ok(()) => (Ok(req), Some(r)),
                        Err(s) => (Err(s), None),
                    })
                }
                Some(Err(s)) => return Some((Err(s), None)),
                None if r.ended => return None,
                None => {}
            }
            match r.data.next().await {
                Some(Ok(chunk)) => {
                    r.buffer.extend_from_slice(&chunk);
                    if r.buffer.len() > limit.max_body() {
                        return Some((Err(limit.body_too_large()), None));
                    }
                }
                // A body cut short ends the requests; the responses go on as etcd's do.
                Some(Err(_)) | None => r.ended = true,
            }
        }
    })
    .boxed()
}

/// Takes the first complete value off `buffer`; `None` when it needs more bytes (or, once
/// the body has `ended`, holds nothing but whitespace).
fn next_value<Req: DeserializeOwned + Default>(
    buffer: &mut Vec<u8>,
    ended: bool,
) -> Option<Result<Req, Status>> {
    let mut values = serde_json::Deserializer::from_slice(buffer).into_iter::<Value>();
    match values.next() {
        None => {
            buffer.clear();
            None
        }
        Some(Ok(value)) => {
            let used = values.byte_offset();
            buffer.drain(..used);
            Some(json::from_value(value))
        }
        Some(Err(e)) if e.is_eof() && !ended => None,
        Some(Err(e)) => Some(Err(Status::invalid_argument(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::etcdserverpb as pb;
    use axum::http::Request;
    use tower::ServiceExt;

    const LIMIT: usize = 1 << 20;

    /// Answers each keep-alive with its id, as a stand-in for a bidirectional service.
    fn echo() -> MethodRouter {
        bidirectional(
            MessageLimit::new(LIMIT),
            Arc::new(()),
            |_, _, requests: BoxStream<'static, Result<pb::LeaseKeepAliveRequest, Status>>| {
                requests
                    .map(|r| {
                        r.map(|r| pb::LeaseKeepAliveResponse {
                            id: r.id,
                            ..Default::default()
                        })
                    })
                    .boxed()
            },
        )
    }

    async fn call(router: MethodRouter, body: Body) -> (StatusCode, String) {
        let request = Request::post("/").body(body).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn requests_split_across_chunks_are_answered_in_order() {
        let chunks = ["{\"ID\":\"1\"}  {\"I", "D\":2}\n", "", " {\"ID\":\"3\"}"];
        let body = Body::from_stream(futures::stream::iter(
            chunks.map(|c| Ok::<_, Infallible>(c.to_string())),
        ));
        let (status, text) = call(echo(), body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            text,
            "{\"result\":{\"ID\":\"1\"}}\n{\"result\":{\"ID\":\"2\"}}\n{\"result\":{\"ID\":\"3\"}}\n"
        );
    }

    #[tokio::test]
    async fn a_bad_first_request_fails_the_call_and_a_later_one_ends_the_requests() {
        let (status, text) = call(echo(), Body::from("xx")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(text.ends_with(",\"code\":2}"), "{text}");

        let (status, text) = call(
            echo(),
            Body::from("{\"ID\":\"1\"} {\"ID\":\"x\"} {\"ID\":3}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "{\"result\":{\"ID\":\"1\"}}\n");
    }

    #[tokio::test]
    async fn an_error_after_the_first_response_is_the_last_line() {
        let router = server_stream(
            MessageLimit::new(LIMIT),
            Arc::new(()),
            |_, _, _: pb::SnapshotRequest| {
                futures::stream::iter([
                    Ok(pb::SnapshotResponse {
                        remaining_bytes: 1,
                        blob: b"ab".to_vec(),
                        ..Default::default()
                    }),
                    Err(Status::unavailable("etcdserver: no leader")),
                    Ok(pb::SnapshotResponse::default()),
                ])
                .boxed()
            },
        );
        let (status, text) = call(router, Body::empty()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            text,
            "{\"result\":{\"remaining_bytes\":\"1\",\"blob\":\"YWI=\"}}\n\
             {\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\",\
             \"http_status\":\"Service Unavailable\"}}\n"
        );
    }
}
