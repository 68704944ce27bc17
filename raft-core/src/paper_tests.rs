//! Scenario tests named after the sections of the Raft paper (Ongaro and
//! Ousterhout, 2014) and thesis (Ongaro, 2014) whose rules they check. They
//! drive members only through the public [`RawNode`] API over a tiny
//! in-memory network that can drop links.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::{
    ConfChange, ConfChangeType, ConfState, Config, Entry, EntryType, Error, HardState, MemStorage,
    Message, MessageType, RawNode, ReadState, StateRole, Storage,
};

struct Net {
    nodes: BTreeMap<u64, RawNode<MemStorage>>,
    queue: VecDeque<Message>,
    cut: BTreeSet<(u64, u64)>,
    applied: BTreeMap<u64, Vec<Entry>>,
    reads: BTreeMap<u64, Vec<ReadState>>,
    /// Every message ever sent, for assertions about traffic.
    sent: Vec<Message>,
}

fn config(id: u64) -> Config {
    Config {
        election_tick: 10,
        heartbeat_tick: 1,
        seed: 7,
        ..Config::new(id)
    }
}

impl Net {
    fn new(n: u64) -> Net {
        Net::with(n, config)
    }

    fn with(n: u64, cfg: impl Fn(u64) -> Config) -> Net {
        let voters: Vec<u64> = (1..=n).collect();
        let stores = (1..=n)
            .map(|id| {
                (
                    id,
                    MemStorage::new_with_conf_state(ConfState::with_voters(voters.clone())),
                )
            })
            .collect();
        Net::from_stores(stores, cfg)
    }

    fn from_stores(stores: Vec<(u64, MemStorage)>, cfg: impl Fn(u64) -> Config) -> Net {
        let mut nodes = BTreeMap::new();
        for (id, s) in stores {
            nodes.insert(id, RawNode::new(&cfg(id), s).unwrap());
        }
        Net {
            nodes,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
            sent: Vec::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id).unwrap()
    }

    fn role(&self, id: u64) -> StateRole {
        self.nodes[&id].soft_state().role
    }

    fn term(&self, id: u64) -> u64 {
        self.nodes[&id].hard_state().term
    }

    fn commit(&self, id: u64) -> u64 {
        self.nodes[&id].hard_state().commit
    }

    /// Runs one member's ready loop to quiescence, queueing its messages.
    fn process(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        while node.has_ready() {
            let rd = node.ready();
            self.queue.extend(rd.messages.iter().cloned());
            if let Some(s) = &rd.snapshot {
                node.mut_store().apply_snapshot(s.clone()).unwrap();
            }
            node.mut_store().append(&rd.entries).unwrap();
            if let Some(hs) = rd.hard_state {
                node.mut_store().set_hard_state(hs);
            }
            self.queue.extend(rd.persisted_messages.iter().cloned());
            self.applied
                .entry(id)
                .or_default()
                .extend(rd.committed_entries.iter().cloned());
            self.reads
                .entry(id)
                .or_default()
                .extend(rd.read_states.iter().cloned());
            node.advance(rd);
        }
    }

