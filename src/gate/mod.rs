//! The [`Gate`]: one builder, one policy per route, every layer in order.
//!
//! ```text
//! request ─► route ─► key ─► origin ─► scope ─► rate limit ─► body cap ─► your service
//! ```
//!
//! The gate matches each request's route once; every layer then reads its
//! per-route setting from the [`RoutePolicy`] of that route (or the gate's
//! defaults). [`GateBuilder::build`] checks everything at start-up and names
//! the route and field of any mistake.
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
mod layer;
mod observe;
mod policy;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

pub use config::{GateConfig, KeyConfig, QuotaConfig, RouteConfig};
pub use layer::{GateLayer, GateService};
pub use observe::{GateEvent, ObserveFuture, ObserveService};
pub use policy::{RoutePolicy, ScopeMode};

use crate::ConfigError;
use crate::body_limit::BodyLimitLayer;
use crate::clock::Clock;
use crate::error::{Category, ErrorCode, ErrorRenderer};
use crate::guard::GuardLayer;
use crate::key::{KeyHasher, KeyKinds, KeyLayer, KeyParser, KeyStore};
use crate::origin::{OriginLayer, OriginPolicy};
use crate::rate_limit::{
    InMemoryRateStore, Partition, RateLimit, RateLimitHeaders, RateLimitLayer, RateStore,
};
use crate::route::{PerRoute, RouteLayer, Routes};
use crate::scope::{ScopeLayer, ScopeRule};
use observe::ObserveLayer;

/// The body cap of routes (and unmatched requests) that set none: 1 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

/// A built gate: its routes and its [`GateLayer`]. Cheap to clone.
pub struct Gate<St, Rs = InMemoryRateStore> {
    layer: GateLayer<St, Rs>,
    renderer: ErrorRenderer,
}

impl<St: KeyStore> Gate<St, InMemoryRateStore> {
    /// Starts a gate authenticating against `key_store`, rate-limiting in
    /// memory.
    pub fn builder(key_store: St) -> GateBuilder<St, InMemoryRateStore> {
        GateBuilder {
            key_store,
            rate_store: InMemoryRateStore::new(),
            hasher: KeyHasher::new(),
            parser: KeyParser::new(),
            query_parameter: None,
            strip_credential: false,
            lookup_timeout: Some(crate::key::DEFAULT_LOOKUP_TIMEOUT),
            renderer: ErrorRenderer::default(),
            clock: Clock::system(),
            partition: Partition::default(),
            trusted_proxies: Vec::new(),
            headers: RateLimitHeaders::default(),
            origin_kinds: KeyKinds::only(crate::key::KeyKind::Publishable),
            defaults: RoutePolicy::new(),
            routes: Vec::new(),
            hook: None,
        }
    }
}

impl<St, Rs> Gate<St, Rs> {
    /// The layer to put in front of your service (axum `Router::layer`,
    /// `tower::ServiceBuilder::layer`, tonic `Server::builder().layer`).
    pub fn layer(&self) -> GateLayer<St, Rs> {
        self.layer.clone()
    }

    /// The route table.
    pub fn routes(&self) -> &Routes {
        self.layer.route.routes()
    }

    /// The renderer every layer shares.
    pub fn renderer(&self) -> &ErrorRenderer {
        &self.renderer
    }

    /// The key store.
    pub fn key_store(&self) -> &St
    where
        St: KeyStore,
    {
        self.layer.key.store()
    }

    /// The rate store.
    pub fn rate_store(&self) -> &Rs
    where
        Rs: RateStore,
    {
        self.layer.rate.store()
    }
}

impl<St, Rs> Clone for Gate<St, Rs> {
    fn clone(&self) -> Self {
        Self {
            layer: self.layer.clone(),
            renderer: self.renderer.clone(),
        }
    }
}

