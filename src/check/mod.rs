//! The check pipeline: one service that runs a list of checks, then calls
//! your service once or answers one rejection.
//!
//! A [`Check`] looks at a request (and at what earlier checks put in its
//! extensions; see [`context`](crate::context)) and answers at once — admit,
//! possibly with headers for the response, or reject with an
//! [`ApiError`] — or, when it must wait for a store, with a pending state
//! the pipeline polls ([`Wait`]). A check that never waits says `type
//! Pending = Infallible` and writes nothing more. Checks are chained with
//! [`Check::then`]; the first to reject stops the chain.
//!
//! The pipeline knows no particular check. After the checks comes the body
//! cap (the [`BodyLimitLayer`](crate::body_limit::BodyLimitLayer)'s, or none);
//! a refused request's body is drained, within bounds, so its HTTP/1.1
//! connection stays usable; and what was decided is reported to whatever
//! observes the pipeline (the gate's decision hook and metrics).
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
//! use http::{Request, Response, StatusCode};
//! use tollgate::Answer;
//! use tollgate::check::{Check, CheckLayer, ResponseHeaders, Step};
//! use tollgate::error::{ApiError, Category, ErrorCode};
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
//!     fn check<B>(&self, request: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Infallible> {
//!         Answer::Ready(match request.headers().contains_key("user-agent") {
//!             true => Ok(()),
//!             false => Err(ApiError::new(self.code.clone(), "Say who you are.")),
//!         })
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

mod body;
pub(crate) mod body_limit;
pub(crate) mod drain;
mod future;
mod headers;
pub(crate) mod observe;
mod rerender;
pub(crate) mod service;
mod trace;

use std::convert::Infallible;
use std::task::{Context, Poll, ready};

use http::Request;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use headers::ResponseHeaders;
pub use service::{CheckLayer, CheckService};

use crate::Answer;
use crate::context::shadow::{Anonymous, RouteShadow};
pub use crate::context::shadow::{Shadow, Shadowed};
use crate::error::{ApiError, Rule};

/// What a check answers at once: decided, or a state to poll.
pub type Step<P> = Answer<Result<(), ApiError>, P>;

/// One check of a request; see the [module docs](self).
///
/// Implementations are shared by every request (behind an `Arc`), so they
/// keep their settings, not per-request state: that lives in the request's
/// extensions, in [`ResponseHeaders`], or in the pending state.
pub trait Check: Send + Sync + 'static {
    /// The state of a check that waits (for a key store, say), polled
    /// ([`Wait::poll_wait`]) until it decides. A check that never waits uses
    /// [`Infallible`].
    type Pending: Wait<Self> + Send + Unpin;

    /// Judges `request`: `Ok(())` to admit it (after adding any response
    /// headers to `headers`), the rejection, or a pending state.
    fn check<B>(
        &self,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Step<Self::Pending>;

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

/// The pending state of a check `C` that waits: polled by the pipeline
/// until the check decides, with the check, the request and the response
/// headers at hand.
pub trait Wait<C: ?Sized> {
    /// Drives the wait until the check decides.
    fn poll_wait<B>(
        &mut self,
        check: &C,
        cx: &mut Context<'_>,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Poll<Result<(), ApiError>>;
}

/// A check that never waits.
impl<C: ?Sized> Wait<C> for Infallible {
    fn poll_wait<B>(
        &mut self,
        _: &C,
        _: &mut Context<'_>,
        _: &mut Request<B>,
        _: &mut ResponseHeaders,
    ) -> Poll<Result<(), ApiError>> {
        match *self {}
    }
}

/// No check: admits every request.
impl Check for () {
    type Pending = Infallible;

    #[inline]
    fn check<B>(&self, _: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Infallible> {
        Answer::Ready(Ok(()))
    }
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
            Answer::Ready(Err(error)) => match absorb(request, error) {
                Ok(()) => self.then_second(request, headers),
                Err(error) => Answer::Ready(Err(error)),
            },
            Answer::Pending(pending) => Answer::Pending(ThenPending::First(pending)),
        }
    }
}

impl<A: Check, C: Check> Wait<Then<A, C>> for ThenPending<A::Pending, C::Pending> {
    fn poll_wait<B>(
        &mut self,
        then: &Then<A, C>,
        cx: &mut Context<'_>,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Poll<Result<(), ApiError>> {
        loop {
            match self {
                ThenPending::First(first) => {
                    if let Err(error) = ready!(first.poll_wait(&then.first, cx, request, headers)) {
                        absorb(request, error)?;
                    }
                    match then.then_second(request, headers) {
                        Answer::Ready(verdict) => return Poll::Ready(verdict),
                        Answer::Pending(second) => *self = second,
                    }
                }
                ThenPending::Second(second) => {
                    return match ready!(second.poll_wait(&then.second, cx, request, headers)) {
                        Ok(()) => Poll::Ready(Ok(())),
                        Err(error) => Poll::Ready(absorb(request, error)),
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
            Answer::Ready(Err(error)) => Answer::Ready(absorb(request, error)),
            Answer::Pending(pending) => Answer::Pending(ThenPending::Second(pending)),
        }
    }
}

/// `Ok` when `error` comes from a check the request's route shadows (and
/// records it); the error otherwise.
#[cold]
pub(crate) fn absorb<B>(request: &mut Request<B>, error: ApiError) -> Result<(), ApiError> {
    let covered = request
        .extensions()
        .get::<RouteShadow>()
        .is_some_and(|RouteShadow(shadow)| shadow.covers(error.rule()));
    if !covered {
        return Err(error);
    }
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "tollgate",
        route = crate::context::route(request).map(crate::context::route::Route::name),
        code = error.code().as_str(),
        rule = error.rule().map(Rule::as_str),
        "shadow: the request would have been refused"
    );
    if error.rule() == Some(Rule::Key) {
        // No principal: the checks after this one see an anonymous caller.
        request.extensions_mut().insert(Anonymous);
    }
    if request.extensions().get::<Shadowed>().is_none() {
        request.extensions_mut().insert(Shadowed(error));
    }
    Ok(())
}
