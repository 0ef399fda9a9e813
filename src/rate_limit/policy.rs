//! [`RateLimitPolicy`]: a route's rate-limit settings, the shared quotas
//! they may name, and the [`RateLimit`] they compile to.

use serde::{Deserialize, Serialize};

use super::charge::Counted;
use super::limit::RateLimit;
use crate::ConfigError;
use crate::context::quota::Quota;

/// A route's (or a tier's) rate-limit settings, as
/// [`RoutePolicy`](crate::gate::RoutePolicy) and a configuration file's
/// route entry carry them. Unset: the gate's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RateLimitPolicy {
    /// `quotas`: all must allow a request (`[]`: unlimited); a name stands
    /// for a quota of `[shared_quotas]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quotas: Option<Vec<Quota>>,
    /// `cost`: tokens one request costs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cost: Option<u64>,
    /// `cost_from_response`: the handler's [`Cost`](super::Cost) settles
    /// what a request cost, after the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cost_from_response: Option<bool>,
    /// `count`: only responses of these statuses are charged (`"2xx"`,
    /// `["401", "403"]`), settled after the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) count: Option<Counted>,
}

impl RateLimitPolicy {
    /// Each setting this policy leaves unset, from `defaults`.
    pub(crate) fn or(&self, defaults: &Self) -> Self {
        Self {
            quotas: self.quotas.clone().or_else(|| defaults.quotas.clone()),
            cost: self.cost.or(defaults.cost),
            cost_from_response: self.cost_from_response.or(defaults.cost_from_response),
            count: self.count.clone().or_else(|| defaults.count.clone()),
        }
    }

    /// The route's rate limit: its quotas (shared ones in place of their
    /// names), each tier's (`tiers`: a tier's name and settings), and
    /// whether it is shadowed.
    pub(crate) fn limit<'a>(
        &self,
        shared: &[Quota],
        tiers: impl IntoIterator<Item = (&'a str, &'a RateLimitPolicy)>,
        shadowed: bool,
    ) -> Result<RateLimit, ConfigError> {
        let mut limit = match &self.quotas {
            Some(quotas) => RateLimit::stacked(resolve_shared(quotas, shared, "quotas")?),
            None => RateLimit::unlimited(),
        };
        limit.shadowed = shadowed;
        for (tier, settings) in tiers {
            if settings.cost.is_some()
                || settings.cost_from_response.is_some()
                || settings.count.is_some()
            {
                return Err(ConfigError::new(
                    format!("tiers.{tier}.cost"),
                    "a tier sets `quotas` and `body_limit`; what a request costs is the route's",
                ));
            }
            if let Some(quotas) = &settings.quotas {
                let field = format!("tiers.{tier}.quotas");
                limit = limit.tier(tier, resolve_shared(quotas, shared, &field)?);
            }
        }
        let mut limit = limit.cost(self.cost.unwrap_or(1));
        if self.cost_from_response == Some(true) {
            limit = limit.cost_from_response();
        }
        if let Some(counted) = &self.count {
            limit = limit.count(counted.clone());
        }
        Ok(limit)
    }

    /// The custom codes its quotas declare.
    pub(crate) fn codes(&self) -> impl Iterator<Item = &str> {
        self.quotas.iter().flatten().filter_map(Quota::refusal_code)
    }
}

/// `quotas` with each reference to a shared quota replaced by the declared
/// quota; `field` names them in errors.
fn resolve_shared(
    quotas: &[Quota],
    shared: &[Quota],
    field: &str,
) -> Result<Vec<Quota>, ConfigError> {
    let mut named: Vec<&str> = Vec::new();
    quotas
        .iter()
        .map(|quota| {
            if !quota.is_shared_reference() {
                return Ok(quota.clone());
            }
            let name = quota.name().unwrap_or_default();
            if named.contains(&name) {
                return Err(ConfigError::new(
                    field,
                    format!("the shared quota `{name}` is listed twice"),
                ));
            }
            named.push(name);
            shared
                .iter()
                .find(|declared| declared.name() == Some(name))
                .map(|declared| declared.clone().into_shared())
                .ok_or_else(|| {
                    ConfigError::new(
                        field,
                        format!(
                            "no shared quota named `{name}` is declared \
                             (`[shared_quotas]`, or `GateBuilder::shared_quota`)"
                        ),
                    )
                })
        })
        .collect()
}

/// Whether the declared shared quotas are each named, well-formed and
/// possible.
pub(crate) fn check_shared_quotas(shared: &[Quota]) -> Result<(), ConfigError> {
    for quota in shared {
        let Some(name) = quota.name() else {
            return Err(ConfigError::new(
                "shared_quotas",
                format!("{quota:?} needs a name: routes list it by its name"),
            ));
        };
        let field = || format!("shared_quotas.{name}");
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new(
                field(),
                "a shared quota's name is 1 to 64 printable characters",
            ));
        }
        if quota.is_shared_reference() {
            return Err(ConfigError::new(
                field(),
                "declare the quota itself (`{ rate, per, burst }`), not a name",
            ));
        }
        quota
            .meter()
            .map_err(|error| ConfigError::new(field(), error.reason()))?;
    }
    Ok(())
}
