//! Calendar windows: a quota counted in a period a person reads on a
//! calendar (an hour, a day, a month), whole again at each boundary.
//!
//! A window's state is one number, like a bucket's TAT: `end + count`, the
//! monotonic nanosecond at which the current window ends plus what it has
//! admitted. A number from an earlier window is below the current end (a
//! window admits fewer requests than it lasts nanoseconds), so it counts as
//! nothing; and the state is at most `now` exactly when its window has
//! ended, so a store's eviction of full buckets (`state ≤ now`) drops
//! finished windows and nothing else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::gcra::QuotaState;
use crate::clock::Nanos;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * NANOS_PER_SECOND;
const HOUR: u64 = 3_600 * NANOS_PER_SECOND;
const DAY: u64 = 24 * HOUR;

/// The most a window may admit: fewer than a minute has nanoseconds, so a
/// state from an earlier window always reads as nothing.
pub(crate) const MAX_WINDOW_LIMIT: u64 = u32::MAX as u64;

/// The period of a calendar window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Calendar {
    /// From one whole minute to the next.
    Minute,
    /// From one whole hour to the next.
    Hour,
    /// From midnight to midnight.
    Day,
    /// From the first of a month at midnight to the first of the next.
    Month,
}

impl Calendar {
    /// Its name in configuration files: `minute`, `hour`, `day`, `month`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The seconds a `RateLimit-Policy` header gives as its window: a
    /// minute, an hour, a day, or 30 days for a month.
    pub const fn nominal_seconds(self) -> u64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Month => 30 * 86_400,
        }
    }
}

/// A UTC offset, whole minutes east of UTC, as a configuration writes it:
/// `"+02:00"`, `"-05:30"`, `"Z"` or `"UTC"`. Time zones with daylight
/// saving time are not offsets: give the offset that applies, or UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UtcOffset {
    seconds: i32,
}

impl UtcOffset {
    /// UTC itself.
    pub const UTC: Self = Self { seconds: 0 };

    /// `minutes` east of UTC (negative: west), at most 18 hours either
    /// way; `None` beyond.
    pub const fn from_minutes(minutes: i32) -> Option<Self> {
        if minutes.abs() > 18 * 60 {
            return None;
        }
        Some(Self {
            seconds: minutes * 60,
        })
    }

    /// Seconds east of UTC.
    pub fn seconds(self) -> i32 {
        self.seconds
    }
}

