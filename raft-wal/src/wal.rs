//! The write-ahead log: recovery, appends, reads, snapshots and compaction.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::record::{self, FrameError, Record, SegmentHeader, FRAME_HEADER, MAGIC, MAX_PAYLOAD};
use crate::segment::{self, io_err, Segment};
use crate::{
    Entry, Error, HardState, Options, Preallocate, RecoveryReport, Result, SnapshotMeta, TornTail,
};

/// Largest index accepted, so that index arithmetic can never overflow
/// (whatever the disk says).
const MAX_INDEX: u64 = i64::MAX as u64;

/// Largest single read of older entries.
const MAX_READ: u64 = 4 << 20;

/// Where one live entry lives on disk.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Sequence number of the segment holding the record.
    seq: u64,
    /// Byte offset of the record's frame in that segment.
    offset: u64,
    /// Payload length of the record.
    len: u32,
    term: u64,
}

/// A durable raft log. See the crate documentation for the contract.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: Options,
    /// Held for the lifetime of the log: `flock` on `LOCK`.
    _lock: File,
    /// Ordered by `seq`, contiguous; the last one is the active segment.
    segments: Vec<Segment>,
    /// First retained index; `index[0]` describes it.
    first: u64,
    /// Term of entry `first - 1`.
    prev_term: u64,
    index: VecDeque<Slot>,
    hard_state: HardState,
    snapshot: SnapshotMeta,
    /// A suffix of the log, bounded by `opts.cache_bytes`.
    cache: VecDeque<Entry>,
    cache_bytes: usize,
    /// Offset just after the active segment's header.
    seg_start: u64,
    /// End of written data in the active segment.
    write_pos: u64,
    /// Prefix of the active segment known durable.
    synced_pos: u64,
    /// Largest offset a `Synced` record in the active segment claims.
    marker_pos: u64,
    /// Set after a failed write or sync: the on-disk state is unknown.
    poisoned: bool,
    buf: Vec<u8>,
    report: RecoveryReport,
}

/// State rebuilt while replaying segments.
struct Replay {
    /// First index present in `index` (entries below were in deleted segments).
    base: u64,
    first: u64,
    prev_term: u64,
    index: VecDeque<Slot>,
    hard_state: HardState,
    snapshot: SnapshotMeta,
}

impl Replay {
    fn last(&self) -> u64 {
        self.base + self.index.len() as u64 - 1
    }

    fn term_of(&self, i: u64) -> Option<u64> {
        if i >= self.base && i <= self.last() {
            self.index.get((i - self.base) as usize).map(|s| s.term)
        } else {
            None
        }
    }

    /// Applies one record of segment `seq` at `offset`; `Err` is a reason.
    fn apply(
        &mut self,
        seq: u64,
        offset: u64,
        rec: &Record<'_>,
    ) -> std::result::Result<(), String> {
        match rec {
            Record::Header(_) => return Err("segment header in the middle of a segment".into()),
            Record::Entry {
                index, term, data, ..
            } => {
                if *index != self.last() + 1 || *index > MAX_INDEX {
                    return Err(format!(
                        "entry {index} does not follow last index {}",
                        self.last()
                    ));
                }
                let prev = self.term_of(self.last()).unwrap_or(0);
                if *term < prev {
                    return Err(format!(
                        "entry {index} has term {term} below previous term {prev}"
                    ));
                }
                self.index.push_back(Slot {
                    seq,
                    offset,
                    len: (17 + data.len()) as u32,
                    term: *term,
                });
            }
            Record::HardState(hs) => self.hard_state = *hs,
            Record::Snapshot(meta) => {
                if let Some(t) = self.term_of(meta.index) {
                    if t != meta.term {
                        return Err(format!(
                            "snapshot ({}, {}) disagrees with logged term {t}",
                            meta.index, meta.term
                        ));
                    }
                }
                self.snapshot = meta.clone();
            }
            Record::Compact { first, prev_term } => {
                if *first == 0 || *first > self.last() + 1 {
                    return Err(format!(
                        "compaction to {first} beyond last index {}",
                        self.last()
                    ));
                }
                self.first = *first;
                self.prev_term = *prev_term;
                while self.base < self.first && !self.index.is_empty() {
                    self.index.pop_front();
                    self.base += 1;
                }
                if self.index.is_empty() && self.base < self.first {
                    self.base = self.first;
                }
            }
            Record::Synced { .. } => {}
        }
        Ok(())
    }

