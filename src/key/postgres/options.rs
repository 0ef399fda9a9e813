//! [`PostgresOptions`]: where the keys are, and how the store in front of
//! them caches, sheds load and writes back.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How to reach the keys' database, and how [`PostgresKeyStore`](super::PostgresKeyStore)
/// caches them. Deserialises from the `[key_store]` table of a gateway
/// config; every field but `postgres` has a default:
///
/// ```toml
/// [key_store]
/// postgres = "postgres://gateway@10.0.0.7:5432/app"
/// pool_size = 16                 # connections for lookups
/// max_concurrent_lookups = 16    # misses in flight; past it: 503 at once
/// query_timeout_ms = 1000        # one lookup's query, the pool's wait included
/// capacity = 100000              # known keys cached
/// ttl_ms = 60000                 # a known key trusted without asking again
/// negative_capacity = 100000     # unknown keys remembered, bounded apart
/// negative_ttl_ms = 5000
/// grace_ms = 0                   # stale-if-error: 0 is off
/// last_used_interval_ms = 60000  # at most one write per key per interval
/// reconnect_max_ms = 5000        # the listener's longest back-off
/// migrate = false                # apply the shipped migration at start-up
/// ```
///
/// `Debug` hides the password of a URL that has one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresOptions {
    pub(super) postgres: String,
    pub(super) pool_size: usize,
    pub(super) max_concurrent_lookups: usize,
    #[serde(rename = "query_timeout_ms", with = "crate::fields::millis_required")]
    pub(super) query_timeout: Duration,
    pub(super) capacity: usize,
    #[serde(rename = "ttl_ms", with = "crate::fields::millis_required")]
    pub(super) ttl: Duration,
    pub(super) negative_capacity: usize,
    #[serde(rename = "negative_ttl_ms", with = "crate::fields::millis_required")]
    pub(super) negative_ttl: Duration,
    #[serde(rename = "grace_ms", with = "crate::fields::millis_required")]
    pub(super) grace: Duration,
    #[serde(
        rename = "last_used_interval_ms",
        with = "crate::fields::millis_required"
    )]
    pub(super) last_used_interval: Duration,
    #[serde(rename = "reconnect_max_ms", with = "crate::fields::millis_required")]
    pub(super) reconnect_max: Duration,
    pub(super) migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            postgres: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            pool_size: 16,
            max_concurrent_lookups: 16,
            query_timeout: Duration::from_secs(1),
            capacity: 100_000,
            ttl: Duration::from_secs(60),
            negative_capacity: 100_000,
            negative_ttl: Duration::from_secs(5),
            grace: Duration::ZERO,
            last_used_interval: Duration::from_secs(60),
            reconnect_max: Duration::from_secs(5),
            migrate: false,
        }
    }
}

