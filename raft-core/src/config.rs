//! Configuration of one raft member.

use crate::error::{Error, Result};

/// How a member behaves. Start from [`Config::new`] and adjust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This member's id; never 0.
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns. The
    /// actual timeout is drawn from `[election_tick, 2 * election_tick)`.
    pub election_tick: usize,
    /// Ticks between leader heartbeats; must be less than `election_tick`.
    pub heartbeat_tick: usize,
    /// The index the application has already applied (on restart).
    pub applied: u64,
    /// The most bytes of entries in one append message.
    pub max_size_per_msg: u64,
    /// The most appends in flight to one follower.
    pub max_inflight_msgs: usize,
    /// The most bytes of entries in flight to one follower.
    pub max_inflight_bytes: u64,
    /// The most bytes of committed entries in one [`crate::Ready`].
    pub max_committed_size_per_ready: u64,
    /// The most bytes of entry data a leader holds uncommitted: beyond it, proposals are
    /// refused with [`crate::Error::ProposalDropped`] until entries commit, so a leader that
    /// cannot reach a quorum does not grow its log without bound. One proposal is always
    /// accepted when nothing is uncommitted, however large. `u64::MAX`: no limit.
    pub max_uncommitted_entries_size: u64,
    /// Run a pre-vote before campaigning, so that a member that cannot win
    /// does not disrupt the cluster by raising the term.
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a quorum within an
    /// election timeout, and followers ignore vote requests while they hear
    /// from a leader (the leader lease).
    pub check_quorum: bool,
    /// The seed of the randomized election timeouts. The member's id is mixed
    /// in, so members may share a seed.
    pub seed: u64,
}

impl Config {
    /// A configuration with the defaults for member `id`.
    pub fn new(id: u64) -> Config {
        Config {
            id,
            ..Config::default()
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::ConfigInvalid(m.to_string()));
        if self.id == 0 {
            return bad("id must not be 0");
        }
        if self.heartbeat_tick == 0 {
            return bad("heartbeat_tick must be positive");
        }
        if self.election_tick <= self.heartbeat_tick {
            return bad("election_tick must exceed heartbeat_tick");
        }
        if self.max_inflight_msgs == 0 {
            return bad("max_inflight_msgs must be positive");
        }
        if self.max_inflight_bytes == 0 {
            return bad("max_inflight_bytes must be positive");
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            id: 0,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            max_inflight_bytes: u64::MAX,
            max_committed_size_per_ready: u64::MAX,
            max_uncommitted_entries_size: u64::MAX,
            pre_vote: true,
            check_quorum: true,
            seed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_values() {
        assert!(Config::new(1).validate().is_ok());
        assert!(Config::default().validate().is_err());
        let c = Config {
            election_tick: 1,
            ..Config::new(1)
        };
        assert!(c.validate().is_err());
        let c = Config {
            max_inflight_msgs: 0,
            ..Config::new(1)
        };
        assert!(c.validate().is_err());
    }
}
