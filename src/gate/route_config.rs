//! [`RouteConfig`]: one `[[routes]]` entry of a configuration file.

use serde::{Deserialize, Serialize};

use super::RoutePolicy;
use crate::fields;

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
                    fields::failing_field::<RoutePolicy>(&table)
                        .unwrap_or_else(|| error.to_string())
                ))
            },
        )?;
        Ok(Self { route, policy })
    }
}