impl FromStr for UtcOffset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if matches!(text, "Z" | "z" | "UTC" | "utc") {
            return Ok(Self::UTC);
        }
        let bad = || {
            format!("`{text}` is not a UTC offset: write it as \"+02:00\", \"-05:30\" or \"UTC\"")
        };
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let (hours, minutes) = rest.split_once(':').ok_or_else(bad)?;
        if hours.len() != 2 || minutes.len() != 2 {
            return Err(bad());
        }
        let hours: i32 = hours.parse().map_err(|_| bad())?;
        let minutes: i32 = minutes.parse().map_err(|_| bad())?;
        if minutes >= 60 {
            return Err(bad());
        }
        Self::from_minutes(sign * (hours * 60 + minutes))
            .ok_or_else(|| format!("`{text}`: a UTC offset is at most 18 hours"))
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return f.write_str("UTC");
        }
        let sign = if self.seconds < 0 { '-' } else { '+' };
        let minutes = self.seconds.abs() / 60;
        write!(f, "{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

impl Serialize for UtcOffset {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcOffset {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A calendar window's parameters: its period, the offset its boundaries
/// are aligned to, and how much it admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    calendar: Calendar,
    offset: UtcOffset,
    limit: u64,
}

impl Window {
    pub(crate) const fn new(calendar: Calendar, offset: UtcOffset, limit: u64) -> Self {
        Self {
            calendar,
            offset,
            limit,
        }
    }

    pub(crate) fn calendar(&self) -> Calendar {
        self.calendar
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The window holding the Unix time `wall` (nanoseconds, after 1970
    /// in the window's offset): its start and end, in Unix nanoseconds.
    /// Integer arithmetic on `u64` only (divisions by constants, and the
    /// civil calendar for months).
    #[inline]
    pub(crate) fn bounds_at(&self, wall: u64) -> (u64, u64) {
        let offset = i64::from(self.offset.seconds) * NANOS_PER_SECOND as i64;
        let local = wall.saturating_add_signed(offset);
        let period = match self.calendar {
            Calendar::Minute => MINUTE,
            Calendar::Hour => HOUR,
            Calendar::Day => DAY,
            Calendar::Month => return month_bounds(local, offset),
        };
        let start = local - local % period;
        (
            start.saturating_add_signed(-offset),
            (start + period).saturating_add_signed(-offset),
        )
    }

    /// The current window's start and end on the monotonic timeline whose
    /// 0 is Unix time `epoch`.
    #[inline]
    pub(crate) fn bounds(&self, now: Nanos, epoch: u64) -> (Nanos, Nanos) {
        let (start, end) = self.bounds_at(epoch.saturating_add(now));
        (
            start.saturating_sub(epoch),
            end.saturating_sub(epoch).max(now.saturating_add(1)),
        )
    }

    /// The state after admitting `cost` at `now`, or how long until the
    /// window ends (when it would be allowed).
    #[inline]
    pub(crate) fn admit(
        &self,
        state: Nanos,
        now: Nanos,
        epoch: u64,
        cost: u64,
    ) -> Result<Nanos, Nanos> {
        self.admit_state(state, now, epoch, cost)
            .map(|(next, _)| next)
    }

    /// [`admit`](Self::admit) and the [`state`](Self::state) after it,
    /// the window's bounds computed once.
    #[inline]
    pub(crate) fn admit_state(
        &self,
        state: Nanos,
        now: Nanos,
        epoch: u64,
        cost: u64,
    ) -> Result<(Nanos, QuotaState), Nanos> {
        let (start, end) = self.bounds(now, epoch);
        let count = state.saturating_sub(end);
        if count.saturating_add(cost) > self.limit {
            return Err(end - now);
        }
        let count = count + cost;
        Ok((end + count, self.quota_state(count, (start, end), now)))
    }

    /// The state after counting `tokens` more (past the limit, if need
    /// be) or `-tokens` fewer (never below none) in the window of `now`.
    pub(crate) fn adjust(&self, state: Nanos, now: Nanos, epoch: u64, tokens: i64) -> Nanos {
        let (_, end) = self.bounds(now, epoch);
        let count = state.saturating_sub(end);
        let count = if tokens >= 0 {
            count
                .saturating_add(tokens.unsigned_abs())
                .min(MAX_WINDOW_LIMIT * 2)
        } else {
            count.saturating_sub(tokens.unsigned_abs())
        };
        end + count
    }

    /// The window's state at `now` for headers.
    #[inline]
    pub(crate) fn state(&self, state: Nanos, now: Nanos, epoch: u64) -> QuotaState {
        let (start, end) = self.bounds(now, epoch);
        self.quota_state(state.saturating_sub(end), (start, end), now)
    }

    /// What headers say of `count` admitted in the window `(start, end)`.
    #[inline]
    fn quota_state(&self, count: u64, (start, end): (Nanos, Nanos), now: Nanos) -> QuotaState {
        QuotaState {
            limit: self.limit,
            remaining: self.limit.saturating_sub(count),
            reset_after: end - now,
            window: end - start,
            calendar: true,
        }
    }

    /// The state holding `count` admitted in the window of `now` (what a
    /// shared store reports).
    #[cfg(feature = "redis")]
    pub(crate) fn holding(&self, count: u64, now: Nanos, epoch: u64) -> Nanos {
        self.bounds(now, epoch).1.saturating_add(count)
    }

    /// One of `instances` equal shares (at least `cost`).
    #[cfg(feature = "redis")]
    pub(crate) fn share(&self, instances: u64, cost: u64) -> Self {
        Self {
            limit: (self.limit / instances.max(1)).max(cost).max(1),
            ..*self
        }
    }
}

/// The month holding `local` (nanoseconds, local time) as Unix
/// nanoseconds, `offset` being local time's lead on UTC.
#[inline(never)]
fn month_bounds(local: u64, offset: i64) -> (u64, u64) {
    let days = (local / DAY) as i64;
    let (year, month) = year_month(days);
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let first = |year, month| days_from_civil(year, month, 1).max(0) as u64 * DAY;
    (
        first(year, month).saturating_add_signed(-offset),
        first(next_year, next_month).saturating_add_signed(-offset),
    )
}

/// The year and month (1–12) of the day `days` after 1970-01-01 (proleptic
/// Gregorian calendar).
fn year_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32)
}

/// Days from 1970-01-01 to `year`-`month`-`day`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NANOS_PER_SECOND;

    /// Unix nanoseconds of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, h: u64, m: u64, s: u64) -> u64 {
        days_from_civil(year, month, day) as u64 * DAY + (h * 3600 + m * 60 + s) * S
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 1, 1), 20_454);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 1),
            29
        );
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 1),
            28
        );
        for days in [-1, 0, 59, 60, 365, 20_454, 20_513, 100_000] {
            let (year, month) = year_month(days);
            let first = days_from_civil(year, month, 1);
            assert!(first <= days && days - first < 31, "{days}: {year}-{month}");
        }
        assert_eq!(year_month(days_from_civil(2026, 12, 31)), (2026, 12));
        assert_eq!(year_month(days_from_civil(2027, 1, 1)), (2027, 1));
    }

    #[test]
    fn windows_align_to_the_calendar_and_the_offset() {
        let day = Window::new(Calendar::Day, UtcOffset::UTC, 30);
        let noon = at(2026, 3, 14, 12, 0, 0);
        assert_eq!(
            day.bounds_at(noon),
            (at(2026, 3, 14, 0, 0, 0), at(2026, 3, 15, 0, 0, 0))
        );
        let hour = Window::new(Calendar::Hour, UtcOffset::UTC, 30);
        assert_eq!(
            hour.bounds_at(at(2026, 3, 14, 12, 59, 59)).1,
            at(2026, 3, 14, 13, 0, 0)
        );
        let month = Window::new(Calendar::Month, UtcOffset::UTC, 30);
        assert_eq!(
            month.bounds_at(at(2026, 12, 31, 23, 59, 59)),
            (at(2026, 12, 1, 0, 0, 0), at(2027, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            month.bounds_at(at(2028, 2, 29, 8, 0, 0)).1,
            at(2028, 3, 1, 0, 0, 0)
        );
        // Midnight in UTC+02:00 is 22:00 UTC the day before.
        let paris = Window::new(Calendar::Day, "+02:00".parse().unwrap(), 30);
        assert_eq!(
            paris.bounds_at(at(2026, 6, 1, 21, 59, 59)).1,
            at(2026, 6, 1, 22, 0, 0)
        );
        assert_eq!(
            paris.bounds_at(at(2026, 6, 1, 22, 0, 0)).0,
            at(2026, 6, 1, 22, 0, 0)
        );
        let india = Window::new(Calendar::Month, "+05:30".parse().unwrap(), 30);
        assert_eq!(
            india.bounds_at(at(2026, 1, 31, 18, 29, 0)).1,
            at(2026, 1, 31, 18, 30, 0)
        );
    }

    #[test]
    fn a_window_admits_its_limit_then_waits_for_the_boundary() {
        let window = Window::new(Calendar::Day, UtcOffset::UTC, 3);
        let epoch = at(2026, 1, 1, 0, 5, 0);
        let mut state = 0;
        for remaining in [2, 1, 0] {
            state = window.admit(state, 0, epoch, 1).unwrap();
            assert_eq!(window.state(state, 0, epoch).remaining, remaining);
        }
        let until_midnight = (24 * 3600 - 300) as u64 * 1_000_000_000;
        assert_eq!(window.admit(state, 0, epoch, 1), Err(until_midnight));
        assert_eq!(window.state(state, 0, epoch).reset_after, until_midnight);
        assert_eq!(window.state(state, 0, epoch).next_after(), until_midnight);
        // One nanosecond before midnight: still refused; at midnight, whole.
        assert_eq!(window.admit(state, until_midnight - 1, epoch, 1), Err(1));
        assert!(
            state <= until_midnight + 3,
            "a finished window's state is soon at most now: evictable"
        );
        let fresh = window.state(state, until_midnight, epoch);
        assert_eq!((fresh.remaining, fresh.next_after()), (3, 0));
        assert!(window.admit(state, until_midnight, epoch, 3).is_ok());
        assert!(window.admit(state, until_midnight, epoch, 4).is_err());
    }

    #[test]
    fn offsets_read_and_write() {
        for text in ["+02:00", "-05:30", "+14:00"] {
            assert_eq!(text.parse::<UtcOffset>().unwrap().to_string(), text);
        }
        assert_eq!("Z".parse::<UtcOffset>().unwrap(), UtcOffset::UTC);
        assert_eq!("-05:30".parse::<UtcOffset>().unwrap().seconds(), -19_800);
        for bad in ["2", "+2:00", "+02:60", "+19:00", "CET", ""] {
            assert!(bad.parse::<UtcOffset>().is_err(), "{bad}");
        }
    }
}
