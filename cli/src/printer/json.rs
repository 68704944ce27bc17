//! `-w json`: Go's `encoding/json` of etcd's gogoproto structs (field order, `omitempty`,
//! base64 bytes, exact 64-bit integers).

use api::etcdserverpb::{
    response_op::Response, AlarmMember, AlarmResponse, AuthRoleGetResponse, AuthStatusResponse,
    DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseTimeToLiveResponse, Member, MemberListResponse, PutResponse, RangeResponse,
    ResponseHeader, ResponseOp, StatusResponse, TxnResponse, WatchResponse,
};
use api::mvccpb::{Event, KeyValue};
use base64::Engine as _;

use super::{EpHashKv, EpHealth, EpStatus};
use crate::gofmt::json_string;

/// A JSON object written field by field in Go struct order.
#[derive(Default)]
struct Obj {
    body: String,
}

impl Obj {
    fn raw(mut self, name: &str, value: impl AsRef<str>) -> Self {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        self.body.push_str(&json_string(name.as_bytes()));
        self.body.push(':');
        self.body.push_str(value.as_ref());
        self
    }

    fn u64(self, name: &str, v: u64) -> Self {
        if v == 0 {
            self
        } else {
            self.raw(name, v.to_string())
        }
    }

    fn i64(self, name: &str, v: i64) -> Self {
        if v == 0 {
            self
        } else {
            self.raw(name, v.to_string())
        }
    }

    fn bool(self, name: &str, v: bool) -> Self {
        if v {
            self.raw(name, "true")
        } else {
            self
        }
    }

    fn bytes(self, name: &str, v: &[u8]) -> Self {
        if v.is_empty() {
            self
        } else {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            self.raw(name, format!("\"{encoded}\""))
        }
    }

    fn str(self, name: &str, v: &str) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(name, json_string(v.as_bytes()))
        }
    }

    fn strings(self, name: &str, v: &[String]) -> Self {
        if v.is_empty() {
            self
        } else {
            let items: Vec<String> = v.iter().map(|s| json_string(s.as_bytes())).collect();
            self.raw(name, format!("[{}]", items.join(",")))
        }
    }

    fn objects(self, name: &str, v: Vec<String>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(name, format!("[{}]", v.join(",")))
        }
    }

    fn opt(self, name: &str, v: Option<String>) -> Self {
        match v {
            Some(v) => self.raw(name, v),
            None => self,
        }
    }

    /// The fields of a struct embedded by pointer (clientv3's `*pb.ResponseHeader` in the
    /// lease responses): promoted into this object, or absent when the pointer is nil.
    fn embedded_header(self, h: &Option<ResponseHeader>) -> Self {
        match h {
            None => self,
            Some(h) => self
                .u64("cluster_id", h.cluster_id)
                .u64("member_id", h.member_id)
                .i64("revision", h.revision)
                .u64("raft_term", h.raft_term),
        }
    }

    /// A field without `omitempty`.
    fn num(self, name: &str, v: impl ToString) -> Self {
        self.raw(name, v.to_string())
    }

    fn end(self) -> String {
        format!("{{{}}}", self.body)
    }
}

/// etcdctl's `printJSON`: the document and a newline.
pub fn line(doc: String) -> Vec<u8> {
    let mut out = doc.into_bytes();
    out.push(b'\n');
    out
}

fn header_value(h: &ResponseHeader) -> String {
    Obj::default()
        .u64("cluster_id", h.cluster_id)
        .u64("member_id", h.member_id)
        .i64("revision", h.revision)
        .u64("raft_term", h.raft_term)
        .end()
}

fn header(h: &Option<ResponseHeader>) -> Option<String> {
    h.as_ref().map(header_value)
}

/// A message that is only a header (`LeaseRevokeResponse`, `MoveLeaderResponse`, ...).
pub fn header_only(h: &Option<ResponseHeader>) -> String {
    Obj::default().opt("header", header(h)).end()
}

fn kv(kv: &KeyValue) -> String {
    Obj::default()
        .bytes("key", &kv.key)
        .i64("create_revision", kv.create_revision)
        .i64("mod_revision", kv.mod_revision)
        .i64("version", kv.version)
        .bytes("value", &kv.value)
        .i64("lease", kv.lease)
        .end()
}

