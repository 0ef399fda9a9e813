//! [`RoutePolicy`]: everything the gate enforces on one route.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::Shadow;
use crate::key::{CredentialSource, KeyKind};
use crate::origin::MissingOrigin;
use crate::rate_limit::Quota;
use crate::render::ErrorFormat;

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
///
/// The same struct is what a configuration file's `[defaults]` and each
/// `[[routes]]` entry read into (the field names below are the file's keys).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    /// `public`: no key needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) public: Option<bool>,
    /// `anonymous`: a request without a key passes with no principal; a
    /// key that is presented is judged in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) anonymous: Option<bool>,
    /// `credentials`: where keys are read (`bearer`, `header`, `query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) credentials: Option<Vec<CredentialSource>>,
    /// `scopes`: a key must hold all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scopes: Option<Vec<String>>,
    /// `any_scopes`: a key must hold one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) any_scopes: Option<Vec<String>>,
    /// `kinds`: accepted key kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kinds: Option<Vec<KeyKind>>,
    /// `kind_code`: the code refusing other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind_code: Option<String>,
    /// `scope_code`: the code refusing keys without the scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope_code: Option<String>,
    /// `origin_code`: the code refusing an origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) origin_code: Option<String>,
    /// `body_limit_code`: the code refusing a body over the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body_limit_code: Option<String>,
    /// `errors`: this route's error shape, when it differs from the gate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) errors: Option<ErrorFormat>,
    /// `project_param`: a path parameter that must equal the caller's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project_param: Option<String>,
    /// `hidden`: 404 instead of 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hidden: Option<bool>,
    /// `origins`: for browser keys whose record lists none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) origins: Option<Vec<String>>,
    /// `missing_origin`: `reject`, `allow` or `referer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) missing_origin: Option<MissingOrigin>,
    /// `quotas`: all must allow a request (`[]`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quotas: Option<Vec<Quota>>,
    /// `cost`: tokens one request costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cost: Option<u64>,
    /// `body_limit`: the body cap in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body_limit: Option<u64>,
    /// `shadow`: checks decided and recorded but not enforced (`true`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shadow: Option<Shadow>,
    /// `tiers`: other quotas and body caps for keys of these tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tiers: Option<BTreeMap<String, TierPolicy>>,
}

/// What a route gives keys of one tier instead of its own quotas and body
/// cap (see [`RoutePolicy::tier`]). What it leaves unset is the route's.
///
/// In a configuration file, a route's (or the defaults')
/// `tiers = { pro = { quotas = [...], body_limit = 1048576 } }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierPolicy {
    /// `quotas`: the tier's quotas on this route (`[]`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quotas: Option<Vec<Quota>>,
    /// `body_limit`: the tier's body cap on this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body_limit: Option<u64>,
}

