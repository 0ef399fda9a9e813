//! [`GateBuilder`]: a [`GateConfig`] being set up in code, and what only
//! code can give (stores, a clock, a hook, a check of your own).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::config::GateConfig;
use super::observe::Hook;
use super::route_config::RouteConfig;
use super::{GateEvent, RoutePolicy, TierPolicy};
use crate::ConfigError;
use crate::body_limit::DrainLimits;
use crate::check::Check;
use crate::clock::Clock;
use crate::error::CodeMap;
use crate::key::format::KeyParser;
use crate::key::store::KeyStore;
use crate::key::{CredentialSource, KeyHasher, KeyKind, KeyKinds};
use crate::rate_limit::store::RateStore;
use crate::rate_limit::{InMemoryRateStore, IpNet, Partition, Quota, RateLimitHeaders};
use crate::render::ErrorRenderer;
use crate::route::TrailingSlash;

/// The rate store a builder will use: one given, or the default in-memory
/// store, made at `build` on the builder's clock.
pub(super) enum RateStoreSlot<Rs> {
    Given(Rs),
    Default(fn(Clock) -> Rs),
}

/// Configures a [`Gate`](super::Gate); see the [module docs](super).
///
/// It holds a [`GateConfig`]: each setter changes one of its settings (the
/// same a configuration file sets under the same name), and
/// [`GateConfig::builder`] starts from a whole one. What data cannot say —
/// the stores, a hasher or parser of your own, a renderer, the clock, the
/// decision hook, a check of your own — it holds beside.
#[must_use]
pub struct GateBuilder<St, Rs, C = ()> {
    pub(super) key_store: St,
    pub(super) rate_store: RateStoreSlot<Rs>,
    pub(super) check: C,
    pub(super) setup: Setup,
}

/// What a builder holds but its stores and your check.
pub(super) struct Setup {
    pub(super) config: GateConfig,
    pub(super) hasher: Option<KeyHasher>,
    pub(super) parser: Option<KeyParser>,
    pub(super) renderer: Option<ErrorRenderer>,
    pub(super) clock: Clock,
    #[cfg(feature = "metrics")]
    pub(super) metrics: crate::metrics::MetricsOptions,
    pub(super) hook: Option<Hook>,
    /// The first mistake found by a setter that cannot fail, reported by
    /// `build`.
    pub(super) error: Option<ConfigError>,
}

impl<St: KeyStore> GateBuilder<St, InMemoryRateStore> {
    pub(super) fn new(key_store: St) -> Self {
        Self {
            key_store,
            rate_store: RateStoreSlot::Default(InMemoryRateStore::with_clock),
            check: (),
            setup: Setup {
                config: GateConfig::default(),
                hasher: None,
                parser: None,
                renderer: None,
                clock: Clock::system(),
                #[cfg(feature = "metrics")]
                metrics: crate::metrics::MetricsOptions::default(),
                hook: None,
                error: None,
            },
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
            setup: self.setup,
        }
    }

    /// Authenticates against `store` instead.
    pub fn key_store<St2: KeyStore>(self, store: St2) -> GateBuilder<St2, Rs, C> {
        GateBuilder {
            key_store: store,
            rate_store: self.rate_store,
            check: self.check,
            setup: self.setup,
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
            setup: self.setup,
        }
    }

    /// Starts from every setting of `config` (its keys aside: they are the
    /// key store's business).
    pub(crate) fn with_config(mut self, config: GateConfig) -> Self {
        self.setup.config = config;
        self
    }

    fn with(mut self, change: impl FnOnce(&mut GateConfig)) -> Self {
        change(&mut self.setup.config);
        self
    }

    /// Digests keys with `hasher` (the pepper), instead of the one the
    /// configuration's `pepper` or `pepper_env` makes.
    pub fn hasher(mut self, hasher: KeyHasher) -> Self {
        self.setup.hasher = Some(hasher);
        self
    }

    /// Parses keys with `parser` (prefixes, checksum), instead of the
    /// default one (with the configuration's `require_checksum`).
    pub fn parser(mut self, parser: KeyParser) -> Self {
        self.setup.parser = Some(parser);
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

    /// How many unknown or malformed keys one client address may present
    /// per window before it is refused `429` ahead of any lookup (default 20
    /// a minute; [`FailedKeyBudget::off`](crate::key::FailedKeyBudget::off)
    /// turns it off). Addresses are read as the rate limits read them, behind
    /// [`trusted_proxies`](Self::trusted_proxies).
    pub fn failed_keys(self, budget: crate::key::FailedKeyBudget) -> Self {
        self.with(|c| c.key.failed_keys = budget)
    }

    /// Remembers up to `capacity` verified keys (0: none); see
    /// [`KeyOptions::verified_keys`](crate::key::KeyOptions::verified_keys).
    pub fn verified_keys(self, capacity: usize) -> Self {
        self.with(|c| c.key.verified_keys = capacity)
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
        self.setup.renderer = Some(renderer);
        self
    }

    /// Echoes the request id from `header` (default `x-request-id`).
    pub fn request_id_header(self, header: HeaderName) -> Self {
        self.with(|c| {
            c.request_id_header = Some(header.as_str().to_owned());
            if let Some(options) = &mut c.request_id {
                options.header = None;
            }
        })
    }

    /// Gives every request that comes without a request id one, at the
    /// edge (a configuration file's `request_id = { generate = true }`; see
    /// [`RequestIdOptions`](crate::render::RequestIdOptions)).
    pub fn generate_request_ids(self, generate: bool) -> Self {
        self.with(|c| c.request_id.get_or_insert_with(Default::default).generate = generate)
    }

    /// Reads every time from `clock`: key expiry, rate-limit reset times,
    /// and the buckets of the default in-memory rate store. (A rate store
    /// you give keeps its own clock.)
    pub fn clock(mut self, clock: Clock) -> Self {
        self.setup.clock = clock;
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

    /// Declares a tier keys may carry, with what it gives them on the routes
    /// that take their settings from the defaults (a configuration file's
    /// `[tiers]`; see [`GateConfig::tiers`]). `TierPolicy::new()` declares a
    /// tier without settings of its own.
    pub fn tier(self, name: impl Into<String>, policy: TierPolicy) -> Self {
        let name = name.into();
        self.with(|c| {
            c.tiers.insert(name, policy);
        })
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
                self.setup.config.shared_quotas.insert(name, quota);
            }
            None => {
                self.setup.error.get_or_insert(ConfigError::new(
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
        self.setup.metrics = options;
        self
    }

    /// Calls `hook` once per request with what the gate decided (allowed, or
    /// rejected with its code) — for example to count rejections per code and
    /// route.
    pub fn on_decision(mut self, hook: impl Fn(&GateEvent<'_>) + Send + Sync + 'static) -> Self {
        self.setup.hook = Some(Arc::new(hook));
        self
    }
}
