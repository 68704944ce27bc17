//! Behaviour of the log through its public API: append, overwrite, reopen,
//! rotation, snapshots, compaction, torn tails and corruption.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft_wal::{Entry, Error, HardState, Options, Preallocate, SnapshotMeta, Wal};

fn entry(index: u64, term: u64) -> Entry {
    Entry::new(index, term, format!("ENTRY-{index:06}-T{term:03}"))
}

fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..hi).map(|i| entry(i, term)).collect()
}

fn small() -> Options {
    Options {
        segment_size: 4096,
        preallocate: Preallocate::Zero,
        cache_bytes: 0,
    }
}

fn all(wal: &Wal) -> Vec<Entry> {
    wal.entries(wal.first_index(), wal.last_index() + 1, u64::MAX)
        .expect("read all")
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|d| d.expect("dirent").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// Offset of the record whose data is `needle` (frame header 12 + index,
/// term, kind 17 bytes before the data).
fn record_offset(file: &Path, needle: &[u8]) -> u64 {
    let bytes = fs::read(file).expect("read segment");
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present");
    (pos - 29) as u64
}

fn patch(file: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(file).expect("open");
    f.write_all_at(bytes, offset).expect("patch");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for f in segment_files(from) {
        fs::copy(&f, to.join(f.file_name().expect("name"))).expect("copy");
    }
}

#[test]
fn append_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), Options::default()).expect("open");
    assert_eq!((wal.first_index(), wal.last_index()), (1, 0));
    assert_eq!(wal.term(0), Some(0));
    wal.append(
        &entries(1, 11, 1),
        Some(HardState {
            term: 1,
            vote: 2,
            commit: 3,
        }),
    )
    .expect("append");
    assert_eq!((wal.first_index(), wal.last_index()), (1, 10));
    assert_eq!(all(&wal), entries(1, 11, 1));
    assert_eq!(wal.entries(4, 6, u64::MAX).expect("read"), entries(4, 6, 1));
    assert_eq!(wal.term(10), Some(1));
    assert_eq!(wal.term(11), None);
    assert_eq!(
        wal.hard_state(),
        HardState {
            term: 1,
            vote: 2,
            commit: 3
        }
    );
    assert!(matches!(
        wal.entries(0, 2, u64::MAX),
        Err(Error::Compacted {
            index: 0,
            first_index: 1
        })
    ));
    assert!(matches!(
        wal.entries(1, 12, u64::MAX),
        Err(Error::Unavailable { .. })
    ));
    assert!(wal.entries(5, 5, u64::MAX).expect("empty range").is_empty());
}

#[test]
fn max_bytes_limits_reads_but_returns_at_least_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    for cache_bytes in [0, 1 << 20] {
        let sub = dir.path().join(format!("c{cache_bytes}"));
        let mut wal = Wal::open(
            &sub,
            Options {
                cache_bytes,
                ..small()
            },
        )
        .expect("open");
        wal.append(&entries(1, 11, 1), None).expect("append");
        let one = entry(1, 1).data.len() as u64;
        assert_eq!(wal.entries(1, 11, 0).expect("read").len(), 1);
        assert_eq!(wal.entries(1, 11, one * 3).expect("read").len(), 3);
        assert_eq!(wal.entries(1, 11, one * 3 + 1).expect("read").len(), 3);
    }
}

#[test]
fn overwrite_suffix_replaces_conflicting_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), small()).expect("open");
    wal.append(&entries(1, 11, 1), None).expect("append");
    wal.append(&entries(6, 8, 2), None).expect("overwrite");
    let mut want = entries(1, 6, 1);
    want.extend(entries(6, 8, 2));
    assert_eq!(all(&wal), want);
    assert_eq!(wal.last_index(), 7);
    // Overwrite again, then append past it.
    wal.append(&entries(7, 9, 3), None).expect("overwrite");
    wal.append(&entries(9, 12, 3), None).expect("append");
    want.truncate(6);
    want.extend(entries(7, 12, 3));
    assert_eq!(all(&wal), want);
    drop(wal);
    let wal = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(all(&wal), want);
    assert_eq!(wal.recovery().torn_tail, None);
}

#[test]
fn invalid_appends_are_rejected_without_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), small()).expect("open");
    wal.append(&entries(1, 4, 2), None).expect("append");
    let gap = wal.append(&entries(5, 6, 2), None);
    assert!(matches!(gap, Err(Error::InvalidAppend(_))), "{gap:?}");
    let holes = wal.append(&[entry(4, 2), entry(6, 2)], None);
    assert!(matches!(holes, Err(Error::InvalidAppend(_))), "{holes:?}");
    let term_down = wal.append(&[entry(4, 1)], None);
    assert!(
        matches!(term_down, Err(Error::InvalidAppend(_))),
        "{term_down:?}"
    );
    assert_eq!(all(&wal), entries(1, 4, 2));
    wal.append(&entries(4, 5, 2), None).expect("still usable");
}

