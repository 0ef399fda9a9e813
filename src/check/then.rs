//! [`Then`]: two checks in order, and what a shadowed check's refusal
//! becomes.

use std::task::{Context, Poll, ready};

use http::Request;

use super::{Check, ResponseHeaders, Step, Wait};
use crate::Answer;
use crate::context::shadow::{Anonymous, RouteShadow, Shadowed};
use crate::error::{ApiError, Rule};

/// Two checks in order; see [`Check::then`].
#[derive(Clone, Debug, Default)]
pub struct Then<A, B> {
    first: A,
    second: B,
}

impl<A, B> Then<A, B> {
    pub(super) fn new(first: A, second: B) -> Self {
        Self { first, second }
    }

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
