//! [`RedisRateStore`] (feature `redis`): buckets shared by several
//! instances, in Redis, reached as [`RedisOptions`] say, failing as its
//! [`FailureMode`] says.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;

mod options;
mod script;

pub use options::{FailureMode, Mode, RedisOptions};
use script::{CONSUME, SCRIPT, micros, read_reply, reported};

use super::limit::MAX_STACK;
use super::memory::InMemoryRateStore;
use super::store::{Bucket, Decision, QuotaSpec, RateStore, RouteLimits, Settlement};
use crate::Answer;
use crate::clock::{Clock, Nanos};
use crate::context::gcra::QuotaState;
use crate::context::meter::Meter;
use crate::error::StoreError;
use crate::hash::BuildPrehashed;

/// Counters of a [`RedisRateStore`], since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Decisions sent to Redis.
    pub calls: u64,
    /// Decisions Redis failed or did not answer in time (decided by the
    /// [`FailureMode`]).
    pub failures: u64,
    /// Decisions made by the [`FailureMode`] without asking Redis, within
    /// `retry_interval_ms` of a failure ([`RedisOptions::retry_interval`]).
    pub skipped: u64,
    /// Refusals answered from the denial cache, without Redis.
    pub cached_denials: u64,
    /// Decisions made in memory by this instance's share while Redis failed
    /// ([`FailureMode::Local`]).
    pub local_decisions: u64,
    /// Times it switched to its local share, and back to Redis.
    pub switches: u64,
    /// Whether it decides by its local share now (Redis failed last).
    pub degraded: bool,
    /// Nanoseconds spent deciding by the local share, over finished spells.
    pub degraded_nanos: u64,
    /// Decisions made in memory by the fleet's view ([`Mode::Approximate`]).
    pub approximate_decisions: u64,
    /// Batches of consumption sent to Redis (one round trip per bucket
    /// spent in the interval), and the buckets they carried.
    pub batches: u64,
    /// Buckets synced by those batches.
    pub synced_buckets: u64,
    /// Settlements of response costs and give-backs Redis did not take
    /// (it failed or did not answer in time), by bucket, waiting to be
    /// sent again: every `retry_interval_ms`, and by
    /// [`sync`](RedisRateStore::sync).
    pub unsettled: u64,
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
/// - **One node or a cluster** ([`RedisOptions::cluster`]): a cluster's
///   decisions go to the master of the partition's slot, through redis-rs's
///   cluster client (`MOVED`, `ASK`, fail-overs).
/// - **Failures**: the connection is re-established by itself
///   ([`ConnectionManager`], or the cluster client); a decision waits at
///   most the timeout, then follows the [`FailureMode`] (admit, refuse, or
///   decide by this instance's share in memory). For
///   [`retry_interval`](RedisOptions::retry_interval) after a failure,
///   decisions follow the failure mode at once; then one asks Redis again.
///   A decision that timed out may still have reached Redis and be counted
///   there once it answers: a timeout cannot take back a command already
///   sent.
///
/// Cheap to clone; clones share the connection, cache and counters.
#[derive(Clone)]
pub struct RedisRateStore {
    shared: Arc<Shared>,
}

/// The connection decisions go through: to one node (re-established by
/// itself), or to a cluster (routed by slot, following `MOVED`, `ASK` and
/// fail-overs).
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

struct Shared {
    connection: Connection,
    script: redis::Script,
    prefix: Box<str>,
    timeout: Duration,
    on_failure: OnFailure,
    denials:
        Option<quick_cache::sync::Cache<u64, Denial, quick_cache::UnitWeighter, BuildPrehashed>>,
    clock: Clock,
    calls: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    cached_denials: AtomicU64,
    /// Takes what was spent elsewhere (approximate batches, settlements).
    consume: redis::Script,
    /// The runtime the store was made in: syncs and settlements run there.
    runtime: tokio::runtime::Handle,
    /// After a failure, how long decisions skip Redis (0: never).
    retry_interval: Nanos,
    /// When one decision may ask Redis again (clock nanoseconds plus one),
    /// or 0 while Redis answers.
    retry_at: AtomicU64,
    /// How many instances share the budget ([`FailureMode::Local`]).
    instances: u64,
    /// When the current spell on the local share began (clock nanoseconds
    /// plus one), or 0 while Redis answers.
    degraded_since: AtomicU64,
    local_decisions: AtomicU64,
    switches: AtomicU64,
    degraded_nanos: AtomicU64,
    /// The fleet's view and what this instance spent since it last synced
    /// ([`Mode::Approximate`]).
    approximate: Option<Approximate>,
    /// Settlements and give-backs Redis did not take, by their keys.
    unsettled: std::sync::Mutex<std::collections::HashMap<Vec<String>, Owed>>,
    /// Whether a task is sending them again.
    resending: std::sync::atomic::AtomicBool,
    /// One resend at a time (two would both send what is owed).
    resend_lock: tokio::sync::Mutex<()>,
}

