//! Record framing and payload encoding.
//!
//! A segment file is the 8-byte [`MAGIC`] followed by records, each aligned to
//! 8 bytes:
//!
//! ```text
//! 0      4      8     9        12            12+len      (pad to 8)
//! | len  | crc  | type | 0 0 0  | payload ... | 0 ... |
//! ```
//!
//! `len` is the payload length, `crc` is CRC-32C over the `len` bytes, the
//! type word (bytes 8..12) and the payload. All integers are little-endian.

use crate::crc;
use crate::{HardState, SnapshotMeta};

/// First bytes of every segment file: format name and version 1.
pub(crate) const MAGIC: &[u8; 8] = b"ETCRWAL1";
/// Bytes before the payload.
pub(crate) const FRAME_HEADER: usize = 12;
/// Largest payload accepted (both for writing and when reading from disk).
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

const T_HEADER: u8 = 1;
const T_ENTRY: u8 = 2;
const T_HARD_STATE: u8 = 3;
const T_SNAPSHOT: u8 = 4;
const T_COMPACT: u8 = 5;
const T_SYNCED: u8 = 6;

/// The state a segment starts from; the first record of every segment.
///
/// Replaying a segment needs nothing from earlier segments except the entries
/// below `next`, so compaction can delete a prefix of segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Sequence number; also in the file name. Contiguous across segments.
    pub seq: u64,
    /// Index of the first entry written to this segment. Entries `>= next`
    /// in earlier segments are dropped (this is how a suffix is overwritten).
    pub next: u64,
    /// Term of entry `next - 1`.
    pub prev_term: u64,
    /// First retained index (compaction bound) when the segment was created.
    pub first: u64,
    /// Term of entry `first - 1`.
    pub first_prev_term: u64,
    pub hard_state: HardState,
    pub snapshot: SnapshotMeta,
}

/// One decoded record. `Entry` borrows its data from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Header(SegmentHeader),
    Entry {
        index: u64,
        term: u64,
        kind: u8,
        data: &'a [u8],
    },
    HardState(HardState),
    /// A snapshot whose `(index, term)` matched the log when it was written.
    Snapshot(SnapshotMeta),
    /// Entries below `first` are discarded; `prev_term` is the term of `first - 1`.
    Compact {
        first: u64,
        prev_term: u64,
    },
    /// Every byte of this segment before `offset` was durable (fdatasync
    /// returned) before this record was written.
    Synced {
        offset: u64,
    },
}

/// Rounds `n` up to a multiple of 8.
pub(crate) fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Size on disk of a record with a payload of `payload_len` bytes.
pub(crate) fn framed_len(payload_len: usize) -> usize {
    align8(FRAME_HEADER + payload_len)
}

