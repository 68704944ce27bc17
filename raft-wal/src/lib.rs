//! A durable write-ahead log for raft: log entries, hard state and snapshot
//! metadata in checksummed, rotating segment files, with group commit.
//!
//! The crate knows nothing of raft-core; entries are `(index, term, kind,
//! data)` and the hard state is `(term, vote, commit)`. The server adapts a
//! [`Wal`] to raft's storage interface.
//!
//! # Example
//!
//! ```
//! use raft_wal::{Entry, HardState, Options, SnapshotMeta, Wal};
//!
//! # fn main() -> Result<(), raft_wal::Error> {
//! let dir = tempfile::tempdir().expect("tempdir");
//! let mut wal = Wal::open(dir.path(), Options::default())?;
//!
//! // One raft Ready: entries and hard state, durable with one fdatasync.
//! let batch: Vec<Entry> = (1..=3).map(|i| Entry::new(i, 1, format!("put k{i}"))).collect();
//! wal.append(&batch, Some(HardState { term: 1, vote: 1, commit: 0 }))?;
//!
//! // A new leader replaces the uncommitted suffix from index 3 on.
//! wal.append(&[Entry::new(3, 2, "put k3'"), Entry::new(4, 2, "put k4")], None)?;
//! assert_eq!(wal.term(3), Some(2));
//!
//! // Write now, overlap other work (send to followers), then sync.
//! wal.append_nosync(&[], Some(HardState { term: 2, vote: 1, commit: 4 }))?;
//! wal.sync()?;
//! drop(wal);
//!
//! let mut wal = Wal::open(dir.path(), Options::default())?;
//! assert_eq!((wal.first_index(), wal.last_index()), (1, 4));
//! assert_eq!(wal.hard_state().commit, 4);
//! let read = wal.entries(2, 5, u64::MAX)?;
//! assert_eq!(read.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2, 3, 4]);
//! assert_eq!(read[1].data, b"put k3'");
//!
//! // After the state machine snapshots index 3, the log can drop what it covers.
//! wal.set_snapshot(SnapshotMeta { index: 3, term: 2, conf_state: b"voters: 1".to_vec() })?;
//! wal.compact(4)?;
//! assert_eq!(wal.first_index(), 4);
//! assert_eq!(wal.term(3), Some(2));
//! # Ok(())
//! # }
//! ```
//!
//! # Durability contract
//!
//! - [`Wal::append`] returns after everything it wrote is on disk: the
//!   entries and hard state of the batch are written with one `pwrite` and
//!   made durable with one `fdatasync` of the active segment.
//! - [`Wal::append_nosync`] only hands the bytes to the OS: they are readable
//!   at once, survive a crash of the process, but not of the machine, until
//!   [`Wal::sync`] returns. `append_nosync` + `sync` lets the caller send the
//!   same entries to followers while its own write is in flight; it must not
//!   acknowledge them (or send messages that depend on the hard state) before
//!   `sync` returns. Several `append_nosync` calls may share one `sync`.
//! - When `sync` returns, every record written before it is durable,
//!   including those of sealed segments: a segment is fdatasync'ed before a
//!   newer one is created, so only the active segment is ever dirty.
//! - Segment files are created as `*.tmp`, preallocated, synced, renamed and
//!   the directory fsync'ed, before any entry is written to them; segment
//!   removal (compaction) is followed by a directory fsync. Creation happens
//!   on rotation (size), on a suffix overwrite and on a snapshot installed
//!   from the leader; all three are therefore durable when they return.
//! - [`Wal::set_snapshot`] of local state and [`Wal::compact`] without
//!   deletions write a record that becomes durable with the next `sync`;
//!   `compact` syncs before deleting segments.
//! - After a failed write or fdatasync the log is poisoned
//!   ([`Error::Poisoned`]): the kernel may have dropped the dirty pages, so
//!   the only safe continuation is to reopen (and recover) the log.
//!
//! # On-disk format
//!
//! A directory holds `LOCK` (an `flock` held while open) and segments named
//! `{seq:016x}-{next:016x}.wal`: `seq` orders them (contiguous from the oldest
//! kept), `next` is the index of the first entry written to the segment.
//! A segment is the magic `ETCRWAL1` and then 8-byte aligned records:
//!
//! ```text
//! | len: u32 | crc32c: u32 | type: u8 | 0 0 0 | payload: len bytes | zero pad to 8 |
//! ```
//!
//! The CRC-32C covers `len`, the type word and the payload. Integers are
//! little-endian. Record types:
//!
//! | type | payload | meaning |
//! | --- | --- | --- |
//! | 1 header | seq, next, prev_term, first, first_prev_term, hard state, snapshot | first record of every segment; drops entries `>= next` of earlier segments |
//! | 2 entry | index, term, kind: u8, data | must follow the previous entry (index + 1) |
//! | 3 hard state | term, vote, commit | last one wins |
//! | 4 snapshot | index, term, conf_state len: u64, conf_state | snapshot matching the log |
//! | 5 compact | first, prev_term | entries below `first` are discarded |
//! | 6 synced | offset | all bytes of this segment before `offset` were durable before this record was written |
//!
//! Each header repeats the hard state, snapshot and compaction point, so the
//! segments that compaction keeps are self-contained. A suffix overwrite
//! starts a new segment (written records are never modified in place); a
//! segment then holds strictly consecutive entries, which recovery checks.
//! Overwrites happen only after a leader change, so the extra segment (about
//! 15 ms to create, durably) is rare. New segments are preallocated to the
//! segment size as [`Options::preallocate`] says; a sealed segment is cut to
//! its data, and the unwritten tail of the active one reads as zeros.
//!
//! # Recovery rules
//!
//! [`Wal::open`] replays all segments in `seq` order and:
//!
//! - removes `*.tmp` files (segment creations that did not finish);
//! - refuses to open ([`Error::Corrupt`] with file and byte offset) on a gap in
//!   `seq`, a bad magic or header, any bad record in a segment other than the
//!   last (those were sealed and synced), and any valid record that
//!   contradicts the log (non-consecutive index, decreasing term, ...);
//! - at the first bad record of the **last** segment, looks at the rest of
//!   the file: all zeros is the normal end; otherwise, if a later valid
//!   `synced` record proves that the bad bytes had been made durable, the
//!   log is corrupt and open refuses; if not, the bytes were a torn write
//!   (a partial record, garbage, or records that reached the disk out of
//!   order and were never synced) and the file is cut at the bad record,
//!   reported in [`Wal::recovery`] as a [`TornTail`];
//! - fdatasyncs the last segment before it returns, so that what was replayed
//!   from the page cache is durable before new records build on it.
//!
//! A limit of the evidence rule: a bad record in the last synced batch of the
//! log, with nothing appended after the sync, is indistinguishable from a
//! torn write and is truncated (and reported). Records appended after a sync
//! carry a `synced` marker, so damage to anything synced before them is
//! detected.
//!
//! # Reads and memory
//!
//! The log keeps an in-memory index of 32 bytes per retained entry (segment,
//! offset, length, term) and a cache of the most recent entries bounded by
//! [`Options::cache_bytes`], so a leader replicating fresh entries does not
//! read the disk. Older entries are read with one `pread` per run of
//! adjacent records (up to 4 MiB) and their checksums verified.
//!
//! A [`Wal`] is `Send + Sync`: reads take `&self`, writes `&mut self`.
//!
//! # Why not LMDB for the raft log
//!
//! The state machine lives in LMDB (`mvcc`), so storing the raft log in an
//! LMDB table too was measured against this crate ("measure both"):
//! `cargo run --release -p raft-wal --example wal_bench` appends 256-byte
//! entries and makes each batch durable before the next. On the development
//! machine (2 cores, ext4 on a virtual disk, shared with other builds):
//!
//! | batch | WAL entries/s | WAL fdatasync p50 / p99 | LMDB entries/s | LMDB commit p50 / p99 |
//! | ---: | ---: | ---: | ---: | ---: |
//! | 1 | 213 | 4.0 / 12 ms | 94 | 11.4 / 22 ms |
//! | 16 | 3 250 | 4.0 / 12 ms | 1 310 | 11.9 / 42 ms |
//! | 128 | 23 600 | 3.9 / 19 ms | 11 400 | 11.9 / 20 ms |
//!
//! (5 s per case, default options; a second run gave the same picture, LMDB
//! at 7-10 ms p50.) The device flush dominates: batching 128 entries costs
//! no more per sync than 1, so group commit multiplies throughput.
//! An LMDB commit flushes twice (data pages, then the meta page) and rewrites
//! B-tree pages; the WAL writes one contiguous buffer and flushes once, so it
//! commits about twice as many batches per second, and a leader can overlap
//! its own write with replication ([`Wal::append_nosync`]). The raft log
//! therefore stays out of LMDB.

