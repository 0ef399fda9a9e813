//! [`RoutePolicy`]: everything the gate enforces on one route.

use crate::key::KeyKind;
use crate::origin::MissingOrigin;
use crate::rate_limit::Quota;

/// What one route demands: whether it is public, the scopes and kinds of key
/// it accepts, origin rules, quotas and cost, and a body cap.
///
/// Settings left unset are taken from the gate's defaults
/// ([`GateBuilder::defaults`](super::GateBuilder::defaults)), which also
/// apply to requests that match no route.
///
/// ```
/// use tollgate::gate::RoutePolicy;
/// use tollgate::key::KeyKind;
/// use tollgate::rate_limit::Quota;
///
/// let track = RoutePolicy::new()
///     .require_all(["ingest"])
///     .quota(Quota::per_second(50).burst(200))
///     .body_limit(8 * 1024);
/// let forget = RoutePolicy::new()
///     .kinds([KeyKind::Secret])
///     .kind_code("forget_requires_secret_key")
///     .quota(Quota::per_second(1).burst(5));
/// let health = RoutePolicy::public();
/// # let _ = (track, forget, health);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutePolicy {
    pub(crate) public: Option<bool>,
    pub(crate) scopes: Option<(ScopeMode, Vec<String>)>,
    pub(crate) kinds: Option<Vec<KeyKind>>,
    pub(crate) kind_code: Option<String>,
    pub(crate) hidden: Option<bool>,
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) missing_origin: Option<MissingOrigin>,
    pub(crate) quotas: Option<Vec<Quota>>,
    pub(crate) cost: Option<u64>,
    pub(crate) body_limit: Option<u64>,
}

/// Whether a route needs all of its scopes or any one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeMode {
    /// Every scope.
    All,
    /// At least one.
    Any,
}

impl RoutePolicy {
    /// Nothing set: everything from the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// A public route: no key needed, partitioned by client IP for rate limits.
    pub fn public() -> Self {
        Self {
            public: Some(true),
            ..Self::default()
        }
    }

    /// Sets whether the route is public.
    #[must_use]
    pub fn with_public(mut self, public: bool) -> Self {
        self.public = Some(public);
        self
    }

    /// Requires every one of `scopes`.
    #[must_use]
    pub fn require_all<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some((ScopeMode::All, scopes.into_iter().map(Into::into).collect()));
        self
    }

    /// Requires at least one of `scopes`.
    #[must_use]
    pub fn require_any<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some((ScopeMode::Any, scopes.into_iter().map(Into::into).collect()));
        self
    }

    /// Accepts only these kinds of key.
    #[must_use]
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = KeyKind>) -> Self {
        self.kinds = Some(kinds.into_iter().collect());
        self
    }

    /// Refuses other kinds with this custom code (403) instead of
    /// `key_kind_not_allowed`.
    #[must_use]
    pub fn kind_code(mut self, code: impl Into<String>) -> Self {
        self.kind_code = Some(code.into());
        self
    }

    /// Answers refusals of scope or kind with 404 `not_found`.
    #[must_use]
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = Some(hidden);
        self
    }

    /// The origins browser keys may call from, for keys whose record lists none.
    #[must_use]
    pub fn origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// What to do with a browser key and no `Origin` header.
    #[must_use]
    pub fn missing_origin(mut self, missing: MissingOrigin) -> Self {
        self.missing_origin = Some(missing);
        self
    }

    /// One quota (replacing any).
    #[must_use]
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quotas = Some(vec![quota]);
        self
    }

    /// Stacked quotas, all of which must allow a request.
    #[must_use]
    pub fn quotas(mut self, quotas: impl IntoIterator<Item = Quota>) -> Self {
        self.quotas = Some(quotas.into_iter().collect());
        self
    }

    /// No rate limit.
    #[must_use]
    pub fn unlimited(mut self) -> Self {
        self.quotas = Some(Vec::new());
        self
    }

    /// What one request costs in tokens (default 1).
    #[must_use]
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = Some(cost);
        self
    }

    /// The body cap in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// This policy with every unset setting taken from `defaults`.
    pub(crate) fn or(&self, defaults: &RoutePolicy) -> RoutePolicy {
        RoutePolicy {
            public: self.public.or(defaults.public),
            scopes: self.scopes.clone().or_else(|| defaults.scopes.clone()),
            kinds: self.kinds.clone().or_else(|| defaults.kinds.clone()),
            kind_code: self
                .kind_code
                .clone()
                .or_else(|| defaults.kind_code.clone()),
            hidden: self.hidden.or(defaults.hidden),
            origins: self.origins.clone().or_else(|| defaults.origins.clone()),
            missing_origin: self.missing_origin.or(defaults.missing_origin),
            quotas: self.quotas.clone().or_else(|| defaults.quotas.clone()),
            cost: self.cost.or(defaults.cost),
            body_limit: self.body_limit.or(defaults.body_limit),
        }
    }
}
