//! `-w fields`: `"Name" : value` lines, as etcdctl's fields printer (Go `%q` for strings).

use std::fmt::Write as _;

use api::etcdserverpb::{
    response_op::Response, AlarmResponse, AuthRoleGetResponse, AuthRoleListResponse,
    DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseTimeToLiveResponse, MemberListResponse, PutResponse, RangeResponse, ResponseHeader,
    TxnResponse, WatchResponse,
};
use api::mvccpb::KeyValue;

use super::{alarm_name, event_type_name, EpHashKv, EpHealth, EpStatus};
use crate::gofmt::quote;

fn hdr(out: &mut String, h: Option<&ResponseHeader>) {
    let h = h.cloned().unwrap_or_default();
    let _ = writeln!(out, "\"ClusterID\" : {}", h.cluster_id);
    let _ = writeln!(out, "\"MemberID\" : {}", h.member_id);
    let _ = writeln!(out, "\"Revision\" : {}", h.revision);
    let _ = writeln!(out, "\"RaftTerm\" : {}", h.raft_term);
}

fn kv(out: &mut String, pfx: &str, kv: &KeyValue) {
    let _ = writeln!(out, "\"{pfx}Key\" : {}", quote(&kv.key));
    let _ = writeln!(out, "\"{pfx}CreateRevision\" : {}", kv.create_revision);
    let _ = writeln!(out, "\"{pfx}ModRevision\" : {}", kv.mod_revision);
    let _ = writeln!(out, "\"{pfx}Version\" : {}", kv.version);
    let _ = writeln!(out, "\"{pfx}Value\" : {}", quote(&kv.value));
    let _ = writeln!(out, "\"{pfx}Lease\" : {}", kv.lease);
}

fn get_into(out: &mut String, r: &RangeResponse) {
    hdr(out, r.header.as_ref());
    for item in &r.kvs {
        kv(out, "", item);
    }
    let _ = writeln!(out, "\"More\" : {}", r.more);
    let _ = writeln!(out, "\"Count\" : {}", r.count);
}

fn put_into(out: &mut String, r: &PutResponse) {
    hdr(out, r.header.as_ref());
    if let Some(prev) = &r.prev_kv {
        kv(out, "Prev", prev);
    }
}

fn del_into(out: &mut String, r: &DeleteRangeResponse) {
    hdr(out, r.header.as_ref());
    let _ = writeln!(out, "\"Deleted\" : {}", r.deleted);
    for prev in &r.prev_kvs {
        kv(out, "Prev", prev);
    }
}

pub fn get(r: &RangeResponse) -> String {
    let mut out = String::new();
    get_into(&mut out, r);
    out
}

pub fn put(r: &PutResponse) -> String {
    let mut out = String::new();
    put_into(&mut out, r);
    out
}

pub fn del(r: &DeleteRangeResponse) -> String {
    let mut out = String::new();
    del_into(&mut out, r);
    out
}

pub fn txn(r: &TxnResponse) -> String {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    let _ = writeln!(out, "\"Succeeded\" : {}", r.succeeded);
    for resp in &r.responses {
        match &resp.response {
            Some(Response::ResponseDeleteRange(d)) => del_into(&mut out, d),
            Some(Response::ResponsePut(p)) => put_into(&mut out, p),
            Some(Response::ResponseRange(g)) => get_into(&mut out, g),
            other => {
                let _ = writeln!(out, "unexpected response {other:?}");
            }
        }
    }
    out
}

pub fn member_list(r: &MemberListResponse) -> String {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for m in &r.members {
        let _ = writeln!(out, "\"ID\" : {}", m.id);
        let _ = writeln!(out, "\"Name\" : {}", quote(m.name.as_bytes()));
        for u in &m.peer_ur_ls {
            let _ = writeln!(out, "\"PeerURL\" : {}", quote(u.as_bytes()));
        }
        for u in &m.client_ur_ls {
            let _ = writeln!(out, "\"ClientURL\" : {}", quote(u.as_bytes()));
        }
        let _ = writeln!(out, "\"IsLearner\" : {}", m.is_learner);
        out.push('\n');
    }
    out
}

