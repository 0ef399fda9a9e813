//! The [`Gate`]: one builder, one policy per route, every check in order.
//!
//! ```text
//! request ─► route ─► key ─► origin ─► scope ─► your checks ─► rate limit ─► body cap ─► your service
//! ```
//!
//! The gate is one [`CheckService`]: the checks
//! run in order in one service and one response future, then the body cap,
//! then your service — or the first rejection is rendered. It matches each
//! request's route once; every check then reads its per-route setting from
//! the [`RoutePolicy`] of that route (or the gate's defaults).
//! [`GateBuilder::build`] checks everything at start-up and names the route
//! and field of any mistake.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tollgate::body_limit::LimitedBody;
//! use tollgate::gate::{Gate, RoutePolicy};
//! use tollgate::key::{InMemoryKeyStore, KeyHasher, KeyKind, KeyRecord};
//! use tollgate::rate_limit::Quota;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let hasher = KeyHasher::with_pepper(b"pepper");
//! let store = InMemoryKeyStore::new();
//! let minted = hasher.mint(KeyKind::Secret, None).unwrap();
//! store.insert(minted.digest(), KeyRecord::new("key_1", "acme", KeyKind::Secret));
//!
//! let gate = Gate::builder(store)
//!     .hasher(hasher)
//!     .route("GET /health", RoutePolicy::public())
//!     .route("POST /v1/track", RoutePolicy::new().require_all(["ingest"]).quota(Quota::per_second(50).burst(200)).body_limit(8192))
//!     .build()
//!     .unwrap();
//!
//! let service = ServiceBuilder::new()
//!     .layer(gate.layer())
//!     // Behind the gate, the body is capped: the service sees a `LimitedBody`.
//!     .service_fn(|_: Request<LimitedBody<Full<Bytes>>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
//!     });
//! let request = Request::post("/v1/track")
//!     .header("authorization", format!("Bearer {}", minted.key()))
//!     .body(Full::new(Bytes::from_static(b"{}")))
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["ratelimit"], "\"POST /v1/track\";r=199;t=1");
//! # });
//! ```

mod config;
mod live;
mod observe;
mod policy;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};

pub use crate::check::observe::{GateEvent, Outcome};
pub use config::{Expiry, GateConfig, KeyConfig, RouteConfig};
pub use live::LiveGate;
use observe::{Hook, Reports};
pub use policy::{RoutePolicy, TierPolicy};

use crate::ConfigError;
use crate::body_limit::{BodyLimits, DrainLimits};
use crate::check::{Check, CheckLayer, CheckService, Then};
use crate::clock::Clock;
use crate::error::{Category, CodeMap, ErrorCode};
use crate::key::credential::Sources;
use crate::key::layer::Access;
use crate::key::{
    CredentialSource, KeyCheck, KeyHasher, KeyKind, KeyKinds, KeyOptions, KeyParser, KeyStore,
};
use crate::origin::{OriginCheck, OriginPolicy};
use crate::rate_limit::{
    InMemoryRateStore, Partition, Quota, RateLimit, RateLimitCheck, RateLimitHeaders, RateOptions,
    RateStore,
};
use crate::render::ErrorRenderer;
use crate::route::{PerRoute, Route, RouteCheck, Routes, TrailingSlash};
use crate::scope::{ScopeCheck, ScopeRule};

/// The body cap of routes (and unmatched requests) that set none: 1 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

/// The gate's checks, in order: route, key, origin, scope, yours (`C`),
/// rate limit.
pub type GateChecks<St, Rs, C = ()> = Then<
    Then<Then<Then<Then<RouteCheck, KeyCheck<St>>, OriginCheck>, ScopeCheck>, C>,
    RateLimitCheck<Rs>,
>;

/// The whole gate as one Tower layer: its checks and the body cap. Cheap to
/// clone.
pub type GateLayer<St, Rs = InMemoryRateStore, C = ()> =
    CheckLayer<GateChecks<St, Rs, C>, BodyLimits>;

/// The service a [`GateLayer`] makes around `S`.
pub type GateService<S, St, Rs = InMemoryRateStore, C = ()> =
    CheckService<S, GateChecks<St, Rs, C>, BodyLimits>;