impl<St, Rs> fmt::Debug for Gate<St, Rs> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("routes", self.routes())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Gate`]; see the [module docs](self).
#[must_use]
pub struct GateBuilder<St, Rs> {
    key_store: St,
    rate_store: Rs,
    hasher: KeyHasher,
    parser: KeyParser,
    query_parameter: Option<String>,
    strip_credential: bool,
    lookup_timeout: Option<Duration>,
    renderer: ErrorRenderer,
    clock: Clock,
    partition: Partition,
    trusted_proxies: Vec<String>,
    headers: RateLimitHeaders,
    origin_kinds: KeyKinds,
    defaults: RoutePolicy,
    routes: Vec<(String, RoutePolicy)>,
    hook: Option<observe::Hook>,
}

impl<St: KeyStore, Rs: RateStore> GateBuilder<St, Rs> {
    /// Keeps rate-limit buckets in `store` (for example one shared by
    /// several instances).
    pub fn rate_store<Rs2: RateStore>(self, store: Rs2) -> GateBuilder<St, Rs2> {
        self.with_stores(|key_store, _| (key_store, store))
    }

    /// Authenticates against `store` instead.
    pub fn key_store<St2: KeyStore>(self, store: St2) -> GateBuilder<St2, Rs> {
        self.with_stores(|_, rate_store| (store, rate_store))
    }

    fn with_stores<St2, Rs2>(
        self,
        swap: impl FnOnce(St, Rs) -> (St2, Rs2),
    ) -> GateBuilder<St2, Rs2> {
        let (key_store, rate_store) = swap(self.key_store, self.rate_store);
        GateBuilder {
            key_store,
            rate_store,
            hasher: self.hasher,
            parser: self.parser,
            query_parameter: self.query_parameter,
            strip_credential: self.strip_credential,
            lookup_timeout: self.lookup_timeout,
            renderer: self.renderer,
            clock: self.clock,
            partition: self.partition,
            trusted_proxies: self.trusted_proxies,
            headers: self.headers,
            origin_kinds: self.origin_kinds,
            defaults: self.defaults,
            routes: self.routes,
            hook: self.hook,
        }
    }

    /// Digests keys with `hasher` (the pepper).
    pub fn hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Parses keys with `parser` (prefixes, checksum).
    pub fn parser(mut self, parser: KeyParser) -> Self {
        self.parser = parser;
        self
    }

    /// Also accepts publishable keys in this query parameter.
    pub fn query_parameter(mut self, name: impl Into<String>) -> Self {
        self.query_parameter = Some(name.into());
        self
    }

    /// Removes the credential before your service sees the request.
    pub fn strip_credential(mut self, strip: bool) -> Self {
        self.strip_credential = strip;
        self
    }

    /// How long the key store has to answer (`None`: no limit).
    pub fn lookup_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lookup_timeout = timeout;
        self
    }

    /// Renders every rejection with `renderer`.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        self.renderer = renderer;
        self
    }

    /// Reads time from `clock` (key expiry, rate-limit reset times).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Partitions rate limits by `partition` (default: project).
    pub fn partition(mut self, partition: Partition) -> Self {
        self.partition = partition;
        self
    }

    /// Trusts these proxies' `X-Forwarded-For` (CIDR networks or addresses).
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_proxies = proxies.into_iter().map(Into::into).collect();
        self
    }

    /// Chooses the rate-limit headers.
    pub fn rate_limit_headers(mut self, headers: RateLimitHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// The key kinds whose origin is checked (publishable by default).
    pub fn origin_kinds(mut self, kinds: impl Into<KeyKinds>) -> Self {
        self.origin_kinds = kinds.into();
        self
    }

    /// The policy of unmatched requests, and the defaults of every route's
    /// unset settings.
    pub fn defaults(mut self, defaults: RoutePolicy) -> Self {
        self.defaults = defaults;
        self
    }

    /// Declares a route (`METHOD /path/{param}`, method `*` for any) and its
    /// policy.
    pub fn route(mut self, pattern: impl Into<String>, policy: RoutePolicy) -> Self {
        self.routes.push((pattern.into(), policy));
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
    pub fn build(self) -> Result<Gate<St, Rs>, ConfigError> {
        let defaults = &self.defaults;
        let mut table = Routes::builder().default_public(defaults.public.unwrap_or(false));
        for (pattern, policy) in &self.routes {
            table = table.declare(
                pattern.as_str(),
                policy.or(defaults).public.unwrap_or(false),
            );
        }
        let routes = table.build()?;

        let default_name = crate::route::Route::DEFAULT_NAME;
        let in_default = |error: ConfigError| error.in_route(default_name);
        let mut origins = PerRoute::new(
            &routes,
            origin_policy(defaults, self.origin_kinds).map_err(in_default)?,
        );
        let mut scopes = PerRoute::new(&routes, scope_rule(defaults).map_err(in_default)?);
        let mut limits = PerRoute::new(&routes, rate_limit(defaults));
        let mut caps = PerRoute::new(&routes, defaults.body_limit.unwrap_or(DEFAULT_BODY_LIMIT));
        for (pattern, policy) in &self.routes {
            let Some(route) = routes.get(pattern) else {
                continue;
            };
            let name = route.name();
            let in_route = |error: ConfigError| error.in_route(name);
            let effective = policy.or(defaults);
            origins.set(
                name,
                origin_policy(&effective, self.origin_kinds).map_err(in_route)?,
            )?;
            scopes.set(name, scope_rule(&effective).map_err(in_route)?)?;
            limits.set(name, rate_limit(&effective))?;
            caps.set(name, effective.body_limit.unwrap_or(DEFAULT_BODY_LIMIT))?;
        }

        let renderer = self.renderer;
        let mut key = KeyLayer::new(self.key_store)
            .with_hasher(self.hasher)
            .with_parser(self.parser)
            .strip_credential(self.strip_credential)
            .with_lookup_timeout(self.lookup_timeout)
            .with_renderer(renderer.clone())
            .with_clock(self.clock.clone());
        if let Some(name) = self.query_parameter {
            key = key.with_query_parameter(name);
        }
        let rate = RateLimitLayer::with_store(self.rate_store, limits)?
            .with_partition(self.partition)
            .with_trusted_proxies(&self.trusted_proxies)?
            .with_headers(self.headers)
            .with_renderer(renderer.clone())
            .with_clock(self.clock);
        Ok(Gate {
            layer: GateLayer {
                route: RouteLayer::new(routes),
                observe: ObserveLayer { hook: self.hook },
                key,
                guards: GuardLayer::from_guard((
                    OriginLayer::new(origins)
                        .with_renderer(renderer.clone())
                        .guard()
                        .clone(),
                    ScopeLayer::new(scopes)
                        .with_renderer(renderer.clone())
                        .guard()
                        .clone(),
                )),
                rate,
                body: BodyLimitLayer::new(caps).with_renderer(renderer.clone()),
            },
            renderer,
        })
    }
}

fn origin_policy(policy: &RoutePolicy, kinds: KeyKinds) -> Result<OriginPolicy, ConfigError> {
    let mut origin = OriginPolicy::new().kinds(kinds);
    if let Some(patterns) = &policy.origins {
        origin = origin.allow(patterns)?;
    }
    if let Some(missing) = policy.missing_origin {
        origin = origin.missing_origin(missing);
    }
    Ok(origin)
}

fn scope_rule(policy: &RoutePolicy) -> Result<ScopeRule, ConfigError> {
    let mut rule = match &policy.scopes {
        Some((ScopeMode::All, scopes)) => ScopeRule::all_of(scopes)?,
        Some((ScopeMode::Any, scopes)) => ScopeRule::any_of(scopes)?,
        None => ScopeRule::new(),
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
        let code = ErrorCode::custom(code.as_str(), StatusCode::FORBIDDEN, Category::Auth)
            .map_err(|error| ConfigError::new("kind_code", error.reason()))?;
        rule = rule.kind_code(code);
    }
    Ok(rule.hidden(policy.hidden.unwrap_or(false)))
}

fn rate_limit(policy: &RoutePolicy) -> RateLimit {
    let limit = match &policy.quotas {
        Some(quotas) => RateLimit::stacked(quotas.iter().cloned()),
        None => RateLimit::unlimited(),
    };
    limit.cost(policy.cost.unwrap_or(1))
}
