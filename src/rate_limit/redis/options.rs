//! [`RedisOptions`]: how to reach Redis, and [`FailureMode`]: what to do
//! when it fails.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// What a [`RedisRateStore`](super::RedisRateStore) does when Redis does not answer in time or
/// fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FailureMode {
    /// Admit the request (without rate-limit headers), log a warning and
    /// count it ([`RedisStats::failures`](super::RedisStats::failures)). Availability over limits: an
    /// outage of Redis is not an outage of the API.
    #[default]
    Open,
    /// Refuse the request with `upstream_failed` (502). Limits over
    /// availability: nothing is admitted that was not counted.
    Closed,
    /// Decide in this process's memory by its share of every quota (the
    /// quota divided by [`RedisOptions::instances`]), so that the fleet
    /// together admits about the budget while Redis is unreachable; back to
    /// Redis as soon as it answers (its buckets are as they were). Each
    /// switch is logged and counted
    /// ([`RedisStats::local_decisions`](super::RedisStats::local_decisions)).
    Local,
}

/// Where a [`RedisRateStore`](super::RedisRateStore) decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Every decision in Redis: one round trip, exact across instances.
    #[default]
    Exact,
    /// Decisions in this process's memory, each instance's consumption sent
    /// to Redis in batches every `sync_interval_ms` and the fleet's total
    /// read back into the view it decides by. No round trip on a request's
    /// path; the fleet may admit more than a quota allows, by at most
    /// `(instances − 1) × (burst + rate × (sync interval + round trip))` per
    /// bucket.
    Approximate,
}

/// How to reach Redis and what to do when it fails. Deserialises from the
/// `[redis]` table of a gateway config:
///
/// ```toml
/// [redis]
/// url = "redis://10.0.0.5:6379"
/// prefix = "tollgate:"      # every key starts with it
/// timeout_ms = 50            # per decision, connecting included
/// on_failure = "open"        # or "closed", or "local" (each instance its share)
/// instances = 1              # for "local": how many instances share the budget
/// mode = "exact"             # or "approximate": decide in memory, sync in batches
/// sync_interval_ms = 100     # for "approximate"
/// retry_interval_ms = 1000   # after a failure, decide by on_failure without asking for this long
/// denial_cache = 100000      # buckets remembered as refused; 0: off
/// ```
///
/// A Redis Cluster is given by some of its nodes instead of `url` (the
/// client finds the others, follows `MOVED`/`ASK` and fail-overs):
///
/// ```toml
/// [redis]
/// cluster = ["redis://10.0.0.5:7000", "redis://10.0.0.6:7000", "redis://10.0.0.7:7000"]
/// ```
///
/// `Debug` hides the password of a URL that has one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisOptions {
    pub(super) url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) cluster: Vec<String>,
    pub(super) prefix: String,
    pub(super) timeout_ms: u64,
    pub(super) on_failure: FailureMode,
    pub(super) denial_cache: usize,
    pub(super) instances: u64,
    pub(super) mode: Mode,
    pub(super) sync_interval_ms: u64,
    pub(super) retry_interval_ms: u64,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            cluster: Vec::new(),
            prefix: "tollgate:".into(),
            timeout_ms: 50,
            on_failure: FailureMode::Open,
            denial_cache: 100_000,
            instances: 1,
            mode: Mode::Exact,
            sync_interval_ms: 100,
            retry_interval_ms: 1000,
        }
    }
}

impl RedisOptions {
    /// Redis at `url` (`redis://host:port/db`), with the defaults: prefix
    /// `tollgate:`, a 50 ms timeout, fail open, a denial cache of 100 000
    /// buckets.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// A Redis Cluster reached through any of `nodes`
    /// (`redis://host:port` each), with the same defaults. Each decision is
    /// one script on the node holding its partition's slot: a route's
    /// buckets and the shared ones it draws from are in one slot (their
    /// keys share the partition as hash tag).
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            cluster: nodes.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Starts every key with `prefix` (default `tollgate:`), so that several
    /// gateways, or other users of the same Redis, never share keys.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a decision may wait for Redis, connecting included
    /// (default 50 ms). Past it, the request is decided by the
    /// [`FailureMode`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// What to do when Redis fails (default [`FailureMode::Open`]).
    #[must_use]
    pub fn on_failure(mut self, mode: FailureMode) -> Self {
        self.on_failure = mode;
        self
    }