/// Tokens a stack owes Redis (negative: Redis owes them back).
struct Owed {
    meters: Vec<Meter>,
    tokens: i64,
}

/// The most buckets kept unsettled at once; a settlement of another bucket
/// beyond them is dropped, logged and counted as a failure.
const MAX_UNSETTLED: usize = 65_536;

/// The [`FailureMode`], with the buckets of this instance's share for
/// [`FailureMode::Local`].
enum OnFailure {
    Open,
    Closed,
    Local(InMemoryRateStore),
}

impl OnFailure {
    fn new(mode: FailureMode) -> Self {
        match mode {
            FailureMode::Open => Self::Open,
            FailureMode::Closed => Self::Closed,
            FailureMode::Local => Self::Local(InMemoryRateStore::new()),
        }
    }

    fn mode(&self) -> FailureMode {
        match self {
            Self::Open => FailureMode::Open,
            Self::Closed => FailureMode::Closed,
            Self::Local(_) => FailureMode::Local,
        }
    }
}

/// Decisions in memory by a view of the fleet's buckets, synced in batches.
struct Approximate {
    view: InMemoryRateStore,
    /// Spent since the last sync, by bucket.
    spent: std::sync::Mutex<std::collections::HashMap<u64, Spent, BuildPrehashed>>,
    decisions: AtomicU64,
    batches: AtomicU64,
    synced: AtomicU64,
    /// The syncing task starts with the first decision (so that
    /// [`RedisRateStore::with_clock`] still finds the store unshared), on
    /// the store's runtime, every `interval`.
    syncing: std::sync::Once,
    interval: Duration,
}

impl Approximate {
    /// Notes `tokens` spent by bucket `id` (negative: given back) for the
    /// next sync; `entry` makes its record the first time.
    fn note(&self, id: u64, entry: impl FnOnce() -> Spent, tokens: i64) {
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        spent.entry(id).or_insert_with(entry).tokens += tokens;
    }
}

/// What one bucket (a route's quotas for one partition) spent since the
/// last sync: its Redis keys and view keys, made once per interval.
struct Spent {
    keys: Vec<String>,
    quotas: Vec<(u64, Meter)>,
    /// Tokens taken (negative: given back by settlements).
    tokens: i64,
}

/// A refusal remembered: until when, and each quota's debt then.
#[derive(Clone, Copy)]
struct Denial {
    until: Nanos,
    at: Nanos,
    denied_by: usize,
    debts: [Nanos; MAX_STACK],
}

impl RedisRateStore {
    /// A store on the Redis `options` names. Fails if the options are
    /// invalid or Redis cannot be reached within the timeout, so that a
    /// wrong address shows at start-up; once running, the store reconnects
    /// by itself. Must be called within a Tokio runtime.
    pub async fn connect(options: RedisOptions) -> Result<Self, StoreError> {
        let client = options.check().map_err(StoreError::new)?;
        let timeout = Duration::from_millis(options.timeout_ms);
        let connection = match client {
            options::Client::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(timeout);
                Connection::Single(
                    ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(StoreError::new)?,
                )
            }
            options::Client::Cluster(client) => Connection::Cluster(
                tokio::time::timeout(timeout, client.get_async_connection())
                    .await
                    .map_err(|_| unanswered(timeout))?
                    .map_err(StoreError::new)?,
            ),
        };
        let script = redis::Script::new(SCRIPT);
        let mut probe = connection.clone();
        match tokio::time::timeout(timeout, script.prepare_invoke().load_async(&mut probe)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(StoreError::new(error)),
            Err(_) => return Err(unanswered(timeout)),
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
        let store = Self {
            shared: Arc::new(Shared {
                connection,
                script,
                prefix: options.prefix.into(),
                timeout,
                on_failure: OnFailure::new(options.on_failure),
                denials,
                clock: Clock::system(),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                cached_denials: AtomicU64::new(0),
                retry_interval: options.retry_interval_ms.saturating_mul(1_000_000),
                retry_at: AtomicU64::new(0),
                consume: redis::Script::new(CONSUME),
                runtime: tokio::runtime::Handle::current(),
                instances: options.instances,
                degraded_since: AtomicU64::new(0),
                local_decisions: AtomicU64::new(0),
                switches: AtomicU64::new(0),
                degraded_nanos: AtomicU64::new(0),
                approximate: (options.mode == Mode::Approximate).then(|| Approximate {
                    view: InMemoryRateStore::new(),
                    spent: std::sync::Mutex::default(),
                    decisions: AtomicU64::new(0),
                    batches: AtomicU64::new(0),
                    synced: AtomicU64::new(0),
                    syncing: std::sync::Once::new(),
                    interval: Duration::from_millis(options.sync_interval_ms),
                }),
                unsettled: std::sync::Mutex::default(),
                resending: std::sync::atomic::AtomicBool::new(false),
                resend_lock: tokio::sync::Mutex::new(()),
            }),
        };
        Ok(store)
    }

