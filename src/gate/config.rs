//! [`GateConfig`]: the same policy, read from TOML or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::{Gate, GateBuilder, RoutePolicy};
use crate::ConfigError;
use crate::body_limit::DrainLimits;
use crate::error::CodeMap;
use crate::key::{
    CredentialSource, InMemoryKeyStore, KeyDigest, KeyEnv, KeyHasher, KeyKind, KeyKinds, KeyParser,
    KeyRecord, KeyStatus,
};
use crate::rate_limit::store::policy_label;
use crate::rate_limit::{InMemoryRateStore, Partition, Quota, RateLimitHeaders};
use crate::render::ErrorFormat;
use crate::route::TrailingSlash;

/// A gate's configuration as data: global settings, defaults, keys and
/// routes. Read it with [`GateConfig::from_toml`] or
/// [`GateConfig::from_json`] (or any serde format), then
/// [`builder`](GateConfig::builder) or [`build`](GateConfig::build).
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
/// `Debug` shows `pepper` as `<redacted>`, and so the keys' texts and
/// digests.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GateConfig {
    /// The server-side pepper keys are digested with (HMAC-SHA256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pepper: Option<String>,
    /// The name of an environment variable holding the pepper (preferred
    /// over `pepper` outside demos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pepper_env: Option<String>,
    /// Whether keys must carry a checksum (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_checksum: Option<bool>,
    /// A query parameter also accepted for publishable keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<String>,
    /// The header carrying a bare key (default `X-API-Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_header: Option<String>,
    /// Where keys are read on routes that do not say: any of `bearer`,
    /// `header`, `query` (default: all three, the query only where
    /// `query_parameter` names it). Routes may set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<CredentialSource>>,
    /// Remove the credential before the request reaches the service.
    #[serde(default)]
    pub strip_credential: bool,
    /// Answer revoked keys `revoked_api_key` instead of `invalid_api_key`
    /// (default false: a revoked key looks like one that never existed).
    #[serde(default)]
    pub reveal_revoked: bool,
    /// How long the key store has to answer, in milliseconds (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_timeout_ms: Option<u64>,
    /// `json` (the envelope, default) or `problem` (RFC 9457).
    #[serde(default)]
    pub errors: ErrorFormat,
    /// Codes renamed, or given another status, as an existing API's
    /// contract has them: `[codes]` with `missing_api_key =
    /// "missing_bearer_token"` or `invalid_api_key = { code = "…", status =
    /// 403 }` (see [`CodeMap`]).
    #[serde(default, skip_serializing_if = "CodeMap::is_empty")]
    pub codes: CodeMap,
    /// The request-id header echoed in errors (default `x-request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id_header: Option<String>,
    /// How rate limits are partitioned: `project` (default), `key`, `ip`, `global`.
    #[serde(default)]
    pub partition: Partition,
    /// Proxies trusted to report the client in `X-Forwarded-For`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// `draft` (default), `legacy`, `both` or `none`.
    #[serde(default)]
    pub rate_limit_headers: RateLimitHeaders,
    /// The key kinds whose `Origin` is checked (default `["publishable"]`):
    /// add `secret` to keep secret keys out of browsers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_kinds: Option<Vec<KeyKind>>,
    /// `trim` (default: `/v1/track/` is `/v1/track`) or `keep`.
    #[serde(default)]
    pub trailing_slash: TrailingSlash,
    /// Refused HTTP/1.1 bodies up to this many bytes are read and discarded
    /// so the connection stays usable (default 65536; 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_limit: Option<u64>,
    /// How long a drain may take, in milliseconds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,
    /// The policy of unmatched requests and the defaults of every route.
    #[serde(default)]
    pub defaults: RoutePolicy,
    /// Quotas routes share by name: `[shared_quotas]` with
    /// `sdk = { rate = 600, per = "minute" }`, listed on routes as
    /// `quotas = ["sdk"]` (see [`Quota::shared`](crate::rate_limit::Quota::shared)).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shared_quotas: BTreeMap<String, Quota>,
    /// Keys to load into the in-memory store.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "named_keys"
    )]
    pub keys: Vec<KeyConfig>,
    /// Routes and their policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    /// Rate-limit buckets in Redis, shared by several instances (feature
    /// `redis`; see [`GateConfig::redis_store`]). Without it, buckets are
    /// in this process's memory.
    #[cfg(feature = "redis")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<crate::rate_limit::RedisOptions>,
}