#[test]
fn reopen_preserves_entries_hard_state_and_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hs = HardState {
        term: 4,
        vote: 1,
        commit: 20,
    };
    {
        let mut wal = Wal::open(dir.path(), small()).expect("open");
        for b in 0..10 {
            wal.append(&entries(b * 10 + 1, b * 10 + 11, 4), Some(hs))
                .expect("append");
        }
        wal.append_nosync(&[], Some(HardState { commit: 25, ..hs }))
            .expect("hs only");
        wal.sync().expect("sync");
        assert!(wal.segment_count() > 1, "segments rotate at 4 KiB");
    }
    let wal = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(all(&wal), entries(1, 101, 4));
    assert_eq!(wal.hard_state(), HardState { commit: 25, ..hs });
    assert_eq!(wal.recovery().entries, 100);
    assert!(wal.recovery().segments > 1);
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _wal = Wal::open(dir.path(), small()).expect("open");
    assert!(matches!(
        Wal::open(dir.path(), small()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn rotation_and_compaction_drop_whole_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), small()).expect("open");
    for b in 0..20 {
        wal.append(&entries(b * 10 + 1, b * 10 + 11, 1), None)
            .expect("append");
    }
    let before = wal.segment_count();
    assert!(before >= 3, "{before} segments");
    assert_eq!(segment_files(dir.path()).len(), before);

    // compact is clamped to the snapshot: without one nothing goes.
    wal.compact(150).expect("compact");
    assert_eq!(wal.first_index(), 1);

    wal.set_snapshot(SnapshotMeta {
        index: 150,
        term: 1,
        conf_state: b"cs".to_vec(),
    })
    .expect("snapshot");
    wal.compact(151).expect("compact");
    assert_eq!(wal.first_index(), 151);
    assert_eq!(wal.term(150), Some(1));
    assert_eq!(wal.term(149), None);
    assert!(matches!(
        wal.entries(150, 152, u64::MAX),
        Err(Error::Compacted { .. })
    ));
    assert_eq!(all(&wal), entries(151, 201, 1));
    let after = wal.segment_count();
    assert!(after < before, "{after} < {before}");
    assert_eq!(segment_files(dir.path()).len(), after);
    drop(wal);

    let wal = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(wal.first_index(), 151);
    assert_eq!(wal.term(150), Some(1));
    assert_eq!(wal.snapshot().conf_state, b"cs");
    assert_eq!(all(&wal), entries(151, 201, 1));
}

#[test]
fn stale_snapshot_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), small()).expect("open");
    wal.append(&entries(1, 11, 1), None).expect("append");
    wal.set_snapshot(SnapshotMeta {
        index: 5,
        term: 1,
        conf_state: vec![],
    })
    .expect("snap");
    assert!(matches!(
        wal.set_snapshot(SnapshotMeta {
            index: 4,
            term: 1,
            conf_state: vec![]
        }),
        Err(Error::SnapshotOutOfDate {
            index: 4,
            current: 5
        })
    ));
    // Appends may not rewrite what the snapshot covers.
    assert!(matches!(
        wal.append(&entries(5, 6, 2), None),
        Err(Error::InvalidAppend(_))
    ));
}

#[test]
fn installed_snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), small()).expect("open");
    wal.append(
        &entries(1, 60, 1),
        Some(HardState {
            term: 1,
            vote: 1,
            commit: 10,
        }),
    )
    .expect("append");
    wal.set_snapshot(SnapshotMeta {
        index: 100,
        term: 3,
        conf_state: b"x".to_vec(),
    })
    .expect("install");
    assert_eq!((wal.first_index(), wal.last_index()), (101, 100));
    assert_eq!(wal.term(100), Some(3));
    assert_eq!(wal.segment_count(), 1, "older segments deleted");
    wal.append(&entries(101, 104, 3), None)
        .expect("append after install");
    drop(wal);
    let wal = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!((wal.first_index(), wal.last_index()), (101, 103));
    assert_eq!(wal.term(100), Some(3));
    assert_eq!(wal.hard_state().commit, 10);
    assert_eq!(all(&wal), entries(101, 104, 3));
}

/// Writes 1..=5 in synced batches, then entry 6 alone in the last batch.
/// Returns the segment path and the offset and length of entry 6's record.
fn log_with_last_record(dir: &Path, opts: &Options) -> (PathBuf, u64, u64) {
    let mut wal = Wal::open(dir, opts.clone()).expect("open");
    for i in 1..=5 {
        wal.append(&[entry(i, 1)], None).expect("append");
    }
    wal.append(&[entry(6, 1)], None).expect("append");
    let end = {
        // The record of entry 6 ends at the 8-aligned end of its data.
        let file = segment_files(dir).pop().expect("segment");
        let start = record_offset(&file, &entry(6, 1).data);
        let len = (12 + 17 + entry(6, 1).data.len() as u64).div_ceil(8) * 8;
        (file, start, len)
    };
    drop(wal);
    end
}