    /// Reads the denial cache's time, and the local share's, from `clock`
    /// (for tests), and in [`Mode::Approximate`] its view's. Only before
    /// the store is cloned: otherwise this changes nothing.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            if let OnFailure::Local(local) = &mut shared.on_failure {
                *local = InMemoryRateStore::with_clock(clock.clone());
            }
            if let Some(approximate) = &mut shared.approximate {
                approximate.view = InMemoryRateStore::with_clock(clock.clone());
            }
            shared.clock = clock;
        }
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> RedisStats {
        RedisStats {
            calls: self.shared.calls.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
            skipped: self.shared.skipped.load(Ordering::Relaxed),
            cached_denials: self.shared.cached_denials.load(Ordering::Relaxed),
            local_decisions: self.shared.local_decisions.load(Ordering::Relaxed),
            switches: self.shared.switches.load(Ordering::Relaxed),
            degraded: self.shared.degraded_since.load(Ordering::Relaxed) != 0,
            degraded_nanos: self.shared.degraded_nanos.load(Ordering::Relaxed),
            approximate_decisions: self
                .shared
                .approximate
                .as_ref()
                .map_or(0, |a| a.decisions.load(Ordering::Relaxed)),
            batches: self
                .shared
                .approximate
                .as_ref()
                .map_or(0, |a| a.batches.load(Ordering::Relaxed)),
            synced_buckets: self
                .shared
                .approximate
                .as_ref()
                .map_or(0, |a| a.synced.load(Ordering::Relaxed)),
            unsettled: self.shared.unsettled_count() as u64,
        }
    }

    /// Sends what this instance owes Redis now: the settlements of
    /// response costs (and a cluster's give-backs) Redis did not take
    /// before, which the store also sends again by itself every
    /// `retry_interval_ms` while there are some; and with
    /// [`Mode::Approximate`], what it spent since the last sync, reading
    /// the fleet's buckets back into its view (by itself every
    /// `sync_interval_ms`). Returns how many buckets it sent. What could
    /// not be sent is kept for the next time.
    pub async fn sync(&self) -> Result<usize, StoreError> {
        let resent = self.shared.resend().await;
        let synced = self.shared.sync().await;
        Ok(resent? + synced?)
    }

    /// The Redis keys of every quota of `limits` in `bucket`, in order.
    fn keys(&self, bucket: &Bucket<'_>, limits: &RouteLimits) -> Vec<String> {
        limits
            .quotas()
            .iter()
            .enumerate()
            .map(|(index, quota)| self.key(bucket, quota, index))
            .collect()
    }

    /// The Redis key of `quota`, the `index`th quota of `bucket`'s route.
    pub fn key(&self, bucket: &Bucket<'_>, quota: &QuotaSpec, index: usize) -> String {
        let prefix = &self.shared.prefix;
        let partition = bucket.partition().value();
        // A calendar window's key ends in `:w` (its state means something
        // else than a bucket's).
        let window = if quota.calendar().is_some() { ":w" } else { "" };
        // A key's credits: one balance per key id, whatever the route and
        // partition (its own slot in a cluster).
        if let Some(key_id) = quota.credits_of() {
            return format!("{prefix}{{credits:{key_id}}}");
        }
        match (quota.is_shared(), quota.name()) {
            (true, Some(name)) => format!("{prefix}{{{partition}}}:shared:{name}{window}"),
            _ => format!("{prefix}{{{partition}}}:{}:{index}{window}", bucket.route()),
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
        let epoch = self.clock.epoch();
        let mut states = [QuotaState::default(); MAX_STACK];
        for (index, quota) in limits.quotas().iter().enumerate() {
            states[index] = quota
                .meter
                .reported(denial.debts[index], elapsed, now, epoch);
        }
        self.cached_denials.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        crate::metrics::rate_store_decision("denial_cache");
        Some(Decision::denied(
            denial.until - now,
            denial.denied_by,
            &states[..limits.quotas().len()],
        ))
    }

    fn remember(&self, id: u64, decision: &Decision, debts: [Nanos; MAX_STACK]) {
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

    /// Redis decided: if it had failed until now, the local spell ends.
    fn answered(&self) {
        if self.retry_at.load(Ordering::Relaxed) != 0 {
            self.retry_at.store(0, Ordering::Release);
        }
        let since = self.degraded_since.swap(0, Ordering::AcqRel);
        if since != 0 {
            let spell = self.clock.now().saturating_sub(since - 1);
            self.degraded_nanos.fetch_add(spell, Ordering::Relaxed);
            self.switches.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            {
                crate::metrics::rate_store_mode("redis");
                crate::metrics::rate_store_degraded(Duration::from_nanos(spell));
            }
            #[cfg(feature = "tracing")]
            tracing::warn!(target: "tollgate", degraded_for = ?Duration::from_nanos(spell), "Redis answers again: deciding in Redis again");
        }
    }

    /// What the failure mode says when Redis could not decide; `local` are
    /// the buckets of this instance's share and the request's cost.
    fn failed(
        &self,
        error: StoreError,
        route: &str,
        local: (&[(u64, Meter)], u64),
    ) -> Result<Decision, StoreError> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.retry_interval > 0 {
            let retry_at = self
                .clock
                .now()
                .saturating_add(self.retry_interval)
                .saturating_add(1);
            self.retry_at.fetch_max(retry_at, Ordering::AcqRel);
        }
        self.fall_back(error, route, local)
    }

    /// Whether this decision asks Redis: yes while it answers; within the
    /// retry interval after a failure, no; past it, yes for the one
    /// decision that claims the next try.
    fn asks_redis(&self) -> bool {
        let retry_at = self.retry_at.load(Ordering::Acquire);
        if retry_at == 0 {
            return true;
        }
        let now = self.clock.now().saturating_add(1);
        now >= retry_at
            && self
                .retry_at
                .compare_exchange(
                    retry_at,
                    now.saturating_add(self.retry_interval),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Decides by the failure mode without asking Redis (it failed within
    /// the retry interval).
    fn skipped(&self, route: &str, local: (&[(u64, Meter)], u64)) -> Result<Decision, StoreError> {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        let error = StoreError::new(format!(
            "Redis failed within the last {:?}; not asked again yet",
            Duration::from_nanos(self.retry_interval)
        ));
        self.fall_back(error, route, local)
    }

    /// What the failure mode decides.
    fn fall_back(
        &self,
        error: StoreError,
        route: &str,
        local: (&[(u64, Meter)], u64),
    ) -> Result<Decision, StoreError> {
        match &self.on_failure {
            OnFailure::Open => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", %error, route, "Redis rate store failed; admitting (fail open)");
                let _ = (error, route);
                Ok(Decision::allowed(&[]))
            }
            OnFailure::Closed => Err(error),
            OnFailure::Local(store) => {
                let now = self.clock.now();
                if self
                    .degraded_since
                    .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    self.switches.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "metrics")]
                    crate::metrics::rate_store_mode("local");
                    #[cfg(feature = "tracing")]
                    tracing::warn!(target: "tollgate", %error, route, instances = self.instances, "Redis rate store failed: deciding by this instance's share in memory");
                }
                let _ = (&error, route);
                self.local_decisions.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                crate::metrics::rate_store_decision("local");
                Ok(store.decide_keyed(local.0, local.1))
            }
        }
    }

    /// Runs `script` on `keys` with `tokens` and each quota's emission
    /// interval and tolerance (the arguments both scripts take): one round
    /// trip, waiting at most the timeout.
    async fn invoke(
        &self,
        script: &redis::Script,
        keys: &[String],
        tokens: i64,
        quotas: impl IntoIterator<Item = Meter>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation.arg(tokens.to_string());
        for meter in quotas {
            match meter {
                Meter::Bucket(gcra) => {
                    invocation.arg(micros(gcra.increment(1)));
                    invocation.arg(micros(gcra.state(0, 0).window));
                }
                Meter::Window(window) => {
                    let wall = self.clock.epoch().saturating_add(self.clock.now());
                    let end_us = window.bounds_at(wall).1 / 1_000;
                    invocation.arg(format!("-{end_us}"));
                    invocation.arg(window.limit().to_string());
                }
                Meter::Credits(credits) => {
                    let wall = self.clock.epoch().saturating_add(self.clock.now());
                    let end_us = credits.period_end_at(wall) / 1_000;
                    invocation.arg(format!("c{end_us}"));
                    invocation.arg(credits.allowance().to_string());
                }
            }
        }
        let mut connection = self.connection.clone();
        let reply = match tokio::time::timeout(
            self.timeout,
            invocation.invoke_async(&mut connection),
        )
        .await
        {
            Ok(reply) => reply.map_err(StoreError::new),
            Err(_) => Err(unanswered(self.timeout)),
        };
        #[cfg(feature = "metrics")]
        crate::metrics::rate_store_round_trip(reply.is_ok());
        reply
    }
}

