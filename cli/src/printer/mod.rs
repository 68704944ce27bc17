//! etcdctl's output formats (`-w simple|json|fields|table|protobuf`), one module per format.

mod fields;
mod json;
mod simple;
mod table;

use api::etcdserverpb::{
    DeleteRangeResponse, MemberListResponse, PutResponse, RangeResponse, StatusResponse,
    TxnResponse,
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

impl Printer {
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
