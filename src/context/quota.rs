//! [`Quota`]: a token bucket's size and refill, as configured.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::gcra::Gcra;
use super::meter::Meter;
use super::window::{Calendar, MAX_WINDOW_LIMIT, UtcOffset, Window};
use crate::ConfigError;

/// A token bucket: it holds `burst` tokens and refills `rate` tokens per
/// `period`; or a calendar window ([`Quota::per_calendar`]): `limit`
/// requests from one boundary of an hour, day or month to the next. One
/// request costs one token unless its route says otherwise.
///
/// A rate limit smooths bursts: its tokens come back continuously. A
/// quota in a calendar window counts usage in a period a person reads on a
/// calendar: spent, it admits nothing until the boundary, then its whole
/// limit at once.
///
/// Values are checked when a layer is built: zero or overflowing values are
/// configuration errors, not panics.
///
/// ```
/// use std::time::Duration;
/// use tollgate::rate_limit::Quota;
///
/// // 50 requests a second on average, bursts of up to 200.
/// let quota = Quota::per_second(50).burst(200);
/// assert_eq!(quota.burst_size(), 200);
/// assert_eq!(quota.replenish_interval(), Duration::from_millis(20));
/// // Without `burst`, the bucket holds one period's worth.
/// assert_eq!(Quota::per_minute(600).burst_size(), 600);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Quota {
    rate: u64,
    period: Duration,
    burst: Option<u64>,
    name: Option<Arc<str>>,
    code: Option<Arc<str>>,
    sharing: Sharing,
    /// A calendar window instead of a bucket: its period and offset.
    window: Option<(Calendar, UtcOffset)>,
}

/// Whether a quota's bucket belongs to its route or to its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sharing {
    /// The route's own: one bucket per (partition, route).
    Own,
    /// A stand-in for the shared quota of this name, until the gate puts
    /// the declared one in its place.
    Reference,
    /// One bucket per (partition, name), whichever route draws from it.
    Shared,
}

/// The longest period a quota may have.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 60 * 60);

impl Quota {
    /// `rate` tokens per `period`.
    pub const fn per(rate: u64, period: Duration) -> Self {
        Self {
            rate,
            period,
            burst: None,
            name: None,
            code: None,
            sharing: Sharing::Own,
            window: None,
        }
    }

    /// `limit` requests in each calendar window (an hour, a day, a month),
    /// aligned to UTC unless [`utc_offset`](Self::utc_offset) says
    /// otherwise: spent, the quota refuses until the next boundary (its
    /// `Retry-After` and reset say when), then admits its whole limit again.
    /// Stacks with buckets on the same route.
    ///
    /// ```
    /// use tollgate::rate_limit::{Calendar, Quota};
    ///
    /// // Bursts of 10, and 30 a day (UTC).
    /// let quotas = [Quota::per_second(1).burst(10), Quota::per_calendar(30, Calendar::Day)];
    /// assert_eq!(quotas[1].calendar(), Some(Calendar::Day));
    /// ```
    pub const fn per_calendar(limit: u64, calendar: Calendar) -> Self {
        let mut quota = Self::per(limit, Duration::from_secs(calendar.nominal_seconds()));
        quota.window = Some((calendar, UtcOffset::UTC));
        quota
    }

    /// Aligns a calendar window's boundaries to `offset` (default UTC):
    /// with `+02:00`, a day begins at 22:00 UTC. No effect on a bucket.
    #[must_use]
    pub const fn utc_offset(mut self, offset: UtcOffset) -> Self {
        if let Some((calendar, _)) = self.window {
            self.window = Some((calendar, offset));
        }
        self
    }

    /// The calendar window's period, for a quota made by
    /// [`per_calendar`](Self::per_calendar).
    pub fn calendar(&self) -> Option<Calendar> {
        self.window.map(|(calendar, _)| calendar)
    }

    /// The calendar window's UTC offset.
    pub fn offset(&self) -> Option<UtcOffset> {
        self.window.map(|(_, offset)| offset)
    }

