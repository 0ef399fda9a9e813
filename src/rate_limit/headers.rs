//! Rate-limit response headers: the IETF draft's `RateLimit-Policy` and
//! `RateLimit`, and the legacy `X-RateLimit-*` trio.

use std::fmt::Write;

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};

use super::store::{Bucket, Decision, QuotaSpec, RouteLimits};
use crate::check::ResponseHeaders;
use crate::check::headers::{RATELIMIT, RATELIMIT_POLICY};
use crate::context::credits::NEVER;
use crate::context::gcra::QuotaState;
use crate::error::sentence::digits;
use crate::render::number_value;

/// Which rate-limit headers responses carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RateLimitHeaders {
    /// `RateLimit-Policy: "<policy>";q=<burst>;w=<seconds to refill from empty>`
    /// and `RateLimit: "<policy>";r=<remaining>;t=<seconds until full>`
    /// (IETF draft; the default). Stacked quotas are list members.
    #[default]
    Draft,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
    /// (Unix seconds when full), for the quota with the fewest tokens left.
    Legacy,
    /// Both sets.
    Both,
    /// None (a refusal still carries `Retry-After`).
    None,
}

impl RateLimitHeaders {
    fn draft(self) -> bool {
        matches!(self, Self::Draft | Self::Both)
    }

    fn legacy(self) -> bool {
        matches!(self, Self::Legacy | Self::Both)
    }

    /// The names of the headers a response can carry in this mode: the
    /// mode's own, and `Retry-After` in every mode (a refusal carries it).
    /// What a CORS layer's `Access-Control-Expose-Headers` needs, so that
    /// browser code can read them.
    pub fn names(self) -> &'static [HeaderName] {
        // Draft's, then legacy's: `Retry-After` is in both windows.
        static NAMES: [HeaderName; 6] = [
            RATELIMIT_POLICY,
            RATELIMIT,
            RETRY_AFTER,
            X_LIMIT,
            X_REMAINING,
            X_RESET,
        ];
        match self {
            Self::Draft => &NAMES[..3],
            Self::Legacy => &NAMES[2..6],
            Self::Both => &NAMES[..6],
            Self::None => &NAMES[2..3],
        }
    }
}

const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pub(crate) use crate::clock::{ceil_seconds, retry_after_seconds};

fn push_name(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// The `RateLimit` value: each policy's quoted label, the tokens left
/// (`r`) and the whole seconds until one more is available (`t`, draft 11:
/// for a refused request of cost 1 the same as `Retry-After`). Every
/// policy, in the route's order. The one writer of this header.
///
/// Measured first, then written once into a buffer of exactly its size,
/// which the value keeps: no scratch buffer to clear or move, and no copy
/// (this runs for every response). What [`sentence`](crate::error::sentence)
/// does for messages, without a list of pieces: that costs a gated
/// request about 200 instructions more.
#[inline]
fn draft<L: AsRef<str>>(labels: &[L], states: &[QuotaState]) -> Option<HeaderValue> {
    const SEPARATOR: &[u8] = b", ";
    let numbers = |state: &QuotaState| (state.remaining, ceil_seconds(state.next_after()));
    let mut length = 0;
    for (index, (label, state)) in labels.iter().zip(states).enumerate() {
        let (remaining, seconds) = numbers(state);
        length += usize::from(index > 0) * SEPARATOR.len()
            + label.as_ref().len()
            + ";r=".len()
            + digits(remaining)
            + ";t=".len()
            + digits(seconds);
    }
    let mut out = Vec::with_capacity(length);
    for (index, (label, state)) in labels.iter().zip(states).enumerate() {
        let (remaining, seconds) = numbers(state);
        if index > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(label.as_ref().as_bytes());
        out.extend_from_slice(b";r=");
        out.extend_from_slice(itoa::Buffer::new().format(remaining).as_bytes());
        out.extend_from_slice(b";t=");
        out.extend_from_slice(itoa::Buffer::new().format(seconds).as_bytes());
    }
    debug_assert_eq!(out.len(), length);
    // Of its exact size, the buffer becomes the value's without a copy.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).ok()
}

/// Each quota's label on `route`, quoted and escaped.
pub(crate) fn labels(quotas: &[QuotaSpec], route: &str) -> Box<[Box<str>]> {
    quotas
        .iter()
        .enumerate()
        .map(|(index, quota)| {
            let mut out = String::new();
            push_name(&mut out, &quota.label(route, index));
            out.into_boxed_str()
        })
        .collect()
}

/// The `RateLimit-Policy` value of quotas on `route`.
pub(crate) fn policy(quotas: &[QuotaSpec], route: &str) -> Option<HeaderValue> {
    if quotas.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (index, quota) in quotas.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        push_name(&mut out, &quota.label(route, index));
        let _ = write!(
            out,
            ";q={};w={}",
            quota.burst(),
            ceil_seconds(quota.tolerance_nanos())
        );
    }
    HeaderValue::try_from(out).ok()
}

