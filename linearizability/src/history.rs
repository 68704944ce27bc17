//! What clients did: one [`Operation`] per call, with the times it was sent and answered.

use std::fmt;

use crate::Error;

/// A register value. Clients write unique values, so a read names the write it saw.
pub type Value = u64;

/// What a client asked of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Read,
    Write(Value),
    /// Set the key to `new` if it holds `expect` now.
    Cas {
        expect: Value,
        new: Value,
    },
}

/// What the client was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// The value read; `None` when the key did not exist.
    Read(Option<Value>),
    Write,
    /// Whether the compare held and the write took place.
    Cas(bool),
    /// The compare failed, and a read in the same transaction found this value.
    CasFailed(Option<Value>),
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered at `at` with `ret`.
    Done { at: u64, ret: Ret },
    /// Never answered, timed out, or failed in a way that leaves open whether it took effect:
    /// it may have happened at any point after its invocation, or never.
    Indeterminate,
}

/// One call of one client on one key. Times are in any monotonic unit (the chaos tool uses
/// nanoseconds since its start); only their order matters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    pub client: u32,
    pub key: String,
    pub call: Call,
    pub invoke: u64,
    pub outcome: Outcome,
}

impl Operation {
    /// The completion time, `u64::MAX` for an indeterminate call: it may take effect at any
    /// point after its invocation.
    pub fn complete(&self) -> u64 {
        match self.outcome {
            Outcome::Done { at, .. } => at,
            Outcome::Indeterminate => u64::MAX,
        }
    }

    /// Whether the call and its answer agree in kind and the answer does not precede the call.
    pub fn validate(&self) -> Result<(), Error> {
        if let Outcome::Done { at, ret } = self.outcome {
            let agree = matches!(
                (self.call, ret),
                (Call::Read, Ret::Read(_))
                    | (Call::Write(_), Ret::Write)
                    | (Call::Cas { .. }, Ret::Cas(_) | Ret::CasFailed(_))
            );
            if !agree {
                return Err(Error::Mismatch(self.to_string()));
            }
            if at < self.invoke {
                return Err(Error::AnsweredBeforeCalled(self.to_string()));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match self.call {
            Call::Read => "read".to_string(),
            Call::Write(v) => format!("write {v}"),
            Call::Cas { expect, new } => format!("cas {expect}->{new}"),
        };
        let ret = match self.outcome {
            Outcome::Indeterminate => "?".to_string(),
            Outcome::Done { ret, .. } => match ret {
                Ret::Read(Some(v)) => v.to_string(),
                Ret::Read(None) => "absent".to_string(),
                Ret::Write => "ok".to_string(),
                Ret::Cas(true) => "ok".to_string(),
                Ret::Cas(false) => "fail".to_string(),
                Ret::CasFailed(Some(v)) => format!("fail, saw {v}"),
                Ret::CasFailed(None) => "fail, saw absent".to_string(),
            },
        };
        let end = match self.outcome {
            Outcome::Done { at, .. } => at.to_string(),
            Outcome::Indeterminate => "never".to_string(),
        };
        write!(
            f,
            "[{:>12} .. {:>12}] client {:>3} {} {call} => {ret}",
            self.invoke, end, self.client, self.key
        )
    }
}
