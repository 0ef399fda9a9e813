//! [`RedisRateStore`]: buckets shared by several instances, in Redis.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use super::limit::MAX_STACKED_QUOTAS;
use super::store::{Bucket, Decision, QuotaSpec, RateStore, RouteLimits};
use crate::Answer;
use crate::ConfigError;
use crate::clock::{Clock, Nanos};
use crate::context::gcra::{Gcra, QuotaState};
use crate::error::StoreError;
use crate::hash::{BuildPrehashed, combine};

/// GCRA over every quota of a route, in one atomic step.
///
/// `KEYS`: one per quota. `ARGV[1]`: the request's cost; then, per quota,
/// its emission interval and tolerance in microseconds (decimal). Times come
/// from Redis's own clock (`TIME`), so instances with skewed clocks agree.
/// A request one quota refuses consumes from none. Each admitted bucket's
/// key expires when the bucket would be full again.
///
/// Returns `{allowed, denied_by, retry_after_us, debt_us...}`, where a
/// quota's debt is how far its TAT is ahead of now (after the request, when
/// admitted).
const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local cost = tonumber(ARGV[1])
local tats = {}
local debts = {}
local denied_by = -1
local retry = 0
for i = 1, #KEYS do
  local emission = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + emission * cost
  local allowed_at = new_tat - tolerance
  if allowed_at > now and denied_by < 0 then
    denied_by = i - 1
    retry = allowed_at - now
  end
  tats[i] = new_tat
  debts[i] = tat - now
end
if denied_by >= 0 then
  local out = {0, denied_by, math.ceil(retry)}
  for i = 1, #KEYS do out[3 + i] = math.ceil(debts[i]) end
  return out
end
local out = {1, 0, 0}
for i = 1, #KEYS do
  local debt = tats[i] - now
  redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX', math.max(1, math.ceil(debt / 1000)))
  out[3 + i] = math.ceil(debt)
end
return out
";

/// What a [`RedisRateStore`] does when Redis does not answer in time or
/// fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Admit the request (without rate-limit headers), log a warning and
    /// count it ([`RedisStats::failures`]). Availability over limits: an
    /// outage of Redis is not an outage of the API.
    #[default]
    Open,
    /// Refuse the request with `upstream_failed` (502). Limits over
    /// availability: nothing is admitted that was not counted.
    Closed,
}

/// How to reach Redis and what to do when it fails. Deserialises from the
/// `[redis]` table of a gateway config:
///
/// ```toml
/// [redis]
/// url = "redis://10.0.0.5:6379"
/// prefix = "tollgate:"      # every key starts with it
/// timeout_ms = 50            # per decision, connecting included
/// on_failure = "open"        # or "closed"
/// denial_cache = 100000      # buckets remembered as refused; 0: off
/// ```
///
/// `Debug` hides the password of a URL that has one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisOptions {
    url: String,
    prefix: String,
    timeout_ms: u64,
    on_failure: FailureMode,
    denial_cache: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "tollgate:".into(),
            timeout_ms: 50,
            on_failure: FailureMode::Open,
            denial_cache: 100_000,
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

    /// Remembers up to `capacity` refused buckets (default 100 000; 0 turns
    /// the cache off): until the refusal's `Retry-After` has passed, later
    /// requests for them are refused here, without asking Redis.
    #[must_use]
    pub fn denial_cache(mut self, capacity: usize) -> Self {
        self.denial_cache = capacity;
        self
    }

    fn check(&self) -> Result<redis::Client, ConfigError> {
        let fail = |field: &str, reason: String| Err(ConfigError::new(field, reason));
        if self.timeout_ms == 0 {
            return fail(
                "redis.timeout_ms",
                "the timeout must be at least 1 ms".into(),
            );
        }
        redis::Client::open(self.url.as_str())
            .or_else(|error| fail("redis.url", format!("not a Redis URL: {error}")))
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_password(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("on_failure", &self.on_failure)
            .field("denial_cache", &self.denial_cache)
            .finish()
    }
}

/// `url` with the password of `scheme://user:password@host` replaced.
fn redact_password(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:<redacted>@{host}").into()
        }
        None => url.into(),
    }
}

/// Counters of a [`RedisRateStore`], since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Decisions sent to Redis.
    pub calls: u64,
    /// Decisions Redis failed or did not answer in time (decided by the
    /// [`FailureMode`]).
    pub failures: u64,
    /// Refusals answered from the denial cache, without Redis.
    pub cached_denials: u64,
}

