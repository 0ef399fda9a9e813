//! [`BodyCap`]: what the pipeline does with a body once the checks admitted
//! the request — nothing ([`Uncapped`]) or a per-route cap ([`BodyLimits`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderValue};
use http::{Request, Response, Version};
use serde_json::json;
use tokio::time::Sleep;

use super::body::LimitedBody;
use crate::check::{CheckLayer, CheckService};
use crate::error::{ApiError, ErrorCode, ErrorRenderer};
use crate::route::PerRoute;

/// The last step of the pipeline, after the checks: it may wrap the body
/// (`B`) the inner service receives, or refuse the request outright.
pub trait BodyCap<B>: Send + Sync + 'static {
    /// The body the inner service receives.
    type Body;

    /// The request to hand on, or the rejection with the request back.
    fn cap(&self, request: Request<B>, renderer: &ErrorRenderer) -> Capped<Self::Body, B>;

    /// What to do with the body of a refused `request` whose rejection is
    /// `response` (`over_cap`: refused by this cap): drain it (the returned
    /// [`Drain`]), or — when it cannot be drained — mark `response`
    /// `Connection: close`. Without a cap, nothing.
    fn refused(
        &self,
        request: Request<B>,
        response: &mut Response<Bytes>,
        over_cap: bool,
    ) -> Option<Drain> {
        let _ = (request, response, over_cap);
        None
    }

    /// Reads up to `limit` bytes of a refused `request`'s body and keeps
    /// them (for a rejection that echoes something of the body), or gives
    /// the request back when it cannot. Without a cap, it cannot.
    // The request comes back as it went in, on the rejection path only:
    // boxing it would cost an allocation for nothing.
    #[allow(clippy::result_large_err)]
    fn collect(&self, request: Request<B>, limit: u64) -> Result<Drain, Request<B>> {
        let _ = limit;
        Err(request)
    }
}

/// What a [`BodyCap`] made of a request.
#[derive(Debug)]
pub enum Capped<T, B> {
    /// Hand it on.
    Pass {
        /// The request, its body capped.
        request: Request<T>,
        /// For a body whose size is unknown: what to look at once the inner
        /// service answered.
        overflow: Option<Box<Overflow>>,
    },
    /// Refuse it.
    Refused {
        /// The rejection.
        error: ApiError,
        /// The request, as it came.
        request: Request<B>,
    },
}

/// No cap: the inner service gets the body as it came.
#[derive(Clone, Copy, Debug, Default)]
pub struct Uncapped;

impl<B> BodyCap<B> for Uncapped {
    type Body = B;

    #[inline]
    fn cap(&self, request: Request<B>, _: &ErrorRenderer) -> Capped<B, B> {
        Capped::Pass {
            request,
            overflow: None,
        }
    }
}

/// A body cap per route, in bytes (`u64::MAX`: none), and how the bodies
/// of refused requests are drained; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct BodyLimits {
    limits: PerRoute<u64>,
    codes: PerRoute<ErrorCode>,
    drain: DrainLimits,
    /// Each route's caps for keys of some tiers, if any route has some.
    tiers: Option<PerRoute<TierCaps>>,
}

/// A route's caps for keys of some tiers: (tier, bytes).
pub(crate) type TierCaps = Box<[(Box<str>, u64)]>;

