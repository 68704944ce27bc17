//! `-w simple`: etcdctl's default, human-oriented output.

use api::etcdserverpb::{
    response_op::Response, AlarmResponse, DeleteRangeResponse, LeaseTimeToLiveResponse,
    MemberListResponse, PutResponse, RangeResponse, TxnResponse, WatchResponse,
};
use api::mvccpb::KeyValue;

use super::{
    alarm_member_text, event_type_name, hashkv_rows, member_rows, status_rows, EpHashKv, EpHealth,
    EpStatus,
};

/// `\x`-prefixed hex of every byte, as etcdctl's `addHexPrefix(hex.EncodeToString(b))`.
fn hex_escaped(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("\\x{b:02x}").into_bytes())
        .collect()
}

/// etcdctl's `printKV`: the key line (unless value-only), then the value line.
fn kv(out: &mut Vec<u8>, kv: &KeyValue, hex: bool, value_only: bool) {
    let (k, v) = if hex {
        (hex_escaped(&kv.key), hex_escaped(&kv.value))
    } else {
        (kv.key.clone(), kv.value.clone())
    };
    if !value_only {
        out.extend_from_slice(&k);
        out.push(b'\n');
    }
    out.extend_from_slice(&v);
    out.push(b'\n');
}

pub fn get(resp: &RangeResponse, hex: bool, value_only: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for item in &resp.kvs {
        kv(&mut out, item, hex, value_only);
    }
    out
}

pub fn put(resp: &PutResponse, hex: bool) -> Vec<u8> {
    let mut out = b"OK\n".to_vec();
    if let Some(prev) = &resp.prev_kv {
        kv(&mut out, prev, hex, false);
    }
    out
}

pub fn del(resp: &DeleteRangeResponse, hex: bool) -> Vec<u8> {
    let mut out = format!("{}\n", resp.deleted).into_bytes();
    for prev in &resp.prev_kvs {
        kv(&mut out, prev, hex, false);
    }
    out
}

pub fn txn(resp: &TxnResponse, hex: bool) -> Vec<u8> {
    let mut out = if resp.succeeded {
        b"SUCCESS\n".to_vec()
    } else {
        b"FAILURE\n".to_vec()
    };
    for r in &resp.responses {
        out.push(b'\n');
        match &r.response {
            Some(Response::ResponseDeleteRange(d)) => out.extend(del(d, hex)),
            Some(Response::ResponsePut(p)) => out.extend(put(p, hex)),
            Some(Response::ResponseRange(g)) => out.extend(get(g, hex, false)),
            other => out.extend(format!("unexpected response {other:?}\n").into_bytes()),
        }
    }
    out
}

pub fn member_list(resp: &MemberListResponse) -> String {
    member_rows(resp)
        .iter()
        .map(|row| format!("{}\n", row.join(", ")))
        .collect()
}

pub fn endpoint_status(list: &[EpStatus]) -> String {
    status_rows(list)
        .iter()
        .map(|row| format!("{}\n", row.join(", ")))
        .collect()
}

/// Printed on stderr, as etcdctl 3.4 does.
pub fn endpoint_health(list: &[EpHealth]) -> String {
    list.iter()
        .map(|h| {
            if h.error.is_empty() {
                format!(
                    "{} is healthy: successfully committed proposal: took = {}\n",
                    h.endpoint, h.took
                )
            } else {
                format!(
                    "{} is unhealthy: failed to commit proposal: {}\n",
                    h.endpoint, h.error
                )
            }
        })
        .collect()
}

/// Each event: its type, the previous key and value (with --prev-kv), the key and value.
pub fn watch(resp: &WatchResponse, hex: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &resp.events {
        out.extend_from_slice(event_type_name(e.r#type).as_bytes());
        out.push(b'\n');
        if let Some(prev) = &e.prev_kv {
            kv(&mut out, prev, hex, false);
        }
        kv(&mut out, &e.kv.clone().unwrap_or_default(), hex, false);
    }
    out
}

pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse, keys: bool) -> String {
    if r.granted_ttl == 0 && r.ttl == -1 {
        return format!("lease {:016x} already expired\n", r.id);
    }
    let mut line = format!(
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        r.id, r.granted_ttl, r.ttl
    );
    if keys {
        // Go's `%v` of a []string: space-separated, in brackets.
        let names: Vec<String> = r
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        line.push_str(&format!(", attached keys([{}])", names.join(" ")));
    }
    line.push('\n');
    line
}

pub fn alarm(r: &AlarmResponse) -> String {
    r.alarms
        .iter()
        .map(|a| format!("{}\n", alarm_member_text(a)))
        .collect()
}

pub fn endpoint_hashkv(list: &[EpHashKv]) -> String {
    hashkv_rows(list)
        .iter()
        .map(|row| format!("{}\n", row.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_value_only() {
        let resp = RangeResponse {
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(get(&resp, false, false), b"foo\nbar\n");
        assert_eq!(
            get(&resp, true, false),
            b"\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n"
        );
        assert_eq!(get(&resp, false, true), b"bar\n");
    }
}
