//! etcdctl's `--user` and `--password`: the client authenticates once, before its first call,
//! and sends the token as the `token` metadata of every call after it.

use std::sync::{Arc, OnceLock};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status};

use crate::error::{CliError, Result};

/// Who the client authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

/// etcdctl's reading of the flags: `--user name:password`, or `--user name --password pw`.
/// etcdctl asks for a missing password on the terminal; etcrctl says it cannot.
pub fn credentials(user: &str, password: &str) -> Result<Option<Credentials>> {
    if user.is_empty() {
        return Ok(None);
    }
    if !password.is_empty() {
        return Ok(Some(Credentials {
            name: user.to_string(),
            password: password.to_string(),
        }));
    }
    match user.split_once(':') {
        Some((name, password)) => Ok(Some(Credentials {
            name: name.to_string(),
            password: password.to_string(),
        })),
        None => Err(CliError::bad_feature(
            "etcrctl does not prompt for a password: give --user name:password or --password",
        )),
    }
}

/// The token once authenticated, shared by every channel of a client.
#[derive(Clone, Default)]
pub struct TokenSlot(Arc<OnceLock<MetadataValue<Ascii>>>);

impl TokenSlot {
    pub fn is_set(&self) -> bool {
        self.0.get().is_some()
    }

    pub fn set(&self, token: &str) -> Result<()> {
        let value = token.parse().map_err(|_| {
            CliError::exit(crate::error::exit::ERROR, "the server's token is not ASCII")
        })?;
        let _ = self.0.set(value);
        Ok(())
    }
}

impl tonic::service::Interceptor for TokenSlot {
    fn call(&mut self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(token) = self.0.get() {
            req.metadata_mut().insert("token", token.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_as_etcdctl_reads_them() {
        assert_eq!(credentials("", "x").unwrap(), None);
        let c = credentials("root:pw:with:colons", "").unwrap().unwrap();
        assert_eq!(
            (c.name.as_str(), c.password.as_str()),
            ("root", "pw:with:colons")
        );
        let c = credentials("root", "pw").unwrap().unwrap();
        assert_eq!((c.name.as_str(), c.password.as_str()), ("root", "pw"));
        assert!(credentials("root", "").is_err());
    }
}
