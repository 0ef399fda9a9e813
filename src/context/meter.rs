//! [`Meter`]: what a quota counts with — a token bucket (GCRA) or a
//! calendar window — behind one interface, so that every store decides,
//! stacks, undoes and evicts both the same way (one `u64` of state each).

use super::credits::Credits;
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
    /// A key's credits; its state is what the key spent (see
    /// [`credits`](super::credits)).
    Credits(Credits),
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
            Self::Credits(credits) => credits.admit(state, now, epoch, cost),
        }
    }

    /// [`admit`](Self::admit), and the quota's [`state`](Self::state)
    /// after it (for a window, its bounds computed once).
    #[inline]
    pub(crate) fn admit_state(
        &self,
        state: Nanos,
        now: Nanos,
        epoch: u64,
        cost: u64,
    ) -> Result<(Nanos, QuotaState), Nanos> {
        match self {
            Self::Window(window) => window.admit_state(state, now, epoch, cost),
            Self::Bucket(gcra) => gcra
                .admit(state, now, cost)
                .map(|next| (next, gcra.state(next, now))),
            Self::Credits(credits) => credits
                .admit(state, now, epoch, cost)
                .map(|next| (next, credits.state(next, now, epoch))),
        }
    }

    /// The state after taking `tokens` more (beyond what it holds, into
    /// debt) or giving `-tokens` back (never past full), at `now`.
    /// Undoing an admission of `cost` is giving `cost` back.
    #[inline]
    pub(crate) fn adjust(&self, state: Nanos, now: Nanos, epoch: u64, tokens: i64) -> Nanos {
        match self {
            Self::Bucket(gcra) => gcra.adjust(state, now, tokens),
            Self::Window(window) => window.adjust(state, now, epoch, tokens),
            Self::Credits(credits) => credits.adjust(state, now, epoch, tokens),
        }
    }

    /// The quota's state at `now` for headers.
    #[inline]
    pub(crate) fn state(&self, state: Nanos, now: Nanos, epoch: u64) -> QuotaState {
        match self {
            Self::Bucket(gcra) => gcra.state(state, now),
            Self::Window(window) => window.state(state, now, epoch),
            Self::Credits(credits) => credits.state(state, now, epoch),
        }
    }

    /// Its capacity: the bucket's burst, or the window's limit.
    pub(crate) fn burst(&self) -> u64 {
        match self {
            Self::Bucket(gcra) => gcra.burst(),
            Self::Window(window) => window.limit(),
            Self::Credits(credits) => credits.allowance(),
        }
    }

    /// The window, if it is one.
    pub(crate) fn window(&self) -> Option<&Window> {
        match self {
            Self::Window(window) => Some(window),
            Self::Bucket(_) | Self::Credits(_) => None,
        }
    }

    /// The credits, if they are.
    pub(crate) fn credits(&self) -> Option<&Credits> {
        match self {
            Self::Credits(credits) => Some(credits),
            Self::Bucket(_) | Self::Window(_) => None,
        }
    }

    /// The state at `now` holding what a shared store reports: for a
    /// bucket, its debt (how far its TAT is ahead of now); for a window,
    /// the requests counted in the current window; for credits, what the
    /// key spent (biased, see [`credits`](super::credits)).
    #[cfg(feature = "redis")]
    pub(crate) fn holding(&self, reported: u64, now: Nanos, epoch: u64) -> Nanos {
        match self {
            Self::Bucket(_) => now.saturating_add(reported),
            Self::Window(window) => window.holding(reported, now, epoch),
            Self::Credits(credits) => credits.holding(reported, now, epoch),
        }
    }

    /// The quota's state as a shared store reported it `age` nanoseconds
    /// ago (a bucket's debt shrinks with age; a window's count does not).
    #[cfg(feature = "redis")]
    pub(crate) fn reported(&self, reported: u64, age: Nanos, now: Nanos, epoch: u64) -> QuotaState {
        let reported = match self {
            Self::Bucket(_) => reported.saturating_sub(age),
            Self::Window(_) | Self::Credits(_) => reported,
        };
        self.state(self.holding(reported, now, epoch), now, epoch)
    }

    /// One of `instances` equal shares (the Redis store's local share).
    #[cfg(feature = "redis")]
    pub(crate) fn share(&self, instances: u64, cost: u64) -> Self {
        match self {
            Self::Bucket(gcra) => Self::Bucket(gcra.share(instances, cost)),
            Self::Window(window) => Self::Window(window.share(instances, cost)),
            Self::Credits(credits) => Self::Credits(credits.share(instances, cost)),
        }
    }
}
