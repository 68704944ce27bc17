//! The etcd v3 gRPC API as Rust types: `etcdserverpb` (requests, responses, services),
//! `mvccpb` (key-values and events), `authpb` (users and roles), and the concurrency
//! services `v3lockpb` (locks) and `v3electionpb` (elections).
//!
//! The `.proto` files under `proto/` were written for etcr from etcd's documented API; the
//! field numbers are etcd's, so etcd clients talk to etcr servers and etcr clients to etcd.
//! They are compiled at build time by `protox` (pure Rust: no `protoc` needed).
//!
//! ```
//! use etcr_api::etcdserverpb::{PutRequest, RangeRequest};
//! use prost::Message;
//!
//! let put = PutRequest { key: b"hello".to_vec(), value: b"world".to_vec(), ..Default::default() };
//! let bytes = put.encode_to_vec();
//! assert_eq!(PutRequest::decode(bytes.as_slice()).unwrap(), put);
//!
//! // An empty range_end reads one key; `[0]` reads from the key to the end of the keyspace.
//! let from_key = RangeRequest { key: b"a".to_vec(), range_end: vec![0], ..Default::default() };
//! assert_eq!(from_key.range_end, b"\0");
//! ```

/// Key-value records and watch events (`mvccpb`).
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// Users, roles and permissions (`authpb`).
pub mod authpb {
    tonic::include_proto!("authpb");
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// Requests, responses, clients and server traits of the etcd v3 services (`etcdserverpb`).
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// The key that ends the range of all keys with `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and what follows it dropped,
/// or `[0]` (to the end of the keyspace) when every byte is 0xff.
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_range_end;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_range_end(b"abc"), b"abd");
        assert_eq!(prefix_range_end(b"a/"), b"a0");
        assert_eq!(prefix_range_end(b"w/"), b"w0");
        assert_eq!(prefix_range_end(b"chaos/"), b"chaos0");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
    }
}

/// Named locks held by leases (`v3lockpb`).
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// Leader elections over leased keys (`v3electionpb`).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}
