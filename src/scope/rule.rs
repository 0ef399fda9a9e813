//! [`ScopeRule`] and the check applying it.

use std::convert::Infallible;
use std::sync::Arc;

use http::Request;
use serde_json::json;

use crate::ConfigError;
use crate::check::{Check, CheckLayer, CheckService, ResponseHeaders, Step, never_pending};
use crate::context::{self, Caller};
use crate::error::{ApiError, ErrorCode};
use crate::key::{KeyKind, KeyKinds};
use crate::route::PerRoute;
use crate::store::Answer;

/// Whether `granted` covers `required`: equal, `*`, or `prefix.*` with
/// `required` strictly under `prefix.`.
///
/// ```
/// use tollgate::scope::covers;
///
/// assert!(covers("people.*", "people.view_paygap"));
/// assert!(covers("*", "admin"));
/// assert!(!covers("people.*", "people"));
/// assert!(!covers("read", "readwrite"));
/// ```
pub fn covers(granted: &str, required: &str) -> bool {
    if granted == "*" || granted == required {
        return true;
    }
    match granted.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => {
            required.len() > prefix.len() && required.starts_with(prefix)
        }
        _ => false,
    }
}

/// Checks the syntax of a scope a route requires: dot-separated, non-empty
/// segments of `[a-z0-9_:-]`, at most 128 characters.
pub fn validate_scope(scope: &str) -> Result<(), ConfigError> {
    let valid = !scope.is_empty()
        && scope.len() <= 128
        && scope.split('.').all(|segment| {
            !segment.is_empty()
                && segment.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b':' | b'-')
                })
        });
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            "scopes",
            format!(
                "`{scope}` is not a valid scope: use dot-separated segments of [a-z0-9_:-] (wildcards are for granted scopes only)"
            ),
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// What one route demands of a key: scopes and kinds, the code for a kind
/// that is not accepted, and whether refusals are hidden behind a 404.
///
/// ```
/// use http::StatusCode;
/// use tollgate::error::{Category, ErrorCode};
/// use tollgate::key::KeyKind;
/// use tollgate::scope::ScopeRule;
///
/// let forget = ScopeRule::new()
///     .kinds(KeyKind::Secret)
///     .kind_code(ErrorCode::custom("forget_requires_secret_key", StatusCode::FORBIDDEN, Category::Auth).unwrap());
/// let stats = ScopeRule::any_of(["read", "admin"]).unwrap().hidden(true);
/// # let _ = (forget, stats);
/// ```
#[derive(Clone, Debug)]
pub struct ScopeRule {
    required: Arc<[Box<str>]>,
    mode: Mode,
    kinds: KeyKinds,
    kind_code: ErrorCode,
    scope_code: ErrorCode,
    hidden: bool,
}

impl ScopeRule {
    /// No scope required; every kind accepted.
    pub fn new() -> Self {
        Self {
            required: Arc::from([]),
            mode: Mode::All,
            kinds: KeyKinds::ALL,
            kind_code: ErrorCode::KEY_KIND_NOT_ALLOWED,
            scope_code: ErrorCode::INSUFFICIENT_SCOPE,
            hidden: false,
        }
    }