impl PostgresOptions {
    /// The database at `url` (`postgres://user:password@host:port/db`, or
    /// `host=… user=…`), with the defaults above.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            postgres: url.into(),
            ..Self::default()
        }
    }

    /// Connections the pool keeps for lookups (default 16).
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How many lookups may wait on the database at once (default 16):
    /// past it, a miss is answered `503 upstream_failed` at once instead of
    /// queueing, so a flood of unknown keys cannot hold up the keys that are
    /// cached (they are answered without the database).
    #[must_use]
    pub fn max_concurrent_lookups(mut self, lookups: usize) -> Self {
        self.max_concurrent_lookups = lookups;
        self
    }

    /// The longest one lookup's query may take, waiting for a connection
    /// included (default 1 s). The key check's own `lookup_timeout` (default
    /// 2 s) bounds what a request waits.
    #[must_use]
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// How many known keys are cached (default 100 000).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long a known key is answered from the cache without asking the
    /// database (default 60 s). Changes arrive by notification sooner; this
    /// bounds what a missed notification costs.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many unknown keys are remembered (default 100 000), apart from
    /// the known ones so a flood of them cannot evict those.
    #[must_use]
    pub fn negative_capacity(mut self, capacity: usize) -> Self {
        self.negative_capacity = capacity;
        self
    }

    /// How long an unknown key is remembered as unknown (default 5 s).
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How long past its time a cached known key may still be answered
    /// while the database cannot be reached (default zero: off). Never for
    /// a key whose change was notified.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How often `last_used_at` is written back (default 60 s): each key
    /// used in an interval is written once, in one statement for all.
    #[must_use]
    pub fn last_used_interval(mut self, interval: Duration) -> Self {
        self.last_used_interval = interval;
        self
    }

    /// The longest wait between two attempts to reconnect the listener
    /// (default 5 s; the back-off starts at 50 ms and doubles).
    #[must_use]
    pub fn reconnect_max(mut self, max: Duration) -> Self {
        self.reconnect_max = max;
        self
    }

    /// Applies the shipped migration when connecting (default off).
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The URL, checked; a bad setting is an error naming its field.
    pub(super) fn check(&self) -> Result<tokio_postgres::Config, ConfigError> {
        let fail = |field: &str, reason: &str| Err(ConfigError::new(field, reason));
        if self.pool_size == 0 {
            return fail(
                "key_store.pool_size",
                "the pool needs at least 1 connection",
            );
        }
        if self.max_concurrent_lookups == 0 {
            return fail(
                "key_store.max_concurrent_lookups",
                "at least 1 lookup must be allowed",
            );
        }
        for (field, duration) in [
            ("key_store.query_timeout_ms", self.query_timeout),
            ("key_store.ttl_ms", self.ttl),
            ("key_store.last_used_interval_ms", self.last_used_interval),
            ("key_store.reconnect_max_ms", self.reconnect_max),
        ] {
            if duration.is_zero() {
                return fail(field, "must be at least 1 ms");
            }
        }
        self.postgres
            .parse::<tokio_postgres::Config>()
            .map_err(|error| {
                ConfigError::new(
                    "key_store.postgres",
                    format!("not a PostgreSQL connection string: {error}"),
                )
            })
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("postgres", &crate::fields::redact_password(&self.postgres))
            .field("pool_size", &self.pool_size)
            .field("max_concurrent_lookups", &self.max_concurrent_lookups)
            .field("query_timeout", &self.query_timeout)
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("negative_capacity", &self.negative_capacity)
            .field("negative_ttl", &self.negative_ttl)
            .field("grace", &self.grace)
            .field("last_used_interval", &self.last_used_interval)
            .field("reconnect_max", &self.reconnect_max)
            .field("migrate", &self.migrate)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_key_store_table() {
        let options: PostgresOptions = toml::from_str(
            "postgres = \"postgres://gw:pw@db:5432/app\"\nttl_ms = 30000\ngrace_ms = 120000\nmax_concurrent_lookups = 4",
        )
        .unwrap();
        assert_eq!(options.ttl, Duration::from_secs(30));
        assert_eq!(options.grace, Duration::from_secs(120));
        assert_eq!(options.max_concurrent_lookups, 4);
        assert_eq!(options.pool_size, 16);
        assert!(options.check().is_ok());
        assert!(!format!("{options:?}").contains("pw@"));
        for hidden in [
            "host=db user=gw password=s3cr3t dbname=app",
            "postgres://gw@db/app?sslmode=disable&password=s3cr3t",
        ] {
            let shown = format!("{:?}", PostgresOptions::new(hidden));
            assert!(
                !shown.contains("s3cr3t") && shown.contains("password=<redacted>"),
                "{shown}"
            );
        }
        let error = toml::from_str::<PostgresOptions>("postgres = \"x\"\nttl = 3").unwrap_err();
        assert!(error.to_string().contains("unknown field `ttl`"), "{error}");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let error = PostgresOptions::new("postgres://db/app")
            .max_concurrent_lookups(0)
            .check()
            .unwrap_err();
        assert_eq!(error.field(), "key_store.max_concurrent_lookups");
        let error = PostgresOptions::new("postgres://db:notaport/app")
            .check()
            .unwrap_err();
        assert_eq!(error.field(), "key_store.postgres");
        let error = PostgresOptions::new("postgres://db/app")
            .ttl(Duration::ZERO)
            .check()
            .unwrap_err();
        assert_eq!(error.field(), "key_store.ttl_ms");
    }
}