/// Buckets in Redis, shared by every instance that uses the same Redis and
/// prefix, so that limits hold across instances instead of multiplying by
/// their number.
///
/// - **One round trip per decision**: GCRA for all of a route's quotas runs
///   in one Lua script, atomically, on Redis's clock. The script is called
///   by its hash (`EVALSHA`) and loaded again by itself if Redis lost it
///   (after a restart or `SCRIPT FLUSH`).
/// - **Keys** are `{prefix}{partition}:{route}:{quota}`, for example
///   `tollgate:{project:acme}:POST /v1/track:0`, and
///   `{prefix}{partition}:shared:{name}` for a
///   [shared quota](super::Quota::shared); the braces keep all of a
///   partition's buckets (a route's own and the shared ones it draws from)
///   in one Redis Cluster slot, so one script can take from all of them.
///   Each expires when its bucket is full again, so idle buckets cost
///   nothing.
/// - **Denial cache**: once Redis refuses a bucket for N seconds, requests
///   for it in those N seconds are refused here with the right
///   `Retry-After`, with no Redis call. A bucket refused by one instance may
///   still be admitted by another meanwhile; the cache only saves calls,
///   it never admits.
/// - **Failures**: the connection is re-established by itself
///   ([`ConnectionManager`]); every decision waits at most the timeout, then
///   follows the [`FailureMode`]. A decision that timed out may still have
///   reached Redis and be counted there once it answers: a timeout cannot
///   take back a command already sent.
///
/// Cheap to clone; clones share the connection, cache and counters.
#[derive(Clone)]
pub struct RedisRateStore {
    shared: Arc<Shared>,
}

struct Shared {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: Box<str>,
    timeout: Duration,
    on_failure: FailureMode,
    denials:
        Option<quick_cache::sync::Cache<u64, Denial, quick_cache::UnitWeighter, BuildPrehashed>>,
    clock: Clock,
    calls: AtomicU64,
    failures: AtomicU64,
    cached_denials: AtomicU64,
}

/// A refusal remembered: until when, and each quota's debt then.
#[derive(Clone, Copy)]
struct Denial {
    until: Nanos,
    at: Nanos,
    denied_by: usize,
    debts: [Nanos; MAX_STACKED_QUOTAS],
}

impl RedisRateStore {
    /// A store on the Redis `options` names. Fails if the options are
    /// invalid or Redis cannot be reached within the timeout, so that a
    /// wrong address shows at start-up; once running, the store reconnects
    /// by itself. Must be called within a Tokio runtime.
    pub async fn connect(options: RedisOptions) -> Result<Self, StoreError> {
        let client = options.check().map_err(StoreError::new)?;
        let timeout = Duration::from_millis(options.timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(timeout);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(StoreError::new)?;
        let script = redis::Script::new(SCRIPT);
        let mut probe = connection.clone();
        match tokio::time::timeout(timeout, script.prepare_invoke().load_async(&mut probe)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(StoreError::new(error)),
            Err(_) => {
                return Err(StoreError::new(format!(
                    "Redis did not answer within {timeout:?}"
                )));
            }
        }
        let denials = (options.denial_cache > 0).then(|| {
            quick_cache::sync::Cache::with(
                options.denial_cache,
                options.denial_cache as u64,
                quick_cache::UnitWeighter,
                BuildPrehashed::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            )
        });
        Ok(Self {
            shared: Arc::new(Shared {
                connection,
                script,
                prefix: options.prefix.into(),
                timeout,
                on_failure: options.on_failure,
                denials,
                clock: Clock::system(),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                cached_denials: AtomicU64::new(0),
            }),
        })
    }

    /// Reads the denial cache's time from `clock` (for tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.clock = clock;
        }
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> RedisStats {
        RedisStats {
            calls: self.shared.calls.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
            cached_denials: self.shared.cached_denials.load(Ordering::Relaxed),
        }
    }

    /// The Redis key of `quota`, the `index`th quota of `bucket`'s route.
    pub fn key(&self, bucket: &Bucket<'_>, quota: &QuotaSpec, index: usize) -> String {
        let prefix = &self.shared.prefix;
        let partition = bucket.partition().value();
        match (quota.is_shared(), quota.name()) {
            (true, Some(name)) => format!("{prefix}{{{partition}}}:shared:{name}"),
            _ => format!("{prefix}{{{partition}}}:{}:{index}", bucket.route()),
        }
    }
}

impl Shared {
    /// The refusal remembered for `bucket`, aged to now.
    fn cached_denial(&self, id: u64, limits: &RouteLimits) -> Option<Decision> {
        let denial = self.denials.as_ref()?.get(&id)?;
        let now = self.clock.now();
        if now >= denial.until {
            return None;
        }
        let elapsed = now - denial.at;
        let mut states = [QuotaState::default(); MAX_STACKED_QUOTAS];
        for (index, quota) in limits.quotas().iter().enumerate() {
            states[index] = quota
                .gcra
                .state(denial.debts[index].saturating_sub(elapsed), 0);
        }
        self.cached_denials.fetch_add(1, Ordering::Relaxed);
        Some(Decision::denied(
            denial.until - now,
            denial.denied_by,
            &states[..limits.quotas().len()],
        ))
    }

