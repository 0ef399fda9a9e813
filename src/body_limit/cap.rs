//! [`BodyCap`]: what the pipeline does with a body once the checks admitted
//! the request — nothing ([`Uncapped`]) or a per-route cap ([`BodyLimits`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use serde_json::json;

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

/// A body cap per route, in bytes (`u64::MAX`: none); see the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct BodyLimits {
    limits: PerRoute<u64>,
}

impl BodyLimits {
    /// Caps bodies at `limits` bytes (one cap, or one per route).
    pub fn new(limits: impl Into<PerRoute<u64>>) -> Self {
        Self {
            limits: limits.into(),
        }
    }

    /// The caps.
    pub fn limits(&self) -> &PerRoute<u64> {
        &self.limits
    }
}

/// The standard 413 for a body over `limit` bytes.
pub(crate) fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PAYLOAD_TOO_LARGE,
        format!("The request body is larger than this route's limit of {limit} bytes."),
    )
    .with_details(json!({ "limit_bytes": limit }))
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

impl<B: http_body::Body> BodyCap<B> for BodyLimits {
    type Body = LimitedBody<B>;

    fn cap(&self, request: Request<B>, renderer: &ErrorRenderer) -> Capped<LimitedBody<B>, B> {
        let limit = match self.limits.for_route(crate::context::route(&request)) {
            Ok(limit) => *limit,
            Err(error) => return Capped::Refused { error, request },
        };
        let watch = match declared_length(&request) {
            Some(length) if length > limit => {
                return Capped::Refused {
                    error: too_large(limit),
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
        });
        Capped::Pass {
            request: request.map(|body| LimitedBody::new(body, limit, Some(tripped))),
            overflow: Some(overflow),
        }
    }
}

/// A body of unknown size handed on under a cap: whether it passed the cap
/// while the inner service read it, and what is needed to answer 413 then.
pub struct Overflow {
    tripped: Arc<AtomicBool>,
    request: Request<()>,
    renderer: ErrorRenderer,
    limit: u64,
}

impl Overflow {
    /// The standard 413, if the body passed its cap.
    pub(crate) fn rejection(self) -> Option<Response<Bytes>> {
        self.tripped
            .load(Ordering::Acquire)
            .then(|| self.renderer.respond(too_large(self.limit), &self.request))
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
