//! [`Rule`]: which rule refused a request.

use std::fmt;

/// The rule that refused a request, carried by its [`ApiError`](super::ApiError):
/// renderers (`{rule}` in a template), the decision hook, metrics and shadow
/// mode read it.
///
/// ```
/// use tollgate::error::{ApiError, ErrorCode, Rule};
///
/// let error = ApiError::from(ErrorCode::INSUFFICIENT_SCOPE).with_rule(Rule::Scope);
/// assert_eq!(error.rule(), Some(Rule::Scope));
/// assert_eq!(Rule::RateLimit.as_str(), "rate_limit");
/// // A check of your own names its own.
/// assert_eq!(Rule::Custom("geo").as_str(), "geo");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The key check: the credential, its format, the key store's answer.
    Key,
    /// The origin check.
    Origin,
    /// The scope check's kind rule: the route does not take this kind of key.
    Kind,
    /// The scope check's scopes (and a resource's project).
    Scope,
    /// The rate limit.
    RateLimit,
    /// The body cap.
    BodyLimit,
    /// A check of your own, by the name you give it.
    Custom(&'static str),
}

impl Rule {
    /// The rule's name: `key`, `origin`, `kind`, `scope`, `rate_limit`,
    /// `body_limit`, or a custom rule's own.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Origin => "origin",
            Self::Kind => "kind",
            Self::Scope => "scope",
            Self::RateLimit => "rate_limit",
            Self::BodyLimit => "body_limit",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