#[test]
fn torn_tail_cut_at_every_byte_of_the_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        preallocate: Preallocate::None,
        ..small()
    };
    let orig = dir.path().join("orig");
    let (file, start, len) = log_with_last_record(&orig, &opts);
    assert_eq!(fs::metadata(&file).expect("stat").len(), start + len);
    for cut in start..start + len {
        let case = dir.path().join(format!("cut{cut}"));
        copy_dir(&orig, &case);
        let seg = case.join(file.file_name().expect("name"));
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open")
            .set_len(cut)
            .expect("cut");
        let wal = Wal::open(&case, opts.clone()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(all(&wal), entries(1, 6, 1), "cut at {cut}");
        if cut > start {
            let torn = wal
                .recovery()
                .torn_tail
                .clone()
                .expect("torn tail reported");
            assert_eq!((torn.offset, torn.dropped_bytes), (start, cut - start));
        }
        assert_eq!(fs::metadata(&seg).expect("stat").len(), start);
        drop(wal);
        fs::remove_dir_all(&case).expect("cleanup");
    }
}

#[test]
fn torn_tail_partially_written_over_preallocated_zeros() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small();
    let orig = dir.path().join("orig");
    let (file, start, len) = log_with_last_record(&orig, &opts);
    for written in 0..len {
        let case = dir.path().join(format!("w{written}"));
        copy_dir(&orig, &case);
        let seg = case.join(file.file_name().expect("name"));
        patch(&seg, start + written, &vec![0u8; (len - written) as usize]);
        let mut wal = Wal::open(&case, opts.clone()).unwrap_or_else(|e| panic!("{written}: {e}"));
        // Once the payload is written the zero padding is already there.
        let payload_end = 12 + 17 + entry(6, 1).data.len() as u64;
        let want = if written >= payload_end { 7 } else { 6 };
        assert_eq!(all(&wal), entries(1, want, 1), "written {written}");
        // The log is usable afterwards and the fix survives another reopen.
        wal.append(&[entry(want, 2)], None).expect("append");
        drop(wal);
        let wal = Wal::open(&case, opts.clone()).expect("reopen");
        assert_eq!(wal.last_index(), want);
        assert_eq!(wal.term(want), Some(2));
        assert_eq!(wal.recovery().torn_tail, None);
        drop(wal);
        fs::remove_dir_all(&case).expect("cleanup");
    }
}

#[test]
fn garbage_or_zeros_after_the_last_record_are_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, tail, prealloc) in [
        ("zeros", vec![0u8; 1000], Preallocate::None),
        (
            "garbage",
            (0..1000u32).map(|i| (i * 31 + 7) as u8).collect::<Vec<_>>(),
            Preallocate::None,
        ),
        ("garbage-reserve", vec![0xA5u8; 333], Preallocate::Reserve),
        ("ones", vec![0xFFu8; 24], Preallocate::Zero),
    ] {
        let case = dir.path().join(name);
        let opts = Options {
            preallocate: prealloc,
            ..small()
        };
        let (file, start, len) = log_with_last_record(&case, &opts);
        patch(&file, start + len, &tail);
        let wal = Wal::open(&case, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(all(&wal), entries(1, 7, 1), "{name}");
        if name != "zeros" {
            let torn = wal.recovery().torn_tail.clone().expect("reported");
            assert_eq!(torn.offset, start + len, "{name}");
        }
    }
}

#[test]
fn flipped_byte_in_an_early_record_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _, _) = log_with_last_record(dir.path(), &small());
    let victim = record_offset(&file, &entry(2, 1).data);
    patch(&file, victim + 40, b"X");
    match Wal::open(dir.path(), small()) {
        Err(Error::Corrupt {
            file: f,
            offset,
            reason,
        }) => {
            assert_eq!(f, file);
            assert_eq!(offset, victim);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // The files are left untouched for inspection.
    assert!(Wal::open(dir.path(), small()).is_err());
}

#[test]
fn corruption_in_a_sealed_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut wal = Wal::open(dir.path(), small()).expect("open");
        wal.append(&entries(1, 200, 1), None).expect("append");
    }
    let files = segment_files(dir.path());
    assert!(files.len() > 2);
    // The last record of the first segment: a torn write there is not possible.
    let victim = &files[0];
    let size = fs::metadata(victim).expect("stat").len();
    patch(victim, size - 1, b"\x01");
    let err = Wal::open(dir.path(), small()).expect_err("corrupt");
    match err {
        Error::Corrupt { file, .. } => assert_eq!(&file, victim),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut wal = Wal::open(dir.path(), small()).expect("open");
        wal.append(&entries(1, 200, 1), None).expect("append");
    }
    let files = segment_files(dir.path());
    fs::remove_file(&files[1]).expect("rm");
    let err = Wal::open(dir.path(), small()).expect_err("gap");
    assert!(
        matches!(err, Error::Corrupt { ref file, .. } if file == &files[2]),
        "{err}"
    );
}