    /// Applies the header of a segment that is not the first replayed one.
    fn apply_header(&mut self, h: &SegmentHeader) -> std::result::Result<(), String> {
        if h.first == h.next || h.next < self.base {
            // The log restarts here: it was empty at rotation, a snapshot
            // replaced it, or this segment overwrote entries that lived in
            // segments a compaction was deleting when the process died (the
            // segments replayed so far are that compaction's leftovers). The
            // check after replay still refuses a log missing retained entries.
            self.index.clear();
            self.base = h.next;
        } else {
            if h.next > self.last() + 1 {
                return Err(format!(
                    "segment starts at index {} outside replayed range [{}, {}]",
                    h.next,
                    self.base,
                    self.last() + 1
                ));
            }
            self.index.truncate((h.next - self.base) as usize);
            if let Some(t) = self.term_of(h.next - 1) {
                if t != h.prev_term {
                    return Err(format!(
                        "segment says term of {} is {}, log has {t}",
                        h.next - 1,
                        h.prev_term
                    ));
                }
            }
        }
        self.first = h.first;
        self.prev_term = h.first_prev_term;
        self.hard_state = h.hard_state;
        self.snapshot = h.snapshot.clone();
        Ok(())
    }
}

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock only reads its integer arguments; `file` owns the descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Locked {
            dir: dir.to_path_buf(),
        });
    }
    Ok(file)
}

impl Wal {
    /// Opens (or creates) the log in `dir`, recovering from a crash.
    ///
    /// A torn tail of the last segment is truncated and described in
    /// [`Wal::recovery`]; any other damage is [`Error::Corrupt`].
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock = lock_dir(&dir)?;