    fn process_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.process(id);
        }
    }

    fn deliver(&mut self, m: Message) {
        self.sent.push(m.clone());
        if self.cut.contains(&(m.from, m.to)) {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&m.to) {
            node.step(m).unwrap();
        }
    }

    /// Delivers messages until no member has anything left to say.
    fn stabilize(&mut self) {
        loop {
            self.process_all();
            if self.queue.is_empty() {
                return;
            }
            while let Some(m) = self.queue.pop_front() {
                self.deliver(m);
            }
        }
    }

    fn tick_all(&mut self, n: usize) {
        for _ in 0..n {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.stabilize();
        }
    }

    fn isolate(&mut self, id: u64) {
        for &other in self.nodes.keys() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn elect(&mut self, id: u64) {
        self.node(id).campaign();
        self.stabilize();
        assert_eq!(self.role(id), StateRole::Leader);
    }

    fn leaders(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.soft_state().role == StateRole::Leader)
            .map(|(&id, _)| id)
            .collect()
    }

    fn data_applied(&self, id: u64) -> Vec<Vec<u8>> {
        self.applied
            .get(&id)
            .map(|v| {
                v.iter()
                    .filter(|e| e.entry_type == EntryType::Normal && !e.data.is_empty())
                    .map(|e| e.data.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn store_with(voters: &[u64], terms: &[u64], hs: HardState) -> MemStorage {
    let mut s = MemStorage::new_with_conf_state(ConfState::with_voters(voters.to_vec()));
    let ents: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry::new(t, i as u64 + 1, vec![]))
        .collect();
    s.append(&ents).unwrap();
    s.set_hard_state(hs);
    s
}

// ---- §5.2 Leader election ---------------------------------------------------

#[test]
fn section_5_2_election_safety_one_leader_per_term() {
    let mut net = Net::new(5);
    net.elect(1);
    assert_eq!(net.leaders(), vec![1]);
    // Two members campaign at once after the leader is cut off.
    net.isolate(1);
    net.tick_all(25);
    net.heal();
    net.stabilize();
    let mut by_term: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for id in net.leaders() {
        by_term.entry(net.term(id)).or_default().push(id);
    }
    for (term, leaders) in by_term {
        assert_eq!(leaders.len(), 1, "term {term} has leaders {leaders:?}");
    }
}

#[test]
fn section_5_2_candidate_needs_a_majority() {
    let mut net = Net::with(3, |id| Config {
        pre_vote: false,
        ..config(id)
    });
    net.isolate(1);
    net.node(1).campaign();
    net.stabilize();
    assert_eq!(net.role(1), StateRole::Candidate);
    assert_eq!(net.term(1), 1);
    net.heal();
    net.node(1).campaign();
    net.stabilize();
    assert_eq!(net.role(1), StateRole::Leader);
    assert_eq!(net.term(1), 2);
}

#[test]
fn section_5_2_voter_grants_one_vote_per_term() {
    let mut net = Net::with(3, |id| Config {
        pre_vote: false,
        ..config(id)
    });
    let vote = |from: u64| Message {
        msg_type: MessageType::RequestVote,
        to: 3,
        from,
        term: 1,
        ..Message::default()
    };
    net.node(3).step(vote(1)).unwrap();
    net.node(3).step(vote(2)).unwrap();
    let rd = net.node(3).ready();
    let answers: Vec<(u64, bool)> = rd
        .persisted_messages
        .iter()
        .map(|m| (m.to, m.reject))
        .collect();
    assert_eq!(answers, vec![(1, false), (2, true)]);
    assert_eq!(rd.hard_state.unwrap().vote, 1);
}

#[test]
fn section_5_2_randomized_timeouts_come_from_the_seed() {
    let campaign_tick = |seed: u64| {
        let s = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1, 2, 3]));
        let mut n = RawNode::new(&Config { seed, ..config(1) }, s).unwrap();
        (1..=40)
            .find(|_| {
                n.tick();
                n.soft_state().role != StateRole::Follower
            })
            .unwrap()
    };
    let ticks: BTreeSet<usize> = (0..20).map(campaign_tick).collect();
    assert!(ticks.iter().all(|&t| (10..20).contains(&t)), "{ticks:?}");
    assert!(ticks.len() > 1, "different seeds give different timeouts");
    assert_eq!(campaign_tick(5), campaign_tick(5));
}

// ---- §5.3 Log replication ---------------------------------------------------

#[test]
fn section_5_3_log_matching_followers_converge_to_the_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    for i in 0..10u8 {
        net.node(1).propose(vec![i]).unwrap();
    }
    net.stabilize();
    let expect: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
    for id in 1..=3 {
        assert_eq!(net.data_applied(id), expect, "member {id}");
        assert_eq!(net.nodes[&id].last_index(), net.nodes[&1].last_index());
    }
}

#[test]
fn section_5_3_follower_rejects_append_without_matching_prefix() {
    let s = store_with(&[1, 2], &[1, 1], HardState::default());
    let mut n = RawNode::new(&config(2), s).unwrap();
    n.step(Message {
        msg_type: MessageType::Append,
        from: 1,
        to: 2,
        term: 2,
        index: 2,
        log_term: 2,
        entries: vec![Entry::new(2, 3, vec![])],
        ..Message::default()
    })
    .unwrap();
    let rd = n.ready();
    let resp = &rd.persisted_messages[0];
    assert_eq!(resp.msg_type, MessageType::AppendResponse);
    assert!(resp.reject);
    // The hint skips straight to the last index whose term may match.
    assert_eq!((resp.reject_hint, resp.log_term), (2, 1));
    assert!(rd.entries.is_empty());
}

