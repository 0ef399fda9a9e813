//! [`PostgresKeyStore`]: keys in PostgreSQL (feature `postgres`), behind a
//! verified-key cache, with changes pushed to every instance by
//! `LISTEN`/`NOTIFY`.
//!
//! The table, its trigger and its index are in the shipped migration
//! ([`MIGRATION`], `migrations/postgres/0001_tollgate_keys.sql` and
//! `0002_tollgate_keys_credits.sql`), applied by
//! [`migrate`] or [`PostgresOptions::migrate`].

mod listen;
mod options;
mod row;
mod usage;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Semaphore, watch};
use tokio_postgres::NoTls;

pub use options::PostgresOptions;

use super::cache::{CachedKeyStore, CachedLookup};
use super::config::KeyConfig;
use super::store::{KeyStore, LookupResult};
use crate::Answer;
use crate::ConfigError;
use crate::clock::Clock;
use crate::context::digest::KeyDigest;
use crate::context::record::KeyStatus;
use crate::error::StoreError;
use usage::Usage;

/// The shipped migrations, in order: the `tollgate_keys` table, its index
/// and the trigger that notifies every change (`0001`), and the keys'
/// `credits` column (`0002`). Safe to apply again.
pub const MIGRATION: &str = concat!(
    include_str!("../../../migrations/postgres/0001_tollgate_keys.sql"),
    "\n",
    include_str!("../../../migrations/postgres/0002_tollgate_keys_credits.sql"),
);

/// The channel the trigger notifies: a key's digest in hexadecimal, or `*`
/// for every key.
pub const CHANNEL: &str = "tollgate_keys";

/// Applies [`MIGRATION`] on `client`, in one transaction, under an advisory
/// lock so that instances starting together apply it one after another.
pub async fn migrate(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    let script = format!("BEGIN; SELECT pg_advisory_xact_lock(7226817016); {MIGRATION}\nCOMMIT;");
    let applied = client.batch_execute(&script).await;
    if applied.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    applied
}

/// Counters of a [`PostgresKeyStore`], since it connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresStats {
    /// Lookups sent to the database (cache misses, one per digest in flight).
    pub queries: u64,
    /// Misses answered `503 upstream_failed` at once: as many lookups were
    /// in flight as allowed.
    pub busy: u64,
    /// The most lookups that were in flight at once.
    pub peak_in_flight: u64,
    /// Notifications received (each drops one key's entry, or all).
    pub notifications: u64,
    /// Times the listener connected again after losing its connection (each
    /// dropped the whole cache).
    pub reconnects: u64,
    /// Whether the listener is connected now.
    pub listening: bool,
    /// Statements that wrote `last_used_at` back.
    pub last_used_writes: u64,
    /// Keys whose `last_used_at` those statements wrote.
    pub last_used_keys: u64,
}

/// One key as `list` shows it: what a person managing keys needs, never the
/// key nor its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredKey {
    /// The key's id.
    pub key_id: String,
    /// Its project.
    pub project: String,
    /// `publishable`, `secret` or `restricted`.
    pub kind: String,
    /// `live`, `test`, or none.
    pub environment: Option<String>,
    /// `active`, `disabled` or `revoked`.
    pub status: String,
    /// Its tier, if any.
    pub tier: Option<String>,
    /// When it was minted.
    pub created_at: SystemTime,
    /// When it was last used, as written back (at most one interval late).
    pub last_used_at: Option<SystemTime>,
    /// When it stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// The credits its row gives it (the uses, and their refill), if any.
    /// What is left of them is counted in the rate store (the gate's
    /// `credits_left` reads it).
    pub credits: Option<crate::context::credits::Credits>,
}

