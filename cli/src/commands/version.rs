//! `version`: etcrctl's own version and the etcd API version it speaks.

use crate::error::Result;
use crate::help::{Spec, API_VERSION};

pub const SPEC: Spec = Spec {
    name: "version",
    args: "",
    summary: "print etcrctl's version and the etcd API version it speaks",
    about: "",
    flags: &[],
};

/// Two lines; the second keeps etcdctl's `API version: ` form for scripts that read it.
pub fn text() -> String {
    format!(
        "etcrctl version: {}\nAPI version: {API_VERSION}\n",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn run() -> Result<()> {
    print!("{}", text());
    Ok(())
}