pub fn range(r: &RangeResponse) -> String {
    Obj::default()
        .opt("header", header(&r.header))
        .objects("kvs", r.kvs.iter().map(kv).collect())
        .bool("more", r.more)
        .i64("count", r.count)
        .end()
}

pub fn put(r: &PutResponse) -> String {
    Obj::default()
        .opt("header", header(&r.header))
        .opt("prev_kv", r.prev_kv.as_ref().map(kv))
        .end()
}

pub fn del(r: &DeleteRangeResponse) -> String {
    Obj::default()
        .opt("header", header(&r.header))
        .i64("deleted", r.deleted)
        .objects("prev_kvs", r.prev_kvs.iter().map(kv).collect())
        .end()
}

fn response_op(op: &ResponseOp) -> String {
    let inner = match &op.response {
        None => "null".to_string(),
        Some(Response::ResponseRange(r)) => Obj::default().raw("ResponseRange", range(r)).end(),
        Some(Response::ResponsePut(r)) => Obj::default().raw("ResponsePut", put(r)).end(),
        Some(Response::ResponseDeleteRange(r)) => {
            Obj::default().raw("ResponseDeleteRange", del(r)).end()
        }
        Some(Response::ResponseTxn(r)) => Obj::default().raw("ResponseTxn", txn(r)).end(),
    };
    Obj::default().raw("Response", inner).end()
}

pub fn txn(r: &TxnResponse) -> String {
    Obj::default()
        .opt("header", header(&r.header))
        .bool("succeeded", r.succeeded)
        .objects("responses", r.responses.iter().map(response_op).collect())
        .end()
}

fn member(m: &Member) -> String {
    Obj::default()
        .u64("ID", m.id)
        .str("name", &m.name)
        .strings("peerURLs", &m.peer_ur_ls)
        .strings("clientURLs", &m.client_ur_ls)
        .bool("isLearner", m.is_learner)
        .end()
}

pub fn member_list(r: &MemberListResponse) -> String {
    Obj::default()
        .opt("header", header(&r.header))
        .objects("members", r.members.iter().map(member).collect())
        .end()
}

fn status(s: &StatusResponse) -> String {
    Obj::default()
        .opt("header", header(&s.header))
        .str("version", &s.version)
        .i64("dbSize", s.db_size)
        .u64("leader", s.leader)
        .u64("raftIndex", s.raft_index)
        .u64("raftTerm", s.raft_term)
        .u64("raftAppliedIndex", s.raft_applied_index)
        .strings("errors", &s.errors)
        .i64("dbSizeInUse", s.db_size_in_use)
        .bool("isLearner", s.is_learner)
        .end()
}

