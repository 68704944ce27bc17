//! raft-core's persisted state on disk: entries, hard state and snapshot records in the
//! checksummed segment log of `raft-wal`, one fdatasync per ready batch.
//!
//! raft-core reads its log from a `MemStorage` mirror; this type only writes, and reads back
//! once at start-up to fill the mirror.

use std::path::Path;

use raft_core::{ConfState, Entry, EntryType, HardState, SnapshotMetadata};
use tracing::warn;

pub struct Recovered {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMetadata>,
    pub entries: Vec<Entry>,
}

pub struct DurableLog {
    wal: raft_wal::Wal,
}

fn kind(t: EntryType) -> u8 {
    match t {
        EntryType::Normal => 0,
        EntryType::ConfChange => 1,
    }
}

fn entry_type(kind: u8) -> EntryType {
    if kind == 1 {
        EntryType::ConfChange
    } else {
        EntryType::Normal
    }
}

fn encode_conf_state(cs: &ConfState) -> anyhow::Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(
        cs,
        bincode::config::standard(),
    )?)
}

fn decode_conf_state(bytes: &[u8]) -> anyhow::Result<ConfState> {
    Ok(bincode::serde::decode_from_slice(bytes, bincode::config::standard())?.0)
}

impl DurableLog {
    pub fn open(dir: &Path) -> anyhow::Result<(DurableLog, Recovered)> {
        let wal = raft_wal::Wal::open(dir, raft_wal::Options::default())?;
        if let Some(torn) = &wal.recovery().torn_tail {
            warn!(
                file = %torn.file.display(),
                offset = torn.offset,
                dropped_bytes = torn.dropped_bytes,
                reason = %torn.reason,
                "truncated a torn write at the end of the raft log (a crash during a write)"
            );
        }
        let hs = wal.hard_state();
        let hard_state = (hs != raft_wal::HardState::default()).then_some(HardState {
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
        });
        let snap = wal.snapshot().clone();
        let snapshot = if snap.index > 0 {
            Some(SnapshotMetadata {
                index: snap.index,
                term: snap.term,
                conf_state: decode_conf_state(&snap.conf_state)?,
            })
        } else {
            None
        };
        let entries = wal
            .entries(wal.first_index(), wal.last_index() + 1, u64::MAX)?
            .into_iter()
            .map(|e| Entry {
                term: e.term,
                index: e.index,
                entry_type: entry_type(e.kind),
                data: e.data,
            })
            .collect();
        Ok((
            DurableLog { wal },
            Recovered {
                hard_state,
                snapshot,
                entries,
            },
        ))
    }

    /// Writes one ready batch; with `sync` it is on disk when this returns.
    pub fn append(
        &mut self,
        entries: &[Entry],
        hs: Option<&HardState>,
        sync: bool,
    ) -> anyhow::Result<()> {
        if entries.is_empty() && hs.is_none() {
            return Ok(());
        }
        let entries: Vec<raft_wal::Entry> = entries
            .iter()
            .map(|e| raft_wal::Entry {
                index: e.index,
                term: e.term,
                kind: kind(e.entry_type),
                data: e.data.clone(),
            })
            .collect();
        let hs = hs.map(|h| raft_wal::HardState {
            term: h.term,
            vote: h.vote,
            commit: h.commit,
        });
        if sync {
            self.wal.append(&entries, hs)?;
        } else {
            self.wal.append_nosync(&entries, hs)?;
        }
        Ok(())
    }

    /// Records a snapshot received from the leader: the log restarts after it.
    pub fn install_snapshot(&mut self, meta: &SnapshotMetadata) -> anyhow::Result<()> {
        self.wal.set_snapshot(raft_wal::SnapshotMeta {
            index: meta.index,
            term: meta.term,
            conf_state: encode_conf_state(&meta.conf_state)?,
        })?;
        Ok(())
    }

    /// Records a local snapshot at `index` and drops entries up to `compact_to`.
    pub fn compact(
        &mut self,
        index: u64,
        term: u64,
        cs: &ConfState,
        compact_to: u64,
    ) -> anyhow::Result<()> {
        self.wal.set_snapshot(raft_wal::SnapshotMeta {
            index,
            term,
            conf_state: encode_conf_state(cs)?,
        })?;
        self.wal.sync()?;
        self.wal.compact(compact_to + 1)?;
        Ok(())
    }
}