    /// The shared quota named `name`, declared once on the gate
    /// ([`GateBuilder::shared_quota`](crate::gate::GateBuilder::shared_quota),
    /// or `[shared_quotas]` in a configuration file, where a route lists it
    /// by its name: `quotas = ["sdk"]`). Every route listing it draws from
    /// one bucket per partition, while each keeps its own other settings.
    /// An undeclared name is a start-up error naming the route.
    ///
    /// ```
    /// use tollgate::gate::{Gate, RoutePolicy};
    /// use tollgate::key::InMemoryKeyStore;
    /// use tollgate::rate_limit::Quota;
    ///
    /// let gate = Gate::builder(InMemoryKeyStore::new())
    ///     .shared_quota(Quota::per_minute(600).named("sdk"))
    ///     .route("POST /v1/events", RoutePolicy::new().quota(Quota::shared("sdk")))
    ///     .route("GET /v1/flags", RoutePolicy::new().quotas([Quota::per_second(5), Quota::shared("sdk")]))
    ///     .build();
    /// assert!(gate.is_ok());
    /// ```
    pub fn shared(name: impl Into<Arc<str>>) -> Self {
        let mut quota = Self::per(0, Duration::ZERO);
        quota.name = Some(name.into());
        quota.sharing = Sharing::Reference;
        quota
    }

    /// Whether this stands for a shared quota declared on the gate.
    pub fn is_shared_reference(&self) -> bool {
        self.sharing == Sharing::Reference
    }

    /// Whether its bucket is shared by every route that lists it.
    pub fn is_shared(&self) -> bool {
        self.sharing == Sharing::Shared
    }

    /// This quota, as the declared shared quota every reference to its name
    /// stands for.
    pub(crate) fn into_shared(mut self) -> Self {
        self.sharing = Sharing::Shared;
        self
    }

    /// `rate` tokens per second.
    pub const fn per_second(rate: u64) -> Self {
        Self::per(rate, Duration::from_secs(1))
    }

    /// `rate` tokens per minute.
    pub const fn per_minute(rate: u64) -> Self {
        Self::per(rate, Duration::from_secs(60))
    }

    /// `rate` tokens per hour.
    pub const fn per_hour(rate: u64) -> Self {
        Self::per(rate, Duration::from_secs(60 * 60))
    }

    /// `rate` tokens per day.
    pub const fn per_day(rate: u64) -> Self {
        Self::per(rate, Duration::from_secs(24 * 60 * 60))
    }

    /// Sets the bucket's capacity (default: `rate`).
    #[must_use]
    pub const fn burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Names the quota in rate-limit headers and errors (default: the route's
    /// name, with `#2`, `#3`… for stacked quotas).
    #[must_use]
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Refuses with this code (429 unless a code map says otherwise)
    /// instead of `rate_limited`, so that each quota of a stack can have its
    /// own — `daily_quota_exceeded` beside `too_many_requests`. Checked when
    /// the layer is built.
    #[must_use]
    pub fn code(mut self, code: impl Into<Arc<str>>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The code it refuses with, if set.
    pub fn refusal_code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The bucket's capacity.
    pub fn burst_size(&self) -> u64 {
        self.burst.unwrap_or(self.rate)
    }

    /// Tokens added per period.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The time one token takes to come back.
    pub fn replenish_interval(&self) -> Duration {
        match self.rate {
            0 => Duration::MAX,
            rate => Duration::from_nanos(nanos(self.period) / rate),
        }
    }

    /// The name, if set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn meter(&self) -> Result<Meter, ConfigError> {
        let fail = |reason: String| Err(ConfigError::new("quota", reason));
        if self.sharing == Sharing::Reference {
            return fail(format!(
                "no shared quota named `{}` is declared",
                self.name.as_deref().unwrap_or_default()
            ));
        }
        if let Some((calendar, offset)) = self.window {
            if self.burst.is_some() {
                return fail(format!(
                    "{self:?}: a calendar window has a limit, not a burst"
                ));
            }
            if self.rate == 0 || self.rate > MAX_WINDOW_LIMIT {
                return fail(format!(
                    "{self:?}: the limit must be between 1 and {MAX_WINDOW_LIMIT}"
                ));
            }
            return Ok(Meter::Window(Window::new(calendar, offset, self.rate)));
        }
        if self.rate == 0 {
            return fail(format!("{self:?}: the rate must be at least 1"));
        }
        if self.period.is_zero() || self.period > MAX_PERIOD {
            return fail(format!(
                "{self:?}: the period must be between 1 ns and 366 days"
            ));
        }
        let burst = self.burst_size();
        if burst == 0 {
            return fail(format!("{self:?}: the burst must be at least 1"));
        }
        let emission = nanos(self.period) / self.rate;
        if emission == 0 {
            return fail(format!("{self:?}: more than one token per nanosecond"));
        }
        let Some(tolerance) = emission
            .checked_mul(burst)
            .filter(|t| *t <= nanos(MAX_PERIOD) * 16)
        else {
            return fail(format!("{self:?}: the burst takes too long to refill"));
        };
        Ok(Meter::Bucket(Gcra::new(emission, tolerance, burst)))
    }
}

/// A quota as a configuration file writes it:
/// `{ rate = 50, per = "second", burst = 200, name = "…" }`, or a calendar
/// window `{ limit = 30, window = "day", utc_offset = "+02:00" }`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<Calendar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    utc_offset: Option<UtcOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Period {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    const ALL: [Period; 4] = [Period::Second, Period::Minute, Period::Hour, Period::Day];

    fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }
}

/// Reads `{ rate, per, burst, name, code }`, `per` one of `second`, `minute`,
/// `hour`, `day`, or a bare string naming a shared quota (see
/// [`Quota::shared`]). (Values are checked when a layer is built.)
impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Quota;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quota `{ rate, per, burst }` or the name of a shared quota")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Quota, E> {
                Ok(Quota::shared(name))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Quota, A::Error> {
                use serde::de::Error;
                let fields =
                    QuotaFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let mut quota = match fields {
                    QuotaFields {
                        rate: Some(rate),
                        per: Some(per),
                        limit: None,
                        window: None,
                        utc_offset: None,
                        ..
                    } => Quota::per(rate, Duration::from_secs(per.seconds())),
                    QuotaFields {
                        limit: Some(limit),
                        window: Some(window),
                        rate: None,
                        per: None,
                        burst: None,
                        utc_offset,
                        ..
                    } => Quota::per_calendar(limit, window)
                        .utc_offset(utc_offset.unwrap_or_default()),
                    QuotaFields {
                        window: Some(_), ..
                    } => {
                        return Err(A::Error::custom(
                            "a calendar window is `{ limit, window, utc_offset }`: `limit` is required, `rate`, `per` and `burst` belong to buckets",
                        ));
                    }
                    _ => {
                        return Err(A::Error::custom(
                            "a quota is `{ rate, per, burst }` (a bucket) or `{ limit, window }` (a calendar window)",
                        ));
                    }
                };
                quota.burst = fields.burst;
                quota.name = fields.name.map(Arc::from);
                quota.code = fields.code.map(Arc::from);
                Ok(quota)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Writes `{ rate, per, burst, name }`; a quota whose period is not one
/// second, minute, hour or day cannot be written.
impl Serialize for Quota {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.sharing == Sharing::Reference {
            return serializer.serialize_str(self.name.as_deref().unwrap_or_default());
        }
        if let Some((calendar, offset)) = self.window {
            return QuotaFields {
                rate: None,
                per: None,
                limit: Some(self.rate),
                window: Some(calendar),
                utc_offset: (offset != UtcOffset::UTC).then_some(offset),
                burst: None,
                name: self.name.as_deref().map(str::to_owned),
                code: self.code.as_deref().map(str::to_owned),
            }
            .serialize(serializer);
        }
        let per = Period::ALL
            .into_iter()
            .find(|period| Duration::from_secs(period.seconds()) == self.period)
            .ok_or_else(|| {
                serde::ser::Error::custom(format!(
                    "{self:?}: only periods of a second, minute, hour or day can be written"
                ))
            })?;
        QuotaFields {
            rate: Some(self.rate),
            per: Some(per),
            limit: None,
            window: None,
            utc_offset: None,
            burst: self.burst,
            name: self.name.as_deref().map(str::to_owned),
            code: self.code.as_deref().map(str::to_owned),
        }
        .serialize(serializer)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sharing == Sharing::Reference {
            return write!(
                f,
                "Quota(shared \"{}\")",
                self.name.as_deref().unwrap_or_default()
            );
        }
        match self.window {
            Some((calendar, offset)) => {
                write!(f, "Quota({} a {}, {offset})", self.rate, calendar.as_str())?
            }
            None => write!(
                f,
                "Quota({}/{:?}, burst {})",
                self.rate,
                self.period,
                self.burst_size()
            )?,
        }
        if let Some(name) = &self.name {
            write!(f, " \"{name}\"")?;
        }
        Ok(())
    }
}
