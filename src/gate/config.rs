//! [`GateConfig`]: the gate's settings as data, read from TOML or JSON, and
//! what a [`GateBuilder`] holds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::route_config::RouteConfig;
use super::{Gate, GateBuilder, RoutePolicy, TierPolicy};
use crate::ConfigError;
use crate::body_limit::DrainLimits;
use crate::error::CodeMap;
use crate::fields;
use crate::key::format::KeyParser;
use crate::key::{InMemoryKeyStore, KeyConfig, KeyHasher, KeyKind, KeyOptions};
use crate::rate_limit::store::policy_label;
use crate::rate_limit::{InMemoryRateStore, Quota, RateLimitOptions};
use crate::render::{ErrorFormat, RequestIdOptions};
use crate::route::TrailingSlash;

/// A gate's configuration as data: global settings, defaults, keys and
/// routes. Read it with [`GateConfig::from_toml`] or
/// [`GateConfig::from_json`] (or any serde format), then
/// [`builder`](GateConfig::builder) or [`build`](GateConfig::build). It is
/// also what a [`GateBuilder`] holds: each builder setter changes one of its
/// settings, and the checks' own settings ([`KeyOptions`],
/// [`RateLimitOptions`], [`DrainLimits`], each route's [`RoutePolicy`]) sit
/// in it whole.
///
/// ```
/// use tollgate::gate::GateConfig;
///
/// let config = GateConfig::from_toml(r#"
///     pepper = "demo pepper"
///
///     [defaults]
///     body_limit = 65536
///
///     [[keys]]
///     name = "server"
///     key = "sk_test_YYn6oneKS5DItVA0qnuKZlagLaVRXk7a3xyFn2"
///     project = "demo"
///
///     [[routes]]
///     route = "GET /health"
///     public = true
///
///     [[routes]]
///     route = "POST /v1/track"
///     scopes = ["ingest"]
///     quotas = [{ rate = 50, per = "second", burst = 200 }]
///     body_limit = 8192
/// "#).unwrap();
/// let gate = config.build().unwrap();
/// assert_eq!(gate.routes().len(), 3);
/// ```
///
/// A key none of its parts knows is refused. `Debug` shows `pepper` as
/// `<redacted>`, and so the keys' texts and digests.
#[derive(Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GateConfig {
    /// The server-side pepper keys are digested with (HMAC-SHA256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pepper: Option<String>,
    /// The name of an environment variable holding the pepper (preferred
    /// over `pepper` outside demos).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pepper_env: Option<String>,
    /// Whether keys must carry a checksum (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_checksum: Option<bool>,
    /// Where keys are read and what is done with them (`query_parameter`,
    /// `credential_header`, `credentials`, `strip_credential`,
    /// `reveal_revoked`, `lookup_timeout_ms`, `verified_keys`, `[failed_keys]`).
    #[serde(flatten)]
    pub key: KeyOptions,
    /// How rate limits are partitioned, the trusted proxies, the headers
    /// (`partition`, `trusted_proxies`, `rate_limit_headers`).
    #[serde(flatten)]
    pub rate: RateLimitOptions,
    /// The key kinds whose `Origin` is checked (default `["publishable"]`):
    /// add `secret` to keep secret keys out of browsers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_kinds: Option<Vec<KeyKind>>,
    /// `trim` (default: `/v1/track/` is `/v1/track`) or `keep`.
    pub trailing_slash: TrailingSlash,
    /// How the bodies of refused requests are drained (`drain_limit`,
    /// `drain_timeout_ms`).
    #[serde(flatten)]
    pub drain: DrainLimits,
    /// `json` (the envelope, default), `problem` (RFC 9457), `jsonrpc`, or
    /// a template.
    pub errors: ErrorFormat,
    /// Codes renamed, or given another status, as an existing API's
    /// contract has them: `[codes]` with `missing_api_key =
    /// "missing_bearer_token"` or `invalid_api_key = { code = "…", status =
    /// 403 }` (see [`CodeMap`]).
    #[serde(skip_serializing_if = "CodeMap::is_empty")]
    pub codes: CodeMap,
    /// The request-id header echoed in errors (default `x-request-id`); a
    /// shorthand for `request_id = { header = "…" }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id_header: Option<String>,
    /// Request ids: `request_id = { header = "x-request-id", generate =
    /// true }` makes one for every request that comes without (see
    /// [`RequestIdOptions`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestIdOptions>,
    /// The domain of the `ErrorInfo` gRPC refusals carry in
    /// `grpc-status-details-bin` (feature `grpc-details`; default
    /// `tollgate`): your service's name, such as `api.example.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_domain: Option<String>,
    /// The policy of unmatched requests and the defaults of every route.
    pub defaults: RoutePolicy,
    /// The tiers keys may carry (`[tiers]`, each a name with optional
    /// settings: `free = {}`, `pro = { quotas = [...], body_limit = ... }`).
    /// A tier's settings here are what `[defaults] tiers` would give it
    /// (settings there win); once `[tiers]` is given, every tier a key, the
    /// defaults or a route names must be declared in it, so a misspelt one
    /// is an error at start-up. Without `[tiers]`, the tiers are those the
    /// defaults and routes give settings to.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, TierPolicy>,
    /// Quotas routes share by name: `[shared_quotas]` with
    /// `sdk = { rate = 600, per = "minute" }`, listed on routes as
    /// `quotas = ["sdk"]` (see [`Quota::shared`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub shared_quotas: BTreeMap<String, Quota>,
    /// Keys to load into the in-memory store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyConfig>,
    /// Routes and their policies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    /// Rate-limit buckets in Redis, shared by several instances (feature
    /// `redis`; see [`GateConfig::redis_store`]). Without it, buckets are
    /// in this process's memory.
    #[cfg(feature = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<crate::rate_limit::redis::RedisOptions>,
    /// Keys in PostgreSQL (`[key_store] postgres = "postgres://…"`, feature
    /// `postgres`; see [`GateConfig::postgres_key_store`]) in place of
    /// `[[keys]]`: a configuration with both is refused.
    #[cfg(feature = "postgres")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_store: Option<crate::key::postgres::PostgresOptions>,
}

