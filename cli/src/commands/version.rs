//! `version`: etcrctl's version in etcdctl's layout, and the etcd API version it speaks.

use crate::error::Result;

pub fn run() -> Result<()> {
    println!("etcdctl version: {}", env!("CARGO_PKG_VERSION"));
    println!("API version: 3.4");
    Ok(())
}
