//! [`Credits`]: remaining uses on a key, refilled on a calendar boundary or
//! never, and how a rate store counts them (one `u64` each, like a bucket).
//!
//! A key's balance is its allowance (`remaining`, or the refill's `amount`)
//! less what the store counts as spent. The store keeps `net`: credits spent
//! less credits topped up, so a top-up can take the balance above the
//! allowance. At each refill boundary the balance comes back up to the
//! amount and never goes down: `net` becomes `min(net, 0)` (what was left
//! of the allowance is not carried over; top-ups beyond it are).
//!
//! The state is `0` for a key that has spent nothing (as a fresh bucket's
//! is), else `HIGH + end + BIAS + net`, `end` being the monotonic end of the
//! refill period it was written in (0 without a refill). Every written
//! state is above any `now`, so the in-memory store's eviction of full
//! buckets (`state ≤ now`) never drops a key's credits. A state from an
//! earlier period is below the current `end`: its own period is the one
//! that holds `state − HIGH` (`BIAS + net` is shorter than a minute).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::gcra::QuotaState;
use super::window::{Calendar, UtcOffset, Window};
use crate::ConfigError;
use crate::clock::Nanos;

/// Above any monotonic `now` (146 years of nanoseconds).
const HIGH: u64 = 1 << 62;

/// `net` is kept as `BIAS + net`, so that it can be negative.
const BIAS: u64 = 1 << 34;

/// The most credits a key may hold or be topped up by: about 17 billion.
pub const MAX_CREDITS: u64 = BIAS - 1;

/// A refused request's wait where no refill will come: the store says so
/// with this many nanoseconds, and the refusal carries no `Retry-After`.
pub(crate) const NEVER: Nanos = u64::MAX;

/// Remaining uses of one key, with an optional refill. Each request on a
/// route with a key that has credits costs the route's
/// [`cost`](crate::rate_limit::RateLimit::cost) (1 unless it says
/// otherwise); at zero the key is refused with `429 credits_exhausted`
/// until the next refill (or a top-up,
/// [`Gate::top_up_credits`](crate::gate::Gate::top_up_credits)).
///
/// Credits live in the rate store (in memory, or shared through Redis),
/// counted per key id on every route; the key's record only says what it
/// is given.
///
/// ```
/// use tollgate::rate_limit::{Calendar, Credits};
///
/// // 1 000 uses once.
/// let once = Credits::new(1_000);
/// assert_eq!(once.allowance(), 1_000);
/// // 10 000 a month: every month starts with 10 000.
/// let monthly = Credits::refilled(10_000, Calendar::Month);
/// assert_eq!(monthly.refill(), Some(Calendar::Month));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credits {
    allowance: u64,
    refill: Option<(Calendar, UtcOffset)>,
}

impl Credits {
    /// `remaining` uses, never refilled.
    pub const fn new(remaining: u64) -> Self {
        Self {
            allowance: remaining,
            refill: None,
        }
    }

    /// `amount` uses in each calendar period: at each boundary (UTC unless
    /// [`utc_offset`](Self::utc_offset) says otherwise) the balance comes
    /// back up to `amount`. Credits topped up beyond it are kept; what was
    /// left of the amount is not carried over.
    pub const fn refilled(amount: u64, every: Calendar) -> Self {
        Self {
            allowance: amount,
            refill: Some((every, UtcOffset::UTC)),
        }
    }

    /// Aligns the refill's boundaries to `offset`. No effect without a
    /// refill.
    #[must_use]
    pub const fn utc_offset(mut self, offset: UtcOffset) -> Self {
        if let Some((every, _)) = self.refill {
            self.refill = Some((every, offset));
        }
        self
    }

    /// The uses given: the remaining uses, or the refill's amount.
    pub const fn allowance(&self) -> u64 {
        self.allowance
    }

    /// The refill's period, if it has one.
    pub const fn refill(&self) -> Option<Calendar> {
        match self.refill {
            Some((every, _)) => Some(every),
            None => None,
        }
    }

    /// The refill's UTC offset, if it has a refill.
    pub const fn offset(&self) -> Option<UtcOffset> {
        match self.refill {
            Some((_, offset)) => Some(offset),
            None => None,
        }
    }

