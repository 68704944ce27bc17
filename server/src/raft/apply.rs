//! The apply thread: committed entries, in log order, into the store.
//!
//! Consecutive batches that queued up while the store was busy are applied together, in one
//! LMDB transaction that also records the applied index; the member that proposed an entry
//! then answers its caller.
//!
//! Nothing an entry holds can stop the member: the store's refusals (NOSPACE, compacted
//! revisions, ...) are answers, the same on every member. What the apply thread cannot get
//! past (an entry it cannot decode, a store that fails to write) halts it: it stops applying,
//! with the reason in the log, `/health` and `Status`, and the member stays up for health,
//! metrics and reads of what it holds. Skipping the entry would let this member's state
//! drift from the others; exiting would make a supervisor restart it into the same entry.

use crossbeam_channel::Receiver;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use raft_core::{Entry, EntryType};
use tracing::{error, info};

use super::envelope::{DecodeError, Envelope, Payload};
use super::shared::Shared;
use super::waiters::{Answer, Waiters};
use crate::errors::EtcdError;
use crate::lease::Lessor;
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::watch::CommitNotifier;

pub enum ApplyItem {
    Entries(Vec<Entry>),
    /// Replace the store with a snapshot received from the leader, taken at or after `index`;
    /// `done` is told once the store holds it on disk.
    Restore {
        file: PathBuf,
        index: u64,
        term: u64,
        done: crossbeam_channel::Sender<()>,
    },
}

pub struct Applier {
    pub store: Arc<mvcc::Store>,
    pub waiters: Arc<Waiters>,
    pub shared: Arc<Shared>,
    pub membership: Arc<RwLock<Membership>>,
    pub local_id: u64,
    pub metrics: Arc<Metrics>,
    /// Told of every lease grant and revoke applied, and when this member's term starts.
    pub lessor: Arc<Lessor>,
    /// Told after every commit: watchers get what the commit made readable.
    pub watch: CommitNotifier,
    /// Told the auth state after each change, and each token handed out.
    pub auth: Arc<crate::auth::AuthStore>,
    /// Connected to the members a membership change adds, cut from those it removes.
    pub transport: super::PeerTransport,
    /// The transport's tasks run here.
    pub rt: tokio::runtime::Handle,
    /// Where the bootstrap identity is kept (a joining member records the cluster id).
    pub member_dir: PathBuf,
    /// Told when this member is removed, so the raft loop stops.
    pub inputs: crossbeam_channel::Sender<super::driver::Input>,
}

/// How long a removed member stays reachable, for the message that tells it.
const REMOVED_PEER_GRACE: Duration = Duration::from_secs(2);

/// etcd's words for a member that applied its own removal.
pub(super) const REMOVED: &str =
    "etcdserver: the member has been permanently removed from the cluster";

/// How long the store's write transaction stays open for more batches when no read and no
/// watcher waits: one commit (and fsync) then covers every batch that arrives meanwhile.
const COMMIT_LINGER: Duration = Duration::from_millis(5);

/// Commands one store transaction holds at most before it is committed.
const MAX_UNCOMMITTED: usize = 10_000;

/// Why the apply thread stopped.
#[derive(Debug, thiserror::Error)]
pub enum Halt {
    #[error("entry {index} cannot be applied: {err}; stopping rather than skipping it, which would leave this member's state different from the others'")]
    Undecodable { index: u64, err: DecodeError },
    #[error("the store failed to apply entries up to {index}: {err}")]
    Store { index: u64, err: mvcc::Error },
    #[error("installing the snapshot {file} failed: {err}")]
    Restore { file: String, err: mvcc::Error },
}

/// Commands of consecutive entries, applied in one call, and who waits for each.
#[derive(Default)]
struct KvRun {
    batch: Vec<(u64, mvcc::Command)>,
    callers: Vec<(u64, u64)>,
}

impl Applier {
    pub fn run(self, rx: Receiver<ApplyItem>, read_waits: Receiver<()>) {
        if let Err(halt) = self.apply_all(rx, read_waits) {
            let hint = match &halt {
                Halt::Store {
                    err: mvcc::Error::MapFull,
                    ..
                } => "; --quota-backend-bytes sizes the map: restart with a larger one",
                _ => "",
            };
            error!("{halt}; this member no longer applies the log, and answers only health, metrics and reads of what it holds; fix the cause and restart it{hint}");
            self.shared.halt(halt.to_string());
        }
    }