#[test]
fn unsynced_records_that_landed_out_of_order_are_dropped_as_torn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        segment_size: 1 << 20,
        ..small()
    };
    let file = {
        let mut wal = Wal::open(dir.path(), opts.clone()).expect("open");
        wal.append(&entries(1, 11, 1), None).expect("synced batch");
        wal.append_nosync(&entries(11, 21, 1), None)
            .expect("unsynced batch");
        segment_files(dir.path()).pop().expect("segment")
    };
    // A page in the middle of the unsynced batch never reached the disk.
    let hole = record_offset(&file, &entry(14, 1).data);
    patch(&file, hole, &[0u8; 200]);
    let wal = Wal::open(dir.path(), opts).expect("torn, not corrupt");
    assert_eq!(wal.last_index(), 13);
    let torn = wal.recovery().torn_tail.clone().expect("reported");
    assert_eq!(torn.offset, hole);
    assert!(torn.dropped_records >= 2, "{torn:?}");
}

#[test]
fn damage_to_a_synced_batch_followed_by_later_batches_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        segment_size: 1 << 20,
        ..small()
    };
    let file = {
        let mut wal = Wal::open(dir.path(), opts.clone()).expect("open");
        wal.append(&entries(1, 11, 1), None).expect("synced batch");
        wal.append(&entries(11, 21, 1), None).expect("second batch");
        segment_files(dir.path()).pop().expect("segment")
    };
    let hole = record_offset(&file, &entry(4, 1).data);
    patch(&file, hole, &[0u8; 200]);
    match Wal::open(dir.path(), opts) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, hole),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn oversized_entries_get_a_segment_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), small()).expect("open");
    let big = Entry::new(1, 1, vec![7u8; 10_000]);
    wal.append(&[big.clone(), entry(2, 1)], None)
        .expect("append");
    drop(wal);
    let wal = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(all(&wal), vec![big, entry(2, 1)]);
}

#[test]
fn wal_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wal>();
}

#[test]
fn unfinished_segment_creation_is_ignored_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut wal = Wal::open(dir.path(), small()).expect("open");
        wal.append(&entries(1, 4, 1), None).expect("append");
    }
    let stray = dir.path().join("0000000000000001-0000000000000004.wal.tmp");
    fs::write(&stray, b"ETCRWAL1 half a header").expect("stray");
    let wal = Wal::open(dir.path(), small()).expect("open");
    assert_eq!(all(&wal), entries(1, 4, 1));
    assert!(!stray.exists());
}

/// A compaction deletes its segments oldest first; a kill between two
/// deletions can leave a segment whose entries a newer segment overwrote
/// while the older segment holding the entries before them is gone.
#[test]
fn a_compaction_cut_short_between_deletions_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), small()).expect("open");
    for b in 0..12 {
        wal.append(&entries(b * 10 + 1, b * 10 + 11, 1), None)
            .expect("append");
    }
    // Overwrite back into the previous segment: a new segment starts at an
    // index below the start of the one it replaces.
    let files = segment_files(dir.path());
    let last_name = files
        .last()
        .and_then(|f| f.file_name())
        .and_then(|n| n.to_str())
        .expect("segment name")
        .to_string();
    let active_next = u64::from_str_radix(&last_name[17..33], 16).expect("hex");
    let lo = active_next - 2;
    wal.append(&entries(lo, lo + 20, 2), None)
        .expect("overwrite");
    let overwritten = files.last().expect("segment").clone();
    let saved = fs::read(&overwritten).expect("read segment");

    wal.set_snapshot(SnapshotMeta {
        index: lo + 5,
        term: 2,
        conf_state: b"cs".to_vec(),
    })
    .expect("snapshot");
    wal.sync().expect("sync");
    wal.compact(lo + 1).expect("compact");
    assert!(
        !overwritten.exists(),
        "compaction deleted the overwritten segment"
    );
    let want = all(&wal);
    drop(wal);

    // The kill came after the older deletions, before this one.
    fs::write(&overwritten, saved).expect("restore segment");
    let wal = Wal::open(dir.path(), small()).expect("reopen after a cut-short compaction");
    assert_eq!(wal.first_index(), lo + 1);
    assert_eq!(wal.term(lo + 5), Some(2));
    assert_eq!(all(&wal), want);
}
