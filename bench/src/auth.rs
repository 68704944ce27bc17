//! `--user`: the run authenticates once, before it starts, and every request then carries
//! the token as etcd's `token` metadata, as a clientv3 client does.

use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::AuthenticateRequest;
use http::{HeaderMap, HeaderValue};

use crate::{Args, BenchError};

/// The metadata every request sends: the token of `--user`, or nothing without it.
pub async fn metadata(url: &str, args: &Args) -> Result<HeaderMap, BenchError> {
    let mut metadata = HeaderMap::new();
    let Some(user) = &args.user else {
        return Ok(metadata);
    };
    let (name, password) = match (&args.password, user.split_once(':')) {
        (Some(p), _) => (user.as_str(), p.as_str()),
        (None, Some((n, p))) => (n, p),
        (None, None) => {
            return Err(BenchError::Args(
                "--user needs name:password, or --password".into(),
            ))
        }
    };
    let channel = crate::runner::connect(url).await?;
    let token = AuthClient::new(channel)
        .authenticate(AuthenticateRequest {
            name: name.to_string(),
            password: password.to_string(),
        })
        .await
        .map_err(|s| BenchError::Auth(s.message().to_string()))?
        .into_inner()
        .token;
    let value = HeaderValue::from_str(&token)
        .map_err(|_| BenchError::Auth("the server's token is not ASCII".into()))?;
    metadata.insert("token", value);
    Ok(metadata)
}
