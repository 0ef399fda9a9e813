//! The check pipeline: one service that runs a list of checks, then calls
//! your service once or answers one rejection.
//!
//! A [`Check`] looks at a request (and at what earlier checks put in its
//! extensions; see [`context`](crate::context)) and answers at once — admit,
//! possibly with headers for the response, or reject with an
//! [`ApiError`] — or, when it must wait for a store, with a pending state
//! the pipeline polls. Checks are chained with [`Check::then`]; the first to
//! reject stops the chain.
//!
//! [`CheckLayer`] makes a [`CheckService`] around your service. Every layer
//! of the crate is one: [`KeyLayer`](crate::key::KeyLayer) is a
//! `CheckLayer` with the key check, [`ScopeLayer`](crate::scope::ScopeLayer)
//! with the scope check, and so on; the [`Gate`](crate::gate::Gate) is one
//! with all of them and the body cap. So a request through the whole gate
//! has one service, one response future and one response body type, and a
//! rejection never calls the inner service.
//!
//! A check of your own goes into a [`CheckLayer`] alone, or into the gate
//! with [`GateBuilder::check`](crate::gate::GateBuilder::check), where it
//! runs after the scope check and before the rate limit (so a request it
//! refuses consumes no rate-limit token):
//!
//! ```
//! use std::convert::Infallible;
//! use std::task::{Context, Poll};
//! use http::{Request, Response, StatusCode};
//! use tollgate::check::{Check, CheckLayer, ResponseHeaders};
//! use tollgate::error::{ApiError, Category, ErrorCode};
//! use tollgate::store::Answer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! /// Refuses requests without a `user-agent`.
//! struct NeedsUserAgent {
//!     code: ErrorCode,
//! }
//!
//! impl Check for NeedsUserAgent {
//!     // This check never waits.
//!     type Pending = Infallible;
//!
//!     fn check<B>(&self, request: &mut Request<B>, _: &mut ResponseHeaders)
//!         -> Answer<Result<(), ApiError>, Infallible>
//!     {
//!         Answer::Ready(match request.headers().contains_key("user-agent") {
//!             true => Ok(()),
//!             false => Err(ApiError::new(self.code.clone(), "Say who you are.")),
//!         })
//!     }
//!
//!     fn poll_pending<B>(&self, never: &mut Infallible, _: &mut Context<'_>,
//!         _: &mut Request<B>, _: &mut ResponseHeaders) -> Poll<Result<(), ApiError>>
//!     {
//!         match *never {}
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let code = ErrorCode::custom("user_agent_required", StatusCode::BAD_REQUEST, Category::Validation).unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(CheckLayer::from_check(NeedsUserAgent { code }))
//!     .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//! let response = service.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! # });
//! ```

mod future;
pub(crate) mod service;
pub(crate) mod shadow;

use std::convert::Infallible;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, HeaderName, HeaderValue, Request};

pub use future::ResponseFuture;
pub use service::{CheckLayer, CheckService};
pub use shadow::{Shadow, Shadowed};

use crate::error::ApiError;
use crate::rate_limit::RateHeaders;
use crate::store::Answer;

/// What a check answers at once: decided, or a state to poll.
pub type Step<P> = Answer<Result<(), ApiError>, P>;