/// One key. Give it in the clear (`key`, hashed at load: for demos and
/// tests) or as its digest (`digest`, 64 hex characters). `Debug` shows
/// neither.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The key's id.
    pub name: String,
    /// The key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its digest, in hexadecimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The project it belongs to.
    pub project: String,
    /// Its kind (default: told by the key's prefix; required with `digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
    /// Its environment (default: told by the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<KeyEnv>,
    /// Granted scopes (default: the kind's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Allowed browser origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    /// `active` (default), `disabled` (403 `key_disabled`) or `revoked`.
    #[serde(default = "active")]
    pub status: KeyStatus,
    /// When it stops working: Unix seconds, or RFC 3339 UTC
    /// (`2026-01-01T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Expiry>,
    /// Its tier: routes' `tiers.NAME` settings apply to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Its own body cap in bytes, on every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<u64>,
    /// Quotas it draws by instead of the routes', by policy label (a
    /// quota's name, else the route's pattern): `quotas = { sdk = { rate =
    /// 6000, per = "minute" } }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quotas: BTreeMap<String, Quota>,
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
            .field("query_parameter", &self.query_parameter)
            .field("credential_header", &self.credential_header)
            .field("credentials", &self.credentials)
            .field("strip_credential", &self.strip_credential)
            .field("reveal_revoked", &self.reveal_revoked)
            .field("lookup_timeout_ms", &self.lookup_timeout_ms)
            .field("errors", &self.errors)
            .field("codes", &self.codes)
            .field("request_id_header", &self.request_id_header)
            .field("partition", &self.partition)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("rate_limit_headers", &self.rate_limit_headers)
            .field("origin_kinds", &self.origin_kinds)
            .field("trailing_slash", &self.trailing_slash)
            .field("drain_limit", &self.drain_limit)
            .field("drain_timeout_ms", &self.drain_timeout_ms)
            .field("defaults", &self.defaults)
            .field("shared_quotas", &self.shared_quotas)
            .field("keys", &self.keys)
            .field("routes", &self.routes);
        #[cfg(feature = "redis")]
        out.field("redis", &self.redis);
        out.finish()
    }
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("key", &redacted(&self.key))
            .field("digest", &redacted(&self.digest))
            .field("project", &self.project)
            .field("kind", &self.kind)
            .field("env", &self.env)
            .field("scopes", &self.scopes)
            .field("origins", &self.origins)
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .field("tier", &self.tier)
            .field("body_limit", &self.body_limit)
            .field("quotas", &self.quotas)
            .finish()
    }
}

fn active() -> KeyStatus {
    KeyStatus::Active
}

/// An expiry date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expiry {
    /// Seconds since the Unix epoch.
    Unix(u64),
    /// RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SSZ`.
    Text(String),
}

impl Expiry {
    fn to_time(&self) -> Option<SystemTime> {
        let seconds = match self {
            Self::Unix(seconds) => *seconds,
            Self::Text(text) => parse_rfc3339_utc(text)?,
        };
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    }
}