#[test]
fn section_5_3_leader_repairs_a_divergent_follower_quickly() {
    // Member 3 holds a long run of stale term-2 entries the leader lacks.
    let hs = HardState {
        term: 3,
        vote: 0,
        commit: 1,
    };
    let stores = vec![
        (1, store_with(&[1, 2, 3], &[1, 3, 3], hs)),
        (2, store_with(&[1, 2, 3], &[1, 3, 3], hs)),
        (
            3,
            store_with(&[1, 2, 3], &[1, 2, 2, 2, 2, 2, 2, 2, 2, 2], hs),
        ),
    ];
    let mut net = Net::from_stores(stores, config);
    net.elect(1);
    net.node(1).propose(b"x".to_vec()).unwrap();
    net.stabilize();
    for idx in 1..=net.nodes[&1].last_index() {
        assert_eq!(
            net.nodes[&3].log_term(idx),
            net.nodes[&1].log_term(idx),
            "index {idx}"
        );
    }
    let rejections = net
        .sent
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse && m.reject && m.from == 3)
        .count();
    assert!(
        rejections <= 2,
        "{rejections} round trips to find the match"
    );
}

#[test]
fn section_5_3_inflight_window_bounds_pipelining() {
    let mut net = Net::with(2, |id| Config {
        max_inflight_msgs: 2,
        max_size_per_msg: 1,
        ..config(id)
    });
    net.elect(1);
    net.queue.clear();
    for i in 0..10u8 {
        net.node(1).propose(vec![i]).unwrap();
    }
    net.process(1);
    let appends = net
        .queue
        .iter()
        .filter(|m| m.msg_type == MessageType::Append && !m.entries.is_empty())
        .count();
    assert_eq!(appends, 2, "only the window's worth of appends is unacked");
    net.stabilize();
    assert_eq!(net.data_applied(2).len(), 10);
}

// ---- §5.4 Safety ------------------------------------------------------------

#[test]
fn section_5_4_1_election_restriction_refuses_stale_candidates() {
    let hs = HardState {
        term: 2,
        vote: 0,
        commit: 0,
    };
    let s = store_with(&[1, 2, 3], &[1, 2], hs);
    let mut n = RawNode::new(&config(3), s).unwrap();
    // Same last term, shorter log: refused.
    n.step(Message {
        msg_type: MessageType::RequestVote,
        from: 1,
        to: 3,
        term: 3,
        index: 1,
        log_term: 2,
        ..Message::default()
    })
    .unwrap();
    // Higher last term, shorter log: granted.
    n.step(Message {
        msg_type: MessageType::RequestVote,
        from: 2,
        to: 3,
        term: 3,
        index: 1,
        log_term: 3,
        ..Message::default()
    })
    .unwrap();
    let rd = n.ready();
    let answers: Vec<(u64, bool)> = rd
        .persisted_messages
        .iter()
        .map(|m| (m.to, m.reject))
        .collect();
    assert_eq!(answers, vec![(1, true), (2, false)]);
}

#[test]
fn section_5_4_1_leader_completeness_new_leader_has_committed_entries() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(1).propose(b"committed".to_vec()).unwrap();
    net.stabilize();
    let committed = net.commit(1);
    net.isolate(1);
    net.tick_all(30);
    let leader = net.leaders().into_iter().find(|&id| id != 1).unwrap();
    assert!(net.nodes[&leader].last_index() >= committed);
    assert_eq!(net.data_applied(leader), vec![b"committed".to_vec()]);
}