/// The id a bucket's decisions are remembered and batched by: the
/// bucket's, and for a stack with a key's credits, the key's too (two keys
/// of one partition draw from one bucket but from credits of their own).
fn stack_id(bucket: &Bucket<'_>, limits: &RouteLimits) -> u64 {
    let id = bucket.id();
    match limits.quotas().last() {
        Some(quota) if quota.credits().is_some() => crate::hash::combine(
            id,
            quota.bucket_key(bucket, limits.quotas().len() - 1),
            0x3c6e_f372,
        ),
        _ => id,
    }
}

/// Whether the stack ends with a key's credits.
fn has_credits(limits: &RouteLimits) -> bool {
    limits
        .quotas()
        .last()
        .is_some_and(|quota| quota.credits().is_some())
}

impl Shared {
    /// Whether a stack's scripts run in two parts: in a cluster, a key's
    /// credits are in a slot of their own, apart from the route's buckets.
    fn splits(&self, meters: &[Meter]) -> bool {
        matches!(self.connection, Connection::Cluster(_))
            && meters.len() > 1
            && meters.last().is_some_and(|meter| meter.credits().is_some())
    }

    /// Takes `tokens` from every quota of a stack (gives `-tokens` back),
    /// whatever it holds ([`CONSUME`]); each quota's report.
    async fn consume(
        &self,
        keys: &[String],
        tokens: i64,
        meters: &[Meter],
    ) -> Result<Vec<i64>, StoreError> {
        if !self.splits(meters) {
            return self
                .invoke(&self.consume, keys, tokens, meters.iter().copied())
                .await;
        }
        let route = meters.len() - 1;
        let mut reports = self
            .invoke(
                &self.consume,
                &keys[..route],
                tokens,
                meters[..route].iter().copied(),
            )
            .await?;
        reports.extend(
            self.invoke(
                &self.consume,
                &keys[route..],
                tokens,
                meters[route..].iter().copied(),
            )
            .await?,
        );
        Ok(reports)
    }