/// `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `+00:00`: seconds since the epoch.
fn parse_rfc3339_utc(text: &str) -> Option<u64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let number = |part: &str| part.parse::<u64>().ok();
    let mut date = date.splitn(3, '-');
    let (year, month, day) = (
        number(date.next()?)?,
        number(date.next()?)?,
        number(date.next()?)?,
    );
    let time = time.split('.').next()?;
    let mut time = time.splitn(3, ':');
    let (hour, minute, second) = (
        number(time.next()?)?,
        number(time.next()?)?,
        number(time.next()?)?,
    );
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years ≥ 1970.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// One `[[routes]]` entry: `route = "METHOD /path"` and the route's
/// [`RoutePolicy`], whose fields sit beside it:
///
/// ```toml
/// [[routes]]
/// route = "POST /v1/track"
/// scopes = ["ingest"]
/// quotas = [{ rate = 50, per = "second", burst = 200 }]
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RouteConfig {
    /// `METHOD /path/{param}` (required: its absence is reported when the
    /// gate is built, as `routes[N].route`).
    pub route: Option<String>,
    /// The route's policy.
    pub policy: RoutePolicy,
}

impl RouteConfig {
    /// A route entry.
    pub fn new(route: impl Into<String>, policy: RoutePolicy) -> Self {
        Self {
            route: Some(route.into()),
            policy,
        }
    }
}

impl Serialize for RouteConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            route: &'a Option<String>,
            #[serde(flatten)]
            policy: &'a RoutePolicy,
        }
        Entry {
            route: &self.route,
            policy: &self.policy,
        }
        .serialize(serializer)
    }
}

/// The first field of `table` that `T` refuses on its own, with the
/// reason: what a mistake's message names.
fn failing_field<T: serde::de::DeserializeOwned>(
    table: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    table.iter().find_map(|(name, value)| {
        let alone = serde_json::Map::from_iter([(name.clone(), value.clone())]);
        T::deserialize(serde_json::Value::Object(alone))
            .err()
            .filter(|error| !error.to_string().starts_with("missing field"))
            .map(|error| format!("`{name}`: {error}"))
    })
}

/// `[[keys]]`, each mistake named with its key and field.
fn named_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<KeyConfig>, D::Error> {
    use serde::de::Error;
    let tables = Vec::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)?;
    tables
        .into_iter()
        .enumerate()
        .map(|(index, table)| {
            KeyConfig::deserialize(serde_json::Value::Object(table.clone())).map_err(|error| {
                let key = match table.get("name").and_then(serde_json::Value::as_str) {
                    Some(name) => format!("key `{name}`"),
                    None => format!("keys[{index}]"),
                };
                D::Error::custom(format!(
                    "{key}: {}",
                    failing_field::<KeyConfig>(&table).unwrap_or_else(|| error.to_string())
                ))
            })
        })
        .collect()
}

impl<'de> Deserialize<'de> for RouteConfig {
    /// The entry is read as a table, `route` taken out, and the rest read as
    /// a [`RoutePolicy`] (unknown fields refused), so a mistake is reported
    /// with the route it is in.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let route = match table.remove("route") {
            Some(serde_json::Value::String(route)) => Some(route),
            Some(_) => {
                return Err(D::Error::custom(
                    "`route` must be a string like \"POST /v1/track\"",
                ));
            }
            None => None,
        };
        let route_name = route.as_deref().unwrap_or("?");
        let policy = RoutePolicy::deserialize(serde_json::Value::Object(table.clone())).map_err(
            |error| {
                D::Error::custom(format!(
                    "route `{route_name}`: {}",
                    failing_field::<RoutePolicy>(&table).unwrap_or_else(|| error.to_string())
                ))
            },
        )?;
        Ok(Self { route, policy })
    }
}