#[test]
fn section_5_4_2_commit_rule_counts_only_current_term_entries() {
    // Figure 8: the leader of term 3 holds an entry of term 2 at index 2 that
    // is on a majority, yet must not commit it until an entry of term 3 is.
    let hs = HardState {
        term: 2,
        vote: 0,
        commit: 1,
    };
    let stores = vec![
        (1, store_with(&[1, 2, 3], &[1, 2], hs)),
        (2, store_with(&[1, 2, 3], &[1], hs)),
        (3, store_with(&[1, 2, 3], &[1], hs)),
    ];
    let mut net = Net::from_stores(stores, config);
    net.node(1).campaign();
    // Run the election but hold back every append.
    for _ in 0..4 {
        net.process_all();
        let msgs: Vec<Message> = net.queue.drain(..).collect();
        for m in msgs {
            if m.msg_type != MessageType::Append {
                net.deliver(m);
            }
        }
    }
    assert_eq!(net.role(1), StateRole::Leader);
    assert_eq!(net.term(1), 3);
    let ack = |index| Message {
        msg_type: MessageType::AppendResponse,
        from: 2,
        to: 1,
        term: 3,
        index,
        ..Message::default()
    };
    net.node(1).step(ack(2)).unwrap();
    net.process(1);
    assert_eq!(
        net.commit(1),
        1,
        "a term-2 entry is not committed by counting"
    );
    net.node(1).step(ack(3)).unwrap();
    net.process(1);
    assert_eq!(
        net.commit(1),
        3,
        "committing the term-3 entry commits index 2"
    );
}

#[test]
fn section_5_4_3_state_machine_safety_across_leader_changes() {
    let mut net = Net::new(5);
    net.elect(1);
    for round in 0..4u8 {
        let leader = net.leaders()[0];
        net.node(leader).propose(vec![round]).unwrap();
        net.stabilize();
        net.isolate(leader);
        net.tick_all(30);
        net.heal();
        net.tick_all(5);
    }
    let reference = net.data_applied(1);
    assert_eq!(reference.len(), 4);
    for id in 2..=5 {
        assert_eq!(net.data_applied(id), reference, "member {id}");
    }
}

// ---- §5.5 / persistence contract --------------------------------------------

#[test]
fn section_5_5_persistence_contract_splits_messages() {
    let mut net = Net::new(3);
    net.node(1).campaign();
    let rd = net.node(1).ready();
    // Pre-votes change no durable state and may leave at once.
    assert!(rd
        .messages
        .iter()
        .all(|m| m.msg_type == MessageType::RequestPreVote));
    net.node(1).advance(rd);
    net.queue.clear();
    net.elect(1);
    net.node(1).propose(b"p".to_vec()).unwrap();
    let rd = net.node(1).ready();
    assert!(!rd.entries.is_empty());
    assert!(
        rd.messages
            .iter()
            .any(|m| m.msg_type == MessageType::Append),
        "the leader replicates while it writes its own log"
    );
    net.node(1).advance(rd);
    net.stabilize();
    // A follower's acknowledgement waits for its disk.
    let rd_msgs: Vec<Message> = net
        .sent
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse)
        .cloned()
        .collect();
    assert!(!rd_msgs.is_empty());
    net.node(1).propose(b"q".to_vec()).unwrap();
    net.process(1);
    let m = net.queue.pop_front().unwrap();
    net.queue.clear();
    net.node(m.to).step(m.clone()).unwrap();
    let rd = net.node(m.to).ready();
    assert!(rd.messages.is_empty());
    assert_eq!(
        rd.persisted_messages[0].msg_type,
        MessageType::AppendResponse
    );
}

#[test]
fn leader_counts_itself_only_after_persisting() {
    let mut net = Net::new(1);
    net.elect(1);
    net.node(1).propose(b"x".to_vec()).unwrap();
    let rd = net.node(1).ready();
    assert_eq!(rd.entries.len(), 1);
    assert!(rd.committed_entries.is_empty());
    net.node(1).mut_store().append(&rd.entries).unwrap();
    net.node(1).advance(rd);
    let rd = net.node(1).ready();
    assert_eq!(rd.committed_entries.len(), 1);
    net.node(1).advance(rd);
}

// ---- §6 Client interaction ----------------------------------------------------

#[test]
fn section_6_2_proposals_are_forwarded_or_fail_fast() {
    let mut net = Net::new(3);
    assert_eq!(net.node(2).propose(b"x".to_vec()), Err(Error::NoLeader));
    assert_eq!(net.node(2).read_index(b"r".to_vec()), Err(Error::NoLeader));
    net.elect(1);
    net.node(2).propose(b"fwd".to_vec()).unwrap();
    net.stabilize();
    assert_eq!(net.data_applied(3), vec![b"fwd".to_vec()]);
}

