//! [`OriginCheck`] and [`OriginLayer`]: browser keys only from allowed origins.

use std::convert::Infallible;

use http::Request;
use http::header::{ORIGIN, REFERER};
use serde_json::json;

use super::rule::{MissingOrigin, OriginRule};
use crate::Answer;
use crate::check::{Check, CheckLayer, CheckService, ResponseHeaders, Step};
use crate::context::origin::{OriginPattern, RequestOrigin};
use crate::context::per_route::PerRoute;
use crate::context::{self, Caller};
use crate::error::{ApiError, ErrorCode, Rule};

/// The origin check: refuses keys of the checked kinds (publishable by
/// default) used from an origin outside their allow-list.
#[derive(Clone, Debug)]
pub struct OriginCheck {
    policies: PerRoute<OriginRule>,
}

impl OriginCheck {
    /// A check with `policies` (one policy, or one per route).
    pub fn new(policies: impl Into<PerRoute<OriginRule>>) -> Self {
        Self {
            policies: policies.into(),
        }
    }

    fn judge<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
        let principal = match context::caller(request)? {
            Caller::Public => return Ok(()),
            Caller::Key(principal) => principal,
        };
        let policy = self.policies.for_route(context::route(request))?;
        if !policy.kinds.contains(principal.kind()) {
            return Ok(());
        }
        let allowed: &[OriginPattern] = if principal.origins().is_empty() {
            &policy.allowed
        } else {
            principal.origins()
        };
        let headers = request.headers();
        let (stated, origin) = match headers.get(ORIGIN) {
            Some(value) => {
                let text = value.to_str().ok();
                (text, text.and_then(RequestOrigin::parse))
            }
            None => match policy.missing {
                MissingOrigin::Allow => return Ok(()),
                MissingOrigin::Reject => {
                    return Err(refused(
                        &policy.code,
                        None,
                        "The request has no Origin header; this key may only be used from a browser on an allowed origin.",
                    ));
                }
                MissingOrigin::Referer => {
                    let text = headers.get(REFERER).and_then(|value| value.to_str().ok());
                    (text, text.and_then(RequestOrigin::from_referer))
                }
            },
        };
        match origin {
            Some(origin)
                if allowed
                    .iter()
                    .any(|pattern| pattern.matches_origin(&origin)) =>
            {
                Ok(())
            }
            _ => Err(refused(
                &policy.code,
                stated,
                "This API key may not be used from this origin.",
            )),
        }
    }
}

impl Check for OriginCheck {
    type Pending = Infallible;

    #[inline]
    fn check<B>(&self, request: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Infallible> {
        Answer::Ready(self.judge(request))
    }
}

/// Refuses keys of the checked kinds (publishable by default) used from an
/// origin outside their allow-list; see the [module docs](super). A
/// [`CheckLayer`] with the [`OriginCheck`].
pub type OriginLayer = CheckLayer<OriginCheck>;

/// The service made by [`OriginLayer`].
pub type OriginService<S> = CheckService<S, OriginCheck>;

impl CheckLayer<OriginCheck> {
    /// An origin layer with `policies` (one policy, or one per route).
    pub fn new(policies: impl Into<PerRoute<OriginRule>>) -> Self {
        Self::from_check(OriginCheck::new(policies))
    }
}

/// The longest refused origin echoed in error details.
const MAX_ECHOED_ORIGIN: usize = 200;

fn refused(code: &ErrorCode, origin: Option<&str>, message: &'static str) -> ApiError {
    let origin = origin.map(
        |origin| match origin.char_indices().nth(MAX_ECHOED_ORIGIN) {
            Some((cut, _)) => &origin[..cut],
            None => origin,
        },
    );
    ApiError::new(code.clone(), message)
        .with_details(json!({ "origin": origin }))
        .with_rule(Rule::Origin)
}