impl TierPolicy {
    /// Nothing set: the route's quotas and cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// One quota for the tier.
    #[must_use]
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quotas = Some(vec![quota]);
        self
    }

    /// Stacked quotas for the tier.
    #[must_use]
    pub fn quotas(mut self, quotas: impl IntoIterator<Item = Quota>) -> Self {
        self.quotas = Some(quotas.into_iter().collect());
        self
    }

    /// The tier's body cap in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.body_limit = Some(bytes);
        self
    }
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

    /// Optional authentication: a request without a key passes with no
    /// [`Principal`](crate::key::Principal) (rate-limited by client address
    /// like a public route's); a key that is presented is judged in full, so
    /// a bad key is still 401.
    #[must_use]
    pub fn anonymous(mut self, anonymous: bool) -> Self {
        self.anonymous = Some(anonymous);
        self
    }

    /// Where this route reads keys. A key sent only somewhere else is not
    /// seen: `missing_api_key`. Default: the gate's
    /// ([`GateBuilder::credentials`](super::GateBuilder::credentials)).
    #[must_use]
    pub fn credentials(mut self, sources: impl IntoIterator<Item = CredentialSource>) -> Self {
        self.credentials = Some(sources.into_iter().collect());
        self
    }

    /// Requires every one of `scopes`.
    #[must_use]
    pub fn require_all<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self.any_scopes = None;
        self
    }

    /// Requires at least one of `scopes`.
    #[must_use]
    pub fn require_any<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.any_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self.scopes = None;
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

    /// Refuses keys without the scopes with this custom code (403) instead
    /// of `insufficient_scope`.
    #[must_use]
    pub fn scope_code(mut self, code: impl Into<String>) -> Self {
        self.scope_code = Some(code.into());
        self
    }

    /// Refuses origins with this custom code (403) instead of
    /// `origin_not_allowed`.
    #[must_use]
    pub fn origin_code(mut self, code: impl Into<String>) -> Self {
        self.origin_code = Some(code.into());
        self
    }

    /// Refuses bodies over the cap with this custom code (413) instead of
    /// `payload_too_large`.
    #[must_use]
    pub fn body_limit_code(mut self, code: impl Into<String>) -> Self {
        self.body_limit_code = Some(code.into());
        self
    }

    /// Renders this route's rejections in `format` instead of the gate's
    /// (for example a JSON-RPC or a template envelope on one route).
    #[must_use]
    pub fn errors(mut self, format: ErrorFormat) -> Self {
        self.errors = Some(format);
        self
    }

    /// Requires the path parameter `name` to equal the caller's project
    /// (`/stores/{store_id}/…` with `project_param = "store_id"`: a key of
    /// project `acme` may call `/stores/acme/…` only).
    #[must_use]
    pub fn project_param(mut self, name: impl Into<String>) -> Self {
        self.project_param = Some(name.into());
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

    /// Shadows these checks on this route (see
    /// [`check::shadow`](crate::check::Shadow)): a rejection they would
    /// answer is recorded — the decision hook, metrics with outcome
    /// `shadow`, a `debug` log — and the request passes. `Shadow::ALL`
    /// shadows every check but the body cap.
    ///
    /// ```
    /// use tollgate::check::Shadow;
    /// use tollgate::gate::RoutePolicy;
    /// use tollgate::rate_limit::Quota;
    ///
    /// // Try a tighter limit before enforcing it.
    /// let track = RoutePolicy::new()
    ///     .quota(Quota::per_second(10))
    ///     .shadow(Shadow::checks(["rate_limit"]).unwrap());
    /// # let _ = track;
    /// ```
    #[must_use]
    pub fn shadow(mut self, shadow: Shadow) -> Self {
        self.shadow = Some(shadow);
        self
    }

    /// Gives keys of tier `tier` (see
    /// [`KeyRecord::with_tier`](crate::key::KeyRecord::with_tier)) other
    /// quotas or another body cap on this route. A key's own body cap or
    /// quota override still wins over its tier's.
    ///
    /// Set on the defaults, a tier's quotas apply to the routes that take
    /// their quotas from the defaults, and its body cap to those that take
    /// their cap from the defaults; a route that sets its own quotas or cap
    /// sets its tiers' too.
    ///
    /// ```
    /// use tollgate::gate::{RoutePolicy, TierPolicy};
    /// use tollgate::rate_limit::Quota;
    ///
    /// let track = RoutePolicy::new()
    ///     .quota(Quota::per_second(10))
    ///     .body_limit(64 * 1024)
    ///     .tier("pro", TierPolicy::new().quota(Quota::per_second(200)).body_limit(1 << 20));
    /// # let _ = track;
    /// ```
    #[must_use]
    pub fn tier(mut self, tier: impl Into<String>, policy: TierPolicy) -> Self {
        self.tiers
            .get_or_insert_with(BTreeMap::new)
            .insert(tier.into(), policy);
        self
    }

    /// The tiers' settings, after `or` (every tier named here or on the
    /// defaults, each setting the route's or the defaults' as `or` says).
    fn merged_tiers(&self, defaults: &RoutePolicy) -> Option<BTreeMap<String, TierPolicy>> {
        let own = self.tiers.as_ref();
        let inherited = defaults.tiers.as_ref();
        if own.is_none() && inherited.is_none() {
            return None;
        }
        let names = own
            .into_iter()
            .chain(inherited)
            .flat_map(BTreeMap::keys)
            .collect::<std::collections::BTreeSet<_>>();
        let merged = names
            .into_iter()
            .map(|name| {
                let mine = own.and_then(|tiers| tiers.get(name));
                let theirs = inherited.and_then(|tiers| tiers.get(name));
                let quotas = mine.and_then(|tier| tier.quotas.clone()).or_else(|| {
                    self.quotas
                        .is_none()
                        .then(|| theirs.and_then(|tier| tier.quotas.clone()))
                        .flatten()
                });
                let body_limit = mine.and_then(|tier| tier.body_limit).or_else(|| {
                    self.body_limit
                        .is_none()
                        .then(|| theirs.and_then(|tier| tier.body_limit))
                        .flatten()
                });
                (name.clone(), TierPolicy { quotas, body_limit })
            })
            .collect();
        Some(merged)
    }

    /// This policy with every unset setting taken from `defaults` (the
    /// scopes as one setting: a route's `any_scopes` replaces the defaults'
    /// `scopes`).
    pub(crate) fn or(&self, defaults: &RoutePolicy) -> RoutePolicy {
        let own_scopes = self.scopes.is_some() || self.any_scopes.is_some();
        let scopes = if own_scopes { self } else { defaults };
        RoutePolicy {
            public: self.public.or(defaults.public),
            anonymous: self.anonymous.or(defaults.anonymous),
            credentials: self
                .credentials
                .clone()
                .or_else(|| defaults.credentials.clone()),
            scopes: scopes.scopes.clone(),
            any_scopes: scopes.any_scopes.clone(),
            kinds: self.kinds.clone().or_else(|| defaults.kinds.clone()),
            kind_code: self
                .kind_code
                .clone()
                .or_else(|| defaults.kind_code.clone()),
            scope_code: self
                .scope_code
                .clone()
                .or_else(|| defaults.scope_code.clone()),
            origin_code: self
                .origin_code
                .clone()
                .or_else(|| defaults.origin_code.clone()),
            body_limit_code: self
                .body_limit_code
                .clone()
                .or_else(|| defaults.body_limit_code.clone()),
            errors: self.errors.clone().or_else(|| defaults.errors.clone()),
            project_param: self
                .project_param
                .clone()
                .or_else(|| defaults.project_param.clone()),
            hidden: self.hidden.or(defaults.hidden),
            origins: self.origins.clone().or_else(|| defaults.origins.clone()),
            missing_origin: self.missing_origin.or(defaults.missing_origin),
            quotas: self.quotas.clone().or_else(|| defaults.quotas.clone()),
            cost: self.cost.or(defaults.cost),
            body_limit: self.body_limit.or(defaults.body_limit),
            shadow: self.shadow.or(defaults.shadow),
            tiers: self.merged_tiers(defaults),
        }
    }
}
