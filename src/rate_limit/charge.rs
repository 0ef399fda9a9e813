//! Costs decided by the response: [`Cost`], which a handler puts in its
//! response's extensions, and [`Counted`], the statuses a route charges.
//!
//! A route that settles after the response still takes its cost (by
//! default 1) when the request is admitted, so that a spent bucket refuses at once;
//! once the response is made, the request's cost is settled: the
//! response's [`Cost`] if it has one, else the route's, and nothing when
//! its status is not [`Counted`]. The difference is taken from the buckets
//! (beyond what they hold, if need be: a bucket may go into debt) or given
//! back. Settling never delays the response; the next request sees the new
//! level.
//!
//! **Debt.** A request admitted on a bucket's last token whose response
//! costs 37 leaves the bucket 36 tokens in debt: its next requests are
//! refused until the debt has refilled (36 emission intervals), with a
//! `Retry-After` that says so. A calendar window's count may likewise go
//! past its limit; it is refused until its boundary, where the debt is
//! forgotten with the window.

use std::fmt;

use http::{Extensions, StatusCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConfigError;

/// What a request cost, as its handler says in the response's extensions
/// on a route that settles after the response
/// ([`RoutePolicy::cost_from_response`](crate::gate::RoutePolicy::cost_from_response)):
/// a batch of 37 events costs 37.
///
/// ```
/// use tollgate::rate_limit::Cost;
///
/// let mut response = http::Response::new(());
/// response.extensions_mut().insert(Cost(37));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost(pub u64);

/// The response statuses a route charges: `"2xx"` (refunding what the
/// handler refused), `["401", "403"]` (charging only refusals), classes
/// and single statuses mixed.
///
/// ```
/// use http::StatusCode;
/// use tollgate::rate_limit::Counted;
///
/// let success: Counted = "2xx".parse().unwrap();
/// assert!(success.counts(StatusCode::CREATED));
/// assert!(!success.counts(StatusCode::INTERNAL_SERVER_ERROR));
/// let refusals = Counted::of(["401", "403"]).unwrap();
/// assert!(refusals.counts(StatusCode::FORBIDDEN));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Counted {
    patterns: Box<[Pattern]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// `2xx`: a hundred.
    Class(u16),
    Exact(u16),
}

impl Counted {
    /// The statuses `patterns` name (`"2xx"`, `"404"`…).
    pub fn of<I, S>(patterns: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|pattern| Pattern::parse(pattern.as_ref()))
            .collect::<Result<Box<[_]>, _>>()?;
        if patterns.is_empty() {
            return Err(ConfigError::new(
                "count",
                "name at least one status or class (\"2xx\")",
            ));
        }
        Ok(Self { patterns })
    }

    /// Whether a response of `status` is charged.
    pub fn counts(&self, status: StatusCode) -> bool {
        let status = status.as_u16();
        self.patterns.iter().any(|pattern| match pattern {
            Pattern::Class(class) => status / 100 == *class,
            Pattern::Exact(exact) => status == *exact,
        })
    }
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError::new(
                "count",
                format!("`{text}` is not a status (\"404\") or a class (\"2xx\")"),
            )
        };
        let bytes = text.as_bytes();
        if bytes.len() != 3 || !(b'1'..=b'5').contains(&bytes[0]) {
            return Err(bad());
        }
        if &bytes[1..] == b"xx" || &bytes[1..] == b"XX" {
            return Ok(Self::Class(u16::from(bytes[0] - b'0')));
        }
        text.parse::<u16>().map(Self::Exact).map_err(|_| bad())
    }
}

impl std::str::FromStr for Counted {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        Self::of([text])
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Class(class) => write!(f, "{class}xx"),
            Self::Exact(status) => write!(f, "{status}"),
        }
    }
}

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.patterns.iter().map(ToString::to_string))
            .finish()
    }
}

/// `"2xx"` or `["401", "403"]`.
impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(String),
            Many(Vec<String>),
        }
        let patterns = match Written::deserialize(deserializer)? {
            Written::One(one) => vec![one],
            Written::Many(many) => many,
        };
        Self::of(patterns).map_err(|error| serde::de::Error::custom(error.reason()))
    }
}

impl Serialize for Counted {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.patterns.iter().map(ToString::to_string))
    }
}

/// How a route settles its cost after the response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settle {
    /// The response's [`Cost`] is the request's.
    pub(crate) from_response: bool,
    /// Only these statuses are charged.
    pub(crate) counted: Option<Counted>,
}

impl Settle {
    /// What a request that took `upfront` when admitted cost in the end.
    pub(crate) fn cost(&self, upfront: u64, status: StatusCode, extensions: &Extensions) -> u64 {
        if let Some(counted) = &self.counted
            && !counted.counts(status)
        {
            return 0;
        }
        match (self.from_response, extensions.get::<Cost>()) {
            (true, Some(Cost(cost))) => *cost,
            _ => upfront,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_classes() {
        let counted = Counted::of(["401", "5xx"]).unwrap();
        assert!(counted.counts(StatusCode::UNAUTHORIZED));
        assert!(counted.counts(StatusCode::BAD_GATEWAY));
        assert!(!counted.counts(StatusCode::OK));
        for bad in ["2x", "600", "abc", "20x", "0xx"] {
            assert_eq!(Counted::of([bad]).unwrap_err().field(), "count", "{bad}");
        }
        assert!(Counted::of(Vec::<String>::new()).is_err());
    }

    #[test]
    fn the_response_settles_the_cost() {
        let mut extensions = Extensions::new();
        let by_status = Settle {
            from_response: false,
            counted: Some("2xx".parse().unwrap()),
        };
        assert_eq!(by_status.cost(3, StatusCode::OK, &extensions), 3);
        assert_eq!(
            by_status.cost(3, StatusCode::INTERNAL_SERVER_ERROR, &extensions),
            0
        );
        extensions.insert(Cost(37));
        let by_response = Settle {
            from_response: true,
            counted: by_status.counted.clone(),
        };
        assert_eq!(by_response.cost(1, StatusCode::ACCEPTED, &extensions), 37);
        assert_eq!(by_response.cost(1, StatusCode::BAD_REQUEST, &extensions), 0);
        assert_eq!(
            by_status.cost(1, StatusCode::OK, &extensions),
            1,
            "not read"
        );
    }
}
