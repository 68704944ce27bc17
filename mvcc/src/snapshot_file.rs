//! What `snapshot status` reports of a snapshot file (the compacted copy of the store that
//! [`crate::Store::snapshot_to`] writes and `Maintenance.Snapshot` streams), read without
//! opening the file as a store: read-only, and without LMDB's lock file.

use std::fs;
use std::path::Path;

use heed::EnvOpenOptions;

use crate::codec;
use crate::error::{Error, Result};
use crate::hash::Crc32c;
use crate::tables::{Table, Tables};

/// etcd's `snapshot.Status` for one of our snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// CRC-32C over every table's name and its keys and values in order, as etcd hashes a
    /// bbolt file's buckets.
    pub hash: u32,
    /// The store's revision.
    pub revision: i64,
    /// Rows over all tables (etcd counts every key of every bucket).
    pub total_keys: u64,
    /// The file's size in bytes.
    pub size: u64,
}

/// The tables, in name order (how bbolt orders buckets).
const TABLES: [&str; 5] = ["cluster", "history", "lease_grants", "leases", "meta"];

/// Reads the status of the snapshot file `file`. Bytes after the database (the SHA-256 a
/// saved snapshot ends with) are not read.
pub fn snapshot_status(file: impl AsRef<Path>) -> Result<SnapshotStatus> {
    let file = file.as_ref();
    let size = fs::metadata(file)?.len();
    let page = 4096;
    let map_size = (size as usize + 2 * page).div_ceil(page) * page;
    // SAFETY: the file is opened read-only, once, and nothing in this process writes it.
    let env = unsafe {
        let mut opts = EnvOpenOptions::new().read_txn_without_tls();
        opts.map_size(map_size).max_dbs(8);
        opts.flags(
            heed::EnvFlags::NO_SUB_DIR | heed::EnvFlags::READ_ONLY | heed::EnvFlags::NO_LOCK,
        );
        opts.open(file)?
    };
    let rtxn = env.read_txn()?;
    let mut hash = Crc32c::default();
    let mut total_keys = 0;
    for name in TABLES {
        let table: Option<Table> = env.open_database(&rtxn, Some(name))?;
        let Some(table) = table else { continue };
        hash.write(name.as_bytes());
        for row in table.iter(&rtxn)? {
            let (k, v) = row?;
            hash.write(k);
            hash.write(v);
            total_keys += 1;
        }
    }
    let open = |name: &str| -> Result<Table> {
        env.open_database(&rtxn, Some(name))?.ok_or_else(|| {
            Error::Corrupt(format!("snapshot {} has no {name} table", file.display()))
        })
    };
    let tables = Tables {
        meta: open("meta")?,
        history: open("history")?,
        leases: open("leases")?,
        lease_grants: open("lease_grants")?,
    };
    let revision = tables.meta_i64(&rtxn, codec::META_REVISION)?;
    Ok(SnapshotStatus {
        hash: hash.finish(),
        revision,
        total_keys,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, PutRequest, Store, StoreOptions};

    #[test]
    fn a_snapshot_reports_its_revision_rows_and_a_hash_of_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("kv"), StoreOptions::default()).unwrap();
        let mut w = store.writer();
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            let put = Command::Put(PutRequest {
                key: k.as_bytes().to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            });
            w.apply_then(&[(i as u64 + 1, put)], |_| {}).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let file = dir.path().join("snap.db");
        store.snapshot_to(&file).unwrap();
        let status = snapshot_status(&file).unwrap();
        assert_eq!(status.revision, 4);
        assert!(status.total_keys >= 3, "{status:?}");
        assert_eq!(status.size, fs::metadata(&file).unwrap().len());
        // A saved snapshot ends with its SHA-256: the status is the same.
        let mut saved = fs::read(&file).unwrap();
        saved.extend_from_slice(&[7; 32]);
        let saved_file = dir.path().join("saved.db");
        fs::write(&saved_file, &saved).unwrap();
        let again = snapshot_status(&saved_file).unwrap();
        assert_eq!(
            (again.hash, again.revision, again.total_keys),
            (status.hash, status.revision, status.total_keys)
        );
        assert!(snapshot_status(dir.path().join("missing.db")).is_err());
    }
}
