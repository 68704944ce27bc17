//! Majority quorums: committed index and vote counting.
//!
//! Membership changes one member at a time (see [`crate::confchange`]), so
//! only simple majorities are needed.

use std::collections::BTreeMap;

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Not enough answers yet.
    Pending,
    /// A majority refused.
    Lost,
    /// A majority granted.
    Won,
}

/// The number of voters that makes a majority of `n`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The highest index that a majority of `voters` have acknowledged, where
/// `acked(id)` is what voter `id` acknowledged. An empty set commits
/// everything (`u64::MAX`), matching the convention that an empty quorum
/// agrees to anything.
pub fn committed_index(voters: &[u64], acked: impl Fn(u64) -> u64) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let mut v: Vec<u64> = voters.iter().map(|&id| acked(id)).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v[majority(v.len()) - 1]
}

/// Tallies `votes` (voter id → granted) among `voters`.
pub fn vote_result(voters: &[u64], votes: &BTreeMap<u64, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut no) = (0, 0);
    for id in voters {
        match votes.get(id) {
            Some(true) => yes += 1,
            Some(false) => no += 1,
            None => {}
        }
    }
    let q = majority(voters.len());
    if yes >= q {
        VoteResult::Won
    } else if no > voters.len() - q {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Whether the ids for which `has(id)` holds form a majority of `voters`.
pub fn has_quorum(voters: &[u64], has: impl Fn(u64) -> bool) -> bool {
    voters.iter().filter(|&&id| has(id)).count() >= majority(voters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_index_is_the_majority_median() {
        let m: BTreeMap<u64, u64> = [(1, 5), (2, 3), (3, 9)].into();
        assert_eq!(committed_index(&[1, 2, 3], |id| m[&id]), 5);
        let m: BTreeMap<u64, u64> = [(1, 5), (2, 3), (3, 9), (4, 1)].into();
        assert_eq!(committed_index(&[1, 2, 3, 4], |id| m[&id]), 3);
        assert_eq!(committed_index(&[1], |_| 7), 7);
    }

    #[test]
    fn vote_result_outcomes() {
        let voters = [1, 2, 3, 4, 5];
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        votes.insert(2, true);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Pending);
        votes.insert(3, true);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Won);
        let mut votes = BTreeMap::new();
        for id in [1, 2, 3] {
            votes.insert(id, false);
        }
        assert_eq!(vote_result(&voters, &votes), VoteResult::Lost);
    }
}
