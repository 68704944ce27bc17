//! etcdctl's output formats (`-w simple|json|fields|table|protobuf`), one module per format.

mod auth;
mod fields;
mod json;
mod simple;
mod table;

use api::etcdserverpb::{
    AlarmMember, AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse,
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse,
    Member, MemberAddResponse, MemberListResponse, MoveLeaderResponse, PutResponse, RangeResponse,
    ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};
use prost::Message;

use crate::error::{CliError, Result};

/// An output format chosen with `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

impl Format {
    /// etcdctl's `NewPrinter`: an unknown name is `unsupported output format` (exit 4).
    pub fn parse(name: &str) -> Result<Format> {
        match name {
            "simple" => Ok(Format::Simple),
            "json" => Ok(Format::Json),
            "fields" => Ok(Format::Fields),
            "table" => Ok(Format::Table),
            "protobuf" => Ok(Format::Protobuf),
            _ => Err(CliError::bad_feature("unsupported output format")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// One endpoint's answer to `endpoint status` (etcdctl's `epStatus`).
#[derive(Debug, Clone)]
pub struct EpStatus {
    pub endpoint: String,
    pub status: StatusResponse,
}

/// One endpoint's health (etcdctl's `epHealth`).
#[derive(Debug, Clone, Default)]
pub struct EpHealth {
    pub endpoint: String,
    pub health: bool,
    pub took: String,
    pub error: String,
}

/// One endpoint's answer to `endpoint hashkv` (etcdctl's `epHashKV`).
#[derive(Debug, Clone)]
pub struct EpHashKv {
    pub endpoint: String,
    pub resp: HashKvResponse,
}

/// What a printer writes: etcdctl prints some reports (endpoint health) on stderr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    fn stdout(stdout: Vec<u8>) -> Self {
        Output {
            stdout,
            stderr: Vec::new(),
        }
    }
}

/// etcdctl's `display`: a format plus `--hex`.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    pub hex: bool,
}

fn unsupported(format: Format) -> CliError {
    CliError::bad_feature(format!("{} not supported as output format", format.name()))
}

/// What a member command changed, for its printers.
pub struct MemberChange<'a> {
    /// "removed from", "updated in", "promoted in".
    pub verb: &'static str,
    pub id: u64,
    pub header: &'a Option<ResponseHeader>,
    pub members: &'a [Member],
    /// The response, encoded (for `-w protobuf`).
    pub encoded: Vec<u8>,
}

/// etcdctl's protobuf printer on clientv3's lease responses: the promoted `Marshal` of
/// their embedded `*pb.ResponseHeader` encodes the header alone.
fn embedded_header_bytes(h: &Option<ResponseHeader>) -> Vec<u8> {
    h.as_ref().map(Message::encode_to_vec).unwrap_or_default()
}

