//! What a raft log entry of etcr carries: who proposed it, under which request id, and the
//! command itself, encoded with bincode behind an explicit format version.
//!
//! Entries outlive the binary that wrote them (the log is replayed after an upgrade, and a
//! newer leader may send entries to an older follower), so every entry says which format it
//! is in. A member that meets a format it cannot read must stop applying, never skip the
//! entry: skipping would leave it with a different state than the other members.
//!
//! Layout: `0xFF`, the format version (one byte), then the bincode of [`Envelope`]. Entries
//! written before versions existed are the bare bincode (version 0); their first byte is
//! the varint of a non-zero member id, which is never `0xFF`.

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

/// New variants go at the end: bincode numbers them in order, and older entries must keep
/// decoding as they were written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Payload {
    Kv(mvcc::Command),
    Publish(MemberAttributes),
    /// A change to the replicated cluster state (alarms).
    Cluster(mvcc::ClusterCommand),
    /// A change to the replicated auth state; an `Authenticate` carries the random part of
    /// the token that every member assigns on applying it.
    Auth {
        command: mvcc::AuthCommand,
        token_prefix: Option<String>,
    },
}

/// One entry's data. `origin` and `id` let the proposing member find the caller waiting for
/// the entry; other members ignore them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Envelope {
    pub origin: u64,
    pub id: u64,
    pub payload: Payload,
}

/// Marks an entry with an explicit format version.
const VERSIONED: u8 = 0xFF;

/// The format this member writes. 1: the version header, and [`Payload::Cluster`].
pub const FORMAT_VERSION: u8 = 1;

/// An entry this member cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("format version {0} is newer than this member reads (up to {FORMAT_VERSION}); upgrade this member")]
    UnknownVersion(u8),
    #[error("format version {version} does not decode: {reason}")]
    Malformed { version: u8, reason: String },
}

impl Envelope {
    pub fn encode(&self) -> Result<Vec<u8>, EtcdError> {
        let mut out = vec![VERSIONED, FORMAT_VERSION];
        bincode::serde::encode_into_std_write(self, &mut out, bincode::config::standard())
            .map_err(|e| EtcdError::Internal(format!("encoding a log entry: {e}")))?;
        Ok(out)
    }

    pub fn decode(data: &[u8]) -> Result<Envelope, DecodeError> {
        let (version, body) = match data {
            [VERSIONED, version, body @ ..] => (*version, body),
            [VERSIONED] => {
                return Err(DecodeError::Malformed {
                    version: FORMAT_VERSION,
                    reason: "no version byte".into(),
                })
            }
            legacy => (0, legacy),
        };
        if version > FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        // Versions 0 and 1 share the envelope; version 0 only lacks the header.
        match bincode::serde::decode_from_slice(body, bincode::config::standard()) {
            Ok((e, read)) if read == body.len() => Ok(e),
            Ok((_, read)) => Err(DecodeError::Malformed {
                version,
                reason: format!("{} bytes left over", body.len() - read),
            }),
            Err(e) => Err(DecodeError::Malformed {
                version,
                reason: e.to_string(),
            }),
        }
    }
}

/// Entries as etcr wrote them before format versions (bytes captured from that build), from
/// member 8e9e05c52164694d: a put of foo=bar (request 42) and a publish of m1's client URL.
#[cfg(test)]
pub mod fixtures {
    pub const MEMBER: u64 = 0x8e9e_05c5_2164_694d;
    pub const V0_PUT_FOO_BAR: &str = "fd4d696421c5059e8e2a000003666f6f0362617200000000";
    pub const V0_PUBLISH_M1: &str =
        "fd4d696421c5059e8e2b01fd4d696421c5059e8e026d310115687474703a2f2f3132372e302e302e313a32333739";

    pub fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn round_trips_with_the_version_header() {
        let e = Envelope {
            origin: 7,
            id: 42,
            payload: Payload::Kv(mvcc::Command::Put(mvcc::PutRequest {
                key: b"k".to_vec(),
                value: vec![0, 255],
                ..Default::default()
            })),
        };
        let data = e.encode().unwrap();
        assert_eq!(data[..2], [VERSIONED, FORMAT_VERSION]);
        assert_eq!(Envelope::decode(&data).unwrap(), e);
        let alarm = Envelope {
            origin: 7,
            id: 43,
            payload: Payload::Cluster(mvcc::ClusterCommand::ActivateAlarm(mvcc::Alarm {
                member: 7,
                kind: mvcc::AlarmKind::Nospace,
            })),
        };
        assert_eq!(Envelope::decode(&alarm.encode().unwrap()).unwrap(), alarm);
    }

    #[test]
    fn version_0_entries_still_decode() {
        let put = unhex(V0_PUT_FOO_BAR);
        assert_eq!(
            Envelope::decode(&put).unwrap(),
            Envelope {
                origin: MEMBER,
                id: 42,
                payload: Payload::Kv(mvcc::Command::Put(mvcc::PutRequest {
                    key: b"foo".to_vec(),
                    value: b"bar".to_vec(),
                    ..Default::default()
                })),
            }
        );
        let publish = unhex(V0_PUBLISH_M1);
        assert_eq!(
            Envelope::decode(&publish).unwrap().payload,
            Payload::Publish(MemberAttributes {
                id: MEMBER,
                name: "m1".into(),
                client_urls: vec!["http://127.0.0.1:2379".into()],
            })
        );
    }

    #[test]
    fn unreadable_entries_name_their_version() {
        assert_eq!(
            Envelope::decode(&[VERSIONED, 9, 1, 2]),
            Err(DecodeError::UnknownVersion(9))
        );
        assert!(matches!(
            Envelope::decode(&[VERSIONED, FORMAT_VERSION, 0xff, 0xff]),
            Err(DecodeError::Malformed { version: 1, .. })
        ));
        assert!(matches!(
            Envelope::decode(&[0xfd, 1]),
            Err(DecodeError::Malformed { version: 0, .. })
        ));
    }
}
