//! What a raft log entry of etcr carries: who proposed it, under which request id, and the
//! command itself, encoded with bincode.

use serde::{Deserialize, Serialize};

use crate::errors::EtcdError;

/// A member's published attributes, replicated so that every member can list every other
/// member's name and client URLs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemberAttributes {
    pub id: u64,
    pub name: String,
    pub client_urls: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Payload {
    Kv(mvcc::Command),
    Publish(MemberAttributes),
}

/// One entry's data. `origin` and `id` let the proposing member find the caller waiting for
/// the entry; other members ignore them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Envelope {
    pub origin: u64,
    pub id: u64,
    pub payload: Payload,
}

impl Envelope {
    pub fn encode(&self) -> Result<Vec<u8>, EtcdError> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| EtcdError::Internal(format!("encoding a log entry: {e}")))
    }

    pub fn decode(data: &[u8]) -> Result<Envelope, String> {
        bincode::serde::decode_from_slice(data, bincode::config::standard())
            .map(|(e, _)| e)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = Envelope {
            origin: 7,
            id: 42,
            payload: Payload::Kv(mvcc::Command::Put(mvcc::PutRequest {
                key: b"k".to_vec(),
                value: vec![0, 255],
                ..Default::default()
            })),
        };
        assert_eq!(Envelope::decode(&e.encode().unwrap()).unwrap(), e);
        assert!(Envelope::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