/// Keys in PostgreSQL, looked up by digest through a verified-key cache.
///
/// - **A hit** (a key looked up less than `ttl` ago, or unknown less than
///   `negative_ttl` ago) answers at once ([`Answer::Ready`]), without the
///   database. Known and unknown keys are cached apart, each bounded, so a
///   flood of unknown keys cannot evict the known ones.
/// - **A miss** is one query (`SELECT … WHERE digest = $1`, prepared once
///   per connection); concurrent misses for one digest share it
///   ([`CachedKeyStore`]). At most `max_concurrent_lookups` are in flight:
///   past that a miss is `503 upstream_failed` with `Retry-After: 1` at once
///   rather than a queue. A query that fails or passes `query_timeout` is
///   `502 upstream_failed`.
/// - **Changes** reach every instance at once: each store `LISTEN`s on
///   [`CHANNEL`], and the migration's trigger notifies every insert, change
///   and delete, so the key's entry is dropped when the notification
///   arrives (one round trip after the commit). A listener that loses its
///   connection reconnects with back-off (50 ms doubling, up to
///   `reconnect_max`) and then drops the whole cache, since it may have
///   missed changes; both are logged and counted ([`PostgresStats`]).
/// - **Stale-if-error** (`grace`, off by default): while the database
///   cannot be reached, a known key whose entry expired less than `grace`
///   ago is still answered from it; a key whose change was notified never is.
/// - **Last used**: every key found is marked used; `last_used_at` is written
///   every `last_used_interval` for the keys used since, in one statement,
///   never on a request's path. Writes that fail are tried again at the
///   next interval; dropping the last clone of the store writes what is left.
///
/// ```no_run
/// use tollgate::gate::Gate;
/// use tollgate::key::postgres::{PostgresKeyStore, PostgresOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let options = PostgresOptions::new("postgres://gateway@127.0.0.1/app").migrate(true);
/// let store = PostgresKeyStore::connect(options).await?;
/// let gate = Gate::builder(store).build()?;
/// # let _ = gate; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    cache: CachedKeyStore<Source>,
    core: Arc<Core>,
    /// Dropped with the last clone of the store: stops its tasks.
    _stop: watch::Sender<()>,
}

/// What the cache, the listener and the writer of last-used times share.
struct Core {
    pool: Pool,
    permits: Arc<Semaphore>,
    query_timeout: Duration,
    usage: Usage,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    queries: AtomicU64,
    busy: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    notifications: AtomicU64,
    reconnects: AtomicU64,
    listening: AtomicBool,
    last_used_writes: AtomicU64,
    last_used_keys: AtomicU64,
}

/// The database, as the cache's inner store.
#[derive(Clone)]
pub(crate) struct Source {
    core: Arc<Core>,
}

/// A lookup of the database in flight.
pub(crate) type SourceLookup = Pin<Box<dyn Future<Output = LookupResult> + Send>>;

impl KeyStore for Source {
    type Lookup = SourceLookup;

    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
        let core = Arc::clone(&self.core);
        let Ok(permit) = Arc::clone(&core.permits).try_acquire_owned() else {
            core.stats.busy.fetch_add(1, Ordering::Relaxed);
            return Answer::Ready(Err(StoreError::busy(
                "as many key lookups are in flight as max_concurrent_lookups allows",
            )));
        };
        let digest = *digest;
        Answer::Pending(Box::pin(async move {
            let in_flight = core.stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            core.stats
                .peak_in_flight
                .fetch_max(in_flight, Ordering::Relaxed);
            let result = match tokio::time::timeout(core.query_timeout, core.query(&digest)).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::new(
                    "the key lookup took longer than query_timeout_ms",
                )),
            };
            core.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            result
        }))
    }
}

impl Core {
    async fn query(&self, digest: &KeyDigest) -> LookupResult {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let client = self.pool.get().await.map_err(StoreError::new)?;
        let statement = client
            .prepare_cached(row::SELECT)
            .await
            .map_err(StoreError::new)?;
        let bytes: &[u8] = digest.as_bytes();
        let Some(found) = client
            .query_opt(&statement, &[&bytes])
            .await
            .map_err(StoreError::new)?
        else {
            return Ok(None);
        };
        let record = row::record(&found, *digest).map_err(StoreError::new)?;
        self.usage.touch(digest);
        Ok(Some(Arc::new(record)))
    }
}