/// The settings of a configuration that belong to the gate itself rather
/// than to one check.
#[derive(Deserialize)]
#[serde(default)]
struct GateFields {
    pepper: Option<String>,
    pepper_env: Option<String>,
    require_checksum: Option<bool>,
    origin_kinds: Option<Vec<KeyKind>>,
    trailing_slash: TrailingSlash,
    errors: ErrorFormat,
    codes: CodeMap,
    request_id_header: Option<String>,
    request_id: Option<RequestIdOptions>,
    grpc_domain: Option<String>,
    defaults: RoutePolicy,
    tiers: BTreeMap<String, TierPolicy>,
    shared_quotas: BTreeMap<String, Quota>,
    #[serde(deserialize_with = "crate::key::config::named_keys")]
    keys: Vec<KeyConfig>,
    routes: Vec<RouteConfig>,
    #[cfg(feature = "redis")]
    redis: Option<crate::rate_limit::redis::RedisOptions>,
    #[cfg(feature = "postgres")]
    key_store: Option<crate::key::postgres::PostgresOptions>,
}

impl Default for GateFields {
    fn default() -> Self {
        let config = GateConfig::default();
        Self {
            pepper: config.pepper,
            pepper_env: config.pepper_env,
            require_checksum: config.require_checksum,
            origin_kinds: config.origin_kinds,
            trailing_slash: config.trailing_slash,
            errors: config.errors,
            codes: config.codes,
            request_id_header: config.request_id_header,
            request_id: config.request_id,
            grpc_domain: config.grpc_domain,
            defaults: config.defaults,
            tiers: config.tiers,
            shared_quotas: config.shared_quotas,
            keys: config.keys,
            routes: config.routes,
            #[cfg(feature = "redis")]
            redis: config.redis,
            #[cfg(feature = "postgres")]
            key_store: config.key_store,
        }
    }
}

