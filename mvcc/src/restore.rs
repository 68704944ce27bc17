//! A new cluster's store from a snapshot, for `etcrctl snapshot restore`: the snapshot's
//! database copied into a member's store directory and reset for the new member set
//! ([`crate::Store::reset_for_new_cluster`]). The caller checks the snapshot's SHA-256 and
//! tells how many of its bytes are the database.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::cluster_state::{MemberRecord, MemberSet};
use crate::error::{Error, Result};
use crate::ids;
use crate::store::Store;

/// One member of the new cluster, as `--initial-cluster` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// The member's name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// The member set of a new cluster of `members` named by `token`, with the ids a member
/// bootstrapped from the same flags derives, sorted by id.
pub fn new_member_set(members: &[NewMember], token: &str) -> MemberSet {
    let mut records: Vec<MemberRecord> = members
        .iter()
        .map(|m| MemberRecord {
            id: ids::member_id(&m.peer_urls, token),
            peer_urls: m.peer_urls.clone(),
            is_learner: false,
        })
        .collect();
    records.sort_by_key(|r| r.id);
    let member_ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    MemberSet {
        cluster_id: ids::cluster_id(&member_ids),
        members: records,
    }
}

/// Writes the store of a new cluster of `members` into `kv_dir` (created; it must not hold a
/// store) from the first `db_len` bytes of the snapshot file `snapshot`. The file is synced
/// before the store opens it; on error the caller removes what was written.
pub fn restore_store(
    snapshot: &Path,
    db_len: u64,
    kv_dir: &Path,
    members: &MemberSet,
) -> Result<()> {
    fs::create_dir_all(kv_dir)?;
    let db = kv_dir.join("data.mdb");
    if db.exists() {
        return Err(Error::Io(format!("{} exists", db.display())));
    }
    let mut out = fs::File::create(&db)?;
    let copied = io::copy(&mut fs::File::open(snapshot)?.take(db_len), &mut out)?;
    if copied != db_len {
        return Err(Error::Io(format!(
            "{} is shorter than {db_len} bytes",
            snapshot.display()
        )));
    }
    out.sync_all()?;
    drop(out);
    Store::reset_for_new_cluster(kv_dir, members)?;
    // The lock file of the store opened above: the member makes its own.
    let _ = fs::remove_file(kv_dir.join("lock.mdb"));
    fs::File::open(kv_dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, PutRequest, RangeRequest, StoreOptions};

    #[test]
    fn a_restored_store_keeps_its_keys_and_takes_the_new_member_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("old"), StoreOptions::default()).unwrap();
        let put = |k: &str| {
            Command::Put(PutRequest {
                key: k.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })
        };
        store.apply(&[(7, put("a")), (8, put("b"))]).unwrap();
        let snap = dir.path().join("snap.db");
        store.snapshot_to(&snap).unwrap();
        drop(store);
        // A saved snapshot: the database, then 32 bytes of digest.
        let db_len = fs::metadata(&snap).unwrap().len();
        let mut saved = fs::read(&snap).unwrap();
        saved.extend_from_slice(&[9; 32]);
        fs::write(&snap, saved).unwrap();
        let members = new_member_set(
            &[
                NewMember {
                    name: "m1".into(),
                    peer_urls: vec!["http://127.0.0.1:1".into()],
                },
                NewMember {
                    name: "m2".into(),
                    peer_urls: vec!["http://127.0.0.1:2".into()],
                },
            ],
            "token",
        );
        assert!(members.members[0].id < members.members[1].id);
        let kv = dir.path().join("new").join("member").join("kv");
        restore_store(&snap, db_len, &kv, &members).unwrap();
        assert!(!kv.join("lock.mdb").exists());
        let restored = Store::open(&kv, StoreOptions::default()).unwrap();
        assert_eq!(restored.applied_index(), 0);
        assert_eq!(restored.current_revision(), 3);
        assert_eq!(restored.member_set().unwrap(), Some(members.clone()));
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        assert_eq!(restored.range(&all).unwrap().count, 2);
        drop(restored);
        // Never over an existing store.
        assert!(restore_store(&snap, db_len, &kv, &members).is_err());
    }
}
