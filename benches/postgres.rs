//! The Postgres key store (feature `postgres`) against the in-memory store,
//! with a PostgreSQL server of the bench's own on loopback (started as the
//! tests start theirs: `benches/support/postgres_server.rs`).
//!
//! Group `postgres`:
//! - `memory_gate`, `postgres_gate_cached`: the `stack` bench's
//!   `tollgate_gate` case (the same routes, 10 000 keys over 1 000 projects
//!   in a shuffled order) over the in-memory store and over the Postgres
//!   store once every key is cached, in one run.
//! - `miss`: one lookup of a stored key that is not cached (the cache is
//!   cleared before each, untimed): the pool's connection, the prepared
//!   `SELECT`, the row read into a record.
//!
//! Printed beside criterion's figures (its estimates are of means and
//! medians): the median and p99 of 2 000 misses, and of the invalidation
//! delay — from an `UPDATE` committed on another connection to the store
//! having dropped that key's entry on the notification — over 500 changes.
//!
//! `cargo bench --features postgres --bench postgres`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::StatusCode;
use tollgate::Answer;
use tollgate::gate::Gate;
use tollgate::key::postgres::{PostgresKeyStore, PostgresOptions};
use tollgate::key::store::KeyStore;
use tollgate::key::{KeyConfig, KeyDigest, KeyHasher, KeyKind};
use tower::{Layer, ServiceExt};

#[macro_use]
#[allow(unused_macros)]
#[path = "support/stacks.rs"]
mod stacks;
#[path = "support/postgres_server.rs"]
mod postgres_server;

use postgres_server::PostgresServer;
use stacks::{KEYS, PROJECTS, poll_once, track};

async fn lookup(store: &PostgresKeyStore, digest: &KeyDigest) {
    let found = match store.lookup(digest) {
        Answer::Ready(result) => result,
        Answer::Pending(future) => future.await,
    };
    assert!(found.unwrap().is_some());
}

/// The median and 99th percentile of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.5), at(0.99))
}

fn bench_postgres(c: &mut Criterion) {
    let server = PostgresServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let f = stacks::fixture();
    let hasher = KeyHasher::with_pepper(b"bench pepper");
    let digests: Vec<KeyDigest> = f.keys.iter().map(|key| hasher.digest(key)).collect();
    let store = runtime.block_on(async {
        // Entries kept for the whole run: the cached case never misses.
        let options = PostgresOptions::new(server.url())
            .migrate(true)
            .ttl(Duration::from_secs(3600));
        let store = PostgresKeyStore::connect(options).await.unwrap();
        for (i, digest) in digests.iter().enumerate() {
            let mut entry = KeyConfig::default();
            entry.name = format!("key_{i}");
            entry.project = format!("project_{}", i % PROJECTS);
            entry.kind = Some(KeyKind::Secret);
            store.insert(*digest, &entry).await.unwrap();
        }
        store
    });
    let gate = stacks::routes(Gate::builder(store.clone()).hasher(hasher), false)
        .build()
        .unwrap();
    let postgres_gate = gate.layer().layer(stacks::handler());
    // Every key looked up: cached from here on. (A lookup in flight while
    // a notification of the inserts arrives is answered but not
    // remembered, so the warm-up goes round until every key is.)
    runtime.block_on(async {
        while store.stats().notifications < KEYS as u64 {
            tokio::task::yield_now().await;
        }
        for _ in 0..5 {
            for key in &f.keys {
                let response = postgres_gate.clone().oneshot(track(key)).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
            if store.cached() == KEYS {
                break;
            }
        }
    });
    assert_eq!(store.cached(), KEYS);

    let mut group = c.benchmark_group("postgres");
    let memory_gate = f.gate.layer().layer(stacks::handler());
    case!(group, "memory_gate", memory_gate, f.keys, track);
    case!(group, "postgres_gate_cached", postgres_gate, f.keys, track);
    let mut i = 0;
    group.bench_function("miss", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let store = store.clone();
            let digests = digests.clone();
            i += 1;
            let start = i;
            async move {
                let mut total = Duration::ZERO;
                for n in 0..iterations as usize {
                    store.clear_cache();
                    let digest = &digests[(start + n) % KEYS];
                    let started = Instant::now();
                    lookup(&store, black_box(digest)).await;
                    total += started.elapsed();
                }
                total
            }
        })
    });
    group.finish();

    runtime.block_on(async {
        let mut misses = Vec::with_capacity(2_000);
        for digest in digests.iter().take(2_000) {
            store.clear_cache();
            let started = Instant::now();
            lookup(&store, digest).await;
            misses.push(started.elapsed());
        }
        let (median, p99) = percentiles(misses);
        println!("postgres/miss: 2 000 misses: median {median:?}, p99 {p99:?}");

        let sql = server.sql().await;
        let mut delays = Vec::with_capacity(500);
        for round in 0..500 {
            let status = if round % 2 == 0 { "disabled" } else { "active" };
            let before = store.stats().notifications;
            let started = Instant::now();
            sql.execute(
                "UPDATE tollgate_keys SET status = $1 WHERE key_id = 'key_0'",
                &[&status],
            )
            .await
            .unwrap();
            while store.stats().notifications == before {
                tokio::task::yield_now().await;
            }
            delays.push(started.elapsed());
        }
        let (median, p99) = percentiles(delays);
        println!(
            "postgres/invalidation: 500 changes, commit to the entry dropped: median {median:?}, \
             p99 {p99:?}"
        );
    });
    drop(store);
    drop(server);
}

criterion_group!(benches, bench_postgres);
criterion_main!(benches);
