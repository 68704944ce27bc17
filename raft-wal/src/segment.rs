//! Segment files: naming, creation, sealing and low-level IO helpers.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::record::{self, Record, SegmentHeader, MAGIC};
use crate::{Error, Preallocate, Result};

/// File name of a segment: `{seq:016x}-{next:016x}.wal`. Sorting names sorts
/// by sequence number; `next` is the index of the first entry written to it.
pub(crate) fn file_name(seq: u64, next: u64) -> String {
    format!("{seq:016x}-{next:016x}.wal")
}

/// Parses a segment file name back into `(seq, next)`.
pub(crate) fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, next) = stem.split_once('-')?;
    if seq.len() != 16 || next.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(next, 16).ok()?,
    ))
}

/// Maps an IO error to [`Error::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs a directory so that creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Reserves the bytes `[from, len)` of `file` as `mode` says; the file is
/// then at least `len` bytes long and the new bytes read as zeros.
/// `fallocate` is best effort: file systems without it simply grow the file.
pub(crate) fn preallocate(
    file: &File,
    path: &Path,
    from: u64,
    len: u64,
    mode: Preallocate,
) -> Result<()> {
    match mode {
        Preallocate::None => Ok(()),
        Preallocate::Reserve => {
            if let Ok(len) = libc::off_t::try_from(len) {
                // SAFETY: fallocate only reads its integer arguments; the
                // descriptor is owned by `file`, which outlives the call.
                let _ = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
            }
            Ok(())
        }
        Preallocate::Zero => {
            let zeros = vec![0u8; 1 << 20];
            let mut pos = from;
            while pos < len {
                let n = (len - pos).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], pos).map_err(io_err(path))?;
                pos += n as u64;
            }
            Ok(())
        }
    }
}

/// One segment file of the log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub seq: u64,
    pub path: PathBuf,
    pub file: File,
}

impl Segment {
    /// Creates a segment durably: written as `*.tmp`, preallocated, synced,
    /// renamed into place, and the directory synced. A crash leaves either no
    /// segment or a complete header (stray `*.tmp` files are removed on open).
    pub(crate) fn create(
        dir: &Path,
        header: &SegmentHeader,
        prealloc: (Preallocate, u64),
    ) -> Result<(Segment, u64)> {
        let path = dir.join(file_name(header.seq, header.next));
        let tmp = path.with_extension("wal.tmp");
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(MAGIC);
        record::encode(&mut buf, &Record::Header(header.clone()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        preallocate(&file, &tmp, 0, prealloc.1, prealloc.0)?;
        file.write_all_at(&buf, 0).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir)?;
        Ok((
            Segment {
                seq: header.seq,
                path,
                file,
            },
            buf.len() as u64,
        ))
    }

    /// Opens an existing segment for reading and appending.
    pub(crate) fn open(seq: u64, path: PathBuf) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Segment { seq, path, file })
    }

    /// Drops preallocated space beyond `len` and makes the segment durable.
    /// Called before a newer segment is created, so every segment but the
    /// last is complete and synced.
    pub(crate) fn seal(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip_and_sort_by_seq() {
        let a = file_name(1, 500);
        let b = file_name(2, 10);
        assert!(a < b);
        assert_eq!(parse_name(&a), Some((1, 500)));
        assert_eq!(parse_name(&file_name(u64::MAX, 0)), Some((u64::MAX, 0)));
        assert_eq!(
            parse_name("0000000000000001-00000000000001f4.wal.tmp"),
            None
        );
        assert_eq!(parse_name("LOCK"), None);
        assert_eq!(parse_name("01-02.wal"), None);
    }
}