impl<'de> Deserialize<'de> for GateConfig {
    /// Reads the gate's own settings and each check's from the one table; a
    /// key none of them knows is an error naming it.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = Map::<String, Value>::deserialize(deserializer)?;
        let known: Vec<&str> = [
            fields::names::<GateFields>(),
            fields::names::<KeyOptions>(),
            fields::names::<RateLimitOptions>(),
            fields::names::<DrainLimits>(),
        ]
        .concat();
        fields::refuse_unknown(&table, &[&known]).map_err(D::Error::custom)?;
        let own: GateFields = fields::part(&table).map_err(D::Error::custom)?;
        Ok(Self {
            pepper: own.pepper,
            pepper_env: own.pepper_env,
            require_checksum: own.require_checksum,
            key: fields::part(&table).map_err(D::Error::custom)?,
            rate: fields::part(&table).map_err(D::Error::custom)?,
            origin_kinds: own.origin_kinds,
            trailing_slash: own.trailing_slash,
            drain: fields::part(&table).map_err(D::Error::custom)?,
            errors: own.errors,
            codes: own.codes,
            request_id_header: own.request_id_header,
            request_id: own.request_id,
            grpc_domain: own.grpc_domain,
            defaults: own.defaults,
            tiers: own.tiers,
            shared_quotas: own.shared_quotas,
            keys: own.keys,
            routes: own.routes,
            #[cfg(feature = "redis")]
            redis: own.redis,
            #[cfg(feature = "postgres")]
            key_store: own.key_store,
        })
    }
}

/// What `Debug` shows in place of a secret that is set.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for GateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("GateConfig");
        out.field("pepper", &redacted(&self.pepper))
            .field("pepper_env", &self.pepper_env)
            .field("require_checksum", &self.require_checksum)
            .field("key", &self.key)
            .field("rate", &self.rate)
            .field("origin_kinds", &self.origin_kinds)
            .field("trailing_slash", &self.trailing_slash)
            .field("drain", &self.drain)
            .field("errors", &self.errors)
            .field("codes", &self.codes)
            .field("request_id_header", &self.request_id_header)
            .field("request_id", &self.request_id)
            .field("grpc_domain", &self.grpc_domain)
            .field("defaults", &self.defaults)
            .field("tiers", &self.tiers)
            .field("shared_quotas", &self.shared_quotas)
            .field("keys", &self.keys)
            .field("routes", &self.routes);
        #[cfg(feature = "redis")]
        out.field("redis", &self.redis);
        #[cfg(feature = "postgres")]
        out.field("key_store", &self.key_store);
        out.finish()
    }
}