/// Size on disk of an entry record carrying `data_len` bytes.
pub(crate) fn entry_record_len(data_len: usize) -> usize {
    framed_len(17 + data_len)
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_hard_state(out: &mut Vec<u8>, hs: &HardState) {
    put_u64(out, hs.term);
    put_u64(out, hs.vote);
    put_u64(out, hs.commit);
}

fn put_snapshot(out: &mut Vec<u8>, s: &SnapshotMeta) {
    put_u64(out, s.index);
    put_u64(out, s.term);
    put_u64(out, s.conf_state.len() as u64);
    out.extend_from_slice(&s.conf_state);
}

/// Appends the framed encoding of `rec` to `out`. Returns the framed length.
/// The caller checks payload sizes against [`MAX_PAYLOAD`] beforehand.
pub(crate) fn encode(out: &mut Vec<u8>, rec: &Record<'_>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    let ty = match rec {
        Record::Header(h) => {
            put_u64(out, h.seq);
            put_u64(out, h.next);
            put_u64(out, h.prev_term);
            put_u64(out, h.first);
            put_u64(out, h.first_prev_term);
            put_hard_state(out, &h.hard_state);
            put_snapshot(out, &h.snapshot);
            T_HEADER
        }
        Record::Entry {
            index,
            term,
            kind,
            data,
        } => {
            put_u64(out, *index);
            put_u64(out, *term);
            out.push(*kind);
            out.extend_from_slice(data);
            T_ENTRY
        }
        Record::HardState(hs) => {
            put_hard_state(out, hs);
            T_HARD_STATE
        }
        Record::Snapshot(s) => {
            put_snapshot(out, s);
            T_SNAPSHOT
        }
        Record::Compact { first, prev_term } => {
            put_u64(out, *first);
            put_u64(out, *prev_term);
            T_COMPACT
        }
        Record::Synced { offset } => {
            put_u64(out, *offset);
            T_SYNCED
        }
    };
    let payload_len = out.len() - start - FRAME_HEADER;
    let len = (payload_len as u32).to_le_bytes();
    let type_word = [ty, 0, 0, 0];
    out[start..start + 4].copy_from_slice(&len);
    out[start + 8..start + 12].copy_from_slice(&type_word);
    let mut c = crc::extend(0, &len);
    c = crc::extend(c, &type_word);
    c = crc::extend(c, &out[start + FRAME_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&c.to_le_bytes());
    out.resize(start + framed_len(payload_len), 0);
    out.len() - start
}

/// Bounds-checked little-endian reader over a payload.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.buf.len() < n {
            return Err("payload shorter than its record type requires");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn hard_state(&mut self) -> Result<HardState, &'static str> {
        Ok(HardState {
            term: self.u64()?,
            vote: self.u64()?,
            commit: self.u64()?,
        })
    }

    fn snapshot(&mut self) -> Result<SnapshotMeta, &'static str> {
        let index = self.u64()?;
        let term = self.u64()?;
        let len = self.u64()?;
        let len = usize::try_from(len).map_err(|_| "conf_state length overflows")?;
        let conf_state = self.take(len)?.to_vec();
        Ok(SnapshotMeta {
            index,
            term,
            conf_state,
        })
    }

    fn finish(&self) -> Result<(), &'static str> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes after record payload")
        }
    }
}

/// Why the bytes at an offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes remain than a frame header (or the frame) needs.
    Truncated,
    /// All-zero header: unwritten (preallocated) space.
    Zeroed,
    /// Anything else: bad length, checksum, type or payload.
    Invalid(&'static str),
}

impl FrameError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            FrameError::Truncated => "record extends past end of file",
            FrameError::Zeroed => "zeroed record header",
            FrameError::Invalid(r) => r,
        }
    }
}