    fn apply_all(&self, rx: Receiver<ApplyItem>, read_waits: Receiver<()>) -> Result<(), Halt> {
        let mut writer = self.store.writer();
        // The last entry applied but not yet committed, if any.
        let mut uncommitted = None;
        let mut next = None;
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => match writer.pending() {
                    None => match rx.recv() {
                        Ok(item) => item,
                        Err(_) => return Ok(()),
                    },
                    Some((age, _)) => {
                        let left = COMMIT_LINGER.saturating_sub(age);
                        crossbeam_channel::select! {
                            recv(rx) -> item => match item {
                                Ok(item) => item,
                                Err(_) => return self.commit(&mut writer, &mut uncommitted),
                            },
                            recv(read_waits) -> _ => {
                                self.commit(&mut writer, &mut uncommitted)?;
                                continue;
                            }
                            default(left) => {
                                self.commit(&mut writer, &mut uncommitted)?;
                                continue;
                            }
                        }
                    }
                },
            };
            match item {
                ApplyItem::Entries(mut entries) => {
                    // Gather what else is already waiting, up to a restore.
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            ApplyItem::Entries(e) => entries.extend(e),
                            restore => {
                                next = Some(restore);
                                break;
                            }
                        }
                    }
                    let Some(last) = entries.last().map(|e| e.index) else {
                        continue;
                    };
                    let applied = self.apply_entries(&mut writer, entries);
                    if let Err(Halt::Undecodable { index, .. }) = &applied {
                        // What came before the entry (log indexes are consecutive) is sound:
                        // keep it.
                        uncommitted = Some(index - 1);
                        self.commit(&mut writer, &mut uncommitted)?;
                    }
                    applied?;
                    match writer.pending() {
                        Some((_, commands)) => {
                            uncommitted = Some(last);
                            if commands >= MAX_UNCOMMITTED
                                || self.shared.read_waiting()
                                || self.watch.watched()
                            {
                                self.commit(&mut writer, &mut uncommitted)?;
                            }
                        }
                        None => self.shared.set_applied(last),
                    }
                }
                ApplyItem::Restore {
                    file,
                    index,
                    term,
                    done,
                } => {
                    self.commit(&mut writer, &mut uncommitted)?;
                    self.restore(file, index)?;
                    // The entries it covers are not applied one by one here: proposals of
                    // earlier terms get no answer from them.
                    self.waiters.fail_sent_before(term);
                    let _ = done.send(());
                }
            }
        }
    }

    /// Commits the store's open transaction; entries up to `uncommitted` are then applied.
    fn commit(&self, writer: &mut mvcc::Writer, uncommitted: &mut Option<u64>) -> Result<(), Halt> {
        if writer.pending().is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let result = writer.commit();
        self.metrics.backend_commit.observe(started.elapsed());
        // Serving on would answer from a store that silently lags the log.
        result.map_err(|err| Halt::Store {
            index: uncommitted.unwrap_or(0),
            err,
        })?;
        if let Some(last) = uncommitted.take() {
            self.shared.set_applied(last);
        }
        self.watch.notify();
        Ok(())
    }

    /// Applies the entries in log order: runs of store commands in one call each, changes to
    /// the cluster state one by one between them. An entry that does not decode stops the
    /// batch there, after the entries before it.
    fn apply_entries(&self, writer: &mut mvcc::Writer, entries: Vec<Entry>) -> Result<(), Halt> {
        let mut run = KvRun::default();
        for e in entries {
            // Empty entries are a new leader's no-op.
            if e.data.is_empty() {
                // Every entry of earlier terms is applied (and answered, once the run before
                // this entry is): what was proposed before this term and is still waiting was
                // lost with the old leader.
                self.apply_kv(writer, std::mem::take(&mut run))?;
                self.waiters.fail_sent_before(e.term);
                if self.shared.is_leader() && self.shared.term() == e.term {
                    // The lessor knows every lease and may start their clocks (etcd promotes
                    // its lessor here too).
                    self.lessor.promote(e.term);
                }
                continue;
            }
            let conf = if e.entry_type == EntryType::ConfChange {
                match raft_core::decode_conf_change(&e.data) {
                    Ok((cc, cs)) => Some((cc.context, cs)),
                    Err(err) => {
                        self.apply_kv(writer, std::mem::take(&mut run))?;
                        return Err(Halt::Undecodable {
                            index: e.index,
                            err: DecodeError::Malformed {
                                version: 0,
                                reason: err.to_string(),
                            },
                        });
                    }
                }
            } else {
                None
            };
            let data = conf.as_ref().map(|(c, _)| c.as_slice()).unwrap_or(&e.data);
            if data.is_empty() {
                continue;
            }
            let env = match Envelope::decode(data) {
                Ok(env) => env,
                Err(err) => {
                    self.apply_kv(writer, std::mem::take(&mut run))?;
                    return Err(Halt::Undecodable {
                        index: e.index,
                        err,
                    });
                }
            };
            let cmd = match env.payload {
                Payload::Kv(cmd) => {
                    run.batch.push((e.index, cmd));
                    run.callers.push((env.origin, env.id));
                    continue;
                }
                Payload::Publish(attrs) => mvcc::ClusterCommand::PublishMember(mvcc::MemberInfo {
                    id: attrs.id,
                    name: attrs.name,
                    client_urls: attrs.client_urls,
                }),
                Payload::Cluster(cmd) => cmd,
                Payload::Auth {
                    command,
                    token_prefix,
                } => {
                    self.apply_kv(writer, std::mem::take(&mut run))?;
                    let answer = self.apply_auth(writer, e.index, command, token_prefix)?;
                    self.shared.set_answered(e.index);
                    if let (Some(answer), true) = (answer, env.origin == self.local_id) {
                        self.waiters.answer(env.id, answer);
                    }
                    continue;
                }
                Payload::Members(mut set) => {
                    // raft-core's membership is the truth about who votes.
                    if let Some((_, cs)) = &conf {
                        set.members.retain(|m| cs.contains(m.id));
                        for m in &mut set.members {
                            m.is_learner = cs.is_learner(m.id);
                        }
                    }
                    mvcc::ClusterCommand::SetMembers(set)
                }
            };
            self.apply_kv(writer, std::mem::take(&mut run))?;
            let outcome = writer
                .apply_cluster(e.index, &cmd)
                .map_err(|err| Halt::Store {
                    index: e.index,
                    err,
                })?;
            self.shared.set_answered(e.index);
            let answer = match outcome {
                mvcc::ClusterOutcome::Skipped => continue,
                mvcc::ClusterOutcome::Published => {
                    if let mvcc::ClusterCommand::PublishMember(info) = cmd {
                        self.membership
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .publish(info);
                    }
                    Answer::Published
                }
                mvcc::ClusterOutcome::MembersSet => {
                    if let mvcc::ClusterCommand::SetMembers(set) = &cmd {
                        self.take_members(set);
                    }
                    Answer::Members
                }
                mvcc::ClusterOutcome::Alarms(alarms) => {
                    for a in &alarms {
                        info!(member = %format!("{:x}", a.member), alarm = ?a.kind, raised = matches!(cmd, mvcc::ClusterCommand::ActivateAlarm(_)), "alarm changed");
                    }
                    Answer::Alarms(alarms)
                }
            };
            if env.origin == self.local_id {
                self.waiters.answer(env.id, Ok(answer));
            }
        }
        self.apply_kv(writer, run)
    }

    /// Applies an auth change and carries out what it implies on this member: the new view,
    /// tokens handed out or forgotten. `None` for an entry applied before.
    fn apply_auth(
        &self,
        writer: &mut mvcc::Writer,
        index: u64,
        command: mvcc::AuthCommand,
        token_prefix: Option<String>,
    ) -> Result<Option<super::waiters::Outcome>, Halt> {
        let outcome = writer
            .apply_auth(index, &command)
            .map_err(|err| Halt::Store { index, err })?;
        let state = match outcome {
            mvcc::AuthOutcome::Skipped => return Ok(None),
            mvcc::AuthOutcome::Refused(r) => return Ok(Some(Err(EtcdError::from(r)))),
            mvcc::AuthOutcome::Done(state) => state,
        };
        self.auth.publish(state);
        let tokens = &self.auth.tokens;
        let mut token = None;
        match command {
            mvcc::AuthCommand::UserDelete(name)
            | mvcc::AuthCommand::UserChangePassword { name, .. } => tokens.invalidate_user(&name),
            mvcc::AuthCommand::Disable => tokens.clear(),
            mvcc::AuthCommand::Authenticate { name, .. } => {
                // etcd's simple token: the proposer's random part, then the entry's index.
                let t = format!("{}.{index}", token_prefix.unwrap_or_default());
                tokens.assign(t.clone(), name);
                token = Some(t);
            }
            _ => {}
        }
        Ok(Some(Ok(Answer::Auth(token))))
    }

    fn apply_kv(&self, writer: &mut mvcc::Writer, run: KvRun) -> Result<(), Halt> {
        let Some(last) = run.batch.last().map(|(index, _)| *index) else {
            return Ok(());
        };
        self.metrics.observe_batch(run.batch.len());
        let started = Instant::now();
        let callers = run.callers;
        // Callers are answered before the commit: the outcomes are final (the log holds the
        // entries), and reads wait for the commit (see `Shared::answered`).
        let result = writer.apply_then(&run.batch, |applied| {
            self.shared.set_answered(last);
            let answered = applied.iter().filter_map(|a| match &a.outcome {
                mvcc::Outcome::Done { response, .. } => Some(response.revision()),
                _ => None,
            });
            if let Some(revision) = answered.max() {
                self.watch.answered(revision);
            }
            for ((a, (origin, id)), (_, cmd)) in applied.into_iter().zip(callers).zip(&run.batch) {
                let outcome = match a.outcome {
                    mvcc::Outcome::Done { response, .. } => {
                        self.tell_lessor(cmd);
                        self.metrics.proposal_applied();
                        Ok(Answer::Kv(response))
                    }
                    mvcc::Outcome::Failed(e) => {
                        self.metrics.proposal_failed();
                        Err(EtcdError::from(e))
                    }
                    // Replayed after a restart or a snapshot: its caller is long gone.
                    mvcc::Outcome::Skipped => continue,
                };
                if origin == self.local_id {
                    self.waiters.answer(id, outcome);
                }
            }
        });
        self.metrics.apply_batch.observe(started.elapsed());
        result.map_err(|err| Halt::Store { index: last, err })
    }

    /// Takes an applied member set: in memory, in the transport, and the end of this member if
    /// the set no longer holds it.
    fn take_members(&self, set: &mvcc::MemberSet) {
        let (before, after) = {
            let mut m = self.membership.write().unwrap_or_else(|p| p.into_inner());
            let before = m.members.clone();
            let learned_cluster = m.cluster_id == 0 || m.joining;
            m.apply_set(set);
            if learned_cluster {
                if let Err(e) = m.save(&self.member_dir) {
                    error!("cannot record the cluster id learned from the log: {e}");
                }
            }
            (before, m.clone())
        };
        info!(members = ?after.members.iter().map(|m| format!("{:x}", m.id)).collect::<Vec<_>>(), "membership changed");
        self.connect_peers(&before, &after);
        if !after.joining && !after.members.iter().any(|m| m.id == self.local_id) {
            error!("{REMOVED}; this member stops taking part and serving");
            self.shared.halt(REMOVED.to_string());
            let _ = self.inputs.send(super::driver::Input::Removed);
        }
    }

    /// Tells the transport about members added, moved or removed between two sets.
    fn connect_peers(&self, before: &[crate::membership::Member], after: &Membership) {
        let _runtime = self.rt.enter();
        for m in &after.members {
            if m.id == self.local_id
                || before
                    .iter()
                    .any(|b| b.id == m.id && b.peer_urls == m.peer_urls)
            {
                continue;
            }
            match m.peer_urls.first().map(|u| crate::config::listen_addrs(u)) {
                Some(Ok(addrs)) if !addrs.is_empty() => self.transport.add_peer(m.id, addrs[0]),
                _ => error!(member = %format!("{:x}", m.id), "no usable peer URL for a member"),
            }
        }
        for b in before {
            if b.id != self.local_id && !after.members.iter().any(|m| m.id == b.id) {
                // The leader's last word to it (its removal, see the raft loop) must leave
                // the queue before the peer goes.
                let (transport, id) = (self.transport.clone(), b.id);
                self.rt.spawn(async move {
                    tokio::time::sleep(REMOVED_PEER_GRACE).await;
                    transport.remove_peer(id);
                });
            }
        }
    }

    fn tell_lessor(&self, cmd: &mvcc::Command) {
        match cmd {
            mvcc::Command::LeaseGrant(g) => self.lessor.granted(g.id, g.ttl),
            mvcc::Command::RevokeLease(id) => self.lessor.revoked(*id),
            // Leases of the list already gone were revoked before: gone either way.
            mvcc::Command::ExpireLeases(ids) => ids.iter().for_each(|id| self.lessor.revoked(*id)),
            _ => {}
        }
    }

    fn restore(&self, file: PathBuf, index: u64) -> Result<(), Halt> {
        info!(index, file = %file.display(), "installing a snapshot from the leader");
        self.store
            .replace_with_snapshot(&file)
            .map_err(|err| Halt::Restore {
                file: file.display().to_string(),
                err,
            })?;
        let _ = std::fs::remove_file(&file);
        // The snapshot carries the member set and the members' published attributes.
        let overlaid = {
            let mut m = self.membership.write().unwrap_or_else(|p| p.into_inner());
            let before = m.members.clone();
            m.overlay_store(&self.store).map(|()| (before, m.clone()))
        };
        match overlaid {
            Ok((before, after)) => self.connect_peers(&before, &after),
            Err(err) => {
                return Err(Halt::Restore {
                    file: file.display().to_string(),
                    err,
                })
            }
        }
        // And the leases.
        let leases = self.store.leases().map_err(|err| Halt::Restore {
            file: file.display().to_string(),
            err,
        })?;
        self.lessor
            .reload(leases.into_iter().map(|l| (l.id, l.ttl)));
        // And the auth state.
        match self.store.auth_state() {
            Ok(state) => self.auth.publish(state),
            Err(err) => {
                return Err(Halt::Restore {
                    file: file.display().to_string(),
                    err,
                })
            }
        }
        self.shared
            .set_applied(index.max(self.store.applied_index()));
        self.watch.notify();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::fixtures::{unhex, MEMBER, V0_PUBLISH_M1, V0_PUT_FOO_BAR};
    use super::*;
    use crate::membership::Member;

    struct Harness {
        dir: tempfile::TempDir,
        store: Arc<mvcc::Store>,
        shared: Arc<Shared>,
        membership: Arc<RwLock<Membership>>,
        hub: crate::watch::Hub,
    }

    fn harness() -> (Harness, Applier) {
        harness_with_map(16 << 20)
    }

    fn harness_with_map(map_size: usize) -> (Harness, Applier) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            mvcc::Store::open(
                dir.path(),
                mvcc::StoreOptions {
                    map_size,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let shared = Arc::new(Shared::new(0, 1, 0).0);
        let membership = Arc::new(RwLock::new(Membership {
            cluster_id: 1,
            local_id: MEMBER,
            members: vec![Member {
                id: MEMBER,
                name: "m1".into(),
                peer_urls: vec!["http://127.0.0.1:2380".into()],
                client_urls: vec![],
                is_learner: false,
            }],
            joining: false,
        }));
        let (hub, watch) = crate::watch::Hub::start(
            store.clone(),
            crate::watch::HubSettings {
                progress_interval: Duration::from_secs(600),
                stream_bytes: crate::watch::STREAM_BYTES,
            },
        )
        .unwrap();
        let applier = Applier {
            store: store.clone(),
            waiters: Arc::new(Waiters::default()),
            shared: shared.clone(),
            membership: membership.clone(),
            local_id: MEMBER,
            metrics: Arc::new(Metrics::default()),
            lessor: Arc::new(Lessor::new(1, Duration::ZERO, [])),
            watch,
            auth: Arc::new(crate::auth::AuthStore::new(
                Default::default(),
                crate::auth::AuthSettings {
                    bcrypt_cost: 4,
                    token_ttl: Duration::from_secs(300),
                },
            )),
            transport: Arc::new(NoPeers),
            rt: test_runtime().handle().clone(),
            member_dir: dir.path().to_path_buf(),
            inputs: crossbeam_channel::unbounded().0,
        };
        let h = Harness {
            dir,
            store,
            shared,
            membership,
            hub,
        };
        (h, applier)
    }

    fn test_runtime() -> &'static tokio::runtime::Runtime {
        static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
    }

    /// A transport for a member alone: nothing to send to.
    struct NoPeers;

    #[tonic::async_trait]
    impl transport::Transport<raft_core::Message> for NoPeers {
        fn local_id(&self) -> u64 {
            MEMBER
        }
        fn local_addr(&self) -> std::net::SocketAddr {
            ([127, 0, 0, 1], 0).into()
        }
        fn send(&self, _to: u64, _msg: raft_core::Message) {}
        async fn send_snapshot(
            &self,
            _to: u64,
            _meta: raft_core::Message,
            _data: transport::SnapshotSource,
        ) -> transport::Result<u64> {
            Ok(0)
        }
        fn add_peer(&self, _id: u64, _addr: std::net::SocketAddr) {}
        fn remove_peer(&self, _id: u64) {}
        fn stats(&self) -> Vec<transport::PeerStats> {
            Vec::new()
        }
        async fn shutdown(&self) {}
    }

    fn entry(index: u64, data: Vec<u8>) -> Entry {
        Entry {
            term: 1,
            index,
            entry_type: EntryType::Normal,
            data,
        }
    }

    fn put(key: &str) -> Vec<u8> {
        put_value(key, Vec::new())
    }

    fn put_value(key: &str, value: Vec<u8>) -> Vec<u8> {
        Envelope {
            origin: 1,
            id: 1,
            payload: Payload::Kv(mvcc::Command::Put(mvcc::PutRequest {
                key: key.into(),
                value,
                ..Default::default()
            })),
        }
        .encode()
        .unwrap()
    }

    /// Runs the applier over `entries` until it has taken them all.
    fn apply(applier: Applier, entries: Vec<Entry>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (_wake_tx, wake) = crossbeam_channel::bounded(1);
        tx.send(ApplyItem::Entries(entries)).unwrap();
        drop(tx);
        applier.run(rx, wake);
    }

    #[test]
    fn the_lessor_hears_of_grants_and_revokes_and_leads_from_its_terms_first_entry() {
        let (h, applier) = harness();
        let lessor = applier.lessor.clone();
        let cmd = |c| {
            Envelope {
                origin: 1,
                id: 1,
                payload: Payload::Kv(c),
            }
            .encode()
            .unwrap()
        };
        let grant = |id| {
            cmd(mvcc::Command::LeaseGrant(mvcc::LeaseGrantRequest {
                id,
                ttl: 10,
            }))
        };
        h.shared.set_soft_state(MEMBER, true);
        apply(
            applier,
            vec![
                entry(1, grant(5)),
                entry(2, grant(6)),
                entry(3, cmd(mvcc::Command::RevokeLease(5))),
                // This member's term begins: it leads leases from here.
                entry(4, Vec::new()),
            ],
        );
        assert_eq!(lessor.ids(), vec![6]);
        assert!(lessor.time_to_live(6).is_ok(), "leading");
        assert_eq!(h.store.leases().unwrap().len(), 1);
    }

    #[test]
    fn an_entry_that_does_not_decode_halts_the_applier_and_is_never_skipped() {
        let (h, applier) = harness();
        let newer = vec![0xFF, 9, 1, 2, 3];
        apply(
            applier,
            vec![entry(1, put("a")), entry(2, newer), entry(3, put("b"))],
        );
        // Entry 1 is kept, entry 3 (after the bad one) is not applied.
        assert_eq!(h.store.applied_index(), 1);
        assert_eq!(h.store.current_revision(), 2);
        assert_eq!(h.shared.applied(), 1);
        let reason = h.shared.halted().expect("the applier halted");
        assert!(reason.contains("entry 2"), "{reason}");
        assert!(reason.contains("format version 9"), "{reason}");
    }

    #[test]
    fn version_0_entries_apply_after_the_upgrade_and_publish_into_the_store() {
        let (h, applier) = harness();
        apply(
            applier,
            vec![
                entry(1, unhex(V0_PUT_FOO_BAR)),
                entry(2, unhex(V0_PUBLISH_M1)),
                entry(3, put("b")),
            ],
        );
        assert_eq!(h.shared.halted(), None);
        assert_eq!(h.store.applied_index(), 3);
        let foo = h
            .store
            .range(&mvcc::RangeRequest {
                key: b"foo".to_vec(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(foo.kvs[0].value, b"bar");
        let published = vec![mvcc::MemberInfo {
            id: MEMBER,
            name: "m1".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
        }];
        assert_eq!(h.store.members().unwrap(), published);
        let m = h.membership.read().unwrap();
        assert_eq!(m.members[0].client_urls, published[0].client_urls);
    }

    #[test]
    fn a_full_map_halts_the_applier_without_exiting() {
        let (h, applier) = harness_with_map(1 << 20);
        let big = vec![7u8; 600 * 1024];
        apply(
            applier,
            vec![
                entry(1, put("a")),
                entry(2, put_value("b", big.clone())),
                entry(3, put_value("c", big)),
            ],
        );
        let reason = h.shared.halted().expect("the applier halted");
        assert!(reason.contains("LMDB map is full"), "{reason}");
        // Nothing of the failed transaction reached the store.
        assert_eq!(h.store.applied_index(), 0);
    }

    #[test]
    fn a_new_leaders_first_entry_fails_the_proposals_the_old_one_lost() {
        let (_h, applier) = harness();
        let waiters = applier.waiters.clone();
        let mut committed = waiters.register(10);
        let mut lost = waiters.register(11);
        let mut current = waiters.register(12);
        waiters.sent(&[(10, 1), (11, 1), (12, 2)]);
        let put = Envelope {
            origin: MEMBER,
            id: 10,
            payload: Payload::Kv(mvcc::Command::Put(mvcc::PutRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        }
        .encode()
        .unwrap();
        let new_term = Entry {
            term: 2,
            ..entry(2, Vec::new())
        };
        apply(applier, vec![entry(1, put), new_term]);
        assert!(matches!(committed.try_recv(), Ok(Ok(Answer::Kv(_)))));
        assert!(matches!(lost.try_recv(), Ok(Err(EtcdError::LeaderChanged))));
        assert!(
            current.try_recv().is_err(),
            "proposed in the new term: still waits"
        );
    }

    #[test]
    fn a_snapshot_that_does_not_install_halts_the_applier() {
        let (h, applier) = harness();
        let (tx, rx) = crossbeam_channel::unbounded();
        let (_wake_tx, wake) = crossbeam_channel::bounded(1);
        let (done, installed) = crossbeam_channel::bounded(1);
        tx.send(ApplyItem::Restore {
            file: h.dir.path().join("missing.mdb"),
            index: 10,
            term: 1,
            done,
        })
        .unwrap();
        drop(tx);
        applier.run(rx, wake);
        assert!(
            installed.recv().is_err(),
            "a failed install is not reported done"
        );
        let reason = h.shared.halted().expect("the applier halted");
        assert!(reason.contains("missing.mdb"), "{reason}");
        assert_eq!(h.shared.applied(), 0);
    }

    #[tokio::test]
    async fn watchers_get_what_the_applier_commits() {
        use api::etcdserverpb as pb;
        use futures::StreamExt;
        let (h, applier) = harness();
        let header = crate::convert::HeaderInfo {
            cluster_id: 1,
            member_id: MEMBER,
            raft_term: 1,
        };
        let service =
            crate::watch::WatchService::with_header(h.hub, Arc::new(move || header), 1 << 20);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: b"a".to_vec(),
                    ..Default::default()
                },
            )),
        };
        // The client never half-closes: a watch outlives its requests.
        let requests = futures::stream::iter([Ok(create)]).chain(futures::stream::pending());
        let mut responses = service.watch(requests.boxed(), None);
        let next = |r: Option<Result<pb::WatchResponse, tonic::Status>>| r.unwrap().unwrap();
        let wait = Duration::from_secs(10);
        let created = next(tokio::time::timeout(wait, responses.next()).await.unwrap());
        assert!(created.created);
        tokio::task::spawn_blocking(move || apply(applier, vec![entry(1, put("a"))]))
            .await
            .unwrap();
        let event = next(tokio::time::timeout(wait, responses.next()).await.unwrap());
        assert_eq!(event.events.len(), 1);
        assert_eq!(event.events[0].kv.as_ref().unwrap().mod_revision, 2);
        assert_eq!(h.store.current_revision(), 2);
    }
}