impl GateConfig {
    /// Reads TOML.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|error| ConfigError::new("config", error.to_string()).with_source(error))
    }

    /// Reads JSON.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text)
            .map_err(|error| ConfigError::new("config", error.to_string()).with_source(error))
    }

    /// Reads a file: JSON if its name ends in `.json`, TOML otherwise.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new("config", format!("cannot read {}: {error}", path.display()))
                .with_source(error)
        })?;
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// The key hasher this configuration asks for.
    pub fn hasher(&self) -> Result<KeyHasher, ConfigError> {
        match (&self.pepper, &self.pepper_env) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "pepper",
                "set `pepper` or `pepper_env`, not both",
            )),
            (Some(pepper), None) => Ok(KeyHasher::with_pepper(pepper.as_bytes())),
            (None, Some(variable)) => match std::env::var(variable) {
                Ok(pepper) if !pepper.is_empty() => Ok(KeyHasher::with_pepper(pepper.as_bytes())),
                _ => Err(ConfigError::new(
                    "pepper_env",
                    format!("the environment variable `{variable}` is not set"),
                )),
            },
            (None, None) => Ok(KeyHasher::new()),
        }
    }

    /// The keys, checked and digested, in an in-memory store.
    pub fn key_store(
        &self,
        hasher: &KeyHasher,
        parser: &KeyParser,
    ) -> Result<InMemoryKeyStore, ConfigError> {
        let store = InMemoryKeyStore::new();
        let tiers = self.tier_names();
        let labels = self.quota_labels();
        let mut names = std::collections::HashSet::new();
        for key in &self.keys {
            if key.name.is_empty() || !names.insert(key.name.as_str()) {
                return Err(ConfigError::new(
                    format!("keys.{}.name", key.name),
                    "every key needs a name of its own",
                ));
            }
            let (digest, record) = key.record(
                hasher,
                parser,
                |tier| tiers.contains(tier),
                |label| labels.contains(label),
            )?;
            store.insert(digest, record);
        }
        Ok(store)
    }

    /// Every tier keys may carry: those `[tiers]` declares, or without it
    /// every tier the defaults or a route has settings for.
    fn tier_names(&self) -> BTreeSet<&str> {
        if !self.tiers.is_empty() {
            return self.tiers.keys().map(String::as_str).collect();
        }
        self.policies()
            .filter_map(|(_, policy)| policy.tiers.as_ref())
            .flat_map(BTreeMap::keys)
            .map(String::as_str)
            .collect()
    }

    /// The defaults and each route's policy, with the route's pattern (the
    /// defaults' name for the defaults).
    fn policies(&self) -> impl Iterator<Item = (&str, &RoutePolicy)> {
        std::iter::once((crate::route::Route::DEFAULT_NAME, &self.defaults)).chain(
            self.routes
                .iter()
                .filter_map(|route| Some((route.route.as_deref()?, &route.policy))),
        )
    }

    /// Every tier the defaults and routes name is declared in `[tiers]`,
    /// when it is given.
    pub(crate) fn check_tiers(&self) -> Result<(), ConfigError> {
        if self.tiers.is_empty() {
            return Ok(());
        }
        for (pattern, policy) in self.policies() {
            for name in policy.tiers.iter().flatten().map(|(name, _)| name) {
                if !self.tiers.contains_key(name) {
                    return Err(ConfigError::new(
                        format!("tiers.{name}"),
                        format!(
                            "not declared in `[tiers]` (declared: {})",
                            self.declared_tiers()
                        ),
                    )
                    .in_route(pattern));
                }
            }
        }
        Ok(())
    }

    fn declared_tiers(&self) -> String {
        self.tiers
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The defaults, with the settings `[tiers]` gives each tier under the
    /// defaults' own.
    pub(crate) fn effective_defaults(&self) -> std::borrow::Cow<'_, RoutePolicy> {
        let declared = self
            .tiers
            .iter()
            .filter(|(_, tier)| **tier != TierPolicy::default())
            .collect::<Vec<_>>();
        if declared.is_empty() {
            return std::borrow::Cow::Borrowed(&self.defaults);
        }
        let mut defaults = self.defaults.clone();
        let tiers = defaults.tiers.get_or_insert_with(BTreeMap::new);
        for (name, settings) in declared {
            let tier = tiers.entry(name.clone()).or_default();
            if tier.rate.quotas.is_none() {
                tier.rate.quotas.clone_from(&settings.rate.quotas);
            }
            if tier.body.body_limit.is_none() {
                tier.body.body_limit = settings.body.body_limit;
            }
        }
        std::borrow::Cow::Owned(defaults)
    }

    /// Every label a key's quota override may name: shared and named
    /// quotas, route patterns (with `#2`… for stacked quotas), `default`.
    fn quota_labels(&self) -> BTreeSet<String> {
        let mut labels: BTreeSet<String> = self.shared_quotas.keys().cloned().collect();
        let defaults = self.effective_defaults();
        let policies = std::iter::once((crate::route::Route::DEFAULT_NAME, &*defaults))
            .chain(self.policies().skip(1));
        for (pattern, policy) in policies {
            let tiers = policy
                .tiers
                .iter()
                .flatten()
                .filter_map(|(_, t)| t.rate.quotas.as_ref());
            for quotas in policy.rate.quotas.iter().chain(tiers) {
                for (index, quota) in quotas.iter().enumerate() {
                    labels.insert(policy_label(quota.name(), pattern, index).into_owned());
                }
            }
        }
        labels
    }

    /// A gate builder with everything this configuration says, keys in an
    /// in-memory store. Add what data cannot say (a clock, a decision hook,
    /// another rate store) before building.
    pub fn builder(&self) -> Result<GateBuilder<InMemoryKeyStore, InMemoryRateStore>, ConfigError> {
        let hasher = self.hasher()?;
        let parser = self.parser();
        let store = self.key_store(&hasher, &parser)?;
        Ok(Gate::builder(store)
            .hasher(hasher)
            .parser(parser)
            .with_config(self.clone()))
    }

    /// The key parser this configuration asks for.
    pub(crate) fn parser(&self) -> KeyParser {
        KeyParser::new().require_checksum(self.require_checksum.unwrap_or(true))
    }

    /// Builds the gate this configuration describes, buckets in memory.
    ///
    /// With the `redis` feature, a configuration with a `[redis]` table is
    /// refused here, rather than silently limiting each instance on its
    /// own: build it with `config.builder()?.rate_store(store)` and the
    /// store from `GateConfig::redis_store`.
    pub fn build(&self) -> Result<Gate<InMemoryKeyStore, InMemoryRateStore>, ConfigError> {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            return Err(ConfigError::new(
                "redis",
                "this configuration keeps buckets in Redis: build with \
                 `builder()?.rate_store(config.redis_store().await?.unwrap())`",
            ));
        }
        #[cfg(feature = "postgres")]
        if self.key_store.is_some() {
            return Err(ConfigError::new(
                "key_store",
                "this configuration keeps keys in PostgreSQL: build with \
                 `builder()?.key_store(config.postgres_key_store().await?.unwrap())`",
            ));
        }
        self.builder()?.build()
    }

    /// Connects to the PostgreSQL of the `[key_store]` table, if there is
    /// one (see [`PostgresKeyStore::connect`](crate::key::postgres::PostgresKeyStore::connect)):
    /// hand it to `builder()?.key_store(…)`. A configuration with both
    /// `[key_store]` and `[[keys]]` is refused, rather than leaving the
    /// keys of the file unused.
    #[cfg(feature = "postgres")]
    pub async fn postgres_key_store(
        &self,
    ) -> Result<Option<crate::key::postgres::PostgresKeyStore>, crate::error::StoreError> {
        let Some(options) = &self.key_store else {
            return Ok(None);
        };
        if !self.keys.is_empty() {
            return Err(crate::error::StoreError::new(ConfigError::new(
                "keys",
                "keys come from PostgreSQL ([key_store]): remove `[[keys]]` and store them \
                 there (`keys mint --postgres URL`)",
            )));
        }
        crate::key::postgres::PostgresKeyStore::connect(options.clone())
            .await
            .map(Some)
    }

    /// Connects to the Redis of the `[redis]` table, if there is one (see
    /// [`RedisRateStore::connect`](crate::rate_limit::redis::RedisRateStore::connect)).
    #[cfg(feature = "redis")]
    pub async fn redis_store(
        &self,
    ) -> Result<Option<crate::rate_limit::redis::RedisRateStore>, crate::error::StoreError> {
        match &self.redis {
            Some(options) => crate::rate_limit::redis::RedisRateStore::connect(options.clone())
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}
