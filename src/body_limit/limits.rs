//! [`BodyLimits`]: a cap per route (and per tier or key), and how the
//! bodies of refused requests are drained.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response, Version};

use super::body::LimitedBody;
use crate::check::body_limit::{BodyLimit, Limited, Overflow};
use crate::check::drain::{Drain, close};
use crate::context::per_route::PerRoute;
use crate::context::principal::Principal;
use crate::context::route::Route;
use crate::error::sentence::{Piece::Number, Piece::Text, sentence};
use crate::error::{ApiError, ErrorCode, Rule, TypedDetails};
use crate::render::ErrorRenderer;

/// A body cap per route, in bytes (`u64::MAX`: none), and how the bodies
/// of refused requests are drained; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct BodyLimits {
    limits: PerRoute<u64>,
    codes: PerRoute<ErrorCode>,
    drain: DrainLimits,
    /// Each route's caps for keys of some tiers, if any route has some.
    tiers: Option<PerRoute<TierLimits>>,
}

/// A route's caps for keys of some tiers: (tier, bytes).
pub(crate) type TierLimits = Box<[(Box<str>, u64)]>;

/// How much of a refused HTTP/1.1 request's body is read and discarded so
/// that its connection can serve the next request, and for how long. In a
/// configuration file, top-level `drain_limit` (bytes) and
/// `drain_timeout_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DrainLimits {
    /// Bodies up to this many bytes (and never more than the route's cap)
    /// are drained; default 64 KiB. 0 turns draining off.
    #[serde(rename = "drain_limit")]
    pub bytes: u64,
    /// A drain that takes longer gives up and closes; default 1 s.
    #[serde(rename = "drain_timeout_ms", with = "crate::fields::millis_required")]
    pub timeout: Duration,
}

impl Default for DrainLimits {
    fn default() -> Self {
        Self {
            bytes: 64 * 1024,
            timeout: Duration::from_secs(1),
        }
    }
}

impl BodyLimits {
    /// Caps bodies at `limits` bytes (one cap, or one per route).
    pub fn new(limits: impl Into<PerRoute<u64>>) -> Self {
        Self {
            limits: limits.into(),
            codes: PerRoute::uniform(ErrorCode::PAYLOAD_TOO_LARGE),
            drain: DrainLimits::default(),
            tiers: None,
        }
    }

    /// Caps the bodies of keys of some tiers otherwise, route by route.
    #[must_use]
    pub(crate) fn with_tiers(mut self, tiers: PerRoute<TierLimits>) -> Self {
        self.tiers = Some(tiers);
        self
    }

    /// The cap for `request`: its key's own, else its key's tier's on its
    /// route, else its route's, with whose it is. A route of another table
    /// is refused.
    #[inline]
    fn limit_of(&self, extensions: &http::Extensions) -> Result<(u64, LimitOf), ApiError> {
        let route = extensions.get::<Route>();
        let limit = *self.limits.for_route(route)?;
        if route.is_some_and(Route::is_public) {
            return Ok((limit, LimitOf::Route));
        }
        let Some(record) = extensions.get::<Principal>().map(|p| p.record()) else {
            return Ok((limit, LimitOf::Route));
        };
        if let Some(own) = record.body_limit() {
            return Ok((own, LimitOf::Key));
        }
        let tiered = record.tier().and_then(|tier| {
            let caps = self.tiers.as_ref()?.get(route)?;
            caps.iter()
                .find(|(name, _)| **name == *tier)
                .map(|(_, bytes)| *bytes)
        });
        Ok(match tiered {
            Some(bytes) => (bytes, LimitOf::Tier),
            None => (limit, LimitOf::Route),
        })
    }

    /// Refuses bodies over the cap with these codes instead of
    /// `payload_too_large`.
    pub(crate) fn set_codes(&mut self, codes: PerRoute<ErrorCode>) {
        self.codes = codes;
    }

    /// The cap of the route of the request with these `extensions` (0 for
    /// a route of another table).
    fn limit_or_zero(&self, extensions: &http::Extensions) -> u64 {
        self.limit_of(extensions).map_or(0, |(limit, _)| limit)
    }

    /// The code refusing a body over the cap of `route`.
    fn code(&self, route: Option<&Route>) -> ErrorCode {
        self.codes
            .get(route)
            .unwrap_or(&ErrorCode::PAYLOAD_TOO_LARGE)
            .clone()
    }

    /// Drains refused bodies within `drain`.
    pub(crate) fn set_drain(&mut self, drain: DrainLimits) {
        self.drain = drain;
    }

    /// How refused bodies are drained.
    pub fn drain(&self) -> DrainLimits {
        self.drain
    }

    /// The caps.
    pub fn limits(&self) -> &PerRoute<u64> {
        &self.limits
    }
}

/// Whose cap a body is held to: the route's, the route's for the key's
/// tier, or the key's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitOf {
    Route,
    Tier,
    Key,
}