    /// Decides a stack in Redis: one script, or in a cluster with a key's
    /// credits, the route's buckets first and then the credits, the
    /// route's tokens given back if the credits refuse (so that a refused
    /// request still consumes from none, a round trip later).
    async fn decide_exactly(
        self: &Arc<Self>,
        keys: &[String],
        cost: u64,
        meters: &[Meter],
    ) -> Result<(Decision, [Nanos; MAX_STACK]), StoreError> {
        let tokens = i64::try_from(cost).unwrap_or(i64::MAX);
        if !self.splits(meters) {
            let reply = self
                .invoke(&self.script, keys, tokens, meters.iter().copied())
                .await?;
            return read_reply(&reply, meters, self.clock.now(), self.clock.epoch());
        }
        let route = meters.len() - 1;
        let reply = self
            .invoke(
                &self.script,
                &keys[..route],
                tokens,
                meters[..route].iter().copied(),
            )
            .await?;
        let (admitted, mut debts) = read_reply(
            &reply,
            &meters[..route],
            self.clock.now(),
            self.clock.epoch(),
        )?;
        if !admitted.is_allowed() {
            return Ok((admitted, debts));
        }
        let reply = self
            .invoke(
                &self.script,
                &keys[route..],
                tokens,
                meters[route..].iter().copied(),
            )
            .await?;
        let (credits, credit_debts) = read_reply(
            &reply,
            &meters[route..],
            self.clock.now(),
            self.clock.epoch(),
        )?;
        debts[route] = credit_debts[0];
        let mut states = [QuotaState::default(); MAX_STACK];
        states[..route].copy_from_slice(admitted.states());
        states[route] = credits.states()[0];
        let states = &states[..=route];
        if credits.is_allowed() {
            return Ok((Decision::allowed(states), debts));
        }
        let refund = self
            .invoke(
                &self.consume,
                &keys[..route],
                -tokens,
                meters[..route].iter().copied(),
            )
            .await;
        if let Err(error) = refund {
            self.failures.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "tracing")]
            tracing::warn!(target: "tollgate", %error, "giving back a route's tokens after a key's credits refused failed; kept to be sent again");
            let _ = error;
            self.owe(keys[..route].to_vec(), meters[..route].to_vec(), -tokens);
        }
        Ok((
            Decision::denied(credits.retry_after(), route, states),
            debts,
        ))
    }
}