/// Decodes the record at `off` of `buf`. Returns the record and its framed length.
pub(crate) fn decode(buf: &[u8], off: usize) -> Result<(Record<'_>, usize), FrameError> {
    let rest = buf.get(off..).ok_or(FrameError::Truncated)?;
    if rest.len() < FRAME_HEADER {
        return Err(if rest.iter().all(|&b| b == 0) {
            FrameError::Zeroed
        } else {
            FrameError::Truncated
        });
    }
    let head = &rest[..FRAME_HEADER];
    if head.iter().all(|&b| b == 0) {
        return Err(FrameError::Zeroed);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let stored_crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_PAYLOAD {
        return Err(FrameError::Invalid("record length exceeds limit"));
    }
    let total = framed_len(len);
    if rest.len() < total {
        // Includes a record whose padding is missing: records end 8-aligned.
        return Err(FrameError::Truncated);
    }
    // Cheap plausibility checks first, so that scanning garbage for valid
    // records (torn-tail analysis) rarely computes a checksum.
    if head[9..12] != [0, 0, 0] || !(T_HEADER..=T_SYNCED).contains(&head[8]) {
        return Err(FrameError::Invalid("bad record type"));
    }
    let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
    let mut c = crc::extend(0, &head[0..4]);
    c = crc::extend(c, &head[8..12]);
    c = crc::extend(c, payload);
    if c != stored_crc {
        return Err(FrameError::Invalid("checksum mismatch"));
    }
    if rest[FRAME_HEADER + len..total].iter().any(|&b| b != 0) {
        return Err(FrameError::Invalid("nonzero record padding"));
    }
    let mut r = Reader { buf: payload };
    let rec = match head[8] {
        T_HEADER => Record::Header(SegmentHeader {
            seq: r.u64().map_err(FrameError::Invalid)?,
            next: r.u64().map_err(FrameError::Invalid)?,
            prev_term: r.u64().map_err(FrameError::Invalid)?,
            first: r.u64().map_err(FrameError::Invalid)?,
            first_prev_term: r.u64().map_err(FrameError::Invalid)?,
            hard_state: r.hard_state().map_err(FrameError::Invalid)?,
            snapshot: r.snapshot().map_err(FrameError::Invalid)?,
        }),
        T_ENTRY => {
            let index = r.u64().map_err(FrameError::Invalid)?;
            let term = r.u64().map_err(FrameError::Invalid)?;
            let kind = r.u8().map_err(FrameError::Invalid)?;
            let data = r.buf;
            r.buf = &[];
            Record::Entry {
                index,
                term,
                kind,
                data,
            }
        }
        T_HARD_STATE => Record::HardState(r.hard_state().map_err(FrameError::Invalid)?),
        T_SNAPSHOT => Record::Snapshot(r.snapshot().map_err(FrameError::Invalid)?),
        T_COMPACT => Record::Compact {
            first: r.u64().map_err(FrameError::Invalid)?,
            prev_term: r.u64().map_err(FrameError::Invalid)?,
        },
        T_SYNCED => Record::Synced {
            offset: r.u64().map_err(FrameError::Invalid)?,
        },
        _ => return Err(FrameError::Invalid("bad record type")),
    };
    r.finish().map_err(FrameError::Invalid)?;
    Ok((rec, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(rec: Record<'_>) {
        let mut buf = Vec::new();
        let n = encode(&mut buf, &rec);
        assert_eq!(n, buf.len());
        assert_eq!(n % 8, 0);
        let (back, used) = decode(&buf, 0).expect("decodes");
        assert_eq!(back, rec);
        assert_eq!(used, n);
    }

    #[test]
    fn every_record_type_roundtrips() {
        roundtrip(Record::Header(SegmentHeader {
            seq: 3,
            next: 10,
            prev_term: 2,
            first: 4,
            first_prev_term: 1,
            hard_state: HardState {
                term: 2,
                vote: 7,
                commit: 9,
            },
            snapshot: SnapshotMeta {
                index: 3,
                term: 1,
                conf_state: b"voters=1,2,3".to_vec(),
            },
        }));
        roundtrip(Record::Entry {
            index: 5,
            term: 2,
            kind: 1,
            data: b"hello",
        });
        roundtrip(Record::Entry {
            index: 5,
            term: 2,
            kind: 0,
            data: b"",
        });
        roundtrip(Record::HardState(HardState {
            term: 1,
            vote: 2,
            commit: 3,
        }));
        roundtrip(Record::Snapshot(SnapshotMeta::default()));
        roundtrip(Record::Compact {
            first: 9,
            prev_term: 4,
        });
        roundtrip(Record::Synced { offset: 4096 });
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode(
            &mut buf,
            &Record::Entry {
                index: 1,
                term: 1,
                kind: 0,
                data: b"payload",
            },
        );
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                assert!(
                    decode(&b, 0).is_err(),
                    "flip of byte {byte} bit {bit} undetected"
                );
            }
        }
    }

    #[test]
    fn zeros_and_short_buffers() {
        assert_eq!(decode(&[0u8; 64], 0).unwrap_err(), FrameError::Zeroed);
        assert_eq!(decode(&[0u8; 5], 0).unwrap_err(), FrameError::Zeroed);
        assert_eq!(decode(&[1u8; 5], 0).unwrap_err(), FrameError::Truncated);
        assert_eq!(decode(&[], 0).unwrap_err(), FrameError::Zeroed);
    }
}
