//! The requests of each workload: which key, which value, which RPC.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use api::etcdserverpb::{
    request_op, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use prost::Message;

use crate::args::{Args, Consistency, Workload};

/// Picks keys from the key space: zero-padded decimal numbers of exactly `size` bytes
/// (the lowest digits when the key space has more digits than fit).
#[derive(Clone, Debug)]
pub struct KeyGen {
    size: usize,
    space: u64,
    sequential: Option<Arc<AtomicU64>>,
}

impl KeyGen {
    /// Keys of `size` bytes from a space of `space` keys, in order or at random.
    pub fn new(size: usize, space: u64, sequential: bool) -> Self {
        KeyGen {
            size,
            space: space.max(1),
            sequential: sequential.then(|| Arc::new(AtomicU64::new(0))),
        }
    }

    /// The key with number `n`.
    pub fn key(&self, n: u64) -> Vec<u8> {
        let digits = format!("{:0width$}", n % self.space, width = self.size);
        digits.as_bytes()[digits.len() - self.size..].to_vec()
    }

    /// The next key: the next number in order, or a random one.
    pub fn next_key(&self) -> Vec<u8> {
        let n = match &self.sequential {
            Some(counter) => counter.fetch_add(1, Ordering::Relaxed),
            None => fastrand::u64(0..self.space),
        };
        self.key(n)
    }
}

/// One request of a workload, ready to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// KV.Put.
    Put(PutRequest),
    /// KV.Range.
    Range(RangeRequest),
    /// KV.Txn.
    Txn(TxnRequest),
    /// Lease.LeaseGrant.
    LeaseGrant(LeaseGrantRequest),
}

/// Builds the requests of one workload; cheap to clone into every request loop.
#[derive(Clone, Debug)]
pub struct Generator {
    workload: Workload,
    keys: KeyGen,
    value: Vec<u8>,
    serializable: bool,
    read_ratio: f64,
    txn_ops: usize,
    lease_ttl: i64,
}

impl Generator {
    /// The generator for the workload and sizes in `args`.
    pub fn new(args: &Args) -> Self {
        // One random value for every request, as etcd's benchmark does.
        let value = std::iter::repeat_with(fastrand::alphanumeric)
            .take(args.value_size)
            .map(|c| c as u8)
            .collect();
        Generator {
            workload: args.workload,
            keys: KeyGen::new(args.key_size, args.key_space_size, args.sequential_keys),
            value,
            serializable: args.consistency == Consistency::Serializable,
            read_ratio: args.read_ratio,
            txn_ops: args.txn_ops,
            lease_ttl: args.lease.lease_ttl,
        }
    }

    /// The next request to send.
    pub fn next_op(&self) -> Op {
        match self.workload {
            Workload::Put => Op::Put(self.put()),
            Workload::Range => Op::Range(self.range()),
            Workload::TxnPut => Op::Txn(self.txn_put()),
            Workload::Mixed if fastrand::f64() < self.read_ratio => Op::Range(self.range()),
            Workload::Mixed => Op::Put(self.put()),
            Workload::LeaseGrant => Op::LeaseGrant(LeaseGrantRequest {
                ttl: self.lease_ttl,
                id: 0,
            }),
            // Driven by their own modules (`watch`, `lease`, `big_range`), whose writes are
            // puts.
            Workload::Watch
            | Workload::LeaseKeepalive
            | Workload::LeaseExpiry
            | Workload::BigRange => Op::Put(self.put()),
        }
    }

    fn put(&self) -> PutRequest {
        self.put_key(self.keys.next_key())
    }

    fn put_key(&self, key: Vec<u8>) -> PutRequest {
        PutRequest {
            key,
            value: self.value.clone(),
            ..Default::default()
        }
    }

    /// A transaction of `txn_ops` puts of distinct keys: etcd refuses a txn that writes one
    /// key twice.
    fn txn_put(&self) -> TxnRequest {
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(self.txn_ops);
        while keys.len() < self.txn_ops {
            let key = self.keys.next_key();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        TxnRequest {
            success: keys
                .into_iter()
                .map(|key| RequestOp {
                    request: Some(request_op::Request::RequestPut(self.put_key(key))),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn range(&self) -> RangeRequest {
        RangeRequest {
            key: self.keys.next_key(),
            serializable: self.serializable,
            ..Default::default()
        }
    }
}

impl Op {
    /// The gRPC method and the encoded request.
    pub fn encode(&self) -> (&'static str, Vec<u8>) {
        match self {
            Op::Put(r) => ("/etcdserverpb.KV/Put", r.encode_to_vec()),
            Op::Range(r) => ("/etcdserverpb.KV/Range", r.encode_to_vec()),
            Op::Txn(r) => ("/etcdserverpb.KV/Txn", r.encode_to_vec()),
            Op::LeaseGrant(r) => ("/etcdserverpb.Lease/LeaseGrant", r.encode_to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn keys_have_the_requested_size() {
        let keys = KeyGen::new(8, 10_000, false);
        assert_eq!(keys.key(42), b"00000042");
        let short = KeyGen::new(2, 1000, false);
        assert_eq!(short.key(987), b"87");
        for _ in 0..100 {
            assert_eq!(keys.next_key().len(), 8);
        }
    }

    #[test]
    fn sequential_keys_walk_the_space_in_order() {
        let keys = KeyGen::new(3, 3, true);
        let got: Vec<Vec<u8>> = (0..4).map(|_| keys.next_key()).collect();
        assert_eq!(got, [b"000", b"001", b"002", b"000"]);
    }

    #[test]
    fn ops_follow_the_workload() {
        let args = Args::parse_from(["b", "txn-put", "--txn-ops", "3", "--val-size", "5"]);
        let Op::Txn(txn) = Generator::new(&args).next_op() else {
            panic!("txn-put makes transactions")
        };
        assert_eq!(txn.success.len(), 3);
        assert!(txn.compare.is_empty());

        // Two puts from a space of two keys: always both keys, never one twice.
        let args = Args::parse_from(["b", "txn-put", "--txn-ops", "2", "--key-space-size", "2"]);
        let generator = Generator::new(&args);
        for _ in 0..50 {
            let Op::Txn(txn) = generator.next_op() else {
                panic!("txn-put makes transactions")
            };
            let mut keys: Vec<Vec<u8>> = txn
                .success
                .into_iter()
                .filter_map(|op| match op.request {
                    Some(request_op::Request::RequestPut(p)) => Some(p.key),
                    _ => None,
                })
                .collect();
            keys.sort();
            assert_eq!(keys, [b"00000000", b"00000001"]);
        }

        let args = Args::parse_from(["b", "range", "--consistency", "s"]);
        let Op::Range(r) = Generator::new(&args).next_op() else {
            panic!("range makes ranges")
        };
        assert!(r.serializable);

        let args = Args::parse_from(["b", "mixed", "--read-ratio", "0"]);
        assert!(matches!(Generator::new(&args).next_op(), Op::Put(p) if p.value.len() == 256));
        let args = Args::parse_from(["b", "mixed", "--read-ratio", "1"]);
        assert!(matches!(Generator::new(&args).next_op(), Op::Range(_)));

        let args = Args::parse_from(["b", "lease-grant", "--lease-ttl", "60"]);
        let op = Generator::new(&args).next_op();
        assert_eq!(op, Op::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 0 }));
        assert_eq!(op.encode().0, "/etcdserverpb.Lease/LeaseGrant");
    }
}
