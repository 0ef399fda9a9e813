//! [`KeyOptions`]: the key check's settings for every route.

use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::credential::{CredentialSource, X_API_KEY};
use crate::ConfigError;
use crate::fields;

/// The default time a key store has to answer.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// How the key check reads and judges keys on every route: where a key may
/// be sent, what is done with it once read, and how long the store has to
/// answer. The [`KeyLayer`](super::KeyLayer)'s setters and the
/// [`GateBuilder`](crate::gate::GateBuilder)'s of the same names change
/// them; in a configuration file they are top-level keys:
///
/// ```toml
/// query_parameter = "api_key"        # publishable keys may come in the query too
/// credential_header = "X-API-Key"    # the header carrying a bare key
/// credentials = ["bearer", "header"] # where keys are read (default: all three)
/// strip_credential = false           # remove the key before your service sees the request
/// reveal_revoked = false             # 401 revoked_api_key instead of invalid_api_key
/// lookup_timeout_ms = 2000           # the key store's time to answer
/// verified_keys = 65536              # keys remembered once verified (0: none)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct KeyOptions {
    /// A query parameter publishable keys may also be sent in (beacons cannot
    /// set headers); a secret or restricted key there is refused: URLs end
    /// up in logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<String>,
    /// The header carrying a bare key (default `X-API-Key`).
    #[serde(with = "fields::header_name")]
    pub credential_header: HeaderName,
    /// Where keys are read on routes that do not say: `bearer`, `header`,
    /// `query` (default: all three, the query only where
    /// [`query_parameter`](Self::query_parameter) names one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<CredentialSource>>,
    /// Remove the credential (headers and query parameter) before the
    /// request reaches your service.
    pub strip_credential: bool,
    /// Answer revoked keys `401 revoked_api_key` instead of
    /// `invalid_api_key` (the default, which does not tell a revoked key
    /// from one that never existed).
    pub reveal_revoked: bool,
    /// How long the key store has to answer before the request fails with
    /// `upstream_failed` (default 2 s; `None`, in code only: forever).
    #[serde(
        rename = "lookup_timeout_ms",
        with = "fields::millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub lookup_timeout: Option<Duration>,
    /// How many verified keys the key check remembers, by a secret 128-bit
    /// keyed hash of the key as presented, so that a key it has seen costs
    /// neither its parse, its HMAC nor the store's lookup (default 65 536,
    /// a few megabytes at most; 0: none). Only with a store that says when
    /// it changes ([`KeyStore::generation`](super::store::KeyStore::generation),
    /// as the in-memory store does): any change to the store makes every
    /// key verified again, so no revoked or changed key is ever answered
    /// from memory. Only keys the store knew are remembered: unknown keys
    /// neither fill it nor evict the known ones.
    pub verified_keys: usize,
    /// How many unknown or malformed keys one client address may present
    /// per window before it is refused `429` ahead of any lookup (default
    /// 20 a minute; `[failed_keys] limit = 0` turns it off).
    pub failed_keys: super::failed::FailedKeyBudget,
}

impl Default for KeyOptions {
    fn default() -> Self {
        Self {
            query_parameter: None,
            credential_header: X_API_KEY,
            credentials: None,
            strip_credential: false,
            reveal_revoked: false,
            lookup_timeout: Some(DEFAULT_LOOKUP_TIMEOUT),
            verified_keys: super::verified::DEFAULT_CAPACITY,
            failed_keys: super::failed::FailedKeyBudget::default(),
        }
    }
}

impl KeyOptions {
    /// Whether keys can be read from the `listed` places.
    pub(crate) fn check_sources(&self, listed: &[CredentialSource]) -> Result<(), ConfigError> {
        if listed.is_empty() {
            return Err(ConfigError::new(
                "credentials",
                "list at least one place keys are read from (`bearer`, `header`, `query`), \
                 or make the route `public`",
            ));
        }
        if listed.contains(&CredentialSource::Query) && self.query_parameter.is_none() {
            return Err(ConfigError::new(
                "credentials",
                "`query` needs `query_parameter` (the parameter's name)",
            ));
        }
        Ok(())
    }
}
