//! Fuzzing the peer wire decoder: arbitrary bytes and mutated valid streams fed to
//! `FrameReader` and `decode_payload` must give frames or errors, never a panic, and stop at
//! the end of the input.
//!
//! `ETCR_FUZZ_CASES` sets the cases per batch (256 by default); with `ETCR_FUZZ_SECONDS`
//! batches with fresh seeds run until that much time has passed (`cargo xtask fuzz`).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::{Deserialize, Serialize};
use transport::frame::{
    decode_payload, encode_frame, raw_header, FrameKind, FrameReader, Hello, StreamKind, Verdict,
};

const MAX_FRAME: usize = 1 << 20;

/// Shaped like a raft message: enums, options, nested vectors of bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Append,
    AppendResponse { reject: bool, hint: u64 },
    Vote(u64),
    Heartbeat,
    Snapshot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    index: u64,
    term: u64,
    data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    kind: Kind,
    from: u64,
    to: u64,
    term: u64,
    entries: Vec<Entry>,
    commit: u64,
    context: Option<String>,
}

fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("ETCR_FUZZ_CASES").unwrap_or(256) as u32;
    let until = env("ETCR_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let mut total = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{e}");
        }
        total += u64::from(cases);
        if until.is_none_or(|u| Instant::now() >= u) {
            break;
        }
    }
    let test = std::thread::current().name().unwrap_or("fuzz").to_string();
    eprintln!("{test}: {total} cases, no failure");
}

/// Reads frames until the input ends or a frame is refused, decoding each payload as the
/// type its kind carries. Returns the frames decoded.
fn drain(bytes: &[u8]) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut r = FrameReader::new(bytes, MAX_FRAME);
        let mut decoded = 0;
        while let Ok(Some((kind, len))) = r.read_header().await {
            let Ok(payload) = r.read_payload(len).await else {
                break;
            };
            let ok = match kind {
                FrameKind::Hello => decode_payload::<Hello>(payload).is_ok(),
                FrameKind::HelloAck | FrameKind::SnapshotAck => {
                    decode_payload::<Verdict>(payload).is_ok()
                }
                FrameKind::Message | FrameKind::SnapshotMeta => {
                    decode_payload::<Msg>(payload).is_ok()
                }
                FrameKind::SnapshotEnd => decode_payload::<u64>(payload).is_ok(),
                FrameKind::SnapshotChunk => true,
            };
            decoded += usize::from(ok);
        }
        decoded
    })
}

fn msg() -> impl Strategy<Value = Msg> {
    let kind = prop_oneof![
        Just(Kind::Append),
        (any::<bool>(), any::<u64>())
            .prop_map(|(reject, hint)| Kind::AppendResponse { reject, hint }),
        any::<u64>().prop_map(Kind::Vote),
        Just(Kind::Heartbeat),
        Just(Kind::Snapshot),
    ];
    let entry = (
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(index, term, data)| Entry { index, term, data });
    (
        kind,
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(entry, 0..8),
        any::<u64>(),
        prop::option::of(".{0,20}"),
    )
        .prop_map(|(kind, from, to, term, entries, commit, context)| Msg {
            kind,
            from,
            to,
            term,
            entries,
            commit,
            context,
        })
}

