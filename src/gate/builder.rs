//! [`GateBuilder`]: a [`GateConfig`] being set up in code, and what only
//! code can give (stores, a clock, a hook, a check of your own); `build`
//! compiles each check's settings into its rule.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::config::{GateConfig, RouteConfig};
use super::observe::{Hook, Reports};
use super::{Gate, GateEvent, RoutePolicy};
use crate::ConfigError;
use crate::body_limit::{BodyLimits, DrainLimits, TierCaps};
use crate::check::{Check, CheckLayer};
use crate::clock::Clock;
use crate::error::{CodeMap, Rule};
use crate::key::format::KeyParser;
use crate::key::store::KeyStore;
use crate::key::{CredentialSource, KeyCheck, KeyHasher, KeyKind, KeyKinds};
use crate::origin::OriginCheck;
use crate::rate_limit::policy::check_shared_quotas;
use crate::rate_limit::store::RateStore;
use crate::rate_limit::{
    InMemoryRateStore, IpNet, Partition, Quota, RateLimit, RateLimitCheck, RateLimitHeaders,
};
use crate::render::ErrorRenderer;
use crate::route::{PerRoute, Route, RouteCheck, Routes, TrailingSlash};
use crate::scope::ScopeCheck;

/// The rate store a builder will use: one given, or the default in-memory
/// store, made at `build` on the builder's clock.
enum RateStoreSlot<Rs> {
    Given(Rs),
    Default(fn(Clock) -> Rs),
}

/// Configures a [`Gate`]; see the [module docs](super).
///
/// It holds a [`GateConfig`]: each setter changes one of its settings (the
/// same a configuration file sets under the same name), and
/// [`GateConfig::builder`] starts from a whole one. What data cannot say —
/// the stores, a hasher or parser of your own, a renderer, the clock, the
/// decision hook, a check of your own — it holds beside.
#[must_use]
pub struct GateBuilder<St, Rs, C = ()> {
    key_store: St,
    rate_store: RateStoreSlot<Rs>,
    check: C,
    config: GateConfig,
    hasher: Option<KeyHasher>,
    parser: Option<KeyParser>,
    renderer: Option<ErrorRenderer>,
    clock: Clock,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::MetricsOptions,
    hook: Option<Hook>,
    /// The first mistake found by a setter that cannot fail, reported by
    /// `build`.
    error: Option<ConfigError>,
}

impl<St: KeyStore> GateBuilder<St, InMemoryRateStore> {
    pub(super) fn new(key_store: St) -> Self {
        Self {
            key_store,
            rate_store: RateStoreSlot::Default(InMemoryRateStore::with_clock),
            check: (),
            config: GateConfig::default(),
            hasher: None,
            parser: None,
            renderer: None,
            clock: Clock::system(),
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::MetricsOptions::default(),
            hook: None,
            error: None,
        }
    }
}

impl<St: KeyStore, Rs: RateStore, C: Check> GateBuilder<St, Rs, C> {
    /// Keeps rate-limit buckets in `store` (for example one shared by
    /// several instances).
    pub fn rate_store<Rs2: RateStore>(self, store: Rs2) -> GateBuilder<St, Rs2, C> {
        GateBuilder {
            key_store: self.key_store,
            rate_store: RateStoreSlot::Given(store),
            check: self.check,
            config: self.config,
            hasher: self.hasher,
            parser: self.parser,
            renderer: self.renderer,
            clock: self.clock,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
            hook: self.hook,
            error: self.error,
        }
    }

    /// Authenticates against `store` instead.
    pub fn key_store<St2: KeyStore>(self, store: St2) -> GateBuilder<St2, Rs, C> {
        GateBuilder {
            key_store: store,
            rate_store: self.rate_store,
            check: self.check,
            config: self.config,
            hasher: self.hasher,
            parser: self.parser,
            renderer: self.renderer,
            clock: self.clock,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
            hook: self.hook,
            error: self.error,
        }
    }