    /// Checks the numbers: at most [`MAX_CREDITS`], and a refill of at
    /// least 1.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.allowance > MAX_CREDITS {
            return Err(ConfigError::new(
                "credits",
                format!("at most {MAX_CREDITS} credits, not {}", self.allowance),
            ));
        }
        if self.refill.is_some() && self.allowance == 0 {
            return Err(ConfigError::new(
                "credits.refill.amount",
                "a refill gives at least 1 credit",
            ));
        }
        Ok(())
    }

    /// The refill's period as a window (its limit is the amount).
    fn window(&self) -> Option<Window> {
        self.refill
            .map(|(every, offset)| Window::new(every, offset, self.allowance))
    }

    /// The current refill period's start and end on the store's timeline
    /// (`(0, 0)` without a refill).
    #[inline]
    fn period(&self, now: Nanos, epoch: u64) -> (Nanos, Nanos) {
        self.window()
            .map_or((0, 0), |window| window.bounds(now, epoch))
    }

    /// The unix-microsecond end of the current refill period (0 without a
    /// refill): how a shared store tells periods apart.
    #[cfg(feature = "redis")]
    pub(crate) fn period_end_at(&self, wall: u64) -> u64 {
        self.window().map_or(0, |window| window.bounds_at(wall).1)
    }

    /// `net` (spent less topped up) in the current period of `now`.
    #[inline]
    fn net(&self, state: Nanos, now: Nanos, epoch: u64) -> i64 {
        if state < HIGH {
            return 0;
        }
        let written = state - HIGH;
        let (_, end) = self.period(now, epoch);
        if written >= end {
            return unbias(written - end);
        }
        // Written in an earlier period: whose start is its end.
        let earlier = self
            .window()
            .map_or(0, |window| window.bounds(written, epoch).0);
        unbias(written.saturating_sub(earlier)).min(0)
    }

    /// The state holding `net` in the period of `now`.
    #[inline]
    fn holding_net(&self, net: i64, now: Nanos, epoch: u64) -> Nanos {
        let (_, end) = self.period(now, epoch);
        HIGH + end + bias(net)
    }

    /// The state after spending `cost` at `now`, or how long until the
    /// refill (`NEVER` without one) when the balance is short.
    #[inline]
    pub(crate) fn admit(
        &self,
        state: Nanos,
        now: Nanos,
        epoch: u64,
        cost: u64,
    ) -> Result<Nanos, Nanos> {
        let net = self.net(state, now, epoch);
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        if balance(self.allowance, net) >= cost {
            Ok(self.holding_net(net.saturating_add(cost), now, epoch))
        } else {
            Err(self.wait(now, epoch))
        }
    }

    /// Nanoseconds until the next refill, or `NEVER`.
    fn wait(&self, now: Nanos, epoch: u64) -> Nanos {
        match self.refill {
            Some(_) => self.period(now, epoch).1 - now,
            None => NEVER,
        }
    }

    /// The state after spending `tokens` more (into debt, if need be) or
    /// topping up `-tokens` (past the allowance).
    pub(crate) fn adjust(&self, state: Nanos, now: Nanos, epoch: u64, tokens: i64) -> Nanos {
        let net = self.net(state, now, epoch).saturating_add(tokens);
        self.holding_net(net, now, epoch)
    }

    /// The balance at `now` for headers: `limit` the allowance,
    /// `remaining` the balance, reset at the next refill.
    pub(crate) fn state(&self, state: Nanos, now: Nanos, epoch: u64) -> QuotaState {
        let net = self.net(state, now, epoch);
        let (start, end) = self.period(now, epoch);
        QuotaState {
            limit: self.allowance,
            remaining: u64::try_from(balance(self.allowance, net)).unwrap_or(0),
            reset_after: end.saturating_sub(now),
            window: end - start,
            calendar: true,
        }
    }

    /// The state at `now` holding what a shared store reports
    /// (`BIAS + net` in the current period).
    #[cfg(feature = "redis")]
    pub(crate) fn holding(&self, reported: u64, now: Nanos, epoch: u64) -> Nanos {
        self.holding_net(unbias(reported), now, epoch)
    }

    /// One of `instances` equal shares of the allowance (at least `cost`).
    #[cfg(feature = "redis")]
    pub(crate) fn share(&self, instances: u64, cost: u64) -> Self {
        Self {
            allowance: (self.allowance / instances.max(1)).max(cost),
            ..*self
        }
    }
}

/// The balance of `allowance` after `net`.
fn balance(allowance: u64, net: i64) -> i64 {
    i64::try_from(allowance)
        .unwrap_or(i64::MAX)
        .saturating_sub(net)
}

/// `BIAS + net`, `net` kept within what the state can hold.
fn bias(net: i64) -> u64 {
    let limit = MAX_CREDITS as i64;
    (BIAS as i64 + net.clamp(-limit, limit)) as u64
}

fn unbias(biased: u64) -> i64 {
    biased as i64 - BIAS as i64
}

/// Credits as a configuration file writes them: `{ remaining = 1000 }`, or
/// `{ refill = { amount = 10000, interval = "month" } }` (with
/// `utc_offset = "+02:00"` in the refill, UTC by default).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refill: Option<RefillFields>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefillFields {
    amount: u64,
    interval: Calendar,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    utc_offset: Option<UtcOffset>,
}

