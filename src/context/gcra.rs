//! The generic cell rate algorithm: a token bucket kept as one number, the
//! theoretical arrival time (TAT) of the next request.
//!
//! A bucket with emission interval `T` (the time one token takes to come
//! back) and capacity `burst` has tolerance `τ = burst × T`. A request
//! costing `n` tokens at time `now` moves the TAT to `max(TAT, now) + n×T`,
//! and is allowed when that is at most `now + τ`. The bucket is full when
//! `TAT ≤ now`. Times are nanoseconds on the store's clock.

use crate::clock::Nanos;

/// One quota's parameters, precomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gcra {
    emission: Nanos,
    tolerance: Nanos,
    burst: u64,
}

/// The state of one bucket after a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QuotaState {
    /// The bucket's capacity.
    pub limit: u64,
    /// Tokens left after this request.
    pub remaining: u64,
    /// Nanoseconds until the bucket is full again.
    pub reset_after: Nanos,
    /// Nanoseconds for the bucket to refill from empty; for a calendar
    /// window, the current window's length.
    pub window: Nanos,
    /// A calendar window: its tokens all come back at `reset_after`.
    pub calendar: bool,
}

impl QuotaState {
    /// Nanoseconds until one more token is available: 0 when the bucket is
    /// full; for a refused request of cost 1, its retry time.
    pub fn next_after(&self) -> Nanos {
        if self.calendar {
            return if self.remaining > 0 {
                0
            } else {
                self.reset_after
            };
        }
        if self.limit == 0 || self.remaining >= self.limit {
            return 0;
        }
        // The tolerance is exactly `limit` emission intervals.
        let emission = self.window / self.limit;
        self.reset_after
            .saturating_add((self.remaining + 1).saturating_mul(emission))
            .saturating_sub(self.window)
    }
}

impl Gcra {
    pub(crate) const fn new(emission: Nanos, tolerance: Nanos, burst: u64) -> Self {
        Self {
            emission,
            tolerance,
            burst,
        }
    }

    /// The TAT after admitting `cost` tokens at `now`, or how long until that
    /// would be allowed.
    #[inline]
    pub(crate) fn admit(&self, tat: Nanos, now: Nanos, cost: u64) -> Result<Nanos, Nanos> {
        let increment = self.emission.saturating_mul(cost);
        let new_tat = tat.max(now).saturating_add(increment);
        let allowed_at = new_tat.saturating_sub(self.tolerance);
        if allowed_at <= now {
            Ok(new_tat)
        } else {
            Err(allowed_at - now)
        }
    }

    /// The TAT after taking `tokens` more at `now` (beyond the tolerance,
    /// into debt) or giving `-tokens` back (never past full).
    pub(crate) fn adjust(&self, tat: Nanos, now: Nanos, tokens: i64) -> Nanos {
        let base = tat.max(now);
        let change = self.increment(tokens.unsigned_abs());
        if tokens >= 0 {
            base.saturating_add(change)
        } else {
            base.saturating_sub(change).max(now)
        }
    }

    /// What `cost` tokens are worth in TAT.
    pub(crate) fn increment(&self, cost: u64) -> Nanos {
        self.emission.saturating_mul(cost)
    }

    /// The bucket's state at `now` when its TAT is `tat`.
    #[inline]
    pub(crate) fn state(&self, tat: Nanos, now: Nanos) -> QuotaState {
        let debt = tat.saturating_sub(now);
        QuotaState {
            limit: self.burst,
            remaining: self.tolerance.saturating_sub(debt) / self.emission,
            reset_after: debt,
            window: self.tolerance,
            calendar: false,
        }
    }

    pub(crate) fn burst(&self) -> u64 {
        self.burst
    }

    /// One of `instances` equal shares of this quota: the burst divided
    /// (at least `cost`, so a request can still pass), the refill slowed as
    /// many times. `instances` processes each deciding by its share admit
    /// about the whole quota together (the Redis store's local share).
    #[cfg(feature = "redis")]
    pub(crate) fn share(&self, instances: u64, cost: u64) -> Self {
        let instances = instances.max(1);
        let burst = (self.burst / instances).max(cost).max(1);
        let emission = self.emission.saturating_mul(instances);
        Self::new(emission, emission.saturating_mul(burst), burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    #[test]
    fn a_full_bucket_admits_exactly_burst() {
        let gcra = Gcra::new(SECOND, 3 * SECOND, 3);
        let mut tat = 0;
        let now = 10 * SECOND;
        for expected_remaining in [2, 1, 0] {
            tat = gcra.admit(tat, now, 1).unwrap();
            assert_eq!(gcra.state(tat, now).remaining, expected_remaining);
        }
        assert_eq!(gcra.admit(tat, now, 1), Err(SECOND));
        // Waiting exactly the retry time is enough.
        assert!(gcra.admit(tat, now + SECOND, 1).is_ok());
    }

    #[test]
    fn state_reports_reset_and_window() {
        let gcra = Gcra::new(SECOND, 3 * SECOND, 3);
        let tat = gcra.admit(0, 0, 2).unwrap();
        let state = gcra.state(tat, 0);
        assert_eq!(
            state,
            QuotaState {
                limit: 3,
                remaining: 1,
                reset_after: 2 * SECOND,
                window: 3 * SECOND,
                calendar: false,
            }
        );
        assert_eq!(gcra.state(tat, 5 * SECOND).remaining, 3);
    }

    #[test]
    fn next_after_is_the_time_until_one_more_token() {
        let gcra = Gcra::new(SECOND, 3 * SECOND, 3);
        assert_eq!(gcra.state(0, 0).next_after(), 0, "full");
        let tat = gcra.admit(0, 0, 1).unwrap();
        assert_eq!(gcra.state(tat, 0).next_after(), SECOND);
        assert_eq!(gcra.state(tat, SECOND / 4).next_after(), 3 * SECOND / 4);
        let tat = gcra.admit(tat, 0, 2).unwrap();
        let empty = gcra.state(tat, SECOND / 2);
        assert_eq!((empty.remaining, empty.reset_after), (0, 5 * SECOND / 2));
        assert_eq!(empty.next_after(), SECOND / 2);
        // A refused request of cost 1 may retry exactly then.
        assert_eq!(gcra.admit(tat, SECOND / 2, 1), Err(empty.next_after()));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_share_holds_its_part_of_the_burst_and_refills_as_slowly() {
        let gcra = Gcra::new(SECOND, 30 * SECOND, 30);
        let share = gcra.share(3, 1);
        assert_eq!(share.burst(), 10);
        assert_eq!(share.increment(1), 3 * SECOND);
        let mut tat = 0;
        for _ in 0..10 {
            tat = share.admit(tat, 0, 1).unwrap();
        }
        assert_eq!(share.admit(tat, 0, 1), Err(3 * SECOND));
        // Never below one request's cost.
        assert_eq!(Gcra::new(SECOND, 2 * SECOND, 2).share(8, 1).burst(), 1);
        assert_eq!(Gcra::new(SECOND, 4 * SECOND, 4).share(8, 3).burst(), 3);
    }

    #[test]
    fn cost_over_burst_is_never_admitted() {
        let gcra = Gcra::new(SECOND, 2 * SECOND, 2);
        assert!(gcra.admit(0, 100 * SECOND, 3).is_err());
    }
}