#[test]
fn section_6_2_a_turns_forwarded_proposals_share_messages_within_the_size_limit() {
    let mut net = Net::with(3, |id| Config {
        max_size_per_msg: 10,
        ..config(id)
    });
    net.elect(1);
    net.stabilize();
    net.queue.clear();
    for p in [&b"aaaa"[..], b"bbbb", b"cccc", b"dd"] {
        net.node(2).propose(p.to_vec()).unwrap();
    }
    net.process(2);
    let props: Vec<usize> = net
        .queue
        .iter()
        .filter(|m| m.msg_type == MessageType::Propose)
        .map(|m| m.entries.len())
        .collect();
    // 4 + 4 fit in 10 bytes, the third would not; 4 + 2 do.
    assert_eq!(props, vec![2, 2]);
    net.stabilize();
    let want: Vec<Vec<u8>> = [&b"aaaa"[..], b"bbbb", b"cccc", b"dd"]
        .iter()
        .map(|p| p.to_vec())
        .collect();
    assert_eq!(net.data_applied(3), want);
}

#[test]
fn section_6_4_read_index_batches_reads_into_one_heartbeat_round() {
    let mut net = Net::new(3);
    net.elect(1);
    net.sent.clear();
    net.node(1).read_index(b"a".to_vec()).unwrap();
    net.node(1).read_index(b"b".to_vec()).unwrap();
    net.node(2).read_index(b"c".to_vec()).unwrap();
    net.stabilize();
    let heartbeats = net
        .sent
        .iter()
        .filter(|m| m.msg_type == MessageType::Heartbeat && m.from == 1)
        .count();
    // The follower's request reaches the leader one hop later, so it makes a
    // second round: one heartbeat per follower per round.
    assert_eq!(heartbeats, 4);
    let commit = net.commit(1);
    let ctxs: Vec<Vec<u8>> = net.reads[&1]
        .iter()
        .map(|r| r.request_ctx.clone())
        .collect();
    assert_eq!(ctxs, vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(net.reads[&1].iter().all(|r| r.index == commit));
    assert_eq!(net.reads[&2][0].request_ctx, b"c".to_vec());
    assert_eq!(net.reads[&2][0].index, commit);
}

#[test]
fn section_6_4_read_index_needs_a_quorum() {
    let mut net = Net::new(3);
    net.elect(1);
    net.isolate(1);
    net.node(1).read_index(b"a".to_vec()).unwrap();
    net.stabilize();
    assert!(net.reads.get(&1).is_none_or(|r| r.is_empty()));
}

// ---- §9.6 Pre-vote and check-quorum (thesis) -----------------------------------

#[test]
fn section_9_6_prevote_rejoining_member_does_not_disrupt_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    let term = net.term(1);
    net.isolate(3);
    net.tick_all(50);
    assert_eq!(
        net.term(3),
        term,
        "pre-vote keeps the isolated member's term"
    );
    net.heal();
    net.tick_all(5);
    assert_eq!(net.leaders(), vec![1]);
    assert_eq!(net.term(1), term);
}

#[test]
fn section_6_2_check_quorum_leader_steps_down_when_cut_off() {
    let mut net = Net::new(3);
    net.elect(1);
    net.isolate(1);
    // Within one election timeout plus the check period.
    net.tick_all(21);
    assert_eq!(net.role(1), StateRole::Follower);
}

#[test]
fn leader_lease_ignores_vote_requests_while_leader_is_alive() {
    let mut net = Net::with(3, |id| Config {
        pre_vote: false,
        ..config(id)
    });
    net.elect(1);
    let term = net.term(1);
    // Member 3 campaigns on its own without pre-vote.
    net.node(3).campaign();
    net.stabilize();
    assert_eq!(net.role(1), StateRole::Leader);
    assert_eq!(net.term(1), term);
}

// ---- §3.10 Leadership transfer (thesis) ------------------------------------------

#[test]
fn section_3_10_leadership_transfer() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(1).propose(b"x".to_vec()).unwrap();
    net.stabilize();
    net.node(1).transfer_leader(3).unwrap();
    net.stabilize();
    assert_eq!(net.leaders(), vec![3]);
    // Through a follower too.
    net.node(2).transfer_leader(1).unwrap();
    net.stabilize();
    assert_eq!(net.leaders(), vec![1]);
}