#![deny(missing_docs)]

mod crc;
mod record;
mod segment;
mod wal;

use std::path::PathBuf;

pub use wal::Wal;

/// One raft log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Log index (1-based).
    pub index: u64,
    /// Term of the leader that created the entry.
    pub term: u64,
    /// Caller-defined kind (e.g. normal entry or configuration change).
    pub kind: u8,
    /// Opaque payload.
    pub data: Vec<u8>,
}

impl Entry {
    /// An entry of kind 0.
    pub fn new(index: u64, term: u64, data: impl Into<Vec<u8>>) -> Entry {
        Entry {
            index,
            term,
            kind: 0,
            data: data.into(),
        }
    }
}

/// Raft's persistent per-node state besides the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term` (0 for none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// Metadata of the latest snapshot: the log position it covers and the
/// membership configuration at that point (opaque bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Last index covered by the snapshot.
    pub index: u64,
    /// Term of entry `index`.
    pub term: u64,
    /// Encoded membership configuration.
    pub conf_state: Vec<u8>,
}

/// Tuning knobs for [`Wal::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Size at which the active segment is sealed and a new one started.
    /// Default 64 MiB.
    pub segment_size: u64,
    /// How a new segment's `segment_size` bytes are reserved. Default
    /// [`Preallocate::Reserve`].
    pub preallocate: Preallocate,
    /// Bytes of entry data kept in memory for recent entries. Default 8 MiB.
    pub cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_size: 64 << 20,
            preallocate: Preallocate::Reserve,
            cache_bytes: 8 << 20,
        }
    }
}