/// A built gate: its routes and its [`GateLayer`]. Cheap to clone.
pub struct Gate<St, Rs = InMemoryRateStore, C = ()> {
    layer: GateLayer<St, Rs, C>,
}

impl<St: KeyStore> Gate<St, InMemoryRateStore> {
    /// Starts a gate authenticating against `key_store`, rate-limiting in
    /// memory (on the builder's clock).
    pub fn builder(key_store: St) -> GateBuilder<St, InMemoryRateStore> {
        GateBuilder {
            key_store,
            rate_store: RateStoreSlot::Default(InMemoryRateStore::with_clock),
            check: (),
            settings: Settings::default(),
        }
    }
}

impl<St, Rs, C> Gate<St, Rs, C> {
    /// The layer to put in front of your service (axum `Router::layer`,
    /// `tower::ServiceBuilder::layer`, tonic `Server::builder().layer`).
    pub fn layer(&self) -> GateLayer<St, Rs, C> {
        self.layer.clone()
    }

    fn checks(&self) -> &GateChecks<St, Rs, C> {
        self.layer.checks()
    }

    // Where each check sits in `GateChecks`: the one place that knows.
    fn route_check(&self) -> &RouteCheck {
        self.checks().first().first().first().first().first()
    }

    fn key_check(&self) -> &KeyCheck<St> {
        self.checks().first().first().first().first().second()
    }

    fn rate_check(&self) -> &RateLimitCheck<Rs> {
        self.checks().second()
    }

    /// The route table.
    pub fn routes(&self) -> &Routes {
        self.route_check().routes()
    }

    /// The renderer every check shares.
    pub fn renderer(&self) -> &ErrorRenderer {
        self.layer.renderer()
    }

    /// The key store.
    pub fn key_store(&self) -> &St
    where
        St: KeyStore,
    {
        self.key_check().store()
    }

    /// The rate store.
    pub fn rate_store(&self) -> &Rs
    where
        Rs: RateStore,
    {
        self.rate_check().store()
    }

    /// The request headers the gate reads that a browser may send only once
    /// a CORS preflight allows them: the credential headers
    /// (`Authorization`, `X-API-Key`) and the request-id header. For
    /// `Access-Control-Allow-Headers`, beside your own API's.
    pub fn request_header_names(&self) -> Vec<HeaderName> {
        let mut names = self.key_check().credential_headers().to_vec();
        names.push(self.renderer().request_id_header().clone());
        names
    }

    /// The response headers the gate adds that browser code can read only
    /// when CORS exposes them (none of them is CORS-safelisted): exactly the
    /// rate-limit headers the gate is set to send (see
    /// [`RateLimitHeaders::names`]). For `Access-Control-Expose-Headers`.
    pub fn response_header_names(&self) -> Vec<HeaderName> {
        self.rate_check().options.headers.names().to_vec()
    }
}

impl<St, Rs, C> Clone for Gate<St, Rs, C> {
    fn clone(&self) -> Self {
        Self {
            layer: self.layer.clone(),
        }
    }
}

impl<St, Rs, C> fmt::Debug for Gate<St, Rs, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("routes", self.routes())
            .finish_non_exhaustive()
    }
}

/// The rate store a builder will use: one given, or the default in-memory
/// store, made at `build` on the builder's clock.
enum RateStoreSlot<Rs> {
    Given(Rs),
    Default(fn(Clock) -> Rs),
}

/// Everything a builder holds but its stores and your check. The checks'
/// own option structs, kept whole and handed over at `build`.
struct Settings {
    key: KeyOptions,
    rate: RateOptions,
    origin_kinds: KeyKinds,
    renderer: ErrorRenderer,
    request_id_header: Option<HeaderName>,
    clock: Clock,
    trailing_slash: TrailingSlash,
    drain: DrainLimits,
    defaults: RoutePolicy,
    routes: Vec<(String, RoutePolicy)>,
    /// Where keys are read where routes do not say.
    credentials: Option<Vec<CredentialSource>>,
    /// How the contract spells the codes.
    codes: CodeMap,
    /// Quotas routes share by name.
    shared_quotas: Vec<Quota>,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::MetricsOptions,
    hook: Option<Hook>,
    /// The first mistake found by a setter that cannot fail, reported by
    /// `build`.
    error: Option<ConfigError>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            key: KeyOptions::default(),
            rate: RateOptions::default(),
            origin_kinds: KeyKinds::only(KeyKind::Publishable),
            renderer: ErrorRenderer::default(),
            request_id_header: None,
            clock: Clock::system(),
            trailing_slash: TrailingSlash::default(),
            drain: DrainLimits::default(),
            defaults: RoutePolicy::new(),
            routes: Vec::new(),
            credentials: None,
            codes: CodeMap::new(),
            shared_quotas: Vec::new(),
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::MetricsOptions::default(),
            hook: None,
            error: None,
        }
    }
}

