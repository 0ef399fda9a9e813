//! Metrics, through the [`metrics`] facade (feature `metrics`): install any
//! recorder (Prometheus, StatsD, OpenTelemetry…) before the gate serves
//! its first request.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `tollgate_requests_total` | counter | `route` (the pattern, never the path), `outcome` (`allowed`, `rejected`, `shadow`), `code` (the rejection's code, or the one a shadowed check would have answered; empty when allowed) |
//! | `tollgate_rate_limit_near_limit_total` | counter | `route`, `policy`: admitted with at most 20 % of the burst left ([`MetricsOptions::near_limit`]) |
//! | `tollgate_store_duration_seconds` | histogram | `store` (`key`, `rate`): lookups and decisions that had to wait (Redis, your key store) |
//! | `tollgate_store_failures_total` | counter | `store` |
//! | `tollgate_rate_limit_buckets` | gauge | live buckets of the in-memory rate store |
//! | `tollgate_rate_store_decisions_total` | counter | `mode`: how the Redis rate store decided (`redis`: a round trip; `denial_cache`: a refusal remembered; `local`: this instance's share, Redis failing; `approximate`: in memory, synced in batches) |
//! | `tollgate_rate_store_switches_total` | counter | `to` (`local`, `redis`): the Redis rate store switching to its local share and back |
//! | `tollgate_rate_store_degraded_seconds` | gauge | seconds spent on the local share, over finished spells (only grows) |
//! | `tollgate_rate_store_round_trips_total` | counter | `result` (`ok`, `failed`): scripts the Redis rate store ran, for decisions and for syncs |
//! | `tollgate_rate_store_batches_total` | counter | syncs of an approximate Redis rate store that sent something |
//!
//! No label carries a key, a digest, a path or other unbounded input: route
//! patterns, codes and policy names come from the configuration. The
//! project is not a label unless [`MetricsOptions::project_label`] says so:
//! one series per project can be many series.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, counter, gauge, histogram};

use crate::check::observe::GateEvent;
use crate::context::route::Route;

/// `tollgate_requests_total`.
pub const REQUESTS_TOTAL: &str = "tollgate_requests_total";
/// `tollgate_rate_limit_near_limit_total`.
pub const NEAR_LIMIT_TOTAL: &str = "tollgate_rate_limit_near_limit_total";
/// `tollgate_store_duration_seconds`.
pub const STORE_DURATION: &str = "tollgate_store_duration_seconds";
/// `tollgate_store_failures_total`.
pub const STORE_FAILURES: &str = "tollgate_store_failures_total";
/// `tollgate_rate_store_switches_total`, by `to` (`local`, `redis`): a
/// Redis rate store with `on_failure = "local"` switching to its share in
/// memory and back.
pub const RATE_STORE_SWITCHES: &str = "tollgate_rate_store_switches_total";
/// `tollgate_rate_store_decisions_total`, by `mode`.
pub const RATE_STORE_DECISIONS: &str = "tollgate_rate_store_decisions_total";
/// `tollgate_rate_store_degraded_seconds`.
pub const RATE_STORE_DEGRADED: &str = "tollgate_rate_store_degraded_seconds";
/// `tollgate_rate_store_round_trips_total`, by `result` (`ok`, `failed`).
pub const RATE_STORE_ROUND_TRIPS: &str = "tollgate_rate_store_round_trips_total";
/// `tollgate_rate_store_batches_total`.
pub const RATE_STORE_BATCHES: &str = "tollgate_rate_store_batches_total";
/// `tollgate_rate_limit_buckets`.
pub const BUCKETS: &str = "tollgate_rate_limit_buckets";

/// What the gate's metrics say beyond the defaults; see
/// [`GateBuilder::metrics`](crate::gate::GateBuilder::metrics).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsOptions {
    near_limit: f64,
    project_label: bool,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            near_limit: 0.2,
            project_label: false,
        }
    }
}

impl MetricsOptions {
    /// The defaults: near the limit at 20 % of the burst left, no project
    /// label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts an admitted request as near the limit when at most `share`
    /// of a quota's burst is left (0 to 1; default 0.2).
    #[must_use]
    pub fn near_limit(mut self, share: f64) -> Self {
        self.near_limit = share.clamp(0.0, 1.0);
        self
    }

    /// Labels `tollgate_requests_total` with the caller's project too (one
    /// series per project and route: mind the cardinality). Off by default.
    #[must_use]
    pub fn project_label(mut self, on: bool) -> Self {
        self.project_label = on;
        self
    }

