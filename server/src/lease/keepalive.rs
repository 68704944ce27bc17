//! `LeaseKeepAlive`: a bidirectional stream of renewals, many leases per stream.
//!
//! Each request is answered in order, one at a time: the stream reads the next request only
//! once the previous answer has been taken, so a client that sends without reading fills
//! its own flow-control window and nothing piles up here.

use std::future::Future;

use api::etcdserverpb as pb;
use futures::stream::{BoxStream, Stream, StreamExt};
use tonic::Status;

use super::LeaseService;

impl LeaseService {
    pub fn lease_keep_alive(
        &self,
        requests: BoxStream<'static, Result<pb::LeaseKeepAliveRequest, Status>>,
    ) -> BoxStream<'static, Result<pb::LeaseKeepAliveResponse, Status>> {
        let service = self.clone();
        answer_in_order(requests, move |req: pb::LeaseKeepAliveRequest| {
            let service = service.clone();
            async move { service.keep_alive_once(req.id).await }
        })
        .boxed()
    }

    async fn keep_alive_once(&self, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
        // etcd takes the header before renewing, so the revision is never past the renewal:
        // a client cannot see a renewal succeed at a revision after the lease was revoked.
        let header = self.header();
        let ttl = self.renew(id).await?;
        Ok(pb::LeaseKeepAliveResponse { header, id, ttl })
    }
}

/// Answers each request of `requests` with `answer`, in order, one at a time. The first
/// error, of the request stream or of an answer, is the last item.
fn answer_in_order<Req, Resp, F, Fut>(
    requests: impl Stream<Item = Result<Req, Status>> + Unpin + Send + 'static,
    answer: F,
) -> impl Stream<Item = Result<Resp, Status>> + Send + 'static
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let answer = std::sync::Arc::new(answer);
    futures::stream::unfold(Some(requests), move |requests| {
        let answer = answer.clone();
        async move {
            let mut requests = requests?;
            match requests.next().await? {
                // A broken request stream ends the call with its error, as in etcd.
                Err(s) => Some((Err(s), None)),
                Ok(req) => match answer(req).await {
                    Ok(resp) => Some((Ok(resp), Some(requests))),
                    Err(s) => Some((Err(s), None)),
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn requests_are_answered_in_order_and_only_when_the_answer_is_taken() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<i64, Status>>();
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let answers = answer_in_order(tokio_stream_from(rx), move |id: i64| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok(id * 10) }
        });
        let mut answers = Box::pin(answers);
        for id in [3, 1, 2] {
            tx.send(Ok(id)).unwrap();
        }
        assert_eq!(answers.next().await.unwrap().unwrap(), 30);
        assert_eq!(asked.load(Ordering::SeqCst), 1, "nothing read ahead");
        assert_eq!(answers.next().await.unwrap().unwrap(), 10);
        assert_eq!(answers.next().await.unwrap().unwrap(), 20);
        tx.send(Err(Status::cancelled("client went away"))).unwrap();
        tx.send(Ok(4)).unwrap();
        assert_eq!(
            answers.next().await.unwrap().unwrap_err().code(),
            tonic::Code::Cancelled
        );
        assert!(answers.next().await.is_none(), "the error ends the stream");
    }

    #[tokio::test]
    async fn a_failed_answer_ends_the_stream_and_a_closed_request_side_ends_it_cleanly() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<i64, Status>>();
        let mut answers = Box::pin(answer_in_order(
            tokio_stream_from(rx),
            |id: i64| async move {
                if id < 0 {
                    Err(Status::unavailable("etcdserver: no leader"))
                } else {
                    Ok(id)
                }
            },
        ));
        tx.send(Ok(1)).unwrap();
        tx.send(Ok(-1)).unwrap();
        tx.send(Ok(2)).unwrap();
        assert_eq!(answers.next().await.unwrap().unwrap(), 1);
        assert!(answers.next().await.unwrap().is_err());
        assert!(answers.next().await.is_none());

        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<i64, Status>>();
        let mut answers = Box::pin(answer_in_order(
            tokio_stream_from(rx),
            |id: i64| async move { Ok(id) },
        ));
        tx.send(Ok(5)).unwrap();
        drop(tx);
        assert_eq!(answers.next().await.unwrap().unwrap(), 5);
        assert!(answers.next().await.is_none());
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
    ) -> impl Stream<Item = T> + Unpin + Send + 'static {
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