/// Redis did not answer within `timeout`.
fn unanswered(timeout: Duration) -> StoreError {
    StoreError::new(format!("Redis did not answer within {timeout:?}"))
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
        let id = stack_id(bucket, limits);
        if let Some(approximate) = &shared.approximate {
            return Answer::Ready(Ok(self.decide_approximately(
                approximate,
                id,
                bucket,
                limits,
            )));
        }
        // A key's credits are not remembered as a bucket's refusal: a top-up
        // must be seen at once.
        let credits = has_credits(limits);
        if !credits && let Some(decision) = shared.cached_denial(id, limits) {
            return Answer::Ready(Ok(decision));
        }
        // What the script and reading its reply need of the quotas, copied
        // (no allocation).
        let (mut local, count) = limits.bucket_keys(bucket);
        let mut gcras = [local[0].1; MAX_STACK];
        for (slot, (_, gcra)) in gcras.iter_mut().zip(&local) {
            *slot = *gcra;
        }
        let cost = limits.cost();
        // This instance's share of each bucket, should Redis fail.
        if let OnFailure::Local(_) = shared.on_failure {
            for (_, gcra) in &mut local[..count] {
                *gcra = gcra.share(shared.instances, cost);
            }
        }
        if !shared.asks_redis() {
            return Answer::Ready(shared.skipped(bucket.route(), (&local[..count], cost)));
        }
        let keys = self.keys(bucket, limits);
        let this = Arc::clone(&self.shared);
        let route: Box<str> = bucket.route().into();
        shared.calls.fetch_add(1, Ordering::Relaxed);
        Answer::Pending(Box::pin(async move {
            let quotas = &gcras[..count];
            match this.decide_exactly(&keys, cost, quotas).await {
                Ok((decision, debts)) => {
                    this.answered();
                    #[cfg(feature = "metrics")]
                    crate::metrics::rate_store_decision("redis");
                    if !decision.is_allowed() && !credits {
                        this.remember(id, &decision, debts);
                    }
                    Ok(decision)
                }
                Err(error) => this.failed(error, &route, (&local[..count], cost)),
            }
        }))
    }

    fn settlement(&self, bucket: &Bucket<'_>, limits: &RouteLimits) -> Option<Settlement> {
        if limits.quotas().is_empty() {
            return None;
        }
        Some(self.settle(bucket, limits))
    }

    /// In Redis, whatever the mode (the approximate view then holds what
    /// Redis answered); a failure is an error, whatever `on_failure` says.
    fn adjust(
        &self,
        bucket: &Bucket<'_>,
        limits: &RouteLimits,
        tokens: i64,
    ) -> Answer<Result<Decision, StoreError>, Self::Future> {
        let entry = self.nothing_spent(bucket, limits);
        let shared = Arc::clone(&self.shared);
        Answer::Pending(Box::pin(async move {
            let meters: Vec<Meter> = entry.quotas.iter().map(|(_, meter)| *meter).collect();
            let reports = shared.consume(&entry.keys, tokens, &meters).await?;
            if reports.len() != meters.len() {
                return Err(StoreError::new(
                    "the Redis script answered for other quotas",
                ));
            }
            let (now, epoch) = (shared.clock.now(), shared.clock.epoch());
            let mut states = [QuotaState::default(); MAX_STACK];
            for ((state, (key, meter)), report) in states.iter_mut().zip(&entry.quotas).zip(reports)
            {
                let report = reported(meter, report);
                *state = meter.reported(report, 0, now, epoch);
                if let Some(approximate) = &shared.approximate {
                    approximate.view.owe(*key, meter, report);
                }
            }
            Ok(Decision::allowed(&states[..meters.len()]))
        }))
    }
}