#[test]
fn section_3_10_transfer_to_a_lagging_member_catches_it_up_first() {
    let mut net = Net::new(3);
    net.elect(1);
    net.isolate(3);
    net.node(1).propose(b"x".to_vec()).unwrap();
    net.stabilize();
    net.heal();
    net.node(1).transfer_leader(3).unwrap();
    assert_eq!(
        net.node(1).propose(b"y".to_vec()),
        Err(Error::ProposalDropped)
    );
    net.stabilize();
    assert_eq!(net.leaders(), vec![3]);
    assert_eq!(net.data_applied(3), vec![b"x".to_vec()]);
}

// ---- §4 Membership changes (thesis) ----------------------------------------------

fn cc(change_type: ConfChangeType, node_id: u64) -> ConfChange {
    ConfChange {
        change_type,
        node_id,
        context: Vec::new(),
    }
}

#[test]
fn section_4_add_learner_then_promote() {
    let mut net = Net::new(3);
    net.nodes
        .insert(4, RawNode::new(&config(4), MemStorage::new()).unwrap());
    net.elect(1);
    net.node(1).propose(b"before".to_vec()).unwrap();
    net.stabilize();
    net.node(1)
        .propose_conf_change(cc(ConfChangeType::AddLearner, 4))
        .unwrap();
    net.stabilize();
    assert_eq!(net.data_applied(4), vec![b"before".to_vec()]);
    assert_eq!(net.nodes[&4].status().conf_state.learners, vec![4]);
    // A learner never campaigns.
    net.isolate(1);
    net.node(4).campaign();
    net.stabilize();
    assert_ne!(net.role(4), StateRole::Leader);
    net.heal();
    net.tick_all(30);
    let leader = net.leaders()[0];
    net.node(leader)
        .propose_conf_change(cc(ConfChangeType::AddNode, 4))
        .unwrap();
    net.stabilize();
    assert_eq!(net.nodes[&1].status().conf_state.voters, vec![1, 2, 3, 4]);
    assert_eq!(net.nodes[&4].applied_conf_state().voters, vec![1, 2, 3, 4]);
}

#[test]
fn section_4_one_change_at_a_time() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(1)
        .propose_conf_change(cc(ConfChangeType::AddLearner, 4))
        .unwrap();
    assert_eq!(
        net.node(1)
            .propose_conf_change(cc(ConfChangeType::AddLearner, 5)),
        Err(Error::ProposalDropped)
    );
    assert!(matches!(
        net.node(1)
            .propose_conf_change(cc(ConfChangeType::RemoveNode, 9)),
        Err(Error::ProposalDropped | Error::ConfChangeInvalid(_))
    ));
}

#[test]
fn section_4_removed_leader_steps_down_after_commit() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(1)
        .propose_conf_change(cc(ConfChangeType::RemoveNode, 1))
        .unwrap();
    net.stabilize();
    assert_eq!(net.role(1), StateRole::Follower);
    net.tick_all(30);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 1);
    net.node(leaders[0]).propose(b"after".to_vec()).unwrap();
    net.stabilize();
    let other = if leaders[0] == 2 { 3 } else { 2 };
    assert_eq!(net.data_applied(other), vec![b"after".to_vec()]);
}

// ---- §7 Log compaction -----------------------------------------------------------

#[test]
fn section_7_lagging_follower_catches_up_by_snapshot() {
    let mut net = Net::new(3);
    net.elect(1);
    net.isolate(3);
    for i in 0..20u8 {
        net.node(1).propose(vec![i]).unwrap();
        net.stabilize();
    }
    let applied = net.nodes[&1].status().applied;
    let cs = net.nodes[&1].applied_conf_state().clone();
    let leader = net.node(1);
    leader
        .mut_store()
        .create_snapshot(applied, cs, b"image".to_vec())
        .unwrap();
    leader.mut_store().compact(applied).unwrap();
    net.heal();
    net.tick_all(3);
    let snaps: Vec<&Message> = net
        .sent
        .iter()
        .filter(|m| m.msg_type == MessageType::Snapshot)
        .collect();
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        net.nodes[&3].store().snapshot(0).unwrap().data,
        b"image".to_vec()
    );
    net.node(1).propose(b"next".to_vec()).unwrap();
    net.stabilize();
    assert_eq!(net.data_applied(3), vec![b"next".to_vec()]);
}

// ---- wire format ---------------------------------------------------------------------

