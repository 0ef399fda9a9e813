//! [`Meter`]: what a quota counts with — a token bucket (GCRA) or a
//! calendar window — behind one interface, so that every store decides,
//! stacks, undoes and evicts both the same way (one `u64` of state each).

use super::gcra::{Gcra, QuotaState};
use super::window::Window;
use crate::clock::Nanos;

/// A quota's counting rule, precomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Meter {
    /// A token bucket refilling continuously; its state is the TAT.
    Bucket(Gcra),
    /// A calendar window; its state is the window's end plus its count.
    Window(Window),
}

impl Meter {
    /// The state after admitting `cost` at `now` (on a timeline whose 0 is
    /// Unix nanosecond `epoch`), or how long until that would be allowed.
    #[inline]
    pub(crate) fn admit(
        &self,
        state: Nanos,
        now: Nanos,
        epoch: u64,
        cost: u64,
    ) -> Result<Nanos, Nanos> {
        match self {
            Self::Bucket(gcra) => gcra.admit(state, now, cost),
            Self::Window(window) => window.admit(state, now, epoch, cost),
        }
    }

    /// The state after taking `tokens` more (beyond what it holds, into
    /// debt) or giving `-tokens` back (never past full), at `now`.
    pub(crate) fn adjust(&self, state: Nanos, now: Nanos, epoch: u64, tokens: i64) -> Nanos {
        match self {
            Self::Bucket(gcra) => {
                let base = state.max(now);
                let change = gcra.increment(tokens.unsigned_abs());
                if tokens >= 0 {
                    base.saturating_add(change)
                } else {
                    base.saturating_sub(change).max(now)
                }
            }
            Self::Window(window) => window.adjust(state, now, epoch, tokens),
        }
    }

    /// What `cost` is worth in state (to undo an admission).
    #[inline]
    pub(crate) fn increment(&self, cost: u64) -> Nanos {
        match self {
            Self::Bucket(gcra) => gcra.increment(cost),
            Self::Window(_) => cost,
        }
    }

    /// The quota's state at `now` for headers.
    #[inline]
    pub(crate) fn state(&self, state: Nanos, now: Nanos, epoch: u64) -> QuotaState {
        match self {
            Self::Bucket(gcra) => gcra.state(state, now),
            Self::Window(window) => window.state(state, now, epoch),
        }
    }

    /// Its capacity: the bucket's burst, or the window's limit.
    pub(crate) fn burst(&self) -> u64 {
        match self {
            Self::Bucket(gcra) => gcra.burst(),
            Self::Window(window) => window.limit(),
        }
    }

    /// The window, if it is one.
    pub(crate) fn window(&self) -> Option<&Window> {
        match self {
            Self::Bucket(_) => None,
            Self::Window(window) => Some(window),
        }
    }

    /// The state of a quota as a shared store reports it: for a bucket,
    /// its debt (how far its TAT is ahead), aged by `age` nanoseconds since
    /// the report; for a window, the requests counted in the current window.
    #[cfg(feature = "redis")]
    pub(crate) fn reported(&self, reported: u64, age: Nanos, now: Nanos, epoch: u64) -> QuotaState {
        match self {
            Self::Bucket(gcra) => gcra.state(reported.saturating_sub(age), 0),
            Self::Window(window) => window.state(window.holding(reported, now, epoch), now, epoch),
        }
    }

    /// One of `instances` equal shares (the Redis store's local share).
    #[cfg(feature = "redis")]
    pub(crate) fn share(&self, instances: u64, cost: u64) -> Self {
        match self {
            Self::Bucket(gcra) => Self::Bucket(gcra.share(instances, cost)),
            Self::Window(window) => Self::Window(window.share(instances, cost)),
        }
    }
}

impl From<Gcra> for Meter {
    fn from(gcra: Gcra) -> Self {
        Self::Bucket(gcra)
    }
}
