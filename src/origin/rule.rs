//! [`OriginRule`]: the origin rules of one route, and [`MissingOrigin`].

use std::sync::Arc;

use crate::ConfigError;
use crate::context::kind::{KeyKind, KeyKinds};
use crate::context::origin::OriginPattern;
use crate::error::ErrorCode;

/// What to do with a request whose key is subject to origin checks but which
/// carries no `Origin` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
/// use tollgate::origin::{MissingOrigin, OriginRule};
///
/// let policy = OriginRule::new()
///     .allow(["https://app.example.com", "https://*.example.org", "http://localhost:*"])
///     .unwrap()
///     .missing_origin(MissingOrigin::Referer);
/// # let _ = policy;
/// ```
#[derive(Clone, Debug)]
pub struct OriginRule {
    pub(super) allowed: Arc<[OriginPattern]>,
    pub(super) missing: MissingOrigin,
    pub(super) kinds: KeyKinds,
    pub(super) code: ErrorCode,
}

impl OriginRule {
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

impl Default for OriginRule {
    fn default() -> Self {
        Self::new()
    }
}
