//! [`RoutePolicy`]: everything the gate enforces on one route, composed of
//! each check's own settings; and [`TierPolicy`], what a route gives keys of
//! one tier.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tier::TierPolicy;
use crate::body_limit::policy::BodyLimitPolicy;
use crate::check::Shadow;
use crate::fields;
use crate::key::CredentialSource;
use crate::key::KeyKind;
use crate::key::policy::KeyPolicy;
use crate::origin::MissingOrigin;
use crate::origin::policy::OriginPolicy;
use crate::rate_limit::Quota;
use crate::rate_limit::policy::RateLimitPolicy;
use crate::render::ErrorFormat;
use crate::scope::policy::ScopePolicy;

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
/// `[[routes]]` entry read into, each check's settings side by side (the
/// setters below name the file's keys); a key none of them knows is refused.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoutePolicy {
    /// `public`: no key needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) public: Option<bool>,
    /// `errors`: this route's error shape, when it differs from the gate's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) errors: Option<ErrorFormat>,
    /// `shadow`: checks decided and recorded but not enforced (`true`: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shadow: Option<Shadow>,
    /// `tiers`: other quotas and body caps for keys of these tiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tiers: Option<BTreeMap<String, TierPolicy>>,
    #[serde(flatten)]
    pub(crate) key: KeyPolicy,
    #[serde(flatten)]
    pub(crate) origin: OriginPolicy,
    #[serde(flatten)]
    pub(crate) scope: ScopePolicy,
    #[serde(flatten)]
    pub(crate) rate: RateLimitPolicy,
    #[serde(flatten)]
    pub(crate) body: BodyLimitPolicy,
}

/// The settings of a route that belong to the gate itself rather than to
/// one check.
#[derive(Deserialize)]
struct GateFields {
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    errors: Option<ErrorFormat>,
    #[serde(default)]
    shadow: Option<Shadow>,
    #[serde(default)]
    tiers: Option<BTreeMap<String, TierPolicy>>,
}