impl Printer {
    pub fn lease_grant(&self, r: &LeaseGrantResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => {
                format!("lease {:016x} granted with TTL({}s)\n", r.id, r.ttl).into_bytes()
            }
            Format::Json => json::line(json::lease_grant(r)),
            Format::Fields => fields::lease_grant(r).into_bytes(),
            Format::Protobuf => embedded_header_bytes(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn lease_revoke(&self, id: i64, r: &LeaseRevokeResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => format!("lease {id:016x} revoked\n").into_bytes(),
            Format::Json => json::line(json::header_only(&r.header)),
            Format::Fields => fields::header_only(r.header.as_ref()).into_bytes(),
            // clientv3's LeaseRevokeResponse is a copy of the protobuf type without its methods.
            Format::Protobuf => {
                return Err(CliError::bad_feature(format!(
                    "marshal unsupported for type clientv3.LeaseRevokeResponse ({{{}}})",
                    header_text(&r.header)
                )))
            }
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn lease_keep_alive(&self, r: &LeaseKeepAliveResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => {
                format!("lease {:016x} keepalived with TTL({})\n", r.id, r.ttl).into_bytes()
            }
            Format::Json => json::line(json::lease_keep_alive(r)),
            Format::Fields => fields::lease_keep_alive(r).into_bytes(),
            Format::Protobuf => embedded_header_bytes(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn lease_time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> Result<Output> {
        let out = match self.format {
            Format::Simple => simple::lease_time_to_live(r, keys).into_bytes(),
            Format::Json => json::line(json::lease_time_to_live(r)),
            Format::Fields => fields::lease_time_to_live(r).into_bytes(),
            Format::Protobuf => embedded_header_bytes(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn lease_leases(&self, r: &LeaseLeasesResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => {
                let mut text = format!("found {} leases\n", r.leases.len());
                for l in &r.leases {
                    text.push_str(&format!("{:016x}\n", l.id));
                }
                text.into_bytes()
            }
            Format::Json => json::line(json::lease_leases(r)),
            Format::Fields => fields::lease_leases(r).into_bytes(),
            Format::Protobuf => embedded_header_bytes(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    /// One watch response; etcdctl's protobuf printer drops its watch id, cancel reason
    /// and fragment flag.
    pub fn watch(&self, r: &WatchResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => simple::watch(r, self.hex),
            Format::Json => json::line(json::watch(r)),
            Format::Fields => fields::watch(r).into_bytes(),
            Format::Protobuf => WatchResponse {
                header: Some(r.header.unwrap_or_default()),
                events: r.events.clone(),
                compact_revision: r.compact_revision,
                canceled: r.canceled,
                created: r.created,
                ..Default::default()
            }
            .encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn alarm(&self, r: &AlarmResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => simple::alarm(r).into_bytes(),
            Format::Json => json::line(json::alarm(r)),
            Format::Fields => fields::alarm(r).into_bytes(),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn endpoint_hashkv(&self, list: &[EpHashKv]) -> Result<Output> {
        let out = match self.format {
            Format::Simple => simple::endpoint_hashkv(list).into_bytes(),
            Format::Json => json::line(json::endpoint_hashkv(list)),
            Format::Fields => fields::endpoint_hashkv(list).into_bytes(),
            Format::Table => table::endpoint_hashkv(list).into_bytes(),
            Format::Protobuf => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    /// The first line of `member add`'s simple output (the command adds the ETCD_* lines).
    pub fn member_add(&self, r: &MemberAddResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => format!(
                "Member {:16x} added to cluster {:16x}\n",
                r.member.as_ref().map_or(0, |m| m.id),
                r.header.as_ref().map_or(0, |h| h.cluster_id)
            )
            .into_bytes(),
            Format::Json => json::line(json::members(&r.header, r.member.as_ref(), &r.members)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn member_change(&self, c: MemberChange<'_>) -> Result<Output> {
        let out = match self.format {
            Format::Simple => format!(
                "Member {:16x} {} cluster {:16x}\n",
                c.id,
                c.verb,
                c.header.as_ref().map_or(0, |h| h.cluster_id)
            )
            .into_bytes(),
            Format::Json => json::line(json::members(c.header, None, c.members)),
            Format::Protobuf => c.encoded,
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn db_status(&self, s: &crate::commands::snapshot::DbStatus) -> Result<Output> {
        let size = crate::gofmt::humanize_bytes(s.total_size);
        let row = vec![
            format!("{:x}", s.hash),
            s.revision.to_string(),
            s.total_key.to_string(),
            size,
        ];
        let out = match self.format {
            Format::Simple => format!("{}\n", row.join(", ")),
            Format::Json => format!(
                "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
                s.hash, s.revision, s.total_key, s.total_size
            ),
            Format::Fields => format!(
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                s.hash, s.revision, s.total_key, s.total_size
            ),
            Format::Table => {
                table::render(&["hash", "revision", "total keys", "total size"], &[row])
            }
            Format::Protobuf => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out.into_bytes()))
    }

    pub fn move_leader(&self, leader: u64, target: u64, r: &MoveLeaderResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => {
                format!("Leadership transferred from {leader:x} to {target:x}\n").into_bytes()
            }
            Format::Json => json::line(json::header_only(&r.header)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn get(&self, resp: &RangeResponse, value_only: bool) -> Result<Output> {
        match self.format {
            Format::Simple => Ok(Output::stdout(simple::get(resp, self.hex, value_only))),
            Format::Json => Ok(Output::stdout(json::line(json::range(resp)))),
            Format::Fields => Ok(Output::stdout(fields::get(resp).into_bytes())),
            Format::Protobuf => Ok(Output::stdout(resp.encode_to_vec())),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    pub fn put(&self, resp: &PutResponse) -> Result<Output> {
        match self.format {
            Format::Simple => Ok(Output::stdout(simple::put(resp, self.hex))),
            Format::Json => Ok(Output::stdout(json::line(json::put(resp)))),
            Format::Fields => Ok(Output::stdout(fields::put(resp).into_bytes())),
            Format::Protobuf => Ok(Output::stdout(resp.encode_to_vec())),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    pub fn del(&self, resp: &DeleteRangeResponse) -> Result<Output> {
        match self.format {
            Format::Simple => Ok(Output::stdout(simple::del(resp, self.hex))),
            Format::Json => Ok(Output::stdout(json::line(json::del(resp)))),
            Format::Fields => Ok(Output::stdout(fields::del(resp).into_bytes())),
            Format::Protobuf => Ok(Output::stdout(resp.encode_to_vec())),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    pub fn txn(&self, resp: &TxnResponse) -> Result<Output> {
        match self.format {
            Format::Simple => Ok(Output::stdout(simple::txn(resp, self.hex))),
            Format::Json => Ok(Output::stdout(json::line(json::txn(resp)))),
            Format::Fields => Ok(Output::stdout(fields::txn(resp).into_bytes())),
            Format::Protobuf => Ok(Output::stdout(resp.encode_to_vec())),
            Format::Table => Err(unsupported(self.format)),
        }
    }

    pub fn member_list(&self, resp: &MemberListResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => simple::member_list(resp).into_bytes(),
            Format::Json => json::line(json::member_list(resp)),
            Format::Fields => fields::member_list(resp).into_bytes(),
            Format::Table => table::member_list(resp).into_bytes(),
            Format::Protobuf => resp.encode_to_vec(),
        };
        Ok(Output::stdout(out))
    }

    pub fn endpoint_status(&self, list: &[EpStatus]) -> Result<Output> {
        let out = match self.format {
            Format::Simple => simple::endpoint_status(list).into_bytes(),
            Format::Json => json::line(json::endpoint_status(list)),
            Format::Fields => fields::endpoint_status(list).into_bytes(),
            Format::Table => table::endpoint_status(list).into_bytes(),
            Format::Protobuf => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn endpoint_health(&self, list: &[EpHealth]) -> Result<Output> {
        match self.format {
            Format::Simple => Ok(Output {
                stdout: Vec::new(),
                stderr: simple::endpoint_health(list).into_bytes(),
            }),
            Format::Json => Ok(Output::stdout(json::line(json::endpoint_health(list)))),
            Format::Fields => Ok(Output::stdout(fields::endpoint_health(list).into_bytes())),
            Format::Table => Ok(Output::stdout(table::endpoint_health(list).into_bytes())),
            Format::Protobuf => Err(unsupported(self.format)),
        }
    }
}

/// The rows etcdctl's `member list` prints (simple and table).
fn member_rows(resp: &MemberListResponse) -> Vec<Vec<String>> {
    resp.members
        .iter()
        .map(|m| {
            let status = if m.name.is_empty() {
                "unstarted"
            } else {
                "started"
            };
            vec![
                format!("{:x}", m.id),
                status.to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

/// The rows etcdctl's `endpoint status` prints (simple and table).
fn status_rows(list: &[EpStatus]) -> Vec<Vec<String>> {
    list.iter()
        .map(|ep| {
            let s = &ep.status;
            let member_id = s.header.as_ref().map_or(0, |h| h.member_id);
            vec![
                ep.endpoint.clone(),
                format!("{member_id:x}"),
                s.version.clone(),
                crate::gofmt::humanize_bytes(s.db_size.max(0) as u64),
                (s.leader == member_id).to_string(),
                s.is_learner.to_string(),
                s.raft_term.to_string(),
                s.raft_index.to_string(),
                s.raft_applied_index.to_string(),
                s.errors.join(", "),
            ]
        })
        .collect()
}

/// The rows etcdctl's `endpoint hashkv` prints (simple and table).
fn hashkv_rows(list: &[EpHashKv]) -> Vec<Vec<String>> {
    list.iter()
        .map(|ep| vec![ep.endpoint.clone(), ep.resp.hash.to_string()])
        .collect()
}

/// Go's `String()` of an `mvccpb.Event_EventType`.
pub fn event_type_name(t: i32) -> String {
    match t {
        0 => "PUT".to_string(),
        1 => "DELETE".to_string(),
        other => other.to_string(),
    }
}

/// Go's `String()` of an `etcdserverpb.AlarmType`.
fn alarm_name(a: i32) -> String {
    match a {
        0 => "NONE".to_string(),
        1 => "NOSPACE".to_string(),
        2 => "CORRUPT".to_string(),
        other => other.to_string(),
    }
}

/// gogoproto's compact text form (`%+v`) of an alarm: its non-zero fields, each followed by
/// a space.
fn alarm_member_text(a: &AlarmMember) -> String {
    let mut out = String::new();
    if a.member_id != 0 {
        out.push_str(&format!("memberID:{} ", a.member_id));
    }
    if a.alarm != 0 {
        out.push_str(&format!("alarm:{} ", alarm_name(a.alarm)));
    }
    out
}

/// gogoproto's compact text form of a response header (`<nil>` for none).
fn header_text(h: &Option<ResponseHeader>) -> String {
    let Some(h) = h else {
        return "<nil>".to_string();
    };
    let mut out = String::new();
    for (name, set, value) in [
        ("cluster_id", h.cluster_id != 0, h.cluster_id.to_string()),
        ("member_id", h.member_id != 0, h.member_id.to_string()),
        ("revision", h.revision != 0, h.revision.to_string()),
        ("raft_term", h.raft_term != 0, h.raft_term.to_string()),
    ] {
        if set {
            out.push_str(&format!("{name}:{value} "));
        }
    }
    out
}
