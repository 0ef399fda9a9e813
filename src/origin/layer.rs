//! [`OriginLayer`]: browser keys only from allowed origins.

use std::sync::Arc;

use http::Request;
use http::header::{ORIGIN, REFERER};
use serde_json::json;

use std::convert::Infallible;

use crate::Answer;
use crate::ConfigError;
use crate::check::{Check, CheckLayer, CheckService, ResponseHeaders, Step};
use crate::context::kind::{KeyKind, KeyKinds};
use crate::context::origin::{OriginPattern, RequestOrigin};
use crate::context::per_route::PerRoute;
use crate::context::{self, Caller};
use crate::error::{ApiError, ErrorCode, Rule};

/// What to do with a request whose key is subject to origin checks but which
/// carries no `Origin` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingOrigin {
    /// Refuse it with `origin_not_allowed` (the default): browsers send
    /// `Origin` on every cross-origin request, so its absence means the key
    /// is used outside a browser.
    #[default]
    Reject,
    /// Let it through.
    Allow,
    /// Judge the origin of the `Referer` header instead; refuse when that
    /// is missing too.
    Referer,
}

/// The origin rules of one route: the allow-list used when a key's record
/// has none, the missing-origin mode, and the key kinds checked.
///
/// ```
/// use tollgate::origin::{MissingOrigin, OriginPolicy};
///
/// let policy = OriginPolicy::new()
///     .allow(["https://app.example.com", "https://*.example.org", "http://localhost:*"])
///     .unwrap()
///     .missing_origin(MissingOrigin::Referer);
/// # let _ = policy;
/// ```
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    allowed: Arc<[OriginPattern]>,
    missing: MissingOrigin,
    kinds: KeyKinds,
    code: ErrorCode,
}

impl OriginPolicy {
    /// Checks publishable keys; allows no origin unless the key's record
    /// lists some; refuses requests without `Origin`.
    pub fn new() -> Self {
        Self {
            allowed: Arc::from([]),
            missing: MissingOrigin::Reject,
            kinds: KeyKinds::only(KeyKind::Publishable),
            code: ErrorCode::ORIGIN_NOT_ALLOWED,
        }
    }

    /// Refuses with `code` instead of `origin_not_allowed`.
    #[must_use]
    pub fn code(mut self, code: ErrorCode) -> Self {
        self.code = code;
        self
    }

    /// Sets the allow-list used for keys whose record lists no origins.
    /// Each pattern is checked now; a bad one is an error naming it.
    pub fn allow<I, S>(self, patterns: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|pattern| OriginPattern::parse(pattern.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.with_patterns(patterns))
    }

    /// Sets the allow-list from parsed patterns.
    #[must_use]
    pub fn with_patterns(mut self, patterns: Vec<OriginPattern>) -> Self {
        self.allowed = patterns.into();
        self
    }

    /// Sets what happens without an `Origin` header.
    #[must_use]
    pub fn missing_origin(mut self, missing: MissingOrigin) -> Self {
        self.missing = missing;
        self
    }

    /// Sets the key kinds whose origin is checked (publishable by default).
    #[must_use]
    pub fn kinds(mut self, kinds: impl Into<KeyKinds>) -> Self {
        self.kinds = kinds.into();
        self
    }

    /// The allow-list.
    pub fn patterns(&self) -> &[OriginPattern] {
        &self.allowed
    }
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// The origin check: refuses keys of the checked kinds (publishable by
/// default) used from an origin outside their allow-list.
#[derive(Clone, Debug)]
pub struct OriginCheck {
    policies: PerRoute<OriginPolicy>,
}

impl OriginCheck {
    /// A check with `policies` (one policy, or one per route).
    pub fn new(policies: impl Into<PerRoute<OriginPolicy>>) -> Self {
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
    pub fn new(policies: impl Into<PerRoute<OriginPolicy>>) -> Self {
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