impl Serialize for Credits {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = match self.refill {
            None => CreditFields {
                remaining: Some(self.allowance),
                refill: None,
            },
            Some((interval, offset)) => CreditFields {
                remaining: None,
                refill: Some(RefillFields {
                    amount: self.allowance,
                    interval,
                    utc_offset: (offset != UtcOffset::UTC).then_some(offset),
                }),
            },
        };
        fields.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Credits {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = CreditFields::deserialize(deserializer)?;
        let credits = match (fields.remaining, fields.refill) {
            (Some(remaining), None) => Self::new(remaining),
            (None, Some(refill)) => Self::refilled(refill.amount, refill.interval)
                .utc_offset(refill.utc_offset.unwrap_or_default()),
            (Some(_), Some(_)) => {
                return Err(D::Error::custom(
                    "credits give `remaining` or a `refill`, not both: with a refill, every \
                     period starts with its amount (top a key up at run time to give it more)",
                ));
            }
            (None, None) => {
                return Err(D::Error::custom(
                    "credits need `remaining = N` or `refill = { amount = N, interval = \"month\" }`",
                ));
            }
        };
        credits
            .check()
            .map_err(|error| D::Error::custom(error.reason()))?;
        Ok(credits)
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.refill {
            None => write!(f, "{} credits", self.allowance),
            Some((every, offset)) => write!(
                f,
                "{} credits a {} ({offset})",
                self.allowance,
                every.as_str()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const DAY: u64 = 86_400 * S;

    #[test]
    fn credits_without_a_refill_run_out_and_stay_out() {
        let credits = Credits::new(3);
        let state = credits.admit(0, 0, 0, 2).unwrap();
        assert_eq!(credits.state(state, 0, 0).remaining, 1);
        assert_eq!(credits.admit(state, 10 * DAY, 0, 2), Err(NEVER));
        assert!(state > 1000 * DAY, "never evicted as a full bucket");
        // A top-up of 4: 5 left, beyond the allowance.
        let state = credits.adjust(state, DAY, 0, -4);
        assert_eq!(credits.state(state, DAY, 0).remaining, 5);
        let state = credits.admit(state, DAY, 0, 5).unwrap();
        assert_eq!(credits.state(state, DAY, 0).remaining, 0);
    }

    #[test]
    fn a_refill_brings_the_balance_back_up_and_keeps_top_ups() {
        // The clock's 0 is 2026-01-01T12:00:00Z.
        let epoch = 20_454 * DAY + DAY / 2;
        let credits = Credits::refilled(3, Calendar::Day);
        let state = credits.admit(0, 0, epoch, 2).unwrap();
        assert_eq!(credits.admit(state, 0, epoch, 2), Err(DAY / 2));
        let at_midnight = DAY / 2;
        assert_eq!(credits.state(state, at_midnight - 1, epoch).remaining, 1);
        assert_eq!(credits.state(state, at_midnight, epoch).remaining, 3);
        // Three days later, nothing carried over.
        let later = at_midnight + 3 * DAY + 5 * S;
        assert_eq!(credits.state(state, later, epoch).remaining, 3);
        // Topped up by 10 with 1 left: 11, and still 11 after the boundary
        // (the allowance of 3 is not added on top).
        let topped = credits.adjust(state, 0, epoch, -10);
        assert_eq!(credits.state(topped, 0, epoch).remaining, 11);
        assert_eq!(credits.state(topped, at_midnight, epoch).remaining, 11);
        let spent = credits.admit(topped, at_midnight, epoch, 10).unwrap();
        assert_eq!(credits.state(spent, at_midnight, epoch).remaining, 1);
        // Spent below the amount: the next day starts at 3.
        assert_eq!(credits.state(spent, at_midnight + DAY, epoch).remaining, 3);
    }

    #[test]
    fn a_monthly_refill_is_read_back_across_months_of_any_length() {
        // 2026-02-27T00:00:00Z.
        let epoch = (20_454 + 31 + 26) * DAY;
        let credits = Credits::refilled(5, Calendar::Month);
        let topped = credits.adjust(0, 0, epoch, -7);
        assert_eq!(credits.state(topped, 0, epoch).remaining, 12);
        // 1 March, then 1 May.
        assert_eq!(credits.state(topped, 2 * DAY, epoch).remaining, 12);
        assert_eq!(credits.state(topped, 70 * DAY, epoch).remaining, 12);
        assert_eq!(credits.state(0, 70 * DAY, epoch).remaining, 5);
    }

    #[test]
    fn files_give_remaining_or_a_refill() {
        let read = |text: &str| toml::from_str::<Credits>(text);
        assert_eq!(read("remaining = 3").unwrap(), Credits::new(3));
        let monthly =
            read("refill = { amount = 100, interval = \"month\", utc_offset = \"+02:00\" }")
                .unwrap();
        assert_eq!(monthly.refill(), Some(Calendar::Month));
        assert_eq!(monthly.offset(), Some("+02:00".parse().unwrap()));
        assert_eq!(
            toml::from_str::<Credits>(&toml::to_string(&monthly).unwrap()).unwrap(),
            monthly
        );
        for bad in [
            "",
            "remaining = 3\nrefill = { amount = 1, interval = \"day\" }",
            "refill = { amount = 0, interval = \"day\" }",
            "refill = { amount = 1, interval = \"week\" }",
            "remaining = 99999999999999",
            "remains = 3",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