impl RedisRateStore {
    /// A settlement of `bucket`: in approximate mode, noted for the next
    /// sync and taken from the view at once; else one script run on the
    /// store's runtime, never waited for (a failure is logged, counted and
    /// kept to be sent again: see [`Shared::owe`]).
    fn settle(&self, bucket: &Bucket<'_>, limits: &RouteLimits) -> Settlement {
        let id = stack_id(bucket, limits);
        let entry = self.nothing_spent(bucket, limits);
        let shared = Arc::clone(&self.shared);
        Settlement::new(move |tokens| {
            if let Some(approximate) = &shared.approximate {
                approximate.view.adjust_keyed(&entry.quotas, tokens);
                approximate.note(id, || entry, tokens);
                return;
            }
            let runtime = shared.runtime.clone();
            runtime.spawn(async move {
                let meters: Vec<Meter> = entry.quotas.iter().map(|(_, meter)| *meter).collect();
                if let Err(error) = shared.consume(&entry.keys, tokens, &meters).await {
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "tracing")]
                    tracing::warn!(target: "tollgate", %error, tokens, "settling a request's cost in Redis failed; kept to be sent again");
                    let _ = error;
                    shared.owe(entry.keys, meters, tokens);
                }
            });
        })
    }

    /// Decides in memory by the fleet's view, and notes what was spent.
    fn decide_approximately(
        &self,
        approximate: &Approximate,
        id: u64,
        bucket: &Bucket<'_>,
        limits: &RouteLimits,
    ) -> Decision {
        approximate.syncing.call_once(|| {
            self.shared.runtime.spawn(sync_every(
                Arc::downgrade(&self.shared),
                approximate.interval,
            ));
        });
        let decision = approximate.view.decide_now(bucket, limits);
        approximate.decisions.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        crate::metrics::rate_store_decision("approximate");
        if decision.is_allowed() {
            approximate.note(
                id,
                || self.nothing_spent(bucket, limits),
                i64::try_from(limits.cost()).unwrap_or(i64::MAX),
            );
        } else if limits
            .quotas()
            .get(decision.denied_by())
            .is_some_and(|quota| quota.credits().is_some())
        {
            // Spent in this view, a key's credits come back only by a
            // top-up elsewhere: the next sync reads the fleet's balance.
            approximate.note(id, || self.nothing_spent(bucket, limits), 0);
        }
        decision
    }

    /// `bucket`'s Redis keys and view keys, nothing spent yet.
    fn nothing_spent(&self, bucket: &Bucket<'_>, limits: &RouteLimits) -> Spent {
        Spent {
            keys: self.keys(bucket, limits),
            quotas: {
                let (quotas, count) = limits.bucket_keys(bucket);
                quotas[..count].to_vec()
            },
            tokens: 0,
        }
    }
}