    fn remember(&self, id: u64, decision: &Decision, debts: [Nanos; MAX_STACKED_QUOTAS]) {
        if let Some(denials) = &self.denials {
            let at = self.clock.now();
            denials.insert(
                id,
                Denial {
                    until: at.saturating_add(decision.retry_after()),
                    at,
                    denied_by: decision.denied_by(),
                    debts,
                },
            );
        }
    }

    /// What the failure mode says when Redis could not decide.
    fn failed(&self, error: StoreError, route: &str) -> Result<Decision, StoreError> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        match self.on_failure {
            FailureMode::Open => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", %error, route, "Redis rate store failed; admitting (fail open)");
                let _ = (error, route);
                Ok(Decision::allowed(&[]))
            }
            FailureMode::Closed => Err(error),
        }
    }
}

/// Reads the script's answer into a decision and each quota's debt.
fn read_reply(
    reply: &[i64],
    quotas: &[Gcra],
) -> Result<(Decision, [Nanos; MAX_STACKED_QUOTAS]), StoreError> {
    let [allowed, denied_by, retry_us, debts_us @ ..] = reply else {
        return Err(StoreError::new("the Redis script answered a short reply"));
    };
    if debts_us.len() != quotas.len() {
        return Err(StoreError::new(
            "the Redis script answered for other quotas",
        ));
    }
    let nanos = |micros: i64| u64::try_from(micros).unwrap_or(0).saturating_mul(1_000);
    let mut debts = [0; MAX_STACKED_QUOTAS];
    let mut states = [QuotaState::default(); MAX_STACKED_QUOTAS];
    for (index, (quota, debt)) in quotas.iter().zip(debts_us).enumerate() {
        debts[index] = nanos(*debt);
        states[index] = quota.state(debts[index], 0);
    }
    let states = &states[..quotas.len()];
    let decision = if *allowed == 1 {
        Decision::allowed(states)
    } else {
        let denied_by = usize::try_from(*denied_by).unwrap_or(0);
        Decision::denied(nanos(*retry_us).max(1), denied_by, states)
    };
    Ok((decision, debts))
}

/// Microseconds, as the script reads them.
fn micros(nanos: Nanos) -> String {
    format!("{}.{:03}", nanos / 1_000, nanos % 1_000)
}

/// A decision waiting for Redis.
type RedisFuture = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + Send>>;

impl RateStore for RedisRateStore {
    type Future = RedisFuture;

    fn decide(
        &self,
        bucket: &Bucket<'_>,
        limits: &RouteLimits,
    ) -> Answer<Result<Decision, StoreError>, Self::Future> {
        let quotas = limits.quotas();
        if quotas.is_empty() {
            return Answer::Ready(Ok(Decision::allowed(&[])));
        }
        let shared = &*self.shared;
        let id = combine(bucket.partition().hash(), bucket.route_hash(), 0);
        if let Some(decision) = shared.cached_denial(id, limits) {
            return Answer::Ready(Ok(decision));
        }
        let keys: Vec<String> = quotas
            .iter()
            .enumerate()
            .map(|(index, quota)| self.key(bucket, quota, index))
            .collect();
        let mut args = Vec::with_capacity(1 + 2 * quotas.len());
        args.push(limits.cost().to_string());
        for quota in quotas {
            args.push(micros(quota.emission_nanos()));
            args.push(micros(quota.tolerance_nanos()));
        }
        let this = Arc::clone(&self.shared);
        // What reading the reply needs of the quotas, copied (no allocation).
        let mut gcras = [quotas[0].gcra; MAX_STACKED_QUOTAS];
        for (slot, quota) in gcras.iter_mut().zip(quotas) {
            *slot = quota.gcra;
        }
        let count = quotas.len().min(MAX_STACKED_QUOTAS);
        let route: Box<str> = bucket.route().into();
        shared.calls.fetch_add(1, Ordering::Relaxed);
        Answer::Pending(Box::pin(async move {
            let mut connection = this.connection.clone();
            let mut invocation = this.script.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg);
            }
            let reply = tokio::time::timeout(
                this.timeout,
                invocation.invoke_async::<Vec<i64>>(&mut connection),
            )
            .await;
            let reply = match reply {
                Ok(Ok(reply)) => read_reply(&reply, &gcras[..count]),
                Ok(Err(error)) => Err(StoreError::new(error)),
                Err(_) => Err(StoreError::new(format!(
                    "Redis did not answer within {:?}",
                    this.timeout
                ))),
            };
            match reply {
                Ok((decision, debts)) => {
                    if !decision.is_allowed() {
                        this.remember(id, &decision, debts);
                    }
                    Ok(decision)
                }
                Err(error) => this.failed(error, &route),
            }
        }))
    }
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .field("on_failure", &self.shared.on_failure)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_keep_fractions() {
        assert_eq!(micros(20_000_000), "20000.000");
        assert_eq!(micros(1_500), "1.500");
        assert_eq!(micros(7), "0.007");
    }

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
    }
}