impl GateConfig {
    /// Reads TOML.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::new("config", error.to_string()))
    }

    /// Reads JSON.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|error| ConfigError::new("config", error.to_string()))
    }

    /// Reads a file: JSON if its name ends in `.json`, TOML otherwise.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new("config", format!("cannot read {}: {error}", path.display()))
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
            let field = |name: &str| format!("keys.{}.{name}", key.name);
            if key.name.is_empty() || !names.insert(key.name.as_str()) {
                return Err(ConfigError::new(
                    field("name"),
                    "every key needs a name of its own",
                ));
            }
            let (digest, kind, env) = match (&key.key, &key.digest) {
                (Some(text), None) => {
                    let parsed = parser
                        .parse(text)
                        .map_err(|error| ConfigError::new(field("key"), error.to_string()))?;
                    (hasher.digest(text), Some(parsed.kind()), parsed.env())
                }
                (None, Some(hex)) => {
                    let digest = KeyDigest::from_hex(hex)
                        .map_err(|error| ConfigError::new(field("digest"), error.reason()))?;
                    (digest, None, None)
                }
                _ => {
                    return Err(ConfigError::new(
                        field("key"),
                        "give exactly one of `key` and `digest`",
                    ));
                }
            };
            let kind = key.kind.or(kind).ok_or_else(|| {
                ConfigError::new(field("kind"), "a key given by digest needs its `kind`")
            })?;
            let mut record = KeyRecord::new(key.name.as_str(), key.project.as_str(), kind)
                .with_scopes(key.scopes.iter().cloned())
                .with_origins(&key.origins)
                .map_err(|error| ConfigError::new(field("origins"), error.reason()))?
                .with_status(key.status);
            if let Some(env) = key.env.or(env) {
                record = record.with_env(env);
            }
            if let Some(tier) = &key.tier {
                if !tiers.contains(tier.as_str()) {
                    return Err(ConfigError::new(
                        field("tier"),
                        format!("no route or `[defaults]` has settings for the tier `{tier}`"),
                    ));
                }
                record = record
                    .with_tier(tier)
                    .map_err(|error| ConfigError::new(field("tier"), error.reason()))?;
            }
            if let Some(bytes) = key.body_limit {
                record = record.with_body_limit(bytes);
            }
            for (label, quota) in &key.quotas {
                if !labels.contains(label.as_str()) {
                    return Err(ConfigError::new(
                        field(&format!("quotas.{label}")),
                        format!(
                            "no quota is labelled `{label}`: use a quota's name or a route's pattern"
                        ),
                    ));
                }
                record = record
                    .with_quota(label, quota.clone())
                    .map_err(|error| ConfigError::new(field(error.field()), error.reason()))?;
            }
            if let Some(expiry) = &key.expires_at {
                let time = expiry.to_time().ok_or_else(|| {
                    ConfigError::new(
                        field("expires_at"),
                        "expected Unix seconds or `YYYY-MM-DDTHH:MM:SSZ`",
                    )
                })?;
                record = record.with_expiry(time);
            }
            store.insert(digest, record);
        }
        Ok(store)
    }

    /// Every tier the defaults or a route has settings for.
    fn tier_names(&self) -> BTreeSet<&str> {
        std::iter::once(&self.defaults)
            .chain(self.routes.iter().map(|route| &route.policy))
            .filter_map(|policy| policy.tiers.as_ref())
            .flat_map(BTreeMap::keys)
            .map(String::as_str)
            .collect()
    }

    /// Every label a key's quota override may name: shared and named
    /// quotas, route patterns (with `#2`… for stacked quotas), `default`.
    fn quota_labels(&self) -> BTreeSet<String> {
        let mut labels: BTreeSet<String> = self.shared_quotas.keys().cloned().collect();
        let policies = std::iter::once((crate::route::Route::DEFAULT_NAME, &self.defaults)).chain(
            self.routes
                .iter()
                .filter_map(|route| Some((route.route.as_deref()?, &route.policy))),
        );
        for (pattern, policy) in policies {
            let tiers = policy
                .tiers
                .iter()
                .flatten()
                .filter_map(|(_, t)| t.quotas.as_ref());
            for quotas in policy.quotas.iter().chain(tiers) {
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
        let parser = KeyParser::new().require_checksum(self.require_checksum.unwrap_or(true));
        let store = self.key_store(&hasher, &parser)?;
        let defaults = DrainLimits::default();
        let mut builder = Gate::builder(store)
            .hasher(hasher)
            .parser(parser)
            .strip_credential(self.strip_credential)
            .reveal_revoked(self.reveal_revoked)
            .codes(self.codes.clone())
            .renderer(self.errors.renderer())
            .partition(self.partition.clone())
            .trusted_proxies(&self.trusted_proxies)
            .rate_limit_headers(self.rate_limit_headers)
            .trailing_slash(self.trailing_slash)
            .drain(DrainLimits {
                bytes: self.drain_limit.unwrap_or(defaults.bytes),
                timeout: self
                    .drain_timeout_ms
                    .map_or(defaults.timeout, Duration::from_millis),
            })
            .defaults(self.defaults.clone());
        for (name, quota) in &self.shared_quotas {
            if quota.name().is_some_and(|given| given != name) {
                return Err(ConfigError::new(
                    format!("shared_quotas.{name}.name"),
                    "a shared quota is named by its key in `[shared_quotas]`",
                ));
            }
            builder = builder.shared_quota(quota.clone().named(name.as_str()));
        }
        if let Some(header) = &self.request_id_header {
            let header = HeaderName::try_from(header.as_str()).map_err(|_| {
                ConfigError::new(
                    "request_id_header",
                    format!("`{header}` is not a header name"),
                )
            })?;
            builder = builder.request_id_header(header);
        }
        if let Some(name) = &self.query_parameter {
            builder = builder.query_parameter(name.as_str());
        }
        if let Some(header) = &self.credential_header {
            let header = HeaderName::try_from(header.as_str()).map_err(|_| {
                ConfigError::new(
                    "credential_header",
                    format!("`{header}` is not a header name"),
                )
            })?;
            builder = builder.credential_header(header);
        }
        if let Some(sources) = &self.credentials {
            builder = builder.credentials(sources.iter().copied());
        }
        if let Some(kinds) = &self.origin_kinds {
            builder = builder.origin_kinds(kinds.iter().copied().collect::<KeyKinds>());
        }
        if let Some(timeout) = self.lookup_timeout_ms {
            builder = builder.lookup_timeout(Some(Duration::from_millis(timeout)));
        }
        for (index, entry) in self.routes.iter().enumerate() {
            let Some(pattern) = &entry.route else {
                return Err(ConfigError::new(
                    format!("routes[{index}].route"),
                    "every route needs `route = \"METHOD /path\"`",
                ));
            };
            builder = builder.route(pattern.as_str(), entry.policy.clone());
        }
        Ok(builder)
    }

    /// Builds the gate this configuration describes, buckets in memory.
    ///
    /// A configuration with a `[redis]` table is refused here, rather than
    /// silently limiting each instance on its own: build it with
    /// `config.builder()?.rate_store(store)` and the store from
    /// [`GateConfig::redis_store`].
    pub fn build(&self) -> Result<Gate<InMemoryKeyStore, InMemoryRateStore>, ConfigError> {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            return Err(ConfigError::new(
                "redis",
                "this configuration keeps buckets in Redis: build with \
                 `builder()?.rate_store(config.redis_store().await?.unwrap())`",
            ));
        }
        self.builder()?.build()
    }

    /// Connects to the Redis of the `[redis]` table, if there is one (see
    /// [`RedisRateStore::connect`](crate::rate_limit::RedisRateStore::connect)).
    #[cfg(feature = "redis")]
    pub async fn redis_store(
        &self,
    ) -> Result<Option<crate::rate_limit::RedisRateStore>, crate::error::StoreError> {
        match &self.redis {
            Some(options) => crate::rate_limit::RedisRateStore::connect(options.clone())
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_utc("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339_utc("2026-01-01T00:00:00+00:00"),
            Some(1_767_225_600)
        );
        assert_eq!(
            parse_rfc3339_utc("2024-02-29T12:30:15.5Z"),
            Some(1_709_209_815)
        );
        for bad in [
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00+02:00",
            "soon",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }
}