    /// Requires every one of `scopes`.
    pub fn all_of<I, S>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new().require(Mode::All, scopes)
    }

    /// Requires at least one of `scopes` (none listed: no requirement).
    pub fn any_of<I, S>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new().require(Mode::Any, scopes)
    }

    fn require<I, S>(mut self, mode: Mode, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scopes = scopes
            .into_iter()
            .map(|scope| {
                validate_scope(scope.as_ref())?;
                Ok(Box::from(scope.as_ref()))
            })
            .collect::<Result<Vec<Box<str>>, ConfigError>>()?;
        self.required = scopes.into();
        self.mode = mode;
        Ok(self)
    }

    /// Accepts only these kinds of key.
    #[must_use]
    pub fn kinds(mut self, kinds: impl Into<KeyKinds>) -> Self {
        self.kinds = kinds.into();
        self
    }

    /// Refuses other kinds with `code` instead of `key_kind_not_allowed`.
    #[must_use]
    pub fn kind_code(mut self, code: ErrorCode) -> Self {
        self.kind_code = code;
        self
    }

    /// Refuses keys without the scopes with `code` instead of
    /// `insufficient_scope`.
    #[must_use]
    pub fn scope_code(mut self, code: ErrorCode) -> Self {
        self.scope_code = code;
        self
    }

    /// Answers every refusal with 404 `not_found`, so keys that may not call
    /// the route cannot tell it exists.
    #[must_use]
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// The required scopes.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.required.iter().map(|scope| &**scope)
    }

    /// The accepted kinds.
    pub fn accepted_kinds(&self) -> KeyKinds {
        self.kinds
    }

    fn satisfied_by(&self, granted: &[String]) -> bool {
        let held = |required: &str| granted.iter().any(|g| covers(g, required));
        match self.mode {
            Mode::All => self.required().all(held),
            Mode::Any => self.required.is_empty() || self.required().any(held),
        }
    }

    fn judge(&self, kind: KeyKind, granted: &[String]) -> Result<(), ApiError> {
        let refusal = if !self.kinds.contains(kind) {
            let accepted: Vec<&str> = self.kinds.iter().map(KeyKind::as_str).collect();
            let message = format!(
                "This route does not accept {} keys; it accepts: {}.",
                kind.as_str(),
                accepted.join(", ")
            );
            ApiError::new(self.kind_code.clone(), message)
                .with_details(json!({ "accepted": accepted, "kind": kind.as_str() }))
                .with_rule("kind")
        } else if !self.satisfied_by(granted) {
            let missing: Vec<&str> = self
                .required
                .iter()
                .filter(|required| !granted.iter().any(|g| covers(g, required)))
                .map(|scope| &**scope)
                .collect();
            let required: Vec<&str> = self.required().collect();
            let (mode, message) = match self.mode {
                Mode::All => (
                    "all",
                    format!("This route requires the scopes: {}.", required.join(", ")),
                ),
                Mode::Any => (
                    "any",
                    format!(
                        "This route requires one of the scopes: {}.",
                        required.join(", ")
                    ),
                ),
            };
            ApiError::new(self.scope_code.clone(), message)
                .with_details(json!({
                    "required": required,
                    "granted": granted,
                    "missing": missing,
                    "mode": mode,
                }))
                .with_rule("scope")
        } else {
            return Ok(());
        };
        if self.hidden {
            let rule = refusal.rule().unwrap_or("scope");
            return Err(ApiError::from(ErrorCode::NOT_FOUND).with_rule(rule));
        }
        Err(refusal)
    }
}

impl Default for ScopeRule {
    fn default() -> Self {
        Self::new()
    }
}

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
            Caller::Key(principal) => self
                .rules
                .for_route(context::route(request))?
                .judge(principal.kind(), principal.scopes()),
        }
    }
}

impl Check for ScopeCheck {
    type Pending = Infallible;

    #[inline]
    fn check<B>(&self, request: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Infallible> {
        Answer::Ready(self.judge(request))
    }

    never_pending!();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_what_is_under_them_only() {
        assert!(covers("people.*", "people.view_paygap"));
        assert!(covers("people.*", "people.salaries.view"));
        assert!(!covers("people.*", "people"));
        assert!(!covers("people.*", "peoplex.view"));
        assert!(!covers("people.*", "other.people.view"));
        assert!(covers("*", "anything.at.all"));
        assert!(!covers("read", "readwrite"));
        assert!(!covers("read", "read.all"));
        assert!(!covers("read*", "readwrite"));
        assert!(covers("read", "read"));
    }

    #[test]
    fn all_and_any() {
        let granted = vec!["read".to_owned(), "people.*".to_owned()];
        assert!(
            ScopeRule::all_of(["read", "people.view"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            !ScopeRule::all_of(["read", "admin"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            ScopeRule::any_of(["admin", "people.view"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            !ScopeRule::any_of(["admin", "write"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            ScopeRule::any_of(Vec::<&str>::new())
                .unwrap()
                .satisfied_by(&[])
        );
        assert!(ScopeRule::new().satisfied_by(&[]));
    }

    #[test]
    fn required_scope_syntax_is_checked() {
        for bad in [
            "",
            "Read",
            "people.*",
            "*",
            "a..b",
            "a b",
            ".a",
            &"a".repeat(129),
        ] {
            let error = ScopeRule::all_of([bad]).unwrap_err();
            assert_eq!(error.field(), "scopes", "{bad}");
        }
        assert!(ScopeRule::all_of(["people.view_paygap", "billing:read", "a-b"]).is_ok());
    }
}
