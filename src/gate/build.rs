//! [`GateBuilder::build`]: each check's rule compiled from its settings,
//! route by route, and the gate put together.

use std::sync::Arc;

use http::HeaderName;

use super::builder::{GateBuilder, RateStoreSlot};
use super::config::GateConfig;
use super::observe::Telemetry;
use super::{Gate, RoutePolicy};
use crate::ConfigError;
use crate::body_limit::{BodyLimits, TierLimits};
use crate::check::{Check, CheckLayer};
use crate::error::Rule;
use crate::key::store::KeyStore;
use crate::key::{KeyCheck, KeyKind, KeyKinds};
use crate::origin::OriginCheck;
use crate::rate_limit::policy::check_shared_quotas;
use crate::rate_limit::store::RateStore;
use crate::rate_limit::{Quota, RateLimit, RateLimitCheck};
use crate::render::ErrorRenderer;
use crate::route::{PerRoute, Route, RouteCheck, Routes};
use crate::scope::ScopeCheck;

impl<St: KeyStore, Rs: RateStore, C: Check> GateBuilder<St, Rs, C> {
    /// Checks every setting and builds the gate. The error names the route
    /// and field at fault.
    pub fn build(self) -> Result<Gate<St, Rs, C>, ConfigError> {
        let Self {
            key_store,
            rate_store,
            check,
            setup,
        } = self;
        if let Some(error) = setup.error {
            return Err(error);
        }
        let config = &setup.config;
        config.check_tiers()?;
        let shared = shared_quotas(config)?;
        let routes = route_table(config)?;
        let defaults = &*config.effective_defaults();
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
        let mut body_bytes = PerRoute::new(&routes, defaults.body.limit());
        let mut tier_body_limits = PerRoute::new(&routes, tier_limits(defaults));
        let mut body_codes = PerRoute::new(&routes, defaults.body.code().map_err(in_default)?);
        let mut shadows = PerRoute::new(&routes, defaults.shadow.unwrap_or_default());
        let mut accesses = PerRoute::new(
            &routes,
            defaults.key.access(&config.key).map_err(in_default)?,
        );
        let mut any_shadow = defaults.shadow.is_some_and(|shadow| !shadow.is_none());
        let mut any_tier_limits = !tier_body_limits
            .get(None)
            .is_none_or(|limits| limits.is_empty());
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
            body_bytes.set(name, effective.body.limit())?;
            body_codes.set(name, effective.body.code().map_err(in_route)?)?;
            let tiered = tier_limits(effective);
            any_tier_limits |= !tiered.is_empty();
            tier_body_limits.set(name, tiered)?;
            let shadow = effective.shadow.unwrap_or_default();
            any_shadow |= !shadow.is_none();
            shadows.set(name, shadow)?;
            accesses.set(name, effective.key.access(&config.key).map_err(in_route)?)?;
            rule_codes.extend(effective.codes());
        }
        rule_codes.extend(shared.iter().filter_map(Quota::refusal_code));
        rule_codes.extend(
            config
                .keys
                .iter()
                .flat_map(|key| key.quotas.values())
                .filter_map(Quota::refusal_code),
        );
        config.codes.check_known(rule_codes.iter().copied())?;

        let hasher = match setup.hasher {
            Some(hasher) => hasher,
            None => config.hasher()?,
        };
        let parser = setup.parser.unwrap_or_else(|| config.parser());
        let renderer = renderer(setup.renderer, config, &routes)?;
        let rate_store = match rate_store {
            RateStoreSlot::Given(store) => store,
            RateStoreSlot::Default(make) => make(setup.clock.clone()),
        };
        let mut body_limits = BodyLimits::new(body_bytes);
        body_limits.set_codes(body_codes);
        body_limits.set_drain(config.drain);
        if any_tier_limits {
            body_limits = body_limits.with_tiers(tier_body_limits);
        }
        let mut route_check = RouteCheck::new(routes.clone());
        if any_shadow {
            route_check = route_check.with_shadows(shadows);
        }
        let key_check = KeyCheck::with_parts(
            Arc::new(key_store),
            config.key.clone(),
            parser,
            hasher,
            setup.clock.clone(),
        )
        .with_access(accesses)
        .with_trusted_proxies(&config.rate.trusted_proxies);
        #[allow(unused_mut)]
        let mut rate_check = RateLimitCheck::with_parts(
            Arc::new(rate_store),
            limits,
            config.rate.clone(),
            setup.clock,
        )?;
        #[cfg(feature = "metrics")]
        {
            rate_check.near_limit = setup.metrics.near_limit_share();
        }
        let checks = route_check
            .then(key_check)
            .then(OriginCheck::new(origins))
            .then(ScopeCheck::new(scopes))
            .then(check)
            .then(rate_check);
        let observer = Telemetry::of(
            setup.hook,
            #[cfg(feature = "metrics")]
            Some(crate::metrics::RequestMetrics::new(
                &setup.metrics,
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
    let options = config.request_id.as_ref();
    let header = match (
        &config.request_id_header,
        options.and_then(|o| o.header.as_ref()),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "request_id_header",
                "set `request_id_header` or `request_id.header`, not both",
            ));
        }
        (Some(header), None) => Some(("request_id_header", header)),
        (None, Some(header)) => Some(("request_id.header", header)),
        (None, None) => None,
    };
    if let Some((field, header)) = header {
        let header = HeaderName::try_from(header.as_str())
            .map_err(|_| ConfigError::new(field, format!("`{header}` is not a header name")))?;
        renderer = renderer.with_request_id_header(header);
    }
    if options.is_some_and(|options| options.generate) {
        renderer = renderer.with_generated_request_ids(true);
    }
    if let Some(domain) = &config.grpc_domain {
        if domain.trim().is_empty() {
            return Err(ConfigError::new("grpc_domain", "needs a name"));
        }
        renderer = renderer.with_grpc_domain(domain);
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
fn tier_limits(policy: &RoutePolicy) -> TierLimits {
    policy
        .tiers
        .iter()
        .flatten()
        .filter_map(|(tier, settings)| Some((Box::from(tier.as_str()), settings.body.body_limit?)))
        .collect()
}
