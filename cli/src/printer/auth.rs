//! The answers of the `user` and `role` commands. etcdctl 3.4 prints none of them as a
//! table, and the user get and list answers not as fields either.

use api::etcdserverpb::{
    AuthRoleGetResponse, AuthRoleListResponse, AuthStatusResponse, AuthUserGetResponse,
    AuthUserListResponse, ResponseHeader,
};
use prost::Message;

use super::{fields, json, unsupported, Format, Output, Printer};
use crate::error::Result;

/// authpb's `Permission_Type` names.
pub fn perm_type_name(t: i32) -> String {
    match t {
        0 => "READ".to_string(),
        1 => "WRITE".to_string(),
        2 => "READWRITE".to_string(),
        other => other.to_string(),
    }
}

/// One permission line of `role get`: a key, or a range with its prefix when it is one.
fn perm_line(out: &mut Vec<u8>, key: &[u8], range_end: &[u8]) {
    out.push(b'\t');
    if range_end.is_empty() {
        out.extend_from_slice(key);
        out.push(b'\n');
        return;
    }
    out.push(b'[');
    out.extend_from_slice(key);
    out.extend_from_slice(b", ");
    if range_end == b"\0" {
        out.extend_from_slice(b"<open ended>");
    } else {
        out.extend_from_slice(range_end);
        out.push(b')');
    }
    if api::prefix_range_end(key) == range_end {
        out.extend_from_slice(b" (prefix ");
        out.extend_from_slice(key);
        out.push(b')');
    }
    out.push(b'\n');
}

fn role_get_simple(role: &str, r: &AuthRoleGetResponse) -> Vec<u8> {
    let mut out = format!("Role {role}\nKV Read:\n").into_bytes();
    // READ = 0, WRITE = 1, READWRITE = 2.
    for p in r.perm.iter().filter(|p| p.perm_type != 1) {
        perm_line(&mut out, &p.key, &p.range_end);
    }
    out.extend_from_slice(b"KV Write:\n");
    for p in r.perm.iter().filter(|p| p.perm_type != 0) {
        perm_line(&mut out, &p.key, &p.range_end);
    }
    out
}

impl Printer {
    /// A change whose answer is only a header; `simple` is what etcdctl says it did.
    pub fn auth_change(
        &self,
        simple: impl Into<Vec<u8>>,
        header: &Option<ResponseHeader>,
        encoded: Vec<u8>,
    ) -> Result<Output> {
        let out = match self.format {
            Format::Simple => simple.into(),
            Format::Json => json::line(json::header_only(header)),
            Format::Fields => fields::header_only(header.as_ref()).into_bytes(),
            Format::Protobuf => encoded,
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    /// etcdctl 3.5's `auth status`, which has no fields or table form.
    pub fn auth_status(&self, r: &AuthStatusResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => format!(
                "Authentication Status: {}\nAuthRevision: {}\n",
                r.enabled, r.auth_revision
            )
            .into_bytes(),
            Format::Json => json::line(json::auth_status(r)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn user_get(&self, name: &str, r: &AuthUserGetResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => {
                let roles: String = r.roles.iter().map(|role| format!(" {role}")).collect();
                format!("User: {name}\nRoles:{roles}\n").into_bytes()
            }
            Format::Json => json::line(json::names(&r.header, "roles", &r.roles)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn user_list(&self, r: &AuthUserListResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => r
                .users
                .iter()
                .flat_map(|u| format!("{u}\n").into_bytes())
                .collect(),
            Format::Json => json::line(json::names(&r.header, "users", &r.users)),
            Format::Protobuf => r.encode_to_vec(),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn role_get(&self, role: &str, r: &AuthRoleGetResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => role_get_simple(role, r),
            Format::Json => json::line(json::role_get(r)),
            Format::Fields => fields::role_get(r).into_bytes(),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }

    pub fn role_list(&self, r: &AuthRoleListResponse) -> Result<Output> {
        let out = match self.format {
            Format::Simple => r
                .roles
                .iter()
                .flat_map(|u| format!("{u}\n").into_bytes())
                .collect(),
            Format::Json => json::line(json::names(&r.header, "roles", &r.roles)),
            Format::Fields => fields::role_list(r).into_bytes(),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        };
        Ok(Output::stdout(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::authpb::Permission;

    #[test]
    fn role_get_prints_keys_ranges_and_prefixes_as_etcdctl() {
        let perm = |perm_type, key: &[u8], range_end: &[u8]| Permission {
            perm_type,
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        };
        let r = AuthRoleGetResponse {
            header: None,
            perm: vec![
                perm(2, b"\0", b"\0"),
                perm(0, b"a", b"b"),
                perm(1, b"p", b"pz"),
                perm(2, b"x", b""),
            ],
        };
        assert_eq!(
            String::from_utf8(role_get_simple("r", &r)).unwrap(),
            "Role r\nKV Read:\n\t[\0, <open ended>\n\t[a, b) (prefix a)\n\tx\nKV Write:\n\t[\0, <open ended>\n\t[p, pz)\n\tx\n"
        );
    }
}