impl<'de> Deserialize<'de> for RoutePolicy {
    /// Reads each check's settings from the one table; a key none of them
    /// knows is an error naming it.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = Map::<String, Value>::deserialize(deserializer)?;
        fields::refuse_unknown(
            &table,
            &[
                fields::names::<GateFields>(),
                fields::names::<KeyPolicy>(),
                fields::names::<OriginPolicy>(),
                fields::names::<ScopePolicy>(),
                fields::names::<RateLimitPolicy>(),
                fields::names::<BodyLimitPolicy>(),
            ],
        )
        .map_err(D::Error::custom)?;
        let own: GateFields = fields::part(&table).map_err(D::Error::custom)?;
        Ok(Self {
            public: own.public,
            errors: own.errors,
            shadow: own.shadow,
            tiers: own.tiers,
            key: fields::part(&table).map_err(D::Error::custom)?,
            origin: fields::part(&table).map_err(D::Error::custom)?,
            scope: fields::part(&table).map_err(D::Error::custom)?,
            rate: fields::part(&table).map_err(D::Error::custom)?,
            body: fields::part(&table).map_err(D::Error::custom)?,
        })
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
        self.key.anonymous = Some(anonymous);
        self
    }

    /// Where this route reads keys. A key sent only somewhere else is not
    /// seen: `missing_api_key`. Default: the gate's
    /// ([`GateBuilder::credentials`](super::GateBuilder::credentials)).
    #[must_use]
    pub fn credentials(mut self, sources: impl IntoIterator<Item = CredentialSource>) -> Self {
        self.key.credentials = Some(sources.into_iter().collect());
        self
    }

    /// Requires every one of `scopes`.
    #[must_use]
    pub fn require_all<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self.scope.any_scopes = None;
        self
    }

    /// Requires at least one of `scopes`.
    #[must_use]
    pub fn require_any<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope.any_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self.scope.scopes = None;
        self
    }

    /// Accepts only these kinds of key.
    #[must_use]
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = KeyKind>) -> Self {
        self.scope.kinds = Some(kinds.into_iter().collect());
        self
    }

    /// Refuses other kinds with this custom code (403) instead of
    /// `key_kind_not_allowed`.
    #[must_use]
    pub fn kind_code(mut self, code: impl Into<String>) -> Self {
        self.scope.kind_code = Some(code.into());
        self
    }

    /// Refuses keys without the scopes with this custom code (403) instead
    /// of `insufficient_scope`.
    #[must_use]
    pub fn scope_code(mut self, code: impl Into<String>) -> Self {
        self.scope.scope_code = Some(code.into());
        self
    }

    /// Refuses keys of another project than the path's
    /// [`project_param`](Self::project_param) names with this custom code
    /// (403) instead of the route's scope code.
    #[must_use]
    pub fn project_code(mut self, code: impl Into<String>) -> Self {
        self.scope.project_code = Some(code.into());
        self
    }

    /// Refuses origins with this custom code (403) instead of
    /// `origin_not_allowed`.
    #[must_use]
    pub fn origin_code(mut self, code: impl Into<String>) -> Self {
        self.origin.origin_code = Some(code.into());
        self
    }

    /// Refuses bodies over the cap with this custom code (413) instead of
    /// `payload_too_large`.
    #[must_use]
    pub fn body_limit_code(mut self, code: impl Into<String>) -> Self {
        self.body.body_limit_code = Some(code.into());
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
        self.scope.project_param = Some(name.into());
        self
    }

    /// Answers refusals of scope or kind with 404 `not_found`.
    #[must_use]
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.scope.hidden = Some(hidden);
        self
    }

    /// The origins browser keys may call from, for keys whose record lists none.
    #[must_use]
    pub fn origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origin.origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// What to do with a browser key and no `Origin` header.
    #[must_use]
    pub fn missing_origin(mut self, missing: MissingOrigin) -> Self {
        self.origin.missing_origin = Some(missing);
        self
    }

    /// One quota (replacing any).
    #[must_use]
    pub fn quota(mut self, quota: Quota) -> Self {
        self.rate.quotas = Some(vec![quota]);
        self
    }

    /// Stacked quotas, all of which must allow a request.
    #[must_use]
    pub fn quotas(mut self, quotas: impl IntoIterator<Item = Quota>) -> Self {
        self.rate.quotas = Some(quotas.into_iter().collect());
        self
    }

    /// No rate limit.
    #[must_use]
    pub fn unlimited(mut self) -> Self {
        self.rate.quotas = Some(Vec::new());
        self
    }

    /// What one request costs in tokens (default 1).
    #[must_use]
    pub fn cost(mut self, cost: u64) -> Self {
        self.rate.cost = Some(cost);
        self
    }

    /// Settles each request's cost after its response, by the
    /// [`Cost`](crate::rate_limit::Cost) the handler puts in the
    /// response's extensions (`cost_from_response = true` in a file); see
    /// [`charge`](crate::rate_limit::charge).
    #[must_use]
    pub fn cost_from_response(mut self) -> Self {
        self.rate.cost_from_response = Some(true);
        self
    }

    /// Charges only responses of these statuses (`count = "2xx"` or
    /// `["401", "403"]` in a file), settled after the response.
    #[must_use]
    pub fn count(mut self, counted: crate::rate_limit::Counted) -> Self {
        self.rate.count = Some(counted);
        self
    }

    /// The body cap in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.body.body_limit = Some(bytes);
        self
    }

    /// RouteShadow these checks on this route (see
    /// [`Shadow`]): a rejection they would
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
                // A tier inherits what the route inherits: the defaults'
                // tier quotas only where the route takes its quotas from the
                // defaults, and likewise its body cap.
                let quotas = mine.and_then(|tier| tier.rate.quotas.clone()).or_else(|| {
                    self.rate
                        .quotas
                        .is_none()
                        .then(|| theirs.and_then(|tier| tier.rate.quotas.clone()))
                        .flatten()
                });
                let body_limit = mine.and_then(|tier| tier.body.body_limit).or_else(|| {
                    self.body
                        .body_limit
                        .is_none()
                        .then(|| theirs.and_then(|tier| tier.body.body_limit))
                        .flatten()
                });
                let tier = TierPolicy {
                    rate: RateLimitPolicy {
                        quotas,
                        ..RateLimitPolicy::default()
                    },
                    body: BodyLimitPolicy {
                        body_limit,
                        ..BodyLimitPolicy::default()
                    },
                };
                (name.clone(), tier)
            })
            .collect();
        Some(merged)
    }

    /// This policy with every unset setting taken from `defaults`.
    pub(crate) fn or(&self, defaults: &RoutePolicy) -> RoutePolicy {
        RoutePolicy {
            public: self.public.or(defaults.public),
            errors: self.errors.clone().or_else(|| defaults.errors.clone()),
            shadow: self.shadow.or(defaults.shadow),
            tiers: self.merged_tiers(defaults),
            key: self.key.or(&defaults.key),
            origin: self.origin.or(&defaults.origin),
            scope: self.scope.or(&defaults.scope),
            rate: self.rate.or(&defaults.rate),
            body: self.body.or(&defaults.body),
        }
    }

    /// The custom codes this policy's rules declare.
    pub(crate) fn codes(&self) -> impl Iterator<Item = &str> {
        let tiers = self
            .tiers
            .iter()
            .flatten()
            .flat_map(|(_, tier)| tier.rate.codes().chain(tier.body.codes()));
        self.origin
            .codes()
            .chain(self.scope.codes())
            .chain(self.rate.codes())
            .chain(self.body.codes())
            .chain(tiers)
    }
}
