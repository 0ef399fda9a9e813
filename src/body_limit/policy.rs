//! [`BodyLimitPolicy`]: a route's body cap settings.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{Category, ErrorCode, rule_code};

/// The body cap of routes (and unmatched requests) that set none: 1 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

/// A route's (or a tier's) body cap settings, as
/// [`RoutePolicy`](crate::gate::RoutePolicy) and a configuration file's
/// route entry carry them. Unset: the gate's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BodyLimitPolicy {
    /// `body_limit`: the body cap in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body_limit: Option<u64>,
    /// `body_limit_code`: the code refusing a body over the cap (413).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body_limit_code: Option<String>,
}

impl BodyLimitPolicy {
    /// Each setting this policy leaves unset, from `defaults`.
    pub(crate) fn or(&self, defaults: &Self) -> Self {
        Self {
            body_limit: self.body_limit.or(defaults.body_limit),
            body_limit_code: self
                .body_limit_code
                .clone()
                .or_else(|| defaults.body_limit_code.clone()),
        }
    }

    /// The cap in bytes ([`DEFAULT_BODY_LIMIT`] unless set).
    pub(crate) fn limit(&self) -> u64 {
        self.body_limit.unwrap_or(DEFAULT_BODY_LIMIT)
    }

    /// The code refusing a body over the cap.
    pub(crate) fn code(&self) -> Result<ErrorCode, ConfigError> {
        match &self.body_limit_code {
            Some(code) => rule_code(
                "body_limit_code",
                code,
                StatusCode::PAYLOAD_TOO_LARGE,
                Category::Validation,
            ),
            None => Ok(ErrorCode::PAYLOAD_TOO_LARGE),
        }
    }

    /// The custom codes it declares.
    pub(crate) fn codes(&self) -> impl Iterator<Item = &str> {
        self.body_limit_code.as_deref().into_iter()
    }
}
