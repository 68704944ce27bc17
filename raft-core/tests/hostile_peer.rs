//! Nothing a peer sends can panic a member: messages that break the protocol are refused
//! with [`Error::InvalidMessage`] and leave the log as it was.

use raft_core::{
    ConfState, Config, Entry, EntryType, Error, HardState, MemStorage, Message, MessageType,
    RawNode, StateRole,
};

/// Member 1 of {1, 2}, its log holding entries 1..=3 of term 1, committed to `commit`.
fn follower(commit: u64) -> RawNode<MemStorage> {
    let mut s = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1, 2]));
    s.append(&[
        Entry::new(1, 1, vec![]),
        Entry::new(1, 2, b"a".to_vec()),
        Entry::new(1, 3, b"b".to_vec()),
    ])
    .unwrap();
    s.set_hard_state(HardState {
        term: 1,
        vote: 2,
        commit,
    });
    let mut config = Config::new(1);
    config.pre_vote = false;
    RawNode::new(&config, s).unwrap()
}

fn append(index: u64, log_term: u64, entries: Vec<Entry>) -> Message {
    Message {
        msg_type: MessageType::Append,
        from: 2,
        to: 1,
        term: 2,
        index,
        log_term,
        entries,
        commit: 0,
        ..Message::default()
    }
}

fn refused(r: Result<(), Error>) -> bool {
    matches!(r, Err(Error::InvalidMessage { from: 2, .. }))
}

#[test]
fn an_undecodable_membership_change_is_refused_not_appended() {
    let mut node = follower(1);
    let mut bad = Entry::new(2, 4, vec![0xff, 0x00, 0x13]);
    bad.entry_type = EntryType::ConfChange;
    assert!(refused(node.step(append(3, 1, vec![bad]))));
    assert_eq!(node.last_index(), 3);
    // A sound message from the same leader is taken afterwards.
    node.step(append(3, 1, vec![Entry::new(2, 4, b"c".to_vec())]))
        .unwrap();
    assert_eq!(node.last_index(), 4);
}

#[test]
fn entries_out_of_sequence_are_refused() {
    let mut node = follower(1);
    let gap = vec![Entry::new(2, 4, vec![]), Entry::new(2, 6, vec![])];
    assert!(refused(node.step(append(3, 1, gap))));
    let behind = vec![Entry::new(2, 1, vec![])];
    assert!(refused(node.step(append(3, 1, behind))));
    assert_eq!(node.last_index(), 3);
}

#[test]
fn a_rewrite_of_committed_entries_changes_nothing() {
    let mut node = follower(3);
    // Entry 2 is committed at term 1; a "leader" claims term 2 there.
    let rewrite = vec![Entry::new(2, 2, vec![]), Entry::new(2, 3, vec![])];
    node.step(append(1, 1, rewrite)).unwrap();
    assert_eq!(node.log_term(2).unwrap(), 1);
    assert_eq!(node.log_term(3).unwrap(), 1);
    assert_eq!(node.last_index(), 3);
}

#[test]
fn an_acknowledgement_beyond_the_log_is_refused_by_the_leader() {
    let mut node = follower(1);
    node.campaign();
    let term = node.hard_state().term;
    node.step(Message {
        msg_type: MessageType::RequestVoteResponse,
        from: 2,
        to: 1,
        term,
        ..Message::default()
    })
    .unwrap();
    assert_eq!(node.soft_state().role, StateRole::Leader);
    let ack = Message {
        msg_type: MessageType::AppendResponse,
        from: 2,
        to: 1,
        term,
        index: 1_000_000,
        ..Message::default()
    };
    assert!(refused(node.step(ack)));
    // The leader goes on: heartbeats and appends to member 2 still go out.
    let mut sent = 0;
    for _ in 0..5 {
        node.tick();
        while node.has_ready() {
            let rd = node.ready();
            sent += rd.messages.len() + rd.persisted_messages.len();
            node.mut_store().append(&rd.entries).unwrap();
            if let Some(hs) = rd.hard_state {
                node.mut_store().set_hard_state(hs);
            }
            node.advance(rd);
        }
    }
    assert_eq!(node.soft_state().role, StateRole::Leader);
    assert!(sent > 0);
}
