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
pub(crate) mod headers;
pub(crate) mod observe;
mod rerender;
pub(crate) mod service;
mod then;
mod trace;

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::Request;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use headers::ResponseHeaders;
pub use service::{CheckLayer, CheckService};
pub use then::Then;

use crate::Answer;
pub use crate::context::shadow::{Shadow, Shadowed};
use crate::error::ApiError;

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
        Then::new(self, next)
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
