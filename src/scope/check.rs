//! [`ScopeCheck`] and [`ScopeLayer`]: the scope rules of each route, applied.

use std::convert::Infallible;

use http::Request;

use super::rule::ScopeRule;
use crate::Answer;
use crate::check::{Check, CheckLayer, CheckService, ResponseHeaders, Step};
use crate::context::per_route::PerRoute;
use crate::context::{self, Caller};
use crate::error::ApiError;

/// The scope check: refuses keys that lack a route's scopes or are of a
/// kind it does not accept.
#[derive(Clone, Debug)]
pub struct ScopeCheck {
    rules: PerRoute<ScopeRule>,
}

impl ScopeCheck {
    /// A check with `rules` (one rule, or one per route).
    pub fn new(rules: impl Into<PerRoute<ScopeRule>>) -> Self {
        Self {
            rules: rules.into(),
        }
    }

    fn judge<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
        match context::caller(request)? {
            Caller::Public => Ok(()),
            Caller::Key(principal) => self.rules.for_route(context::route(request))?.judge(
                principal.kind(),
                principal.record().shared_scopes(),
                principal.project(),
                request.uri().path(),
            ),
        }
    }
}

impl Check for ScopeCheck {
    type Pending = Infallible;

    #[inline]
    fn check<B>(&self, request: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Infallible> {
        Answer::Ready(self.judge(request))
    }
}

/// Refuses keys that lack a route's scopes or are of a kind it does not
/// accept; see the [module docs](super). A [`CheckLayer`] with the
/// [`ScopeCheck`].
pub type ScopeLayer = CheckLayer<ScopeCheck>;

/// The service made by [`ScopeLayer`].
pub type ScopeService<S> = CheckService<S, ScopeCheck>;

impl CheckLayer<ScopeCheck> {
    /// A scope layer with `rules` (one rule, or one per route).
    pub fn new(rules: impl Into<PerRoute<ScopeRule>>) -> Self {
        Self::from_check(ScopeCheck::new(rules))
    }
}