        let mut names = Vec::new();
        for dent in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let dent = dent.map_err(io_err(&dir))?;
            let name = dent.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".wal.tmp") {
                // A segment whose creation did not complete: never part of the log.
                let p = dent.path();
                fs::remove_file(&p).map_err(io_err(&p))?;
            } else if let Some((seq, next)) = segment::parse_name(name) {
                names.push((seq, next, dent.path()));
            }
        }
        names.sort();

        let mut wal = Wal {
            dir,
            opts,
            _lock: lock,
            segments: Vec::new(),
            first: 1,
            prev_term: 0,
            index: VecDeque::new(),
            hard_state: HardState::default(),
            snapshot: SnapshotMeta::default(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            seg_start: 0,
            write_pos: 0,
            synced_pos: 0,
            marker_pos: 0,
            poisoned: false,
            buf: Vec::new(),
            report: RecoveryReport::default(),
        };

        if names.is_empty() {
            let header = SegmentHeader {
                seq: 0,
                next: 1,
                prev_term: 0,
                first: 1,
                first_prev_term: 0,
                hard_state: HardState::default(),
                snapshot: SnapshotMeta::default(),
            };
            let (seg, end) = Segment::create(&wal.dir, &header, wal.prealloc())?;
            wal.segments.push(seg);
            wal.seg_start = end;
            wal.write_pos = end;
            wal.synced_pos = end;
            wal.marker_pos = end;
            wal.report.segments = 1;
            return Ok(wal);
        }

        if let Some((seq, _, path)) = names.iter().find(|(seq, _, _)| *seq > MAX_INDEX) {
            return Err(corrupt(
                path,
                0,
                format!("impossible segment sequence {seq}"),
            ));
        }
        for w in names.windows(2) {
            if w[0].0.checked_add(1) != Some(w[1].0) {
                return Err(corrupt(
                    &w[1].2,
                    0,
                    format!(
                        "segment sequence jumps from {} to {}: a segment is missing",
                        w[0].0, w[1].0
                    ),
                ));
            }
        }

        let mut replay: Option<Replay> = None;
        let count = names.len();
        for (i, (seq, next, path)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let seg = Segment::open(seq, path)?;
            wal.replay_segment(&seg, next, is_last, &mut replay)?;
            wal.segments.push(seg);
        }
        let Some(r) = replay else {
            return Err(Error::Corrupt {
                file: wal.dir.clone(),
                offset: 0,
                reason: "no segment replayed".into(),
            });
        };
        if r.first < r.base || r.first > r.last() + 1 {
            let file = wal
                .segments
                .first()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            return Err(corrupt(
                &file,
                0,
                format!(
                    "log must start at index {} but the oldest segment starts at {}",
                    r.first, r.base
                ),
            ));
        }
        let mut index = r.index;
        for _ in r.base..r.first {
            index.pop_front();
        }
        wal.first = r.first;
        wal.prev_term = r.prev_term;
        wal.index = index;
        wal.hard_state = r.hard_state;
        wal.snapshot = r.snapshot;
        wal.report.segments = count;
        wal.report.entries = wal.index.len() as u64;

        // What was read may still be only in the page cache (the process died,
        // the machine did not): make it durable before building on it.
        let active = wal.active();
        active.file.sync_data().map_err(io_err(&active.path))?;
        wal.synced_pos = wal.write_pos;
        Ok(wal)
    }

    /// Replays one segment into `replay`, setting the write position for the last one.
    fn replay_segment(
        &mut self,
        seg: &Segment,
        name_next: u64,
        is_last: bool,
        replay: &mut Option<Replay>,
    ) -> Result<()> {
        let path = &seg.path;
        let buf = fs::read(path).map_err(io_err(path))?;
        if buf.len() < MAGIC.len() || &buf[..MAGIC.len()] != MAGIC {
            return Err(corrupt(path, 0, "missing segment magic"));
        }
        let mut off = MAGIC.len();
        let header = match record::decode(&buf, off) {
            Ok((Record::Header(h), used)) => {
                off += used;
                h
            }
            Ok(_) => {
                return Err(corrupt(
                    path,
                    off as u64,
                    "first record is not a segment header",
                ))
            }
            Err(e) => return Err(corrupt(path, off as u64, e.reason())),
        };
        if header.first == 0 || header.first > header.next || header.next > MAX_INDEX {
            return Err(corrupt(
                path,
                MAGIC.len() as u64,
                format!(
                    "segment header has impossible range: first {} next {}",
                    header.first, header.next
                ),
            ));
        }
        if header.seq != seg.seq || header.next != name_next {
            return Err(corrupt(
                path,
                MAGIC.len() as u64,
                "segment header does not match file name",
            ));
        }
        match replay {
            None => {
                *replay = Some(Replay {
                    base: header.next,
                    first: header.first,
                    prev_term: header.first_prev_term,
                    index: VecDeque::new(),
                    hard_state: header.hard_state,
                    snapshot: header.snapshot.clone(),
                });
            }
            Some(r) => r
                .apply_header(&header)
                .map_err(|e| corrupt(path, MAGIC.len() as u64, e))?,
        }
        let Some(r) = replay.as_mut() else {
            return Err(corrupt(path, 0, "replay state missing"));
        };
        let header_end = off as u64;
        let mut marker = header_end;
        let bad = loop {
            if off >= buf.len() {
                break None;
            }
            match record::decode(&buf, off) {
                Ok((rec, used)) => {
                    if let Record::Synced { offset } = rec {
                        marker = marker.max(offset);
                    }
                    r.apply(seg.seq, off as u64, &rec)
                        .map_err(|e| corrupt(path, off as u64, e))?;
                    off += used;
                }
                Err(e) => break Some((off, e)),
            }
        };
        let end = match bad {
            None => off,
            Some((at, e)) if !is_last => {
                return Err(corrupt(path, at as u64, e.reason()));
            }
            Some((at, e)) => {
                self.recover_tail(seg, &buf, at, e)?;
                at
            }
        };
        if is_last {
            self.seg_start = header_end;
            self.write_pos = end as u64;
            self.marker_pos = marker;
        }
        Ok(())
    }

    /// Decides whether the bad bytes at `at` in the last segment are a torn
    /// write (truncate them) or corruption of durable data (refuse).
    fn recover_tail(&mut self, seg: &Segment, buf: &[u8], at: usize, e: FrameError) -> Result<()> {
        let path = &seg.path;
        let rest = &buf[at..];
        if rest.iter().all(|&b| b == 0) {
            // Unwritten space: the normal end of the last segment.
            if self.opts.preallocate == Preallocate::None && !rest.is_empty() {
                seg.file.set_len(at as u64).map_err(io_err(path))?;
                seg.file.sync_all().map_err(io_err(path))?;
            }
            return Ok(());
        }
        // Look for evidence that bytes at `at` had been made durable: a valid
        // `Synced` record later in the file claiming an offset beyond `at`.
        // Valid records without such a claim may have reached the disk out of
        // order during the crash and are dropped with the torn tail.
        let mut dropped_records = 0u64;
        let mut off = at + 8;
        while off + FRAME_HEADER <= buf.len() {
            if let Ok((rec, used)) = record::decode(buf, off) {
                if let Record::Synced { offset } = rec {
                    // A genuine marker claims only bytes before itself.
                    if offset > at as u64 && offset <= off as u64 {
                        return Err(corrupt(
                            path,
                            at as u64,
                            format!(
                                "{} (followed by valid records written after it was synced)",
                                e.reason()
                            ),
                        ));
                    }
                }
                dropped_records += 1;
                off += used.max(8);
            } else {
                off += 8;
            }
        }
        seg.file.set_len(at as u64).map_err(io_err(path))?;
        let (mode, len) = self.prealloc();
        segment::preallocate(&seg.file, path, at as u64, len, mode)?;
        seg.file.sync_all().map_err(io_err(path))?;
        self.report.torn_tail = Some(TornTail {
            file: path.clone(),
            offset: at as u64,
            dropped_bytes: (buf.len() - at) as u64,
            dropped_records,
            reason: e.reason().to_string(),
        });
        Ok(())
    }

    fn prealloc(&self) -> (Preallocate, u64) {
        (self.opts.preallocate, self.opts.segment_size)
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty after `open`.
        &self.segments[self.segments.len() - 1]
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    /// What recovery found when the log was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the first entry that can be read (`snapshot().index + 1` right
    /// after compacting to the snapshot; `last_index() + 1` when empty).
    pub fn first_index(&self) -> u64 {
        self.first
    }

    /// Index of the last entry (`first_index() - 1` when there are none).
    pub fn last_index(&self) -> u64 {
        self.first + self.index.len() as u64 - 1
    }

    /// The last hard state appended.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The last snapshot metadata set.
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Term of entry `index`: known for `first_index() - 1 ..= last_index()`
    /// and for the snapshot index; `None` otherwise.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index.checked_add(1) == Some(self.first) {
            return Some(self.prev_term);
        }
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index >= self.first {
            return self
                .index
                .get((index - self.first) as usize)
                .map(|s| s.term);
        }
        None
    }

    /// Entries `[lo, hi)`, stopping before the total data size would exceed
    /// `max_bytes` (but always returning at least one entry when `lo < hi`).
    pub fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>> {
        if lo < self.first {
            return Err(Error::Compacted {
                index: lo,
                first_index: self.first,
            });
        }
        if hi > self.last_index() + 1 {
            return Err(Error::Unavailable {
                index: hi - 1,
                last_index: self.last_index(),
            });
        }
        let mut out = Vec::new();
        let mut total = 0u64;
        let cache_first = self.cache.front().map_or(u64::MAX, |e| e.index);
        let mut i = lo;
        while i < hi {
            if i >= cache_first {
                let entry =
                    self.cache
                        .get((i - cache_first) as usize)
                        .ok_or(Error::Unavailable {
                            index: i,
                            last_index: self.last_index(),
                        })?;
                total += entry.data.len() as u64;
                if total > max_bytes && !out.is_empty() {
                    break;
                }
                out.push(entry.clone());
                i += 1;
                continue;
            }
            // Older entries: read a run of adjacent records with one pread.
            let end = hi.min(cache_first);
            let budget = max_bytes.saturating_sub(total);
            let run = self.read_run(i, end, budget, out.is_empty())?;
            if run.is_empty() {
                break;
            }
            i += run.len() as u64;
            total += run.iter().map(|e| e.data.len() as u64).sum::<u64>();
            out.extend(run);
            // A run stops at the byte budget (the next one comes back empty),
            // at a segment boundary, or where the cache starts.
        }
        Ok(out)
    }

    fn segment(&self, seq: u64) -> Option<&Segment> {
        let first = self.segments.first()?.seq;
        self.segments.get(seq.checked_sub(first)? as usize)
    }

    /// Reads entries `[lo, ..)` below `end` that lie back to back in one
    /// segment, within `budget` bytes of data (at least one if `need_one`),
    /// with a single pread of at most [`MAX_READ`] bytes.
    fn read_run(&self, lo: u64, end: u64, budget: u64, need_one: bool) -> Result<Vec<Entry>> {
        let slot_of = |i: u64| {
            self.index
                .get((i - self.first) as usize)
                .copied()
                .ok_or(Error::Unavailable {
                    index: i,
                    last_index: self.last_index(),
                })
        };
        let head = slot_of(lo)?;
        let mut slots = Vec::new();
        let mut data_bytes = 0u64;
        let mut span = 0u64;
        let mut next_offset = head.offset;
        for i in lo..end {
            let slot = slot_of(i)?;
            let framed = record::framed_len(slot.len as usize) as u64;
            let data = u64::from(slot.len) - 17;
            let fits = data_bytes + data <= budget && span + framed <= MAX_READ;
            let take = fits || (slots.is_empty() && need_one);
            if slot.seq != head.seq || slot.offset != next_offset || !take {
                break;
            }
            slots.push(slot);
            data_bytes += data;
            span += framed;
            next_offset += framed;
        }
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let seg = self.segment(head.seq).ok_or_else(|| {
            corrupt(
                &self.dir,
                head.offset,
                format!("segment {} of entry {lo} is gone", head.seq),
            )
        })?;
        let mut buf = vec![0u8; span as usize];
        seg.file
            .read_exact_at(&mut buf, head.offset)
            .map_err(io_err(&seg.path))?;
        let mut out = Vec::with_capacity(slots.len());
        let mut off = 0usize;
        for (k, slot) in slots.iter().enumerate() {
            let want = lo + k as u64;
            let at = head.offset + off as u64;
            match record::decode(&buf, off) {
                Ok((
                    Record::Entry {
                        index,
                        term,
                        kind,
                        data,
                    },
                    used,
                )) if index == want && term == slot.term => {
                    out.push(Entry {
                        index,
                        term,
                        kind,
                        data: data.to_vec(),
                    });
                    off += used;
                }
                Ok(_) => {
                    return Err(corrupt(
                        &seg.path,
                        at,
                        format!("record is not entry {want}"),
                    ))
                }
                Err(e) => return Err(corrupt(&seg.path, at, e.reason())),
            }
        }
        Ok(out)
    }

    /// Writes `entries` and `hard_state` (one raft Ready batch) and makes them
    /// durable with one fdatasync before returning: [`Wal::append_nosync`]
    /// followed by [`Wal::sync`].
    pub fn append(&mut self, entries: &[Entry], hard_state: Option<HardState>) -> Result<()> {
        self.append_nosync(entries, hard_state)?;
        self.sync()
    }

    /// Writes `entries` and `hard_state` to the OS without waiting for the
    /// disk; they are readable at once and durable once [`Wal::sync`] returns.
    ///
    /// `entries` must have consecutive indexes and non-decreasing terms, the
    /// first in `snapshot().index + 1 ..= last_index() + 1`; entries at or
    /// after the first index are replaced (raft's conflict truncation).
    pub fn append_nosync(
        &mut self,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<()> {
        self.check_poisoned()?;
        self.validate(entries)?;
        let result = self.write_batch(entries, hard_state);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn validate(&self, entries: &[Entry]) -> Result<()> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        let last = self.last_index();
        if head.index <= self.snapshot.index || head.index > last + 1 || head.index < self.first {
            return Err(Error::InvalidAppend(format!(
                "first entry {} outside {}..={} (snapshot {}, last {last})",
                head.index,
                self.snapshot.index.max(self.first - 1) + 1,
                last + 1,
                self.snapshot.index
            )));
        }
        let mut prev_term = self.term(head.index - 1).unwrap_or(0);
        for (k, e) in entries.iter().enumerate() {
            if e.index != head.index + k as u64 {
                return Err(Error::InvalidAppend(format!(
                    "entry {} follows {} in the batch",
                    e.index,
                    head.index + k as u64 - 1
                )));
            }
            if e.term < prev_term {
                return Err(Error::InvalidAppend(format!(
                    "entry {} has term {} below previous term {prev_term}",
                    e.index, e.term
                )));
            }
            if e.data.len() > MAX_PAYLOAD - 17 {
                return Err(Error::RecordTooLarge { size: e.data.len() });
            }
            prev_term = e.term;
        }
        if head.index + (entries.len() as u64 - 1) > MAX_INDEX {
            return Err(Error::InvalidAppend(format!("indexes above {MAX_INDEX}")));
        }
        Ok(())
    }

    /// Starts `self.buf` for a batch with a `Synced` marker if one is due.
    fn begin_batch(&mut self) {
        self.buf.clear();
        if self.synced_pos > self.marker_pos {
            record::encode(
                &mut self.buf,
                &Record::Synced {
                    offset: self.synced_pos,
                },
            );
            self.marker_pos = self.synced_pos;
        }
    }

    /// Writes `self.buf` at the end of the active segment.
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let seg = self.active();
        seg.file
            .write_all_at(&self.buf, self.write_pos)
            .map_err(io_err(&seg.path))?;
        self.write_pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn write_batch(&mut self, entries: &[Entry], hard_state: Option<HardState>) -> Result<()> {
        self.begin_batch();
        if let Some(head) = entries.first() {
            if head.index <= self.last_index() {
                self.buf.clear();
                let prev = self.term(head.index - 1).unwrap_or(0);
                self.rotate(head.index, prev)?;
            }
        }
        for e in entries {
            let len = record::entry_record_len(e.data.len()) as u64;
            let pos = self.write_pos + self.buf.len() as u64;
            // Never rotate a segment that holds no record yet (oversized entry).
            if pos + len > self.opts.segment_size && pos > self.seg_start {
                self.flush()?;
                let prev = self.term(e.index - 1).unwrap_or(0);
                self.rotate(e.index, prev)?;
            }
            let offset = self.write_pos + self.buf.len() as u64;
            record::encode(
                &mut self.buf,
                &Record::Entry {
                    index: e.index,
                    term: e.term,
                    kind: e.kind,
                    data: &e.data,
                },
            );
            self.index.push_back(Slot {
                seq: self.active().seq,
                offset,
                len: (17 + e.data.len()) as u32,
                term: e.term,
            });
            self.cache_push(e.clone());
        }
        if let Some(hs) = hard_state {
            record::encode(&mut self.buf, &Record::HardState(hs));
            self.hard_state = hs;
        }
        self.flush()
    }

    fn cache_push(&mut self, e: Entry) {
        if self.opts.cache_bytes == 0 {
            return;
        }
        self.cache_bytes += e.data.len();
        self.cache.push_back(e);
        while self.cache_bytes > self.opts.cache_bytes {
            match self.cache.pop_front() {
                Some(old) => self.cache_bytes -= old.data.len(),
                None => break,
            }
        }
    }

    /// Drops cached and indexed entries at or after `next`.
    fn truncate_from(&mut self, next: u64) {
        let keep = next.saturating_sub(self.first) as usize;
        self.index.truncate(keep);
        while self.cache.back().is_some_and(|e| e.index >= next) {
            if let Some(old) = self.cache.pop_back() {
                self.cache_bytes -= old.data.len();
            }
        }
    }

    /// Seals the active segment and starts a new one whose first entry will be
    /// `next` (dropping every entry `>= next`); `prev_term` is the term of `next - 1`.
    fn rotate(&mut self, next: u64, prev_term: u64) -> Result<()> {
        self.active().seal(self.write_pos)?;
        self.truncate_from(next);
        let header = SegmentHeader {
            seq: self.active().seq + 1,
            next,
            prev_term,
            first: self.first,
            first_prev_term: self.prev_term,
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
        };
        let (seg, end) = Segment::create(&self.dir, &header, self.prealloc())?;
        self.segments.push(seg);
        self.write_pos = end;
        self.synced_pos = end;
        self.marker_pos = end;
        self.seg_start = end;
        Ok(())
    }

    /// Makes everything written so far durable (one fdatasync of the active
    /// segment; older segments were synced when they were sealed).
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.write_pos > self.synced_pos {
            let seg = self.active();
            if let Err(e) = seg.file.sync_data() {
                let err = io_err(&seg.path)(e);
                // After a failed fsync the kernel may have dropped the dirty
                // pages: nothing written since the last sync can be trusted.
                self.poisoned = true;
                return Err(err);
            }
            self.synced_pos = self.write_pos;
        }
        Ok(())
    }

    /// Records snapshot metadata.
    ///
    /// If the log holds entry `meta.index` with term `meta.term` (a snapshot
    /// of local state), entries are kept and the record becomes durable with
    /// the next [`Wal::sync`]. Otherwise (a snapshot installed from the
    /// leader) every entry is discarded, the log continues at
    /// `meta.index + 1`, and the change is durable when this returns.
    pub fn set_snapshot(&mut self, meta: SnapshotMeta) -> Result<()> {
        self.check_poisoned()?;
        if meta.index >= MAX_INDEX {
            return Err(Error::InvalidSnapshot(format!(
                "index {} is too large",
                meta.index
            )));
        }
        if meta.index < self.snapshot.index {
            return Err(Error::SnapshotOutOfDate {
                index: meta.index,
                current: self.snapshot.index,
            });
        }
        if meta.conf_state.len() > MAX_PAYLOAD - 24 {
            return Err(Error::RecordTooLarge {
                size: meta.conf_state.len(),
            });
        }
        let matches = meta.index <= self.last_index() && self.term(meta.index) == Some(meta.term);
        let result = if matches {
            self.begin_batch();
            record::encode(&mut self.buf, &Record::Snapshot(meta.clone()));
            self.snapshot = meta;
            self.flush()
        } else {
            self.replace_with_snapshot(meta)
        };
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn replace_with_snapshot(&mut self, meta: SnapshotMeta) -> Result<()> {
        self.buf.clear();
        let next = meta.index + 1;
        // Empty the log first so the new segment's header says first == next.
        self.truncate_from(self.first);
        self.cache.clear();
        self.cache_bytes = 0;
        self.first = next;
        self.prev_term = meta.term;
        self.snapshot = meta;
        let term = self.prev_term;
        self.rotate(next, term)?;
        let keep = self.active().seq;
        self.remove_segments_before(keep)
    }

    /// Discards entries below `up_to` (clamped to `snapshot().index + 1`) and
    /// deletes every segment that holds no retained entry.
    ///
    /// When segments are deleted, the log is synced first and the directory
    /// after, so a crash never loses the compaction record while losing files.
    pub fn compact(&mut self, up_to: u64) -> Result<()> {
        self.check_poisoned()?;
        let up_to = up_to
            .min(self.snapshot.index + 1)
            .min(self.last_index() + 1);
        if up_to <= self.first {
            return Ok(());
        }
        let prev_term = self.term(up_to - 1).unwrap_or(0);
        self.begin_batch();
        record::encode(
            &mut self.buf,
            &Record::Compact {
                first: up_to,
                prev_term,
            },
        );
        if let Err(e) = self.flush() {
            self.poisoned = true;
            return Err(e);
        }
        for _ in self.first..up_to {
            self.index.pop_front();
        }
        self.first = up_to;
        self.prev_term = prev_term;
        while self.cache.front().is_some_and(|e| e.index < up_to) {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= old.data.len();
            }
        }
        let keep = self.index.front().map_or(self.active().seq, |s| s.seq);
        if self.segments.first().is_some_and(|s| s.seq < keep) {
            self.sync()?;
            self.remove_segments_before(keep)?;
        }
        Ok(())
    }

    fn remove_segments_before(&mut self, keep: u64) -> Result<()> {
        let n = self.segments.iter().take_while(|s| s.seq < keep).count();
        if n == 0 {
            return Ok(());
        }
        for seg in self.segments.drain(..n) {
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
        }
        segment::sync_dir(&self.dir)
    }
}
