//! [`RateLimitOptions`]: the rate-limit check's settings for every route.

use serde::{Deserialize, Serialize};

use super::headers::RateLimitHeaders;
use super::partition::Partition;
use crate::context::client_ip::IpNet;

/// How the rate-limit check groups requests into buckets, finds the client
/// behind proxies, and which headers it sends, on every route. The
/// [`RateLimitLayer`](super::RateLimitLayer)'s setters and the
/// [`GateBuilder`](crate::gate::GateBuilder)'s of the same names change
/// them; in a configuration file they are top-level keys:
///
/// ```toml
/// partition = "project"               # or "key", "ip", "global"
/// trusted_proxies = ["10.0.0.0/8"]    # their X-Forwarded-For is believed
/// rate_limit_headers = "draft"        # or "legacy", "both", "none"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RateLimitOptions {
    /// How requests are grouped into buckets (default: by project).
    pub partition: Partition,
    /// Proxies trusted to report the client in `X-Forwarded-For`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<IpNet>,
    /// Which rate-limit headers responses carry (default: the IETF draft's).
    pub rate_limit_headers: RateLimitHeaders,
}
