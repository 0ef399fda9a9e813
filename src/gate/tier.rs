//! [`TierPolicy`]: what a route gives keys of one tier, from the rate-limit
//! and body-limit settings.

use serde::de::Error as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::body_limit::policy::BodyLimitPolicy;
use crate::fields;
use crate::rate_limit::Quota;
use crate::rate_limit::policy::RateLimitPolicy;

/// What a route gives keys of one tier instead of its own quotas and body
/// cap (see [`RoutePolicy::tier`](super::RoutePolicy::tier)). What it leaves unset is the route's.
///
/// In a configuration file, a route's (or the defaults')
/// `tiers = { pro = { quotas = [...], body_limit = 1048576 } }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TierPolicy {
    #[serde(flatten)]
    pub(crate) rate: RateLimitPolicy,
    #[serde(flatten)]
    pub(crate) body: BodyLimitPolicy,
}

impl<'de> Deserialize<'de> for TierPolicy {
    /// A tier's quotas and body cap; another key is an error naming it.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = Map::<String, Value>::deserialize(deserializer)?;
        fields::refuse_unknown(&table, &[&["quotas", "body_limit"]]).map_err(D::Error::custom)?;
        Ok(Self {
            rate: fields::part(&table).map_err(D::Error::custom)?,
            body: fields::part(&table).map_err(D::Error::custom)?,
        })
    }
}

impl TierPolicy {
    /// Nothing set: the route's quotas and cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// One quota for the tier.
    #[must_use]
    pub fn quota(mut self, quota: Quota) -> Self {
        self.rate.quotas = Some(vec![quota]);
        self
    }

    /// Stacked quotas for the tier.
    #[must_use]
    pub fn quotas(mut self, quotas: impl IntoIterator<Item = Quota>) -> Self {
        self.rate.quotas = Some(quotas.into_iter().collect());
        self
    }

    /// The tier's body cap in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.body.body_limit = Some(bytes);
        self
    }
}
