//! [`BodyLimit`]: what the pipeline does with a body once the checks admitted
//! the request — nothing ([`Unlimited`]) or a cap (the
//! [`BodyLimitLayer`](crate::body_limit::BodyLimitLayer)'s) — and how it
//! watches a body of unknown size ([`Overflow`]).
//!
//! Sealed: the crate's two caps are the only ones.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response};

use super::drain::Drain;
use crate::error::{ApiError, ErrorCode};
use crate::render::ErrorRenderer;

/// The last step of the pipeline, after the checks: it may wrap the body
/// (`B`) the inner service receives, or refuse the request outright.
pub trait BodyLimit<B>: Send + Sync + 'static {
    /// The body the inner service receives.
    type Body;

    /// The request to hand on, or the rejection with the request back.
    fn limit(&self, request: Request<B>, renderer: &ErrorRenderer) -> Limited<Self::Body, B>;

    /// What to do with the `body` of a refused request whose head is
    /// `parts` and whose rejection is `response` (`over_limit`: refused by
    /// this cap): drain it (the returned [`Drain`]), or — when it cannot be
    /// drained — mark `response` `Connection: close`. Without a cap,
    /// nothing.
    fn refused(
        &self,
        parts: &http::request::Parts,
        body: B,
        response: &mut Response<Bytes>,
        over_limit: bool,
    ) -> Option<Drain> {
        let _ = (parts, body, response, over_limit);
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

/// What a [`BodyLimit`] made of a request.
#[derive(Debug)]
pub enum Limited<T, B> {
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

/// No limit: the inner service gets the body as it came.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited;

impl<B> BodyLimit<B> for Unlimited {
    type Body = B;

    #[inline]
    fn limit(&self, request: Request<B>, _: &ErrorRenderer) -> Limited<B, B> {
        Limited::Pass {
            request,
            overflow: None,
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
    code: ErrorCode,
    refusal: fn(ErrorCode, u64) -> ApiError,
}

impl Overflow {
    /// A watch on a body capped at `limit` bytes (`tripped` once it passed
    /// them) of the request `request` (its snapshot), refused then with
    /// `refusal(code, limit)`.
    pub(crate) fn new(
        tripped: Arc<AtomicBool>,
        request: Request<()>,
        renderer: ErrorRenderer,
        limit: u64,
        code: ErrorCode,
        refusal: fn(ErrorCode, u64) -> ApiError,
    ) -> Self {
        Self {
            tripped,
            request,
            renderer,
            limit,
            code,
            refusal,
        }
    }

    /// The rejection, if the body passed its cap.
    pub(crate) fn rejection(self) -> Option<Response<Bytes>> {
        self.tripped.load(Ordering::Acquire).then(|| {
            self.renderer
                .respond((self.refusal)(self.code, self.limit), &self.request)
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