/// Configures a [`Gate`]; see the [module docs](self).
#[must_use]
pub struct GateBuilder<St, Rs, C = ()> {
    key_store: St,
    rate_store: RateStoreSlot<Rs>,
    check: C,
    settings: Settings,
}

impl<St: KeyStore, Rs: RateStore, C: Check> GateBuilder<St, Rs, C> {
    /// Keeps rate-limit buckets in `store` (for example one shared by
    /// several instances).
    pub fn rate_store<Rs2: RateStore>(self, store: Rs2) -> GateBuilder<St, Rs2, C> {
        GateBuilder {
            key_store: self.key_store,
            rate_store: RateStoreSlot::Given(store),
            check: self.check,
            settings: self.settings,
        }
    }

    /// Authenticates against `store` instead.
    pub fn key_store<St2: KeyStore>(self, store: St2) -> GateBuilder<St2, Rs, C> {
        GateBuilder {
            key_store: store,
            rate_store: self.rate_store,
            check: self.check,
            settings: self.settings,
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
            settings: self.settings,
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    /// Digests keys with `hasher` (the pepper).
    pub fn hasher(self, hasher: KeyHasher) -> Self {
        self.with(|s| s.key.hasher = hasher)
    }

    /// Parses keys with `parser` (prefixes, checksum).
    pub fn parser(self, parser: KeyParser) -> Self {
        self.with(|s| s.key.parser = parser)
    }

    /// Also accepts publishable keys in this query parameter.
    pub fn query_parameter(self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        self.with(|s| s.key.query_parameter = Some(name.into()))
    }

    /// Removes the credential before your service sees the request.
    pub fn strip_credential(self, strip: bool) -> Self {
        self.with(|s| s.key.strip_credential = strip)
    }

    /// How long the key store has to answer (`None`: no limit).
    pub fn lookup_timeout(self, timeout: Option<Duration>) -> Self {
        self.with(|s| s.key.lookup_timeout = timeout)
    }

    /// The header carrying a bare key (default `X-API-Key`), for the
    /// `header` credential source.
    pub fn credential_header(self, header: HeaderName) -> Self {
        self.with(|s| s.key.header = header)
    }

    /// Where keys are read on routes that do not say (default: bearer,
    /// header, and the query parameter where one is named).
    pub fn credentials(self, sources: impl IntoIterator<Item = CredentialSource>) -> Self {
        let sources: Vec<_> = sources.into_iter().collect();
        self.with(|s| s.credentials = Some(sources))
    }

    /// Renames codes and sets their statuses as an existing API's contract
    /// has them (applied to every rejection the gate's renderer renders).
    /// Every code it names must be a built-in one or one a route's rule
    /// declares, checked at `build`.
    pub fn codes(self, codes: CodeMap) -> Self {
        self.with(|s| s.codes = codes)
    }

    /// Answers revoked keys `401 revoked_api_key` instead of the default
    /// `invalid_api_key` (which does not tell a revoked key from one that
    /// never existed).
    pub fn reveal_revoked(self, reveal: bool) -> Self {
        self.with(|s| s.key.reveal_revoked = reveal)
    }

    /// Renders every rejection with `renderer`. The request-id header set
    /// with [`request_id_header`](Self::request_id_header) (or a config
    /// file's) still applies.
    pub fn renderer(self, renderer: ErrorRenderer) -> Self {
        self.with(|s| s.renderer = renderer)
    }

    /// Echoes the request id from `header` (default `x-request-id`).
    pub fn request_id_header(self, header: HeaderName) -> Self {
        self.with(|s| s.request_id_header = Some(header))
    }

    /// Reads every time from `clock`: key expiry, rate-limit reset times,
    /// and the buckets of the default in-memory rate store. (A rate store
    /// you give keeps its own clock.)
    pub fn clock(self, clock: Clock) -> Self {
        self.with(|s| s.clock = clock)
    }

    /// Partitions rate limits by `partition` (default: project).
    pub fn partition(self, partition: Partition) -> Self {
        self.with(|s| s.rate.partition = partition)
    }

    /// Trusts these proxies' `X-Forwarded-For` (CIDR networks or
    /// addresses); a bad one is reported by [`build`](Self::build).
    pub fn trusted_proxies<I, S>(self, proxies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parsed = RateOptions::parse_proxies(proxies);
        self.with(|s| match parsed {
            Ok(nets) => s.rate.trusted_proxies = nets,
            Err(error) => {
                s.error.get_or_insert(error);
            }
        })
    }

    /// Chooses the rate-limit headers.
    pub fn rate_limit_headers(self, headers: RateLimitHeaders) -> Self {
        self.with(|s| s.rate.headers = headers)
    }

    /// The key kinds whose origin is checked (publishable by default).
    pub fn origin_kinds(self, kinds: impl Into<KeyKinds>) -> Self {
        let kinds = kinds.into();
        self.with(|s| s.origin_kinds = kinds)
    }

    /// How trailing slashes are matched (default: trimmed).
    pub fn trailing_slash(self, trailing_slash: TrailingSlash) -> Self {
        self.with(|s| s.trailing_slash = trailing_slash)
    }

    /// How much of a refused HTTP/1.1 request's body is read and discarded
    /// (default: up to 64 KiB, never more than the route's body cap, for at
    /// most 1 s) so that its connection can carry the next request. A body
    /// that cannot be drained gets `Connection: close` on the rejection.
    pub fn drain(self, drain: DrainLimits) -> Self {
        self.with(|s| s.drain = drain)
    }

    /// The policy of unmatched requests, and the defaults of every route's
    /// unset settings.
    pub fn defaults(self, defaults: RoutePolicy) -> Self {
        self.with(|s| s.defaults = defaults)
    }

    /// Declares a route (`METHOD /path/{param}`, method `*` for any) and its
    /// policy.
    pub fn route(self, pattern: impl Into<String>, policy: RoutePolicy) -> Self {
        let pattern = pattern.into();
        self.with(|s| s.routes.push((pattern, policy)))
    }

    /// Declares a quota that routes share: every route listing
    /// [`Quota::shared`] with its name (a configuration file's
    /// `quotas = ["sdk"]`) draws from one bucket per partition, while each
    /// route keeps its own other settings and quotas. It must be named
    /// ([`Quota::named`]); declaring a name again replaces it.
    pub fn shared_quota(self, quota: Quota) -> Self {
        self.with(|s| {
            let name = quota.name().map(str::to_owned);
            s.shared_quotas
                .retain(|declared| declared.name() != name.as_deref());
            s.shared_quotas.push(quota);
        })
    }

    /// Sets what the metrics say beyond the defaults (feature `metrics`;
    /// see [`crate::metrics`]). With the feature, the gate reports to
    /// whatever recorder is installed, with or without this call.
    #[cfg(feature = "metrics")]
    pub fn metrics(self, options: crate::metrics::MetricsOptions) -> Self {
        self.with(|s| s.metrics = options)
    }

    /// Calls `hook` once per request with what the gate decided (allowed, or
    /// rejected with its code) — for example to count rejections per code and
    /// route.
    pub fn on_decision(self, hook: impl Fn(&GateEvent<'_>) + Send + Sync + 'static) -> Self {
        self.with(|s| s.hook = Some(Arc::new(hook)))
    }

    /// Checks every setting and builds the gate. The error names the route
    /// and field at fault.
    pub fn build(self) -> Result<Gate<St, Rs, C>, ConfigError> {
        let Settings {
            mut key,
            mut rate,
            origin_kinds,
            mut renderer,
            request_id_header,
            clock,
            trailing_slash,
            drain,
            defaults,
            routes: declared,
            credentials,
            codes,
            shared_quotas,
            #[cfg(feature = "metrics")]
            metrics,
            hook,
            error,
        } = self.settings;
        if let Some(error) = error {
            return Err(error);
        }
        check_shared_quotas(&shared_quotas)?;
        let mut table = Routes::builder()
            .trailing_slash(trailing_slash)
            .default_public(defaults.public.unwrap_or(false));
        for (pattern, policy) in &declared {
            table = table.declare(
                pattern.as_str(),
                policy.or(&defaults).public.unwrap_or(false),
            );
        }
        let routes = table.build()?;
        #[cfg(feature = "metrics")]
        let route_count = routes.len();
        #[cfg(feature = "metrics")]
        {
            rate.near_limit = metrics.near_limit_share();
        }

        let in_default = |error: ConfigError| error.in_route(Route::DEFAULT_NAME);
        let mut origins = PerRoute::new(
            &routes,
            origin_policy(&defaults, origin_kinds).map_err(in_default)?,
        );
        let mut scopes = PerRoute::new(&routes, scope_rule(&defaults, None).map_err(in_default)?);
        let mut limits = PerRoute::new(
            &routes,
            rate_limit(&defaults, &shared_quotas).map_err(in_default)?,
        );
        let mut caps = PerRoute::new(&routes, defaults.body_limit.unwrap_or(DEFAULT_BODY_LIMIT));
        let mut tiered_caps = PerRoute::new(&routes, tier_caps(&defaults));
        let mut shadows = PerRoute::new(&routes, defaults.shadow.unwrap_or_default());
        let mut any_shadow = defaults.shadow.is_some_and(|shadow| !shadow.is_none());
        let mut any_tier_caps = !tiered_caps.get(None).is_none_or(|caps| caps.is_empty());
        let mut cap_codes = PerRoute::new(&routes, body_limit_code(&defaults).map_err(in_default)?);
        let mut rule_codes: Vec<String> = declared_codes(&defaults);
        if let Some(listed) = &credentials {
            check_sources(listed, &key)?;
        }
        let access_of = |policy: &RoutePolicy| access(policy, credentials.as_deref(), &key);
        let mut accesses = PerRoute::new(&routes, access_of(&defaults).map_err(in_default)?);
        for (pattern, policy) in &declared {
            let Some(route) = routes.get(pattern) else {
                continue;
            };
            let name = route.name();
            let in_route = |error: ConfigError| error.in_route(name);
            let effective = policy.or(&defaults);
            origins.set(
                name,
                origin_policy(&effective, origin_kinds).map_err(in_route)?,
            )?;
            let path = name.split_whitespace().nth(1);
            scopes.set(name, scope_rule(&effective, path).map_err(in_route)?)?;
            limits.set(
                name,
                rate_limit(&effective, &shared_quotas).map_err(in_route)?,
            )?;
            caps.set(name, effective.body_limit.unwrap_or(DEFAULT_BODY_LIMIT))?;
            let tiered = tier_caps(&effective);
            any_tier_caps |= !tiered.is_empty();
            tiered_caps.set(name, tiered)?;
            let shadow = effective.shadow.unwrap_or_default();
            any_shadow |= !shadow.is_none();
            shadows.set(name, shadow)?;
            accesses.set(name, access_of(&effective).map_err(in_route)?)?;
            cap_codes.set(name, body_limit_code(&effective).map_err(in_route)?)?;
            rule_codes.extend(declared_codes(&effective));
        }
        codes.check_known(rule_codes.iter().map(String::as_str))?;

        key.clock = clock.clone();
        rate.clock = clock.clone();
        let rate_store = match self.rate_store {
            RateStoreSlot::Given(store) => store,
            RateStoreSlot::Default(make) => make(clock),
        };
        if let Some(header) = request_id_header {
            renderer = renderer.with_request_id_header(header);
        }
        if !codes.is_empty() {
            renderer = renderer.with_codes(codes);
        }
        if let Some(format) = &defaults.errors {
            renderer.set_shape(format.shape());
        }
        for (pattern, policy) in &declared {
            if let (Some(format), Some(route)) = (&policy.errors, routes.get(pattern)) {
                renderer.set_route_shape(route.name(), format.shape());
            }
        }
        let mut body_limits = BodyLimits::new(caps)
            .with_codes(cap_codes)
            .with_drain(drain);
        if any_tier_caps {
            body_limits = body_limits.with_tiers(tiered_caps);
        }
        let mut route_check = RouteCheck::new(routes);
        if any_shadow {
            route_check = route_check.with_shadows(shadows);
        }
        let checks = route_check
            .then(KeyCheck::with_options(Arc::new(self.key_store), key).with_access(accesses))
            .then(OriginCheck::new(origins))
            .then(ScopeCheck::new(scopes))
            .then(self.check)
            .then(RateLimitCheck::with_options(
                Arc::new(rate_store),
                limits,
                rate,
            )?);
        Ok(Gate {
            layer: CheckLayer::from_parts(
                checks,
                body_limits,
                renderer,
                Reports::of(
                    hook,
                    #[cfg(feature = "metrics")]
                    Some(crate::metrics::RequestMetrics::new(&metrics, route_count)),
                ),
            ),
        })
    }
}

/// Whether keys can be read from the `listed` places.
fn check_sources(listed: &[CredentialSource], key: &KeyOptions) -> Result<(), ConfigError> {
    if listed.is_empty() {
        return Err(ConfigError::new(
            "credentials",
            "list at least one place keys are read from (`bearer`, `header`, `query`), \
             or make the route `public`",
        ));
    }
    if listed.contains(&CredentialSource::Query) && key.query_parameter.is_none() {
        return Err(ConfigError::new(
            "credentials",
            "`query` needs `query_parameter` (the parameter's name)",
        ));
    }
    Ok(())
}

/// How a route takes keys: its own sources, else the gate's, else all.
fn access(
    policy: &RoutePolicy,
    gate: Option<&[CredentialSource]>,
    key: &KeyOptions,
) -> Result<Access, ConfigError> {
    if let Some(own) = &policy.credentials {
        check_sources(own, key)?;
    }
    let listed = policy.credentials.as_deref().or(gate);
    Ok(Access {
        sources: listed.map_or(Sources::ALL, |listed| listed.iter().copied().collect()),
        anonymous: policy.anonymous.unwrap_or(false),
    })
}

/// A rule's own code, `field` naming it in errors.
fn rule_code(
    field: &str,
    code: &str,
    status: StatusCode,
    category: Category,
) -> Result<ErrorCode, ConfigError> {
    ErrorCode::custom(code, status, category)
        .map_err(|error| ConfigError::new(field, error.reason()))
}

fn body_limit_code(policy: &RoutePolicy) -> Result<ErrorCode, ConfigError> {
    match &policy.body_limit_code {
        Some(code) => rule_code(
            "body_limit_code",
            code,
            StatusCode::PAYLOAD_TOO_LARGE,
            Category::Validation,
        ),
        None => Ok(ErrorCode::PAYLOAD_TOO_LARGE),
    }
}

/// The codes `policy`'s rules declare.
fn declared_codes(policy: &RoutePolicy) -> Vec<String> {
    let quota_codes = policy
        .quotas
        .iter()
        .flatten()
        .filter_map(|quota| quota.refusal_code().map(str::to_owned));
    [
        &policy.kind_code,
        &policy.scope_code,
        &policy.origin_code,
        &policy.body_limit_code,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .chain(quota_codes)
    .collect()
}

fn origin_policy(policy: &RoutePolicy, kinds: KeyKinds) -> Result<OriginPolicy, ConfigError> {
    let mut origin = OriginPolicy::new().kinds(kinds);
    if let Some(code) = &policy.origin_code {
        origin = origin.code(rule_code(
            "origin_code",
            code,
            StatusCode::FORBIDDEN,
            Category::Auth,
        )?);
    }
    if let Some(patterns) = &policy.origins {
        origin = origin.allow(patterns)?;
    }
    if let Some(missing) = policy.missing_origin {
        origin = origin.missing_origin(missing);
    }
    Ok(origin)
}

/// The scope rule of `policy` on a route whose path pattern is `path` (none
/// for unmatched requests).
fn scope_rule(policy: &RoutePolicy, path: Option<&str>) -> Result<ScopeRule, ConfigError> {
    let mut rule = match (&policy.scopes, &policy.any_scopes) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "scopes",
                "set `scopes` or `any_scopes`, not both",
            ));
        }
        (Some(all), None) => ScopeRule::all_of(all)?,
        (None, Some(any)) => ScopeRule::any_of(any)?,
        (None, None) => ScopeRule::new(),
    };
    if let Some(kinds) = &policy.kinds {
        if kinds.is_empty() {
            return Err(ConfigError::new(
                "kinds",
                "a route must accept at least one kind of key",
            ));
        }
        rule = rule.kinds(kinds.iter().copied().collect::<KeyKinds>());
    }
    if let Some(code) = &policy.kind_code {
        rule = rule.kind_code(rule_code(
            "kind_code",
            code,
            StatusCode::FORBIDDEN,
            Category::Auth,
        )?);
    }
    if let Some(code) = &policy.scope_code {
        rule = rule.scope_code(rule_code(
            "scope_code",
            code,
            StatusCode::FORBIDDEN,
            Category::Auth,
        )?);
    }
    if rule.names_params() || policy.project_param.is_some() {
        let Some(path) = path else {
            return Err(ConfigError::new(
                if policy.project_param.is_some() {
                    "project_param"
                } else {
                    "scopes"
                },
                "only a route's own path has parameters: set this on routes, not on unmatched requests",
            ));
        };
        rule = rule.on_path(path)?;
        if let Some(name) = &policy.project_param {
            rule = rule.project_param(name)?;
        }
    }
    Ok(rule.hidden(policy.hidden.unwrap_or(false)))
}