    /// Runs `check` on every request after the scope check and before the
    /// rate limit (so a request it refuses consumes no token); several are
    /// chained with [`Check::then`]. See [`check`](crate::check).
    pub fn check<C2: Check>(self, check: C2) -> GateBuilder<St, Rs, C2> {
        GateBuilder {
            key_store: self.key_store,
            rate_store: self.rate_store,
            check,
            config: self.config,
            hasher: self.hasher,
            parser: self.parser,
            renderer: self.renderer,
            clock: self.clock,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
            hook: self.hook,
            error: self.error,
        }
    }

    /// Starts from every setting of `config` (its keys aside: they are the
    /// key store's business).
    pub(crate) fn with_config(mut self, config: GateConfig) -> Self {
        self.config = config;
        self
    }

    fn with(mut self, change: impl FnOnce(&mut GateConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Digests keys with `hasher` (the pepper), instead of the one the
    /// configuration's `pepper` or `pepper_env` makes.
    pub fn hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Parses keys with `parser` (prefixes, checksum), instead of the
    /// default one (with the configuration's `require_checksum`).
    pub fn parser(mut self, parser: KeyParser) -> Self {
        self.parser = Some(parser);
        self
    }

    /// Also accepts publishable keys in this query parameter.
    pub fn query_parameter(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|c| c.key.query_parameter = Some(name))
    }

    /// Removes the credential before your service sees the request.
    pub fn strip_credential(self, strip: bool) -> Self {
        self.with(|c| c.key.strip_credential = strip)
    }

    /// How long the key store has to answer (`None`: no limit).
    pub fn lookup_timeout(self, timeout: Option<Duration>) -> Self {
        self.with(|c| c.key.lookup_timeout = timeout)
    }

    /// The header carrying a bare key (default `X-API-Key`), for the
    /// `header` credential source.
    pub fn credential_header(self, header: HeaderName) -> Self {
        self.with(|c| c.key.credential_header = header)
    }

    /// Where keys are read on routes that do not say (default: bearer,
    /// header, and the query parameter where one is named). A list that
    /// cannot work (empty, or `query` without a `query_parameter`) is
    /// reported by [`build`](Self::build).
    pub fn credentials(self, sources: impl IntoIterator<Item = CredentialSource>) -> Self {
        let sources: Vec<_> = sources.into_iter().collect();
        self.with(|c| c.key.credentials = Some(sources))
    }

    /// Answers revoked keys `401 revoked_api_key` instead of the default
    /// `invalid_api_key` (which does not tell a revoked key from one that
    /// never existed).
    pub fn reveal_revoked(self, reveal: bool) -> Self {
        self.with(|c| c.key.reveal_revoked = reveal)
    }

    /// Renames codes and sets their statuses as an existing API's contract
    /// has them (applied to every rejection the gate's renderer renders).
    /// Every code it names must be a built-in one or one a route's rule
    /// declares, checked at `build`.
    pub fn codes(self, codes: CodeMap) -> Self {
        self.with(|c| c.codes = codes)
    }

    /// Renders every rejection with `renderer`, instead of the one the
    /// configuration's `errors` names. The request-id header set with
    /// [`request_id_header`](Self::request_id_header) (or a configuration
    /// file's), the code map and each route's own shape still apply.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// Echoes the request id from `header` (default `x-request-id`).
    pub fn request_id_header(self, header: HeaderName) -> Self {
        self.with(|c| c.request_id_header = Some(header.as_str().to_owned()))
    }

    /// Reads every time from `clock`: key expiry, rate-limit reset times,
    /// and the buckets of the default in-memory rate store. (A rate store
    /// you give keeps its own clock.)
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Partitions rate limits by `partition` (default: project).
    pub fn partition(self, partition: Partition) -> Self {
        self.with(|c| c.rate.partition = partition)
    }

    /// Trusts these proxies' `X-Forwarded-For` (see
    /// [`RateLimitLayer::trusted_proxies`](crate::rate_limit::RateLimitLayer::trusted_proxies)).
    pub fn trusted_proxies(self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        let nets: Vec<IpNet> = proxies.into_iter().collect();
        self.with(|c| c.rate.trusted_proxies = nets)
    }

    /// Chooses the rate-limit headers.
    pub fn rate_limit_headers(self, headers: RateLimitHeaders) -> Self {
        self.with(|c| c.rate.rate_limit_headers = headers)
    }

    /// The key kinds whose origin is checked (publishable by default).
    pub fn origin_kinds(self, kinds: impl Into<KeyKinds>) -> Self {
        let kinds: Vec<KeyKind> = kinds.into().iter().collect();
        self.with(|c| c.origin_kinds = Some(kinds))
    }

    /// How trailing slashes are matched (default: trimmed).
    pub fn trailing_slash(self, trailing_slash: TrailingSlash) -> Self {
        self.with(|c| c.trailing_slash = trailing_slash)
    }

    /// How much of a refused HTTP/1.1 request's body is read and discarded
    /// (default: up to 64 KiB, never more than the route's body cap, for at
    /// most 1 s) so that its connection can carry the next request. A body
    /// that cannot be drained gets `Connection: close` on the rejection.
    pub fn drain(self, drain: DrainLimits) -> Self {
        self.with(|c| c.drain = drain)
    }

    /// The policy of unmatched requests, and the defaults of every route's
    /// unset settings.
    pub fn defaults(self, defaults: RoutePolicy) -> Self {
        self.with(|c| c.defaults = defaults)
    }

    /// Declares a route (`METHOD /path/{param}`, method `*` for any) and its
    /// policy.
    pub fn route(self, pattern: impl Into<String>, policy: RoutePolicy) -> Self {
        let entry = RouteConfig::new(pattern, policy);
        self.with(|c| c.routes.push(entry))
    }

    /// Declares a quota that routes share: every route listing
    /// [`Quota::shared`] with its name (a configuration file's
    /// `quotas = ["sdk"]`) draws from one bucket per partition, while each
    /// route keeps its own other settings and quotas. It must be named
    /// ([`Quota::named`]); declaring a name again replaces it.
    pub fn shared_quota(mut self, quota: Quota) -> Self {
        match quota.name() {
            Some(name) => {
                let name = name.to_owned();
                self.config.shared_quotas.insert(name, quota);
            }
            None => {
                self.error.get_or_insert(ConfigError::new(
                    "shared_quotas",
                    format!("{quota:?} needs a name: routes list it by its name"),
                ));
            }
        }
        self
    }

    /// Sets what the metrics say beyond the defaults (feature `metrics`;
    /// see [`crate::metrics`]). With the feature, the gate reports to
    /// whatever recorder is installed, with or without this call.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, options: crate::metrics::MetricsOptions) -> Self {
        self.metrics = options;
        self
    }