impl Shared {
    /// How many buckets owe Redis a settlement.
    fn unsettled_count(&self) -> usize {
        self.unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Keeps `tokens` that Redis did not take from the stack of `keys` (a
    /// settlement or a give-back) to be sent again, added to what the stack
    /// already owes; and has them sent again every retry interval while
    /// anything is owed.
    fn owe(self: &Arc<Self>, keys: Vec<String>, meters: Vec<Meter>, tokens: i64) {
        {
            let mut unsettled = self
                .unsettled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let full = unsettled.len() >= MAX_UNSETTLED;
            match unsettled.entry(keys) {
                std::collections::hash_map::Entry::Occupied(mut owed) => {
                    owed.get_mut().tokens = owed.get().tokens.saturating_add(tokens);
                }
                std::collections::hash_map::Entry::Vacant(_) if full => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "tracing")]
                    tracing::error!(target: "tollgate", tokens, "too many buckets owe Redis a settlement; this one is dropped");
                    return;
                }
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(Owed { meters, tokens });
                }
            }
        }
        if !self.resending.swap(true, Ordering::AcqRel) {
            // As often as decisions retry a failed Redis (a second when
            // they never wait).
            let interval = Duration::from_nanos(if self.retry_interval == 0 {
                1_000_000_000
            } else {
                self.retry_interval
            });
            self.runtime
                .spawn(resend_every(Arc::downgrade(self), interval));
        }
    }

    /// Sends every settlement Redis did not take again; what fails again is
    /// kept. A settlement is owed until Redis took it: what was owed while
    /// it was being sent stays. How many buckets were sent.
    async fn resend(&self) -> Result<usize, StoreError> {
        let _one = self.resend_lock.lock().await;
        let owed: Vec<(Vec<String>, Vec<Meter>, i64)> = self
            .unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(keys, owed)| (keys.clone(), owed.meters.clone(), owed.tokens))
            .collect();
        let mut sent = 0;
        let mut failed = None;
        for (keys, meters, tokens) in owed {
            let result = if tokens == 0 {
                Ok(Vec::new())
            } else {
                self.consume(&keys, tokens, &meters).await
            };
            match result {
                Ok(_) => {
                    sent += usize::from(tokens != 0);
                    let mut unsettled = self
                        .unsettled
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some(entry) = unsettled.get_mut(&keys) {
                        entry.tokens = entry.tokens.saturating_sub(tokens);
                        if entry.tokens == 0 {
                            unsettled.remove(&keys);
                        }
                    }
                }
                Err(error) => failed = Some(error),
            }
        }
        match failed {
            Some(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
            None => Ok(sent),
        }
    }

    /// Ends the resending task when nothing is owed (decided under the
    /// lock that [`owe`](Self::owe) adds under, so that a settlement owed
    /// meanwhile starts another).
    fn done_resending(&self) -> bool {
        let unsettled = self
            .unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = unsettled.is_empty();
        if done {
            self.resending.store(false, Ordering::Release);
        }
        done
    }

    /// Sends each bucket's spending (one script per bucket, atomic over its
    /// quotas) and moves the view to the fleet's debt.
    async fn sync(&self) -> Result<usize, StoreError> {
        let Some(approximate) = &self.approximate else {
            return Ok(0);
        };
        let batch = std::mem::take(
            &mut *approximate
                .spent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if batch.is_empty() {
            return Ok(0);
        }
        approximate.batches.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        crate::metrics::rate_store_batch();
        let mut synced = 0;
        let mut failed = None;
        let mut unsent = Vec::new();
        for (id, spent) in batch {
            let meters: Vec<Meter> = spent.quotas.iter().map(|(_, meter)| *meter).collect();
            let reply = self
                .consume(&spent.keys, spent.tokens, &meters)
                .await
                .and_then(|debts| {
                    if debts.len() == spent.quotas.len() {
                        Ok(debts)
                    } else {
                        Err(StoreError::new(
                            "the Redis script answered for other quotas",
                        ))
                    }
                });
            match reply {
                Ok(debts) => {
                    for ((key, meter), reply) in spent.quotas.iter().zip(debts) {
                        approximate.view.owe(*key, meter, reported(meter, reply));
                    }
                    synced += 1;
                }
                Err(error) => {
                    failed = Some(error);
                    unsent.push((id, spent));
                }
            }
        }
        approximate
            .synced
            .fetch_add(synced as u64, Ordering::Relaxed);
        // Kept for the next sync: nothing spent is lost.
        for (id, entry) in unsent {
            let tokens = entry.tokens;
            approximate.note(id, || Spent { tokens: 0, ..entry }, tokens);
        }
        match failed {
            Some(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
            None => Ok(synced),
        }
    }
}

/// Sends what is owed again every `interval`, until nothing is (or the
/// store is dropped).
async fn resend_every(shared: std::sync::Weak<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match shared.resend().await {
            #[cfg(feature = "tracing")]
            Ok(sent) if sent > 0 => {
                tracing::info!(target: "tollgate", buckets = sent, "settlements Redis had not taken were sent again");
            }
            Ok(_) => {}
            Err(error) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", %error, "sending settlements to Redis again failed; kept for the next try");
                let _ = error;
            }
        }
        if shared.done_resending() {
            return;
        }
    }
}

/// Syncs every `interval` until the store is dropped.
async fn sync_every(shared: std::sync::Weak<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: nothing is spent yet.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(error) = shared.sync().await {
            #[cfg(feature = "tracing")]
            tracing::warn!(target: "tollgate", %error, "syncing the approximate rate store with Redis failed; kept for the next sync");
            let _ = error;
        }
    }
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .field("on_failure", &self.shared.on_failure.mode())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