impl PostgresKeyStore {
    /// Connects with the system clock: see [`connect_with_clock`](Self::connect_with_clock).
    pub async fn connect(options: PostgresOptions) -> Result<Self, StoreError> {
        Self::connect_with_clock(options, Clock::system()).await
    }

    /// Connects to the database, applies the migration if the options say
    /// so, checks that the table is there, and starts listening; returns
    /// once the listener listens, so that no change after this is missed.
    /// Cache entries expire by `clock`.
    ///
    /// A bad setting, a database that cannot be reached, or a missing table
    /// is an error here, at start-up.
    pub async fn connect_with_clock(
        options: PostgresOptions,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        let config = options.check().map_err(StoreError::new)?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.query_timeout))
            .create_timeout(Some(options.query_timeout))
            .recycle_timeout(Some(options.query_timeout))
            .build()
            .map_err(StoreError::new)?;
        {
            let client = pool.get().await.map_err(|error| {
                StoreError::new(format!(
                    "cannot reach the key database {}: {error}",
                    crate::fields::redact_password(&options.postgres)
                ))
            })?;
            if options.migrate {
                migrate(&client).await.map_err(StoreError::new)?;
            }
            client
                .batch_execute("SELECT 1 FROM tollgate_keys LIMIT 0")
                .await
                .map_err(|error| {
                    StoreError::new(format!(
                        "the table tollgate_keys cannot be read ({error}): apply the migration \
                         (`migrate = true` in [key_store], tollgate::key::postgres::migrate, or \
                         psql -f with migrations/postgres/0001_tollgate_keys.sql, then 0002)"
                    ))
                })?;
        }
        let core = Arc::new(Core {
            pool,
            permits: Arc::new(Semaphore::new(options.max_concurrent_lookups)),
            query_timeout: options.query_timeout,
            usage: Usage::default(),
            stats: Counters::default(),
        });
        let cache = CachedKeyStore::builder(Source {
            core: Arc::clone(&core),
        })
        .capacity(options.capacity)
        .ttl(options.ttl)
        .negative_capacity(options.negative_capacity)
        .negative_ttl(options.negative_ttl)
        .grace(options.grace)
        .clock(clock)
        .build();
        let (stop, stopped) = watch::channel(());
        let (ready, listening) = tokio::sync::oneshot::channel();
        tokio::spawn(listen::listen(
            cache.clone(),
            Arc::clone(&core),
            config,
            options.reconnect_max,
            stopped.clone(),
            ready,
        ));
        match listening.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(StoreError::new("the key listener stopped at start-up")),
        }
        tokio::spawn(usage::write_back(
            Arc::clone(&core),
            options.last_used_interval,
            stopped,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                cache,
                core,
                _stop: stop,
            }),
        })
    }

    /// The counters since it connected.
    pub fn stats(&self) -> PostgresStats {
        let stats = &self.inner.core.stats;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PostgresStats {
            queries: load(&stats.queries),
            busy: load(&stats.busy),
            peak_in_flight: load(&stats.peak_in_flight),
            notifications: load(&stats.notifications),
            reconnects: load(&stats.reconnects),
            listening: stats.listening.load(Ordering::Acquire),
            last_used_writes: load(&stats.last_used_writes),
            last_used_keys: load(&stats.last_used_keys),
        }
    }

    /// How many known keys are cached.
    pub fn cached(&self) -> usize {
        self.inner.cache.len()
    }

    /// How many unknown keys are remembered.
    pub fn cached_unknown(&self) -> usize {
        self.inner.cache.negative_len()
    }

    /// Forgets every cached key (the next lookup of each asks the database).
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// Writes `last_used_at` for the keys used since the last write, now
    /// rather than at the next interval; returns how many.
    pub async fn write_last_used(&self) -> Result<u64, StoreError> {
        self.inner.core.write_last_used().await
    }

    /// Stores a new key under `digest` (its kind from `key.kind`, which is
    /// required; everything else as in a config file's `[[keys]]` entry,
    /// its `key` and `digest` fields unused). A bad entry is an error before
    /// anything is written; an existing digest or key id is an error from
    /// the database.
    pub async fn insert(&self, digest: KeyDigest, key: &KeyConfig) -> Result<(), StoreError> {
        let kind = key.kind.ok_or_else(|| {
            StoreError::new(ConfigError::new(
                format!("keys.{}.kind", key.name),
                "a key stored by digest needs its `kind`",
            ))
        })?;
        let record = key
            .to_record(kind, key.env, |_| true, |_| true)
            .map_err(StoreError::new)?;
        let quotas = serde_json::to_value(&key.quotas).map_err(StoreError::new)?;
        let credits = key
            .credits
            .map(serde_json::to_value)
            .transpose()
            .map_err(StoreError::new)?;
        let body_limit = key
            .body_limit
            .map(i64::try_from)
            .transpose()
            .map_err(StoreError::new)?;
        let client = self.inner.core.pool.get().await.map_err(StoreError::new)?;
        let bytes: &[u8] = digest.as_bytes();
        client
            .execute(
                "INSERT INTO tollgate_keys (digest, key_id, project, kind, environment, status, \
                 scopes, origins, tier, body_limit, quotas, expires_at, credits) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &bytes,
                    &record.key_id(),
                    &record.project(),
                    &kind.as_str(),
                    &record.env().map(|env| env.as_str()),
                    &row::name_of(&record.status()),
                    &key.scopes,
                    &key.origins,
                    &record.tier(),
                    &body_limit,
                    &quotas,
                    &record.expires_at(),
                    &credits,
                ],
            )
            .await
            .map_err(StoreError::new)?;
        Ok(())
    }

    /// Sets the status of the key `key_id` (revoke it, disable it, or make
    /// it active again); returns whether there was such a key. Every
    /// instance hears of it by notification.
    pub async fn set_status(&self, key_id: &str, status: KeyStatus) -> Result<bool, StoreError> {
        let client = self.inner.core.pool.get().await.map_err(StoreError::new)?;
        let changed = client
            .execute(
                "UPDATE tollgate_keys SET status = $2 WHERE key_id = $1",
                &[&key_id, &row::name_of(&status)],
            )
            .await
            .map_err(StoreError::new)?;
        Ok(changed > 0)
    }

    /// Every key, by key id.
    pub async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        let client = self.inner.core.pool.get().await.map_err(StoreError::new)?;
        let rows = client
            .query(
                "SELECT key_id, project, kind, environment, status, tier, created_at, \
                 last_used_at, expires_at, credits FROM tollgate_keys ORDER BY key_id",
                &[],
            )
            .await
            .map_err(StoreError::new)?;
        rows.iter()
            .map(|row| {
                let credits: Option<serde_json::Value> = row.try_get(9).map_err(StoreError::new)?;
                let credits = credits
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|error| StoreError::new(format!("column `credits`: {error}")))?;
                let get = |error: tokio_postgres::Error| StoreError::new(error);
                Ok(StoredKey {
                    key_id: row.try_get(0).map_err(get)?,
                    project: row.try_get(1).map_err(get)?,
                    kind: row.try_get(2).map_err(get)?,
                    environment: row.try_get(3).map_err(get)?,
                    status: row.try_get(4).map_err(get)?,
                    tier: row.try_get(5).map_err(get)?,
                    created_at: row.try_get(6).map_err(get)?,
                    last_used_at: row.try_get(7).map_err(get)?,
                    expires_at: row.try_get(8).map_err(get)?,
                    credits,
                })
            })
            .collect()
    }
}

impl KeyStore for PostgresKeyStore {
    type Lookup = CachedLookup<SourceLookup>;

    #[inline]
    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
        let answer = self.inner.cache.lookup(digest);
        if let Answer::Ready(Ok(Some(_))) = &answer {
            self.inner.core.usage.touch(digest);
        }
        answer
    }

    #[inline]
    fn generation(&self) -> Option<u64> {
        self.inner.cache.generation()
    }
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("cached", &self.cached())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