#[test]
fn messages_round_trip_through_bincode() {
    let m = Message {
        msg_type: MessageType::Append,
        to: 2,
        from: 1,
        term: 3,
        log_term: 2,
        index: 7,
        entries: vec![Entry::new(3, 8, b"x".to_vec())],
        commit: 6,
        reject: false,
        reject_hint: 0,
        snapshot: None,
        context: b"ctx".to_vec(),
    };
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&m, cfg).unwrap();
    let (back, _): (Message, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, m);
}

#[test]
fn section_6_4_new_leader_serves_reads_only_after_committing_in_its_term() {
    let mut net = Net::new(3);
    net.node(1).campaign();
    // Run the election but hold back the leader's first append.
    for _ in 0..4 {
        net.process_all();
        let msgs: Vec<Message> = net.queue.drain(..).collect();
        for m in msgs {
            if m.msg_type != MessageType::Append {
                net.deliver(m);
            }
        }
    }
    assert_eq!(net.role(1), StateRole::Leader);
    net.node(1).read_index(b"early".to_vec()).unwrap();
    net.process(1);
    assert!(net.reads.get(&1).is_none_or(|r| r.is_empty()));
    net.queue.clear();
    net.tick_all(2);
    let reads = &net.reads[&1];
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].index, net.commit(1));
    assert!(reads[0].index >= 1, "the index covers the new term's entry");
}

#[test]
fn unreachable_follower_is_probed_again() {
    let mut net = Net::new(3);
    net.elect(1);
    let state = |net: &Net| net.nodes[&1].status().progress[&2].state;
    assert_eq!(state(&net), crate::ProgressState::Replicate);
    net.node(1).report_unreachable(2);
    assert_eq!(state(&net), crate::ProgressState::Probe);
    net.node(1).propose(b"x".to_vec()).unwrap();
    net.stabilize();
    assert_eq!(state(&net), crate::ProgressState::Replicate);
    assert_eq!(net.data_applied(2), vec![b"x".to_vec()]);
}

#[test]
fn section_4_learners_do_not_count_towards_commit() {
    let mut net = Net::new(3);
    net.nodes
        .insert(4, RawNode::new(&config(4), MemStorage::new()).unwrap());
    net.elect(1);
    net.node(1).propose(b"warm-up".to_vec()).unwrap();
    net.stabilize();
    net.node(1)
        .propose_conf_change(cc(ConfChangeType::AddLearner, 4))
        .unwrap();
    net.stabilize();
    let commit = net.commit(1);
    net.isolate(2);
    net.isolate(3);
    net.node(1).propose(b"needs a voter".to_vec()).unwrap();
    net.stabilize();
    assert_eq!(net.commit(1), commit, "leader plus learner is no majority");
    assert_eq!(net.nodes[&4].last_index(), net.nodes[&1].last_index());
}

#[test]
fn stale_acknowledgement_does_not_restart_pipelining() {
    let mut net = Net::new(2);
    net.elect(1);
    net.node(1).report_unreachable(2);
    net.node(1).propose(b"x".to_vec()).unwrap();
    net.process(1);
    net.queue.clear();
    let matched = net.nodes[&1].status().progress[&2].matched;
    let term = net.term(1);
    // A duplicate of an old acknowledgement arrives while the probe is out.
    net.node(1)
        .step(Message {
            msg_type: MessageType::AppendResponse,
            from: 2,
            to: 1,
            term,
            index: matched,
            ..Message::default()
        })
        .unwrap();
    assert_eq!(
        net.nodes[&1].status().progress[&2].state,
        crate::ProgressState::Probe
    );
    net.tick_all(2);
    assert_eq!(net.data_applied(2), vec![b"x".to_vec()]);
}

/// Flow control (raft-rs's `max_uncommitted_entries_size`): a leader that cannot commit stops
/// taking proposals once its uncommitted entries reach the limit, and takes them again once
/// they commit.
#[test]
fn a_leader_refuses_proposals_beyond_its_uncommitted_limit() {
    let mut net = Net::with(3, |id| Config {
        max_uncommitted_entries_size: 100,
        ..config(id)
    });
    net.elect(1);
    net.isolate(1);
    for _ in 0..2 {
        net.node(1).propose(vec![0; 40]).unwrap();
    }
    assert_eq!(
        net.node(1).propose(vec![0; 40]),
        Err(Error::ProposalDropped)
    );
    net.heal();
    net.stabilize();
    net.node(1).propose(vec![0; 40]).unwrap();
}
