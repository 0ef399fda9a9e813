//! A row of `tollgate_keys` as the [`KeyRecord`] every store gives, and a
//! [`KeyConfig`] as the row that stores it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tokio_postgres::Row;

use crate::context::digest::KeyDigest;
use crate::context::kind::{KeyEnv, KeyKind};
use crate::context::quota::Quota;
use crate::context::record::{KeyRecord, KeyStatus};
use crate::key::config::KeyConfig;

/// A lookup by digest: the columns in the order [`record`] reads them.
pub(super) const SELECT: &str = "SELECT key_id, project, kind, environment, status, scopes, \
                                 origins, tier, body_limit, quotas, expires_at, credits \
                                 FROM tollgate_keys WHERE digest = $1";

/// One of the enumerations stored as its lower-case name.
fn named<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("column `{column}` holds `{text}`, which is not one of its values"))
}

/// The record a row describes, stored under `digest`; a row this crate
/// cannot read is an error naming its key id and column.
pub(super) fn record(row: &Row, digest: KeyDigest) -> Result<KeyRecord, String> {
    let key_id: String = row.try_get(0).map_err(|error| error.to_string())?;
    let fail = |reason: String| format!("key `{key_id}` in tollgate_keys: {reason}");
    let read = || -> Result<KeyRecord, String> {
        let get_error = |error: tokio_postgres::Error| error.to_string();
        let kind: String = row.try_get(2).map_err(get_error)?;
        let kind: KeyKind = named("kind", &kind)?;
        let env: Option<String> = row.try_get(3).map_err(get_error)?;
        let env: Option<KeyEnv> = env.map(|env| named("environment", &env)).transpose()?;
        let status: String = row.try_get(4).map_err(get_error)?;
        let quotas: serde_json::Value = row.try_get(9).map_err(get_error)?;
        let quotas: BTreeMap<String, Quota> =
            serde_json::from_value(quotas).map_err(|error| format!("column `quotas`: {error}"))?;
        let body_limit: Option<i64> = row.try_get(8).map_err(get_error)?;
        let mut config = KeyConfig::default();
        config.name.clone_from(&key_id);
        config.project = row.try_get(1).map_err(get_error)?;
        config.status = named::<KeyStatus>("status", &status)?;
        config.scopes = row.try_get(5).map_err(get_error)?;
        config.origins = row.try_get(6).map_err(get_error)?;
        config.tier = row.try_get(7).map_err(get_error)?;
        config.body_limit = body_limit
            .map(|bytes| u64::try_from(bytes).map_err(|_| "column `body_limit` is negative"))
            .transpose()?;
        config.quotas = quotas;
        let credits: Option<serde_json::Value> = row.try_get(11).map_err(get_error)?;
        config.credits = credits
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| format!("column `credits`: {error}"))?;
        // Tiers and labels the configuration does not know are the
        // configuration's business: the row is read as it is.
        let mut record = config
            .to_record(kind, env, |_| true, |_| true)
            .map_err(|error| error.to_string())?;
        let expires_at: Option<SystemTime> = row.try_get(10).map_err(get_error)?;
        if let Some(expiry) = expires_at {
            record = record.with_expiry(expiry);
        }
        Ok(record.stored_under(digest))
    };
    read().map_err(fail)
}

/// The text a column stores for an enumeration.
pub(super) fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}
