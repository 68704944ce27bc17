//! Questions only the leader answers (renewals, remaining TTLs), asked by a follower of the
//! leader over the leader's client port, as etcd's followers ask over their peer port.
//!
//! The calls go to etcr's own unary paths, which the leader answers only while it leads:
//! a member that lost leadership says so, and the follower asks the new leader, so a question
//! never bounces between two members that each think the other leads.

use std::sync::Mutex;
use std::time::Duration;

use api::etcdserverpb as pb;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use crate::errors::EtcdError;

/// The leader renews the lease of a `LeaseKeepAliveRequest`.
pub const RENEW_PATH: &str = "/etcr.LeaseForward/Renew";
/// The leader answers a `LeaseTimeToLiveRequest`.
pub const TIME_TO_LIVE_PATH: &str = "/etcr.LeaseForward/TimeToLive";

/// How long one forwarded call may take before the follower tries again.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One HTTP/2 connection to the current leader's client port, made when first needed and
/// replaced when the leader changes.
#[derive(Default)]
pub struct LeaderLink {
    channel: Mutex<Option<(u64, Channel)>>,
}

impl LeaderLink {
    fn channel(&self, leader: u64, url: &str) -> Result<Channel, EtcdError> {
        let mut cached = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, ch)) = cached.as_ref() {
            if *id == leader {
                return Ok(ch.clone());
            }
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| EtcdError::Internal(format!("leader client URL {url}: {e}")))?
            .connect_timeout(CALL_TIMEOUT)
            .tcp_nodelay(true);
        let ch = endpoint.connect_lazy();
        *cached = Some((leader, ch.clone()));
        Ok(ch)
    }

    /// Drops the connection to `leader`, so the next call dials again.
    fn forget(&self, leader: u64) {
        let mut cached = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().is_some_and(|(id, _)| *id == leader) {
            *cached = None;
        }
    }

    pub async fn renew(
        &self,
        leader: u64,
        url: &str,
        id: i64,
    ) -> Result<pb::LeaseKeepAliveResponse, tonic::Status> {
        let req = pb::LeaseKeepAliveRequest { id };
        self.call(leader, url, RENEW_PATH, req).await
    }

    pub async fn time_to_live(
        &self,
        leader: u64,
        url: &str,
        req: pb::LeaseTimeToLiveRequest,
    ) -> Result<pb::LeaseTimeToLiveResponse, tonic::Status> {
        self.call(leader, url, TIME_TO_LIVE_PATH, req).await
    }

    async fn call<Req, Resp>(
        &self,
        leader: u64,
        url: &str,
        path: &'static str,
        req: Req,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let channel = self.channel(leader, url)?;
        let mut grpc = tonic::client::Grpc::new(channel);
        let call = async {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("leader unreachable: {e}")))?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            grpc.unary(
                tonic::Request::new(req),
                PathAndQuery::from_static(path),
                codec,
            )
            .await
        };
        let result = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded("leader did not answer")),
        };
        if let Err(s) = &result {
            if s.code() != tonic::Code::NotFound {
                self.forget(leader);
            }
        }
        result
    }
}