/// The rate-limit headers of one response, computed when the decision is
/// made and added to whichever response goes out. Held in fields, not a
/// collection: nothing is allocated but the values themselves.
#[derive(Debug, Default)]
pub(crate) struct RateHeaders {
    /// Seconds.
    retry_after: Option<u64>,
    policy: Option<HeaderValue>,
    remaining: Option<HeaderValue>,
    /// Limit, remaining, reset (Unix seconds).
    legacy: Option<[u64; 3]>,
}

impl RateHeaders {
    /// The headers `mode` asks for, describing `decision` on `limits`.
    /// `unix_now` is read only for the legacy reset time.
    pub(crate) fn new(
        mode: RateLimitHeaders,
        limits: &RouteLimits,
        bucket: &Bucket<'_>,
        decision: &Decision,
        unix_now: impl FnOnce() -> u64,
    ) -> Self {
        let states = decision.states();
        let mut headers = Self {
            // Credits with no refill: no time would do.
            retry_after: (!decision.is_allowed() && decision.retry_after() != NEVER)
                .then(|| retry_after_seconds(decision.retry_after())),
            ..Self::default()
        };
        if states.is_empty() {
            return headers;
        }
        if mode.draft() {
            let cached = limits.cached_headers(bucket.route_hash());
            headers.policy = match cached {
                Some((policy, _)) => Some(policy.clone()),
                None => policy(limits.quotas(), bucket.route()),
            };
            headers.remaining = match cached {
                Some((_, labels)) => draft(labels, states),
                None => draft(&labels(limits.quotas(), bucket.route()), states),
            };
        }
        if mode.legacy() {
            let tightest = states
                .iter()
                .min_by_key(|state| (state.remaining, std::cmp::Reverse(state.reset_after)))
                .copied()
                .unwrap_or_default();
            headers.legacy = Some([
                tightest.limit,
                tightest.remaining,
                unix_now() + ceil_seconds(tightest.reset_after),
            ]);
        }
        headers
    }

    /// Hands them to the response (replacing any of the same names).
    pub(crate) fn write(self, headers: &mut ResponseHeaders) {
        if let Some(seconds) = self.retry_after {
            headers.retry_after(seconds);
        }
        headers.rate_limit(self.policy, self.remaining);
        if let Some([limit, remaining, reset]) = self.legacy {
            headers.insert(X_LIMIT, number_value(limit));
            headers.insert(X_REMAINING, number_value(remaining));
            headers.insert(X_RESET, number_value(reset));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_at_least_one() {
        assert_eq!(retry_after_seconds(0), 1);
        assert_eq!(retry_after_seconds(200_000_000), 1);
        assert_eq!(retry_after_seconds(1_000_000_000), 1);
        assert_eq!(retry_after_seconds(1_010_000_000), 2);
        assert_eq!(retry_after_seconds(2_999_999_999), 3);
    }

    #[test]
    fn values_are_written_at_their_measured_size() {
        // One token of ten used, 0.5 s ago: 9 left, the next in 0.5 s.
        let state = QuotaState {
            limit: 10,
            remaining: 9,
            reset_after: 500_000_000,
            window: 10_000_000_000,
            calendar: false,
        };
        assert_eq!(
            draft(&["\"GET /a\""], &[state]).unwrap(),
            "\"GET /a\";r=9;t=1"
        );
        // The largest numbers (a full bucket: the next token now), and a
        // value longer than any fixed buffer.
        let mut full = state;
        full.remaining = u64::MAX;
        let long = format!("\"{}\"", "x".repeat(300));
        let value = draft(&[long.as_str(), "\"d\""], &[state, full]).unwrap();
        assert_eq!(
            value.to_str().unwrap(),
            format!("{long};r=9;t=1, \"d\";r={};t=0", u64::MAX)
        );
        // A label a header may not carry is no value at all, not a panic.
        assert!(draft(&["\"a\nb\""], &[state]).is_none());
        assert!(draft::<&str>(&[], &[]).is_some_and(|value| value.is_empty()));
    }

    #[test]
    fn names_are_quoted_and_escaped() {
        let mut out = String::new();
        push_name(&mut out, "a\"b\\c é");
        assert_eq!(out, r#""a\"b\\c ?""#);
    }
}