    /// Calls `hook` once per request with what the gate decided (allowed, or
    /// rejected with its code) — for example to count rejections per code and
    /// route.
    pub fn on_decision(mut self, hook: impl Fn(&GateEvent<'_>) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Checks every setting and builds the gate. The error names the route
    /// and field at fault.
    pub fn build(self) -> Result<Gate<St, Rs, C>, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let config = &self.config;
        let shared = shared_quotas(config)?;
        let routes = route_table(config)?;
        let defaults = &config.defaults;
        let origin_kinds: KeyKinds = match &config.origin_kinds {
            Some(kinds) => kinds.iter().copied().collect(),
            None => KeyKinds::only(KeyKind::Publishable),
        };
        if let Some(listed) = &config.key.credentials {
            config.key.check_sources(listed)?;
        }

        // Each check's rule for one route, from the route's settings over
        // the defaults (`effective`), `name` naming the route in mistakes.
        let in_default = |error: ConfigError| error.in_route(Route::DEFAULT_NAME);
        let rate_limit = |policy: &RoutePolicy| {
            let tiers = policy
                .tiers
                .iter()
                .flatten()
                .map(|(name, tier)| (name.as_str(), &tier.rate));
            let shadowed = policy
                .shadow
                .is_some_and(|shadow| shadow.covers(Some(Rule::RateLimit)));
            policy.rate.limit(&shared, tiers, shadowed)
        };
        let mut origins = PerRoute::new(
            &routes,
            defaults.origin.rule(origin_kinds).map_err(in_default)?,
        );
        let mut scopes = PerRoute::new(&routes, defaults.scope.rule(None).map_err(in_default)?);
        let mut limits: PerRoute<RateLimit> =
            PerRoute::new(&routes, rate_limit(defaults).map_err(in_default)?);
        let mut caps = PerRoute::new(&routes, defaults.body.cap());
        let mut tiered_caps = PerRoute::new(&routes, tier_caps(defaults));
        let mut cap_codes = PerRoute::new(&routes, defaults.body.code().map_err(in_default)?);
        let mut shadows = PerRoute::new(&routes, defaults.shadow.unwrap_or_default());
        let mut accesses = PerRoute::new(
            &routes,
            defaults.key.access(&config.key).map_err(in_default)?,
        );
        let mut any_shadow = defaults.shadow.is_some_and(|shadow| !shadow.is_none());
        let mut any_tier_caps = !tiered_caps.get(None).is_none_or(|caps| caps.is_empty());
        let mut rule_codes: Vec<&str> = defaults.codes().collect();
        let declared: Vec<(&Route, RoutePolicy)> = config
            .routes
            .iter()
            .filter_map(|entry| {
                routes
                    .get(entry.route.as_deref()?)
                    .map(|route| (route, entry))
            })
            .map(|(route, entry)| (route, entry.policy.or(defaults)))
            .collect();
        for (route, effective) in &declared {
            let name = route.name();
            let in_route = |error: ConfigError| error.in_route(name);
            let path = name.split_whitespace().nth(1);
            origins.set(name, effective.origin.rule(origin_kinds).map_err(in_route)?)?;
            scopes.set(name, effective.scope.rule(path).map_err(in_route)?)?;
            limits.set(name, rate_limit(effective).map_err(in_route)?)?;
            caps.set(name, effective.body.cap())?;
            cap_codes.set(name, effective.body.code().map_err(in_route)?)?;
            let tiered = tier_caps(effective);
            any_tier_caps |= !tiered.is_empty();
            tiered_caps.set(name, tiered)?;
            let shadow = effective.shadow.unwrap_or_default();
            any_shadow |= !shadow.is_none();
            shadows.set(name, shadow)?;
            accesses.set(name, effective.key.access(&config.key).map_err(in_route)?)?;
            rule_codes.extend(effective.codes());
        }
        config.codes.check_known(rule_codes.iter().copied())?;

        let hasher = match self.hasher {
            Some(hasher) => hasher,
            None => config.hasher()?,
        };
        let parser = self.parser.unwrap_or_else(|| config.parser());
        let renderer = renderer(self.renderer, config, &routes)?;
        let rate_store = match self.rate_store {
            RateStoreSlot::Given(store) => store,
            RateStoreSlot::Default(make) => make(self.clock.clone()),
        };
        let mut body_limits = BodyLimits::new(caps);
        body_limits.set_codes(cap_codes);
        body_limits.set_drain(config.drain);
        if any_tier_caps {
            body_limits = body_limits.with_tiers(tiered_caps);
        }
        let mut route_check = RouteCheck::new(routes.clone());
        if any_shadow {
            route_check = route_check.with_shadows(shadows);
        }
        let key_check = KeyCheck::with_parts(
            Arc::new(self.key_store),
            config.key.clone(),
            parser,
            hasher,
            self.clock.clone(),
        )
        .with_access(accesses);
        #[allow(unused_mut)]
        let mut rate_check = RateLimitCheck::with_parts(
            Arc::new(rate_store),
            limits,
            config.rate.clone(),
            self.clock,
        )?;
        #[cfg(feature = "metrics")]
        {
            rate_check.near_limit = self.metrics.near_limit_share();
        }
        let checks = route_check
            .then(key_check)
            .then(OriginCheck::new(origins))
            .then(ScopeCheck::new(scopes))
            .then(self.check)
            .then(rate_check);
        let observer = Reports::of(
            self.hook,
            #[cfg(feature = "metrics")]
            Some(crate::metrics::RequestMetrics::new(
                &self.metrics,
                routes.len(),
            )),
        );
        Ok(Gate {
            layer: CheckLayer::from_parts(checks, body_limits, renderer, observer),
        })
    }
}

/// The declared shared quotas, each named by its key in `[shared_quotas]`,
/// checked.
fn shared_quotas(config: &GateConfig) -> Result<Vec<Quota>, ConfigError> {
    let mut shared = Vec::with_capacity(config.shared_quotas.len());
    for (name, quota) in &config.shared_quotas {
        if quota.name().is_some_and(|given| given != name) {
            return Err(ConfigError::new(
                format!("shared_quotas.{name}.name"),
                "a shared quota is named by its key in `[shared_quotas]`",
            ));
        }
        shared.push(quota.clone().named(name.as_str()));
    }
    check_shared_quotas(&shared)?;
    Ok(shared)
}

/// The route table: every declared route, public as its policy (or the
/// defaults) says.
fn route_table(config: &GateConfig) -> Result<Routes, ConfigError> {
    let defaults = &config.defaults;
    let mut table = Routes::builder()
        .trailing_slash(config.trailing_slash)
        .default_public(defaults.public.unwrap_or(false));
    for (index, entry) in config.routes.iter().enumerate() {
        let Some(pattern) = &entry.route else {
            return Err(ConfigError::new(
                format!("routes[{index}].route"),
                "every route needs `route = \"METHOD /path\"`",
            ));
        };
        let public = entry.policy.public.or(defaults.public).unwrap_or(false);
        table = table.declare(pattern.as_str(), public);
    }
    table.build()
}

/// The gate's renderer: `given`, else the configuration's `errors`, with
/// its request-id header, code map and each route's own shape.
fn renderer(
    given: Option<ErrorRenderer>,
    config: &GateConfig,
    routes: &Routes,
) -> Result<ErrorRenderer, ConfigError> {
    let mut renderer = given.unwrap_or_else(|| config.errors.renderer());
    if let Some(header) = &config.request_id_header {
        let header = HeaderName::try_from(header.as_str()).map_err(|_| {
            ConfigError::new(
                "request_id_header",
                format!("`{header}` is not a header name"),
            )
        })?;
        renderer = renderer.with_request_id_header(header);
    }
    if !config.codes.is_empty() {
        renderer = renderer.with_codes(config.codes.clone());
    }
    if let Some(format) = &config.defaults.errors {
        renderer.set_shape(format.shape());
    }
    for entry in &config.routes {
        let route = entry
            .route
            .as_deref()
            .and_then(|pattern| routes.get(pattern));
        if let (Some(format), Some(route)) = (&entry.policy.errors, route) {
            renderer.set_route_shape(route.name(), format.shape());
        }
    }
    Ok(renderer)
}

/// The body caps `policy` gives keys of some tiers.
fn tier_caps(policy: &RoutePolicy) -> TierCaps {
    policy
        .tiers
        .iter()
        .flatten()
        .filter_map(|(tier, settings)| Some((Box::from(tier.as_str()), settings.body.body_limit?)))
        .collect()
}
