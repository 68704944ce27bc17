//! `grpc_server_started_total` and `grpc_server_handled_total`, as etcd exports them (by
//! service, method and, once handled, status code), for every call `grpc::UNARY_CALLS` names.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::grpc::UNARY_CALLS;

/// gRPC status codes by number, spelled as grpc-go's `codes.Code.String()`.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

pub struct GrpcMetrics {
    started: Vec<AtomicU64>,
    /// By call, then by code.
    handled: Vec<[AtomicU64; CODES.len()]>,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        GrpcMetrics {
            started: UNARY_CALLS.iter().map(|_| AtomicU64::new(0)).collect(),
            handled: UNARY_CALLS
                .iter()
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
        }
    }
}

impl GrpcMetrics {
    /// `call` is an index into `UNARY_CALLS`.
    pub fn started(&self, call: usize) {
        self.started[call].fetch_add(1, Relaxed);
    }

    /// A code outside gRPC's range counts as Unknown.
    pub fn handled(&self, call: usize, code: i32) {
        let code = usize::try_from(code)
            .ok()
            .filter(|c| *c < CODES.len())
            .unwrap_or(2);
        self.handled[call][code].fetch_add(1, Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        let labels = |call: &str| {
            let (service, method) = call[1..].split_once('/').unwrap_or((call, ""));
            format!("grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"unary\"")
        };
        let _ = writeln!(
            out,
            "# HELP grpc_server_started_total gRPC calls this member has begun to serve.\n\
             # TYPE grpc_server_started_total counter"
        );
        for (call, n) in UNARY_CALLS.iter().zip(&self.started) {
            let _ = writeln!(
                out,
                "grpc_server_started_total{{{}}} {}",
                labels(call),
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP grpc_server_handled_total gRPC calls this member has answered, by status \
             code.\n# TYPE grpc_server_handled_total counter"
        );
        for (call, counts) in UNARY_CALLS.iter().zip(&self.handled) {
            for (code, n) in CODES.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_code=\"{code}\",{}}} {}",
                    labels(call),
                    n.load(Relaxed)
                );
            }
        }
    }
}
