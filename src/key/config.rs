//! [`KeyConfig`]: one key as a configuration file gives it, and the
//! [`KeyRecord`] it turns into.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::digest::KeyHasher;
use super::format::KeyParser;
use crate::ConfigError;
use crate::context::credits::Credits;
use crate::context::digest::KeyDigest;
use crate::context::kind::{KeyEnv, KeyKind};
use crate::context::quota::Quota;
use crate::context::record::{KeyRecord, KeyStatus};

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
    /// Its credits: `credits = { remaining = 1000 }`, or refilled
    /// `credits = { refill = { amount = 10000, interval = "month" } }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<Credits>,
}

/// What `Debug` shows in place of a secret that is set.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
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
            .field("credits", &self.credits)
            .finish()
    }
}

fn active() -> KeyStatus {
    KeyStatus::Active
}

/// An expiry date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Expiry {
    /// Seconds since the Unix epoch.
    Unix(u64),
    /// RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SSZ`.
    Text(String),
}

impl Expiry {
    pub(crate) fn to_time(&self) -> Option<SystemTime> {
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

impl KeyConfig {
    /// The key's digest and record, its text parsed by `parser` and
    /// digested by `hasher`. `tier` says whether a tier name is configured,
    /// `label` whether a quota label is; a mistake is an error naming the
    /// key and the field (`keys.NAME.FIELD`).
    pub(crate) fn record(
        &self,
        hasher: &KeyHasher,
        parser: &KeyParser,
        tier: impl Fn(&str) -> bool,
        label: impl Fn(&str) -> bool,
    ) -> Result<(KeyDigest, KeyRecord), ConfigError> {
        let key = self;
        let field = |name: &str| format!("keys.{}.{name}", key.name);
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
        Ok((digest, self.to_record(kind, env, tier, label)?))
    }

    /// The record this entry describes for a key of `kind` (and `env`,
    /// unless the entry names one): everything but the key and digest.
    pub(crate) fn to_record(
        &self,
        kind: KeyKind,
        env: Option<KeyEnv>,
        tier: impl Fn(&str) -> bool,
        label: impl Fn(&str) -> bool,
    ) -> Result<KeyRecord, ConfigError> {
        let key = self;
        let field = |name: &str| format!("keys.{}.{name}", key.name);
        let mut record = KeyRecord::new(key.name.as_str(), key.project.as_str(), kind)
            .with_scopes(key.scopes.iter().cloned())
            .with_origins(&key.origins)
            .map_err(|error| ConfigError::new(field("origins"), error.reason()))?
            .with_status(key.status);
        if let Some(env) = key.env.or(env) {
            record = record.with_env(env);
        }
        if let Some(name) = &key.tier {
            if !tier(name) {
                return Err(ConfigError::new(
                    field("tier"),
                    format!(
                        "`{name}` is not a tier: declare it in `[tiers]` (`{name} = {{}}` for a \
                         tier without settings of its own)"
                    ),
                ));
            }
            record = record
                .with_tier(name)
                .map_err(|error| ConfigError::new(field("tier"), error.reason()))?;
        }
        if let Some(bytes) = key.body_limit {
            record = record.with_body_limit(bytes);
        }
        for (name, quota) in &key.quotas {
            if !label(name) {
                return Err(ConfigError::new(
                    field(&format!("quotas.{name}")),
                    format!(
                        "no quota is labelled `{name}`: use a quota's name or a route's pattern"
                    ),
                ));
            }
            record = record
                .with_quota(name, quota.clone())
                .map_err(|error| ConfigError::new(field(error.field()), error.reason()))?;
        }
        if let Some(credits) = key.credits {
            record = record
                .with_credits(credits)
                .map_err(|error| ConfigError::new(field("credits"), error.reason()))?;
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
        Ok(record)
    }
}

/// `[[keys]]`, each mistake named with its key and field.
pub(crate) fn named_keys<'de, D: serde::Deserializer<'de>>(
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
                    crate::fields::failing_field::<KeyConfig>(&table)
                        .unwrap_or_else(|| error.to_string())
                ))
            })
        })
        .collect()
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