/// One check of a request; see the [module docs](self).
///
/// Implementations are shared by every request (behind an `Arc`), so they
/// keep their settings, not per-request state: that lives in the request's
/// extensions, in [`ResponseHeaders`], or in the pending state.
pub trait Check: Send + Sync + 'static {
    /// The state of a check that waits (for a key store, say), polled by
    /// [`poll_pending`](Check::poll_pending) until it decides. A check that
    /// never waits uses [`Infallible`].
    type Pending: Send + Unpin;

    /// Judges `request`: `Ok(())` to admit it (after adding any response
    /// headers to `headers`), the rejection, or a pending state.
    fn check<B>(
        &self,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Step<Self::Pending>;

    /// Drives a pending state until the check decides.
    fn poll_pending<B>(
        &self,
        pending: &mut Self::Pending,
        cx: &mut Context<'_>,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Poll<Result<(), ApiError>>;

    /// This check, then `next` on the requests it admits.
    fn then<C: Check>(self, next: C) -> Then<Self, C>
    where
        Self: Sized,
    {
        Then {
            first: self,
            second: next,
        }
    }
}

/// The `poll_pending` of a check that never waits (`type Pending =
/// Infallible`).
macro_rules! never_pending {
    () => {
        fn poll_pending<B>(
            &self,
            never: &mut std::convert::Infallible,
            _: &mut std::task::Context<'_>,
            _: &mut http::Request<B>,
            _: &mut $crate::check::ResponseHeaders,
        ) -> std::task::Poll<Result<(), $crate::error::ApiError>> {
            match *never {}
        }
    };
}
pub(crate) use never_pending;

/// No check: admits every request.
impl Check for () {
    type Pending = Infallible;

    #[inline]
    fn check<B>(&self, _: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Infallible> {
        Answer::Ready(Ok(()))
    }

    never_pending!();
}

/// Two checks in order; see [`Check::then`].
#[derive(Clone, Debug, Default)]
pub struct Then<A, B> {
    first: A,
    second: B,
}

impl<A, B> Then<A, B> {
    /// The first check.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The second check.
    pub fn second(&self) -> &B {
        &self.second
    }
}

/// The pending state of [`Then`]: which of the two is waiting.
#[derive(Debug)]
pub enum ThenPending<A, B> {
    /// The first check waits.
    First(A),
    /// The first admitted; the second waits.
    Second(B),
}

impl<A: Check, C: Check> Check for Then<A, C> {
    type Pending = ThenPending<A::Pending, C::Pending>;

    #[inline]
    fn check<B>(
        &self,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Step<Self::Pending> {
        match self.first.check(request, headers) {
            Answer::Ready(Ok(())) => self.then_second(request, headers),
            // A shadowed check's rejection is recorded and the chain goes on.
            Answer::Ready(Err(error)) => match shadow::absorb(request, error) {
                Ok(()) => self.then_second(request, headers),
                Err(error) => Answer::Ready(Err(error)),
            },
            Answer::Pending(pending) => Answer::Pending(ThenPending::First(pending)),
        }
    }

    fn poll_pending<B>(
        &self,
        pending: &mut Self::Pending,
        cx: &mut Context<'_>,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Poll<Result<(), ApiError>> {
        loop {
            match pending {
                ThenPending::First(first) => {
                    if let Err(error) = ready!(self.first.poll_pending(first, cx, request, headers))
                    {
                        shadow::absorb(request, error)?;
                    }
                    match self.then_second(request, headers) {
                        Answer::Ready(verdict) => return Poll::Ready(verdict),
                        Answer::Pending(second) => *pending = second,
                    }
                }
                ThenPending::Second(second) => {
                    return match ready!(self.second.poll_pending(second, cx, request, headers)) {
                        Ok(()) => Poll::Ready(Ok(())),
                        Err(error) => Poll::Ready(shadow::absorb(request, error)),
                    };
                }
            }
        }
    }
}

impl<A: Check, C: Check> Then<A, C> {
    /// The second check, once the first admitted (or was shadowed).
    #[inline]
    fn then_second<B>(
        &self,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Step<ThenPending<A::Pending, C::Pending>> {
        match self.second.check(request, headers) {
            Answer::Ready(Ok(())) => Answer::Ready(Ok(())),
            Answer::Ready(Err(error)) => Answer::Ready(shadow::absorb(request, error)),
            Answer::Pending(pending) => Answer::Pending(ThenPending::Second(pending)),
        }
    }
}

/// Headers the checks add to the response, whichever response goes out:
/// your service's, or a rejection made after they were added. A header set
/// here replaces one of the same name.
///
/// Nothing is allocated until a header is added (the rate-limit check's
/// headers have a place of their own and allocate only their values).
#[derive(Debug, Default)]
pub struct ResponseHeaders {
    rate: Option<RateHeaders>,
    pairs: Vec<(HeaderName, HeaderValue)>,
}

impl ResponseHeaders {
    /// No headers.
    pub const fn new() -> Self {
        Self {
            rate: None,
            pairs: Vec::new(),
        }
    }

    /// Adds `name: value` to the response.
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.pairs.push((name, value));
    }

    /// Whether none was added.
    pub fn is_empty(&self) -> bool {
        self.rate.is_none() && self.pairs.is_empty()
    }

    /// Sets the rate-limit headers.
    pub(crate) fn set_rate(&mut self, rate: RateHeaders) {
        self.rate = Some(rate);
    }

    /// Writes them into `headers`.
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        if let Some(rate) = self.rate {
            rate.apply(headers);
        }
        for (name, value) in self.pairs {
            headers.insert(name, value);
        }
    }
}