pub fn endpoint_status(list: &[EpStatus]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|ep| {
            Obj::default()
                .raw("Endpoint", json_string(ep.endpoint.as_bytes()))
                .raw("Status", status(&ep.status))
                .end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

pub fn endpoint_health(list: &[EpHealth]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|h| {
            Obj::default()
                .raw("endpoint", json_string(h.endpoint.as_bytes()))
                .raw("health", h.health.to_string())
                .raw("took", json_string(h.took.as_bytes()))
                .str("error", &h.error)
                .end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// clientv3's `LeaseGrantResponse`: the header's fields, then `ID`, `TTL`, `Error`.
pub fn lease_grant(r: &LeaseGrantResponse) -> String {
    Obj::default()
        .embedded_header(&r.header)
        .num("ID", r.id)
        .num("TTL", r.ttl)
        .raw("Error", json_string(r.error.as_bytes()))
        .end()
}

pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> String {
    Obj::default()
        .embedded_header(&r.header)
        .num("ID", r.id)
        .num("TTL", r.ttl)
        .end()
}

/// clientv3's `LeaseTimeToLiveResponse`, whose tags are `id`, `ttl`, `granted-ttl`, `keys`.
pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    let keys = if r.keys.is_empty() {
        "null".to_string()
    } else {
        let items: Vec<String> = r
            .keys
            .iter()
            .map(|k| {
                format!(
                    "\"{}\"",
                    base64::engine::general_purpose::STANDARD.encode(k)
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    };
    Obj::default()
        .embedded_header(&r.header)
        .num("id", r.id)
        .num("ttl", r.ttl)
        .num("granted-ttl", r.granted_ttl)
        .raw("keys", keys)
        .end()
}

pub fn lease_leases(r: &LeaseLeasesResponse) -> String {
    let items: Vec<String> = r
        .leases
        .iter()
        .map(|l| Obj::default().num("id", l.id).end())
        .collect();
    Obj::default()
        .embedded_header(&r.header)
        .raw("leases", format!("[{}]", items.join(",")))
        .end()
}

fn event(e: &Event) -> String {
    Obj::default()
        .i64("type", i64::from(e.r#type))
        .opt("kv", e.kv.as_ref().map(kv))
        .opt("prev_kv", e.prev_kv.as_ref().map(kv))
        .end()
}

/// clientv3's `WatchResponse`: exported fields without tags. `Events` is null only in the
/// response clientv3 makes up itself when a stream fails, the one without a header.
pub fn watch(r: &WatchResponse) -> String {
    let events: Vec<String> = r.events.iter().map(event).collect();
    let events = if r.header.is_none() && events.is_empty() {
        "null".to_string()
    } else {
        format!("[{}]", events.join(","))
    };
    Obj::default()
        .raw("Header", header_value(&r.header.unwrap_or_default()))
        .raw("Events", events)
        .num("CompactRevision", r.compact_revision)
        .num("Canceled", r.canceled)
        .num("Created", r.created)
        .end()
}

fn alarm_member(a: &AlarmMember) -> String {
    Obj::default()
        .u64("memberID", a.member_id)
        .i64("alarm", i64::from(a.alarm))
        .end()
}

pub fn alarm(r: &AlarmResponse) -> String {
    Obj::default()
        .opt("header", header(&r.header))
        .objects("alarms", r.alarms.iter().map(alarm_member).collect())
        .end()
}

pub fn endpoint_hashkv(list: &[EpHashKv]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|ep| {
            let hash = Obj::default()
                .opt("header", header(&ep.resp.header))
                .u64("hash", u64::from(ep.resp.hash))
                .i64("compact_revision", ep.resp.compact_revision)
                .end();
            Obj::default()
                .raw("Endpoint", json_string(ep.endpoint.as_bytes()))
                .raw("HashKV", hash)
                .end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `MemberAddResponse` (`member` only when set) and the responses that carry `members`.
pub fn members(h: &Option<ResponseHeader>, added: Option<&Member>, list: &[Member]) -> String {
    Obj::default()
        .opt("header", header(h))
        .opt("member", added.map(member))
        .objects("members", list.iter().map(member).collect())
        .end()
}

/// `AuthStatusResponse`, whose revision field keeps the proto's lowerCamelCase name.
pub fn auth_status(r: &AuthStatusResponse) -> String {
    Obj::default()
        .opt("header", header(&r.header))
        .bool("enabled", r.enabled)
        .u64("authRevision", r.auth_revision)
        .end()
}

/// A response with a header and a list of names (`roles` or `users`).
pub fn names(h: &Option<ResponseHeader>, field: &str, names: &[String]) -> String {
    Obj::default()
        .opt("header", header(h))
        .strings(field, names)
        .end()
}

/// `AuthRoleGetResponse`: authpb's `Permission` has JSON names `permType`, `key`, `range_end`.
pub fn role_get(r: &AuthRoleGetResponse) -> String {
    let perms = r
        .perm
        .iter()
        .map(|p| {
            Obj::default()
                .i64("permType", i64::from(p.perm_type))
                .bytes("key", &p.key)
                .bytes("range_end", &p.range_end)
                .end()
        })
        .collect();
    Obj::default()
        .opt("header", header(&r.header))
        .objects("perm", perms)
        .end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_matches_etcdctl() {
        let r = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 15118495548433857066,
                member_id: 13668033151171901709,
                revision: 4,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&r),
            r#"{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":4,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}"#
        );
    }
}