/// The rate limit of `policy`, shared quotas in place of their names.
fn rate_limit(policy: &RoutePolicy, shared: &[Quota]) -> Result<RateLimit, ConfigError> {
    let mut limit = match &policy.quotas {
        Some(quotas) => RateLimit::stacked(resolve_shared(quotas, shared, "quotas")?),
        None => RateLimit::unlimited(),
    };
    limit.shadowed = policy
        .shadow
        .is_some_and(|shadow| shadow.covers(Some(crate::error::Rule::RateLimit)));
    for (tier, settings) in policy.tiers.iter().flatten() {
        if let Some(quotas) = &settings.quotas {
            let field = format!("tiers.{tier}.quotas");
            limit = limit.tier(tier.as_str(), resolve_shared(quotas, shared, &field)?);
        }
    }
    Ok(limit.cost(policy.cost.unwrap_or(1)))
}

/// `quotas` with each reference to a shared quota replaced by the declared
/// quota.
fn resolve_shared(
    quotas: &[Quota],
    shared: &[Quota],
    field: &str,
) -> Result<Vec<Quota>, ConfigError> {
    let mut named: Vec<&str> = Vec::new();
    quotas
        .iter()
        .map(|quota| {
            if !quota.is_shared_reference() {
                return Ok(quota.clone());
            }
            let name = quota.name().unwrap_or_default();
            if named.contains(&name) {
                return Err(ConfigError::new(
                    field,
                    format!("the shared quota `{name}` is listed twice"),
                ));
            }
            named.push(name);
            shared
                .iter()
                .find(|declared| declared.name() == Some(name))
                .map(|declared| declared.clone().into_shared())
                .ok_or_else(|| {
                    ConfigError::new(
                        field,
                        format!(
                            "no shared quota named `{name}` is declared \
                             (`[shared_quotas]`, or `GateBuilder::shared_quota`)"
                        ),
                    )
                })
        })
        .collect()
}

/// Whether the declared shared quotas are each named, well-formed and
/// possible.
fn check_shared_quotas(shared: &[Quota]) -> Result<(), ConfigError> {
    for quota in shared {
        let Some(name) = quota.name() else {
            return Err(ConfigError::new(
                "shared_quotas",
                format!("{quota:?} needs a name: routes list it by its name"),
            ));
        };
        let field = || format!("shared_quotas.{name}");
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new(
                field(),
                "a shared quota's name is 1 to 64 printable characters",
            ));
        }
        if quota.is_shared_reference() {
            return Err(ConfigError::new(
                field(),
                "declare the quota itself (`{ rate, per, burst }`), not a name",
            ));
        }
        quota
            .gcra()
            .map_err(|error| ConfigError::new(field(), error.reason()))?;
    }
    Ok(())
}

/// The body caps `policy` gives keys of some tiers.
fn tier_caps(policy: &RoutePolicy) -> crate::body_limit::TierCaps {
    policy
        .tiers
        .iter()
        .flatten()
        .filter_map(|(tier, settings)| Some((Box::from(tier.as_str()), settings.body_limit?)))
        .collect()
}