impl LimitOf {
    /// The refusal of a body over this kind of cap.
    fn refusal(self) -> fn(ErrorCode, u64) -> ApiError {
        match self {
            Self::Route => too_large,
            Self::Tier => too_large_for_tier,
            Self::Key => too_large_for_key,
        }
    }
}

/// The standard 413 for a body over the route's `limit` bytes.
pub(crate) fn too_large(code: ErrorCode, limit: u64) -> ApiError {
    refusal(
        code,
        limit,
        sentence(&[
            Text("The request body is larger than this route's limit of "),
            Number(limit),
            Text(" bytes."),
        ]),
        "route",
    )
}

/// The 413 for a body over the `limit` bytes the route gives the key's tier.
fn too_large_for_tier(code: ErrorCode, limit: u64) -> ApiError {
    refusal(
        code,
        limit,
        sentence(&[
            Text("The request body is larger than the limit of "),
            Number(limit),
            Text(" bytes this route gives the API key's tier."),
        ]),
        "tier",
    )
}

/// The 413 for a body over the key's own `limit` bytes.
fn too_large_for_key(code: ErrorCode, limit: u64) -> ApiError {
    refusal(
        code,
        limit,
        sentence(&[
            Text("The request body is larger than this API key's limit of "),
            Number(limit),
            Text(" bytes."),
        ]),
        "key",
    )
}

fn refusal(code: ErrorCode, limit: u64, message: String, of: &'static str) -> ApiError {
    ApiError::new(code, message)
        .with_typed_details(TypedDetails::TooLarge {
            limit_bytes: limit,
            limit_of: of,
        })
        .with_rule(Rule::BodyLimit)
}

/// The length the `Content-Length` among `headers` declares: its decimal digits,
/// spaces around them allowed; none when it is absent, empty, not digits or
/// past `u64`. (Read as bytes: every request with a body asks.)
#[inline]
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    parse_length(headers.get(CONTENT_LENGTH)?.as_bytes())
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |length, &byte| {
        let digit = byte.checked_sub(b'0').filter(|digit| *digit < 10)?;
        length.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

impl<B> BodyLimit<B> for BodyLimits
where
    B: http_body::Body + Send + 'static,
{
    type Body = LimitedBody<B>;

    #[inline(always)]
    fn limit(&self, request: Request<B>, renderer: &ErrorRenderer) -> Limited<LimitedBody<B>, B> {
        let (limit, of) = match self.limit_of(request.extensions()) {
            Ok(limit) => limit,
            Err(error) => return Limited::Refused { error, request },
        };
        let watch = match declared_length(request.headers()) {
            Some(length) if length > limit => {
                let code = self.code(crate::context::route(&request));
                return Limited::Refused {
                    error: of.refusal()(code, limit),
                    request,
                };
            }
            // A declared length within the cap is enforced by the HTTP
            // implementation, and a body that says it cannot grow past the
            // cap (an empty one, say) will not: it is still capped, but no
            // watch is needed to replace the response.
            Some(_) => false,
            None => request
                .body()
                .size_hint()
                .upper()
                .is_none_or(|upper| upper > limit),
        };
        if !watch {
            return Limited::Pass {
                request: request.map(|body| LimitedBody::new(body, limit, None)),
                overflow: None,
            };
        }
        let tripped = Arc::new(AtomicBool::new(false));
        let overflow = Box::new(Overflow::new(
            Arc::clone(&tripped),
            renderer.snapshot(&request),
            renderer.clone(),
            limit,
            self.code(crate::context::route(&request)),
            of.refusal(),
        ));
        Limited::Pass {
            request: request.map(|body| LimitedBody::new(body, limit, Some(tripped))),
            overflow: Some(overflow),
        }
    }

    #[allow(clippy::result_large_err)]
    fn collect(&self, request: Request<B>, limit: u64) -> Result<Drain, Request<B>> {
        let limit = limit.min(self.limit_or_zero(request.extensions()));
        if limit == 0 || declared_length(request.headers()).is_some_and(|length| length > limit) {
            return Err(request);
        }
        Ok(Drain::new(
            request.into_body(),
            limit,
            self.drain.timeout,
            true,
        ))
    }

    fn refused(
        &self,
        parts: &http::request::Parts,
        body: B,
        response: &mut Response<Bytes>,
        over_limit: bool,
    ) -> Option<Drain> {
        // HTTP/2 streams end on their own; HTTP/1.0 connections close anyway.
        if parts.version != Version::HTTP_11 || body.is_end_stream() {
            return None;
        }
        let limit = self.drain.bytes.min(self.limit_or_zero(&parts.extensions));
        let drainable = !over_limit
            && limit > 0
            && declared_length(&parts.headers).is_none_or(|length| length <= limit);
        if !drainable {
            close(response);
            return None;
        }
        Some(Drain::new(body, limit, self.drain.timeout, false))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_declared_length_is_its_digits() {
        use super::parse_length;
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 8192\t"), Some(8192));
        assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"  ",
            b"18446744073709551616",
            b"+5",
            b"-1",
            b"1 2",
            b"0x10",
            b"\xff",
        ] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