    /// The share of the burst under which a request is near the limit.
    pub fn near_limit_share(&self) -> f64 {
        self.near_limit
    }
}

/// The request counter's handles, made on first use (so that a recorder
/// installed after the gate was built is the one counted into), per route.
pub(crate) struct RequestMetrics {
    options: MetricsOptions,
    /// Per route id: the `allowed` counter, and the others by (outcome, code).
    routes: Arc<[RouteCounters]>,
}

#[derive(Default)]
struct RouteCounters {
    allowed: OnceLock<Counter>,
    other: RwLock<Vec<(&'static str, Box<str>, Counter)>>,
}

impl RequestMetrics {
    /// Whether counting needs the caller (for the project label).
    pub(crate) fn needs_principal(&self) -> bool {
        self.options.project_label
    }

    pub(crate) fn new(options: &MetricsOptions, routes: usize) -> Self {
        Self {
            options: options.clone(),
            routes: (0..routes.max(1))
                .map(|_| RouteCounters::default())
                .collect(),
        }
    }

    /// Counts `event`, on `route`.
    pub(crate) fn count(&self, route: Option<&Route>, event: &GateEvent<'_>) {
        let name = || event.route().to_owned();
        let outcome = event.outcome().as_str();
        let code = event.code().map_or("", |code| code.as_str());
        if self.options.project_label {
            let project = event.principal().map_or("", |p| p.project()).to_owned();
            counter!(REQUESTS_TOTAL, "route" => name(), "outcome" => outcome, "code" => code.to_owned(), "project" => project)
                .increment(1);
            return;
        }
        let slot = route
            .and_then(|route| self.routes.get(route.id().index()))
            .unwrap_or(&self.routes[0]);
        if code.is_empty() && outcome == "allowed" {
            slot.allowed
                .get_or_init(|| counter!(REQUESTS_TOTAL, "route" => name(), "outcome" => outcome, "code" => ""))
                .increment(1);
            return;
        }
        let known = slot
            .other
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(o, c, _)| *o == outcome && &**c == code)
            .map(|(_, _, counter)| counter.clone());
        let counter = known.unwrap_or_else(|| {
            let counter = counter!(REQUESTS_TOTAL, "route" => name(), "outcome" => outcome, "code" => code.to_owned());
            let mut other = slot
                .other
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Codes come from the configuration: a bounded list.
            if other.len() < 256 {
                other.push((outcome, code.into(), counter.clone()));
            }
            counter
        });
        counter.increment(1);
    }
}

/// Counts an admitted request near the limit of `policy` on `route`.
pub(crate) fn near_limit(route: &str, policy: &str) {
    counter!(NEAR_LIMIT_TOTAL, "route" => route.to_owned(), "policy" => policy.to_owned())
        .increment(1);
}

/// Records how long a `store` (`key`, `rate`) took to answer.
pub(crate) fn store_duration(store: &'static str, took: Duration) {
    histogram!(STORE_DURATION, "store" => store).record(took.as_secs_f64());
}

/// Counts a failure of a `store` (`key`, `rate`).
pub(crate) fn store_failure(store: &'static str) {
    counter!(STORE_FAILURES, "store" => store).increment(1);
}

/// Counts a switch of a shared rate store's mode: `local` when it began
/// deciding by its share in memory, `redis` when it went back.
pub(crate) fn rate_store_mode(mode: &'static str) {
    counter!(RATE_STORE_SWITCHES, "to" => mode).increment(1);
}

/// Counts a decision of a shared rate store, by how it was made.
pub(crate) fn rate_store_decision(mode: &'static str) {
    counter!(RATE_STORE_DECISIONS, "mode" => mode).increment(1);
}

/// Adds a finished spell on the local share.
pub(crate) fn rate_store_degraded(spell: Duration) {
    gauge!(RATE_STORE_DEGRADED).increment(spell.as_secs_f64());
}

/// Counts a round trip to Redis, answered or not.
pub(crate) fn rate_store_round_trip(ok: bool) {
    counter!(RATE_STORE_ROUND_TRIPS, "result" => if ok { "ok" } else { "failed" }).increment(1);
}

/// Counts a sync batch of an approximate store.
pub(crate) fn rate_store_batch() {
    counter!(RATE_STORE_BATCHES).increment(1);
}

/// Sets the gauge of live in-memory buckets.
pub(crate) fn buckets(live: usize) {
    gauge!(BUCKETS).set(live as f64);
}