/// A valid stream as a dialer sends it (hello, messages, a snapshot's frames), with the
/// offset where each frame ends.
fn stream(msgs: &[Msg], chunk: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut buf = BytesMut::new();
    let mut ends = Vec::new();
    let hello = Hello {
        cluster_id: 7,
        from: 1,
        to: 2,
        stream: StreamKind::Raft,
    };
    encode_frame(&mut buf, FrameKind::Hello, &hello, MAX_FRAME).expect("hello");
    ends.push(buf.len());
    for m in msgs {
        encode_frame(&mut buf, FrameKind::Message, m, MAX_FRAME).expect("message");
        ends.push(buf.len());
    }
    buf.extend_from_slice(&raw_header(FrameKind::SnapshotChunk, chunk.len()));
    buf.extend_from_slice(chunk);
    ends.push(buf.len());
    encode_frame(
        &mut buf,
        FrameKind::SnapshotEnd,
        &(chunk.len() as u64),
        MAX_FRAME,
    )
    .expect("end");
    ends.push(buf.len());
    let verdict = Verdict {
        ok: false,
        reason: "no".into(),
    };
    encode_frame(&mut buf, FrameKind::SnapshotAck, &verdict, MAX_FRAME).expect("ack");
    ends.push(buf.len());
    (buf.to_vec(), ends)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: prop::sample::Index,
        mask: u8,
    },
    Truncate(prop::sample::Index),
    Insert {
        at: prop::sample::Index,
        bytes: Vec<u8>,
    },
    /// A header-sized window overwritten: lengths, versions and kinds go wrong together.
    Overwrite {
        at: prop::sample::Index,
        bytes: [u8; 6],
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1..=255u8)
            .prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<prop::sample::Index>(), any::<[u8; 6]>())
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip { at, mask } => {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Mutation::Insert { at, bytes: b } => {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Overwrite { at, bytes: b } => {
            let i = at.index(bytes.len());
            for (j, x) in b.iter().enumerate() {
                if let Some(y) = bytes.get_mut(i + j) {
                    *y = *x;
                }
            }
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    fuzz(prop::collection::vec(any::<u8>(), 0..2048), |bytes| {
        drain(&bytes);
        for payload in [&bytes[..], &bytes[bytes.len().min(6)..]] {
            let _ = decode_payload::<Hello>(payload);
            let _ = decode_payload::<Verdict>(payload);
            let _ = decode_payload::<Msg>(payload);
            let _ = decode_payload::<u64>(payload);
            let _ = decode_payload::<Vec<Vec<u8>>>(payload);
        }
        Ok(())
    });
}

#[test]
fn arbitrary_bytes_behind_a_valid_header_never_panic() {
    // Past the header check, so the payload decoders get the arbitrary bytes.
    fuzz(
        (0..7usize, prop::collection::vec(any::<u8>(), 0..1024)),
        |(kind, payload)| {
            let kinds = [
                FrameKind::Hello,
                FrameKind::HelloAck,
                FrameKind::Message,
                FrameKind::SnapshotMeta,
                FrameKind::SnapshotChunk,
                FrameKind::SnapshotEnd,
                FrameKind::SnapshotAck,
            ];
            let mut bytes = raw_header(kinds[kind], payload.len()).to_vec();
            bytes.extend_from_slice(&payload);
            drain(&bytes);
            Ok(())
        },
    );
}

#[test]
fn valid_streams_decode_whole() {
    fuzz(
        (
            prop::collection::vec(msg(), 0..6),
            prop::collection::vec(any::<u8>(), 0..256),
        ),
        |(msgs, chunk)| {
            let (bytes, ends) = stream(&msgs, &chunk);
            prop_assert_eq!(drain(&bytes), ends.len());
            Ok(())
        },
    );
}

#[test]
fn a_cut_stream_yields_the_frames_before_the_cut() {
    fuzz(
        (
            prop::collection::vec(msg(), 0..6),
            any::<prop::sample::Index>(),
        ),
        |(msgs, cut)| {
            let (bytes, ends) = stream(&msgs, b"chunk");
            let cut = cut.index(bytes.len() + 1);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            prop_assert_eq!(drain(&bytes[..cut]), whole);
            Ok(())
        },
    );
}

#[test]
fn mutated_streams_never_panic() {
    fuzz(
        (
            prop::collection::vec(msg(), 0..6),
            prop::collection::vec(any::<u8>(), 0..256),
            prop::collection::vec(mutation(), 1..6),
        ),
        |(msgs, chunk, mutations)| {
            let (mut bytes, _) = stream(&msgs, &chunk);
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            // The property is that this returns: a panic fails the case.
            drain(&bytes);
            Ok(())
        },
    );
}