    /// How many instances share the budget (default 1): with
    /// [`FailureMode::Local`], each decides by `1 / instances` of every
    /// quota while Redis is unreachable.
    #[must_use]
    pub fn instances(mut self, instances: u64) -> Self {
        self.instances = instances;
        self
    }

    /// Where decisions are made (default [`Mode::Exact`]).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// With [`Mode::Approximate`], how often this instance's consumption is
    /// sent to Redis and the fleet's read back (default 100 ms).
    #[must_use]
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// After Redis fails a decision, how long later decisions follow the
    /// [`FailureMode`] at once, without asking Redis (default 1 s; zero asks
    /// for every decision). Then one decision asks again (it may wait the
    /// timeout), the others still decided by the failure mode; once Redis
    /// answers, every decision is Redis's again. So an outage costs one
    /// timeout per interval, not one per request.
    #[must_use]
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Remembers up to `capacity` refused buckets (default 100 000; 0 turns
    /// the cache off): until the refusal's `Retry-After` has passed, later
    /// requests for them are refused here, without asking Redis.
    #[must_use]
    pub fn denial_cache(mut self, capacity: usize) -> Self {
        self.denial_cache = capacity;
        self
    }

    pub(super) fn check(&self) -> Result<Client, ConfigError> {
        let fail = |field: &str, reason: String| Err(ConfigError::new(field, reason));
        if self.timeout_ms == 0 {
            return fail(
                "redis.timeout_ms",
                "the timeout must be at least 1 ms".into(),
            );
        }
        if self.sync_interval_ms == 0 {
            return fail(
                "redis.sync_interval_ms",
                "the interval must be at least 1 ms".into(),
            );
        }
        if self.instances == 0 {
            return fail(
                "redis.instances",
                "at least 1 instance shares the budget".into(),
            );
        }
        if self.cluster.is_empty() {
            return redis::Client::open(self.url.as_str())
                .map(Client::Single)
                .or_else(|error| fail("redis.url", format!("not a Redis URL: {error}")));
        }
        for node in &self.cluster {
            if let Err(error) = redis::Client::open(node.as_str()) {
                return fail(
                    "redis.cluster",
                    format!(
                        "`{}` is not a Redis URL: {error}",
                        crate::fields::redact_password(node)
                    ),
                );
            }
        }
        let timeout = Duration::from_millis(self.timeout_ms);
        redis::cluster::ClusterClientBuilder::new(self.cluster.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()
            .map(Client::Cluster)
            .or_else(|error| fail("redis.cluster", error.to_string()))
    }
}

/// What the options connect with: one node, or a cluster.
pub(super) enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Client::Single",
            Self::Cluster(_) => "Client::Cluster",
        })
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cluster: Vec<_> = self
            .cluster
            .iter()
            .map(|node| crate::fields::redact_password(node))
            .collect();
        f.debug_struct("RedisOptions")
            .field("url", &crate::fields::redact_password(&self.url))
            .field("cluster", &cluster)
            .field("prefix", &self.prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("on_failure", &self.on_failure)
            .field("denial_cache", &self.denial_cache)
            .field("instances", &self.instances)
            .field("mode", &self.mode)
            .field("sync_interval_ms", &self.sync_interval_ms)
            .field("retry_interval_ms", &self.retry_interval_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let options = RedisOptions::new("redis://app:s3cr3t-pw@10.0.0.5:6379/2");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(
            shown.contains("redis://app:<redacted>@10.0.0.5:6379/2"),
            "{shown}"
        );
        let plain = format!("{:?}", RedisOptions::new("redis://10.0.0.5"));
        assert!(plain.contains("redis://10.0.0.5"), "{plain}");
    }

    #[test]
    fn bad_options_are_config_errors() {
        let error = RedisOptions::new("http://nope").check().unwrap_err();
        assert_eq!(error.field(), "redis.url");
        let error = RedisOptions::default()
            .timeout(Duration::ZERO)
            .check()
            .unwrap_err();
        assert_eq!(error.field(), "redis.timeout_ms");
        let error = RedisOptions::cluster(["redis://127.0.0.1:7000", "nope://x"])
            .check()
            .unwrap_err();
        assert_eq!(error.field(), "redis.cluster");
        assert!(matches!(
            RedisOptions::cluster(["redis://127.0.0.1:7000"]).check(),
            Ok(Client::Cluster(_))
        ));
        let options: RedisOptions =
            toml::from_str("cluster = [\"redis://a:7000\", \"redis://b:7000\"]").unwrap();
        assert_eq!(options.cluster.len(), 2);
    }
}