/// How segment files are preallocated when created.
///
/// Measured with `examples/wal_bench.rs` (ext4 on a virtual disk, 256-byte
/// entries): fdatasync p50 was the same (~3.9 ms) for all three modes, since
/// the device flush dominates; zero-filling showed a somewhat better p99 with
/// 128-entry batches but costs ~600 ms to create a 64 MiB segment, a stall on
/// the append path at every rotation, against ~15 ms for the other two. Hence
/// the default `Reserve`; `Zero` pays off only once segments are pre-created
/// off the append path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preallocate {
    /// The file grows as records are appended.
    None,
    /// `fallocate` the segment size (cheap; the space reads as zeros).
    Reserve,
    /// Write and sync zeros over the segment size when it is created, so
    /// that appends overwrite already-written blocks (no extent conversion
    /// at fdatasync), at the price of writing every segment twice.
    Zero,
}

/// What [`Wal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files replayed.
    pub segments: usize,
    /// Entries retained after replay.
    pub entries: u64,
    /// A torn write that was cut off the last segment, if any.
    pub torn_tail: Option<TornTail>,
}

/// A torn write found at the end of the last segment and truncated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Offset of the first bad record; the file now ends there.
    pub offset: u64,
    /// Bytes from `offset` to the former end of file (including zeros).
    pub dropped_bytes: u64,
    /// Valid records found (and dropped) after the bad one: unsynced writes
    /// that reached the disk out of order.
    pub dropped_records: u64,
    /// Why the record at `offset` was rejected.
    pub reason: String,
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An IO operation on `path` failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Durable data is damaged or inconsistent; the log refuses to open.
    #[error("corrupt WAL segment {file} at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file (or the directory).
        file: PathBuf,
        /// Byte offset within `file`.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another `Wal`) has the directory open.
    #[error("WAL directory {dir} is locked by another process")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The requested entry was compacted away.
    #[error("entry {index} is compacted (first index is {first_index})")]
    Compacted {
        /// Requested index.
        index: u64,
        /// Current first index.
        first_index: u64,
    },
    /// The requested entry is beyond the end of the log.
    #[error("entry {index} is unavailable (last index is {last_index})")]
    Unavailable {
        /// Requested index.
        index: u64,
        /// Current last index.
        last_index: u64,
    },
    /// The appended entries do not fit the log (a caller bug).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The snapshot metadata cannot be recorded (a caller bug).
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// A snapshot older than the current one was set.
    #[error("snapshot at index {index} is older than the current one at {current}")]
    SnapshotOutOfDate {
        /// Index of the rejected snapshot.
        index: u64,
        /// Index of the current snapshot.
        current: u64,
    },
    /// A record would exceed the 1 GiB limit.
    #[error("record of {size} bytes is too large")]
    RecordTooLarge {
        /// Payload size.
        size: usize,
    },
    /// An earlier write or sync failed; reopen the log.
    #[error("WAL is poisoned by an earlier I/O failure; reopen it")]
    Poisoned,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