/// How much of a refused HTTP/1.1 request's body is read and discarded so
/// that its connection can serve the next request, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainLimits {
    /// Bodies up to this many bytes (and never more than the route's cap)
    /// are drained; default 64 KiB. 0 turns draining off.
    pub bytes: u64,
    /// A drain that takes longer gives up and closes; default 1 s.
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
    pub(crate) fn with_tiers(mut self, tiers: PerRoute<TierCaps>) -> Self {
        self.tiers = Some(tiers);
        self
    }

    /// The cap for `request`: its key's own, else its key's tier's on its
    /// route, else its route's. A route of another table is refused.
    #[inline]
    fn limit_of<B>(&self, request: &Request<B>) -> Result<u64, ApiError> {
        let route = crate::context::route(request);
        let limit = *self.limits.for_route(route)?;
        if route.is_some_and(crate::route::Route::is_public) {
            return Ok(limit);
        }
        let Some(record) = crate::context::principal(request).map(|p| p.record()) else {
            return Ok(limit);
        };
        if let Some(own) = record.body_limit() {
            return Ok(own);
        }
        let tiered = record.tier().and_then(|tier| {
            let caps = self.tiers.as_ref()?.get(route)?;
            caps.iter()
                .find(|(name, _)| **name == *tier)
                .map(|(_, bytes)| *bytes)
        });
        Ok(tiered.unwrap_or(limit))
    }

    /// Refuses bodies over the cap with these codes (one, or one per route)
    /// instead of `payload_too_large`.
    #[must_use]
    pub fn with_codes(mut self, codes: impl Into<PerRoute<ErrorCode>>) -> Self {
        self.codes = codes.into();
        self
    }

    /// The cap of `request`'s route (0 for a route of another table).
    fn cap_of<B>(&self, request: &Request<B>) -> u64 {
        self.limit_of(request).unwrap_or(0)
    }

    /// The code refusing a body over the cap of `route`.
    fn code(&self, route: Option<&crate::route::Route>) -> ErrorCode {
        self.codes
            .get(route)
            .unwrap_or(&ErrorCode::PAYLOAD_TOO_LARGE)
            .clone()
    }

    /// Drains refused bodies within `drain`.
    #[must_use]
    pub fn with_drain(mut self, drain: DrainLimits) -> Self {
        self.drain = drain;
        self
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

/// The standard 413 for a body over `limit` bytes.
pub(crate) fn too_large(code: ErrorCode, limit: u64) -> ApiError {
    ApiError::new(
        code,
        format!("The request body is larger than this route's limit of {limit} bytes."),
    )
    .with_details(json!({ "limit_bytes": limit }))
    .with_rule("body_limit")
}

fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl<B> BodyCap<B> for BodyLimits
where
    B: http_body::Body + Send + 'static,
{
    type Body = LimitedBody<B>;

    fn cap(&self, request: Request<B>, renderer: &ErrorRenderer) -> Capped<LimitedBody<B>, B> {
        let limit = match self.limit_of(&request) {
            Ok(limit) => limit,
            Err(error) => return Capped::Refused { error, request },
        };
        let watch = match declared_length(&request) {
            Some(length) if length > limit => {
                let code = self.code(crate::context::route(&request));
                return Capped::Refused {
                    error: too_large(code, limit),
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
            return Capped::Pass {
                request: request.map(|body| LimitedBody::new(body, limit, None)),
                overflow: None,
            };
        }
        let tripped = Arc::new(AtomicBool::new(false));
        let overflow = Box::new(Overflow {
            tripped: Arc::clone(&tripped),
            request: renderer.snapshot(&request),
            renderer: renderer.clone(),
            limit,
            code: self.code(crate::context::route(&request)),
        });
        Capped::Pass {
            request: request.map(|body| LimitedBody::new(body, limit, Some(tripped))),
            overflow: Some(overflow),
        }
    }

    #[allow(clippy::result_large_err)]
    fn collect(&self, request: Request<B>, limit: u64) -> Result<Drain, Request<B>> {
        let cap = self.cap_of(&request);
        let limit = limit.min(cap);
        if limit == 0 || declared_length(&request).is_some_and(|length| length > limit) {
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
        request: Request<B>,
        response: &mut Response<Bytes>,
        over_cap: bool,
    ) -> Option<Drain> {
        // HTTP/2 streams end on their own; HTTP/1.0 connections close anyway.
        if request.version() != Version::HTTP_11 || request.body().is_end_stream() {
            return None;
        }
        let cap = self.cap_of(&request);
        let limit = self.drain.bytes.min(cap);
        let drainable = !over_cap
            && limit > 0
            && declared_length(&request).is_none_or(|length| length <= limit);
        if !drainable {
            close(response);
            return None;
        }
        Some(Drain::new(
            request.into_body(),
            limit,
            self.drain.timeout,
            false,
        ))
    }
}

/// Says `Connection: close` on an HTTP/1.1 response.
pub(crate) fn close<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}

/// The body of a refused request being read and discarded, within a byte
/// limit and a deadline, so that its HTTP/1.1 connection stays usable.
pub struct Drain {
    body: Pin<Box<dyn Discard + Send>>,
    /// The bytes read, when they are kept.
    kept: Option<Vec<u8>>,
    remaining: u64,
    timeout: Duration,
    /// Started when the body first makes the drain wait (a body that is
    /// all there needs no timer).
    deadline: Option<Pin<Box<Sleep>>>,
}

/// A body read only to be thrown away: how many bytes came, or `Err` when it
/// failed.
trait Discard {
    /// The next frame's length, its bytes appended to `keep` if given.
    fn poll_discard(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        keep: Option<&mut Vec<u8>>,
    ) -> Poll<Option<Result<u64, ()>>>;
}

impl<B: http_body::Body> Discard for B {
    fn poll_discard(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        keep: Option<&mut Vec<u8>>,
    ) -> Poll<Option<Result<u64, ()>>> {
        self.poll_frame(cx).map(|frame| {
            frame.map(|frame| match frame {
                Ok(frame) => Ok(match frame.into_data() {
                    Ok(mut data) => {
                        let len = data.remaining() as u64;
                        if let Some(keep) = keep {
                            while data.has_remaining() {
                                let chunk = data.chunk();
                                let taken = chunk.len();
                                keep.extend_from_slice(chunk);
                                data.advance(taken);
                            }
                        }
                        len
                    }
                    Err(_) => 0,
                }),
                Err(_) => Err(()),
            })
        })
    }
}

impl Drain {
    /// Reads `body` within `limit` bytes and `timeout`, keeping what it
    /// reads when `keep`.
    fn new<B>(body: B, limit: u64, timeout: Duration, keep: bool) -> Self
    where
        B: http_body::Body + Send + 'static,
    {
        Self {
            body: Box::pin(body),
            kept: keep.then(Vec::new),
            remaining: limit,
            timeout,
            deadline: None,
        }
    }

    /// Reads on until the body ends (`true`: the connection is reusable) or
    /// passes its limit, fails, or outlives the deadline (`false`).
    pub(crate) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            match self.body.as_mut().poll_discard(cx, self.kept.as_mut()) {
                Poll::Ready(None) => return Poll::Ready(true),
                Poll::Ready(Some(Err(()))) => return Poll::Ready(false),
                Poll::Ready(Some(Ok(len))) => match self.remaining.checked_sub(len) {
                    Some(left) => self.remaining = left,
                    None => return Poll::Ready(false),
                },
                Poll::Pending => {
                    let timeout = self.timeout;
                    let deadline = self
                        .deadline
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    return match deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(false),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Drain {
    /// The bytes read, when they were kept.
    pub(crate) fn take_kept(&mut self) -> Option<Vec<u8>> {
        self.kept.take()
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

/// A body of unknown size handed on under a cap: whether it passed the cap
/// while the inner service read it, and what is needed to answer 413 then.
pub struct Overflow {
    tripped: Arc<AtomicBool>,
    request: Request<()>,
    renderer: ErrorRenderer,
    limit: u64,
    code: ErrorCode,
}

impl Overflow {
    /// The standard 413, if the body passed its cap.
    pub(crate) fn rejection(self) -> Option<Response<Bytes>> {
        self.tripped.load(Ordering::Acquire).then(|| {
            self.renderer
                .respond(too_large(self.code, self.limit), &self.request)
        })
    }
}

impl fmt::Debug for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overflow")
            .field("limit", &self.limit)
            .field("tripped", &self.tripped.load(Ordering::Relaxed))
            .finish()
    }
}

/// Caps request bodies per route; see the [module docs](super). A
/// [`CheckLayer`] with no check and a [`BodyLimits`] cap.
pub type BodyLimitLayer = CheckLayer<(), BodyLimits>;

/// The service made by [`BodyLimitLayer`]: its inner service receives a
/// [`LimitedBody`].
pub type BodyLimitService<S> = CheckService<S, (), BodyLimits>;

impl CheckLayer<(), BodyLimits> {
    /// Caps bodies at `limits` bytes (one cap, or one per route;
    /// `u64::MAX` for no cap).
    pub fn new(limits: impl Into<PerRoute<u64>>) -> Self {
        Self::from_parts((), BodyLimits::new(limits), ErrorRenderer::default(), None)
    }
}