pub fn endpoint_status(list: &[EpStatus]) -> String {
    let mut out = String::new();
    for ep in list {
        let s = &ep.status;
        hdr(&mut out, s.header.as_ref());
        let _ = writeln!(out, "\"Version\" : {}", quote(s.version.as_bytes()));
        let _ = writeln!(out, "\"DBSize\" : {}", s.db_size);
        let _ = writeln!(out, "\"Leader\" : {}", s.leader);
        let _ = writeln!(out, "\"IsLearner\" : {}", s.is_learner);
        let _ = writeln!(out, "\"RaftIndex\" : {}", s.raft_index);
        let _ = writeln!(out, "\"RaftTerm\" : {}", s.raft_term);
        let _ = writeln!(out, "\"RaftAppliedIndex\" : {}", s.raft_applied_index);
        let _ = writeln!(out, "\"Errors\" : [{}]", s.errors.join(" "));
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(ep.endpoint.as_bytes()));
        out.push('\n');
    }
    out
}

pub fn endpoint_health(list: &[EpHealth]) -> String {
    let mut out = String::new();
    for h in list {
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(h.endpoint.as_bytes()));
        let _ = writeln!(out, "\"Health\" : {}", h.health);
        let _ = writeln!(out, "\"Took\" : {}", h.took);
        let _ = writeln!(out, "\"Error\" : {}", h.error);
        out.push('\n');
    }
    out
}

/// The header (zeros where the server sent none), then `ID` and `TTL`.
fn lease_into(out: &mut String, h: Option<&ResponseHeader>, id: i64, ttl: i64) {
    hdr(out, h);
    let _ = writeln!(out, "\"ID\" : {id}");
    let _ = writeln!(out, "\"TTL\" : {ttl}");
}

pub fn lease_grant(r: &LeaseGrantResponse) -> String {
    let mut out = String::new();
    lease_into(&mut out, r.header.as_ref(), r.id, r.ttl);
    out
}

pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> String {
    let mut out = String::new();
    lease_into(&mut out, r.header.as_ref(), r.id, r.ttl);
    out
}

pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    let mut out = String::new();
    lease_into(&mut out, r.header.as_ref(), r.id, r.ttl);
    let _ = writeln!(out, "\"GrantedTTL\" : {}", r.granted_ttl);
    for k in &r.keys {
        let _ = writeln!(out, "\"Key\" : {}", quote(k));
    }
    out
}

pub fn lease_leases(r: &LeaseLeasesResponse) -> String {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for l in &r.leases {
        let _ = writeln!(out, "\"ID\" : {}", l.id);
    }
    out
}

pub fn header_only(h: Option<&ResponseHeader>) -> String {
    let mut out = String::new();
    hdr(&mut out, h);
    out
}

pub fn watch(r: &WatchResponse) -> String {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for e in &r.events {
        let _ = writeln!(out, "\"Type\" : {}", event_type_name(e.r#type));
        if let Some(prev) = &e.prev_kv {
            kv(&mut out, "Prev", prev);
        }
        kv(&mut out, "", &e.kv.clone().unwrap_or_default());
    }
    out
}

pub fn alarm(r: &AlarmResponse) -> String {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for a in &r.alarms {
        let _ = writeln!(out, "\"MemberID\" : {}", a.member_id);
        let _ = writeln!(out, "\"AlarmType\" : {}", alarm_name(a.alarm));
        out.push('\n');
    }
    out
}

pub fn endpoint_hashkv(list: &[EpHashKv]) -> String {
    let mut out = String::new();
    for ep in list {
        hdr(&mut out, ep.resp.header.as_ref());
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(ep.endpoint.as_bytes()));
        let _ = writeln!(out, "\"Hash\" : {}", ep.resp.hash);
        out.push('\n');
    }
    out
}

/// etcdctl prints each permission's type with `Println`, hence the two spaces.
pub fn role_get(r: &AuthRoleGetResponse) -> String {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for p in &r.perm {
        let _ = writeln!(
            out,
            "\"PermType\" :  {}",
            super::auth::perm_type_name(p.perm_type)
        );
        let _ = writeln!(out, "\"Key\" : {}", quote(&p.key));
        let _ = writeln!(out, "\"RangeEnd\" : {}", quote(&p.range_end));
    }
    out
}

pub fn role_list(r: &AuthRoleListResponse) -> String {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    out.push_str("\"Roles\" :");
    for role in &r.roles {
        let _ = write!(out, " {}", quote(role.as_bytes()));
    }
    out.push('\n');
    out
}
