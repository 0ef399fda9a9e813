//! The approximate mode's decision (feature `redis`) beside the in-memory
//! store's, on the same buckets: 1 000 projects under a generous quota, in
//! turn. The approximate store decides in memory by its view of the fleet
//! and notes what was spent for the next batch; a `redis-server` of the
//! bench's own on loopback receives the batches (every 100 ms, the
//! default) while the bench runs.
//!
//! `cargo bench --features redis --bench approximate`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::Answer;
use tollgate::rate_limit::redis::{Mode, RedisOptions, RedisRateStore};
use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
use tollgate::rate_limit::{InMemoryRateStore, Quota, RateLimit};

#[path = "support/redis_server.rs"]
mod redis_server;

fn decide<St: RateStore>(store: &St, project: &str, limits: &RouteLimits) -> bool {
    let bucket = Bucket::new(PartitionKey::project(project), "POST /v1/track");
    match store.decide(&bucket, limits) {
        Answer::Ready(decision) => decision.unwrap().is_allowed(),
        Answer::Pending(_) => panic!("a decision waited"),
    }
}

fn bench_approximate(c: &mut Criterion) {
    let server = redis_server::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let approximate = runtime.block_on(async {
        RedisRateStore::connect(RedisOptions::new(server.url()).mode(Mode::Approximate))
            .await
            .unwrap()
    });
    let memory = InMemoryRateStore::new();
    let limits = RouteLimits::new(&RateLimit::new(
        Quota::per_second(1_000_000_000).burst(1_000_000_000),
    ))
    .unwrap();
    let projects: Vec<String> = (0..1_000).map(|i| format!("project_{i}")).collect();

    let mut group = c.benchmark_group("approximate");
    let mut i = 0;
    group.bench_function("in_memory", |b| {
        b.iter(|| {
            i = (i + 1) % projects.len();
            black_box(decide(&memory, &projects[i], &limits))
        })
    });
    let mut i = 0;
    group.bench_function("approximate", |b| {
        b.iter(|| {
            i = (i + 1) % projects.len();
            black_box(decide(&approximate, &projects[i], &limits))
        })
    });
    group.finish();
    let stats = approximate.stats();
    println!(
        "approximate: {} decisions, {} batches carrying {} buckets to Redis",
        stats.approximate_decisions, stats.batches, stats.synced_buckets
    );
    drop(approximate);
    drop(runtime);
    drop(server);
}

criterion_group!(benches, bench_approximate);
criterion_main!(benches);
