//! [`OriginPolicy`]: a route's origin settings, and the [`OriginRule`] they
//! compile to.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::rule::{MissingOrigin, OriginRule};
use crate::ConfigError;
use crate::context::kind::KeyKinds;
use crate::error::{Category, rule_code};

/// A route's origin settings, as [`RoutePolicy`](crate::gate::RoutePolicy)
/// and a configuration file's route entry carry them. Unset: the gate's
/// defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct OriginPolicy {
    /// `origins`: for browser keys whose record lists none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) origins: Option<Vec<String>>,
    /// `missing_origin`: `reject`, `allow` or `referer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) missing_origin: Option<MissingOrigin>,
    /// `origin_code`: the code refusing an origin (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) origin_code: Option<String>,
}

impl OriginPolicy {
    /// Each setting this policy leaves unset, from `defaults`.
    pub(crate) fn or(&self, defaults: &Self) -> Self {
        Self {
            origins: self.origins.clone().or_else(|| defaults.origins.clone()),
            missing_origin: self.missing_origin.or(defaults.missing_origin),
            origin_code: self
                .origin_code
                .clone()
                .or_else(|| defaults.origin_code.clone()),
        }
    }

    /// The rule checking keys of `kinds` on the route; a bad pattern or code
    /// is an error naming its field.
    pub(crate) fn rule(&self, kinds: KeyKinds) -> Result<OriginRule, ConfigError> {
        let mut rule = OriginRule::new().kinds(kinds);
        if let Some(code) = &self.origin_code {
            rule = rule.code(rule_code(
                "origin_code",
                code,
                StatusCode::FORBIDDEN,
                Category::Auth,
            )?);
        }
        if let Some(patterns) = &self.origins {
            rule = rule.allow(patterns)?;
        }
        if let Some(missing) = self.missing_origin {
            rule = rule.missing_origin(missing);
        }
        Ok(rule)
    }

    /// The custom codes it declares.
    pub(crate) fn codes(&self) -> impl Iterator<Item = &str> {
        self.origin_code.as_deref().into_iter()
    }
}
