//! Keyed rate-limit decisions: tollgate's in-memory store against governor's
//! keyed limiter, side by side in one run.
//!
//! Both get the same 10 000 keys (`project_0` … `project_9999`, visited in a
//! shuffled order), the same quota (50 per second, burst 200) and each its
//! default real clock: tollgate's `Clock::system()` and governor's
//! `DefaultClock`, both reading quanta's clock. Group `clock` measures one
//! reading of tollgate's clocks against `std::time::Instant`.
//!
//! - `tollgate_keyed`: `InMemoryRateStore::decide_now` for a project's
//!   bucket on one route, the partition's hash made once per key as a
//!   `KeyRecord` does when it is loaded — the layer's own hot path.
//! - `tollgate_keyed_hash_each_call`: the same, hashing the key's text on
//!   every call, as governor does.
//! - `governor_keyed`: `DefaultKeyedRateLimiter<String>::check_key`.
//! - `*_2threads`: two threads at once, each making one decision per
//!   iteration on its own half of the keys; the time is wall-clock per
//!   iteration (so two decisions).
//!
//! Group `window`: the same 10 000 projects on one route with the bucket
//! alone, a daily calendar window alone, the bucket with a daily window
//! stacked on it (limit high enough that every decision admits), and two
//! stacked buckets for reference.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use tollgate::rate_limit::store::{Bucket, PartitionKey, RouteLimits};
use tollgate::rate_limit::{InMemoryRateStore, Quota, RateLimit};
use tollgate::route::Routes;

const KEYS: usize = 10_000;

fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..KEYS).map(|i| format!("project_{i}")).collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..keys.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        keys.swap(i, (state % (i as u64 + 1)) as usize);
    }
    keys
}

fn tollgate_limits() -> RouteLimits {
    RouteLimits::new(&RateLimit::new(Quota::per_second(50).burst(200))).unwrap()
}

fn governor_quota() -> GovernorQuota {
    GovernorQuota::per_second(NonZeroU32::new(50).unwrap())
        .allow_burst(NonZeroU32::new(200).unwrap())
}

/// Runs `work(thread, iters)` on two threads at once; the wall time.
fn two_threads(iters: u64, work: impl Fn(usize, u64) + Send + Sync + 'static) -> Duration {
    let work = Arc::new(work);
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..2)
        .map(|thread| {
            let work = Arc::clone(&work);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                work(thread, iters);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().unwrap();
    }
    start.elapsed()
}

fn bench_rate_limit(c: &mut Criterion) {
    let keys = Arc::new(keys());
    let routes = Routes::builder().route("POST /v1/track").build().unwrap();
    let route = routes.get("POST /v1/track").unwrap().clone();
    let limits = Arc::new(tollgate_limits());
    let mut group = c.benchmark_group("rate_limit");

    // tollgate, partition hashes made once per key (as KeyRecord does).
    let store = InMemoryRateStore::new();
    let partitions: Arc<Vec<PartitionKey<'static>>> = Arc::new(
        keys.iter()
            .map(|key| PartitionKey::project(Box::leak(key.clone().into_boxed_str())))
            .collect(),
    );
    let mut i = 0;
    group.bench_function("tollgate_keyed", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let bucket = Bucket::on_route(partitions[i].clone(), &route);
            black_box(store.decide_now(&bucket, &limits).is_allowed())
        })
    });

    let store = InMemoryRateStore::new();
    let mut i = 0;
    group.bench_function("tollgate_keyed_hash_each_call", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let bucket = Bucket::on_route(PartitionKey::project(&keys[i]), &route);
            black_box(store.decide_now(&bucket, &limits).is_allowed())
        })
    });

    let governor = RateLimiter::keyed(governor_quota());
    let mut i = 0;
    group.bench_function("governor_keyed", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(governor.check_key(&keys[i]).is_ok())
        })
    });

    let store = InMemoryRateStore::new();
    group.bench_function("tollgate_keyed_2threads", |b| {
        b.iter_custom(|iters| {
            let (store, partitions, route, limits) = (
                store.clone(),
                Arc::clone(&partitions),
                route.clone(),
                Arc::clone(&limits),
            );
            two_threads(iters, move |thread, iters| {
                let mut i = thread * KEYS / 2;
                for _ in 0..iters {
                    i = if i + 1 == (thread + 1) * KEYS / 2 {
                        thread * KEYS / 2
                    } else {
                        i + 1
                    };
                    let bucket = Bucket::on_route(partitions[i].clone(), &route);
                    black_box(store.decide_now(&bucket, &limits).is_allowed());
                }
            })
        })
    });

    let governor = Arc::new(RateLimiter::keyed(governor_quota()));
    group.bench_function("governor_keyed_2threads", |b| {
        b.iter_custom(|iters| {
            let (governor, keys) = (Arc::clone(&governor), Arc::clone(&keys));
            two_threads(iters, move |thread, iters| {
                let mut i = thread * KEYS / 2;
                for _ in 0..iters {
                    i = if i + 1 == (thread + 1) * KEYS / 2 {
                        thread * KEYS / 2
                    } else {
                        i + 1
                    };
                    black_box(governor.check_key(&keys[i]).is_ok());
                }
            })
        })
    });
    group.finish();
}

/// A bucket, a daily window, and both stacked, on the same keys.
fn bench_window(c: &mut Criterion) {
    use tollgate::rate_limit::Calendar;
    let keys = keys();
    let routes = Routes::builder().route("POST /v1/track").build().unwrap();
    let route = routes.get("POST /v1/track").unwrap().clone();
    let partitions: Vec<PartitionKey<'static>> = keys
        .iter()
        .map(|key| PartitionKey::project(Box::leak(key.clone().into_boxed_str())))
        .collect();
    let bucket = Quota::per_second(50).burst(200);
    let window = Quota::per_calendar(u64::from(u32::MAX), Calendar::Day);
    let cases = [
        ("bucket_alone", vec![bucket.clone()]),
        ("daily_window_alone", vec![window.clone()]),
        ("bucket_and_daily_window", vec![bucket.clone(), window]),
        (
            "two_buckets",
            vec![bucket.clone(), Quota::per_minute(3000).burst(200)],
        ),
    ];
    let mut group = c.benchmark_group("window");
    for (name, quotas) in cases {
        let limits = RouteLimits::new(&RateLimit::stacked(quotas)).unwrap();
        let store = InMemoryRateStore::new();
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                let bucket = Bucket::on_route(partitions[i].clone(), &route);
                black_box(store.decide_now(&bucket, &limits).is_allowed())
            })
        });
    }
    group.finish();
}

/// What one reading of each clock costs.
fn bench_clock(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock");
    let system = tollgate::clock::Clock::system();
    group.bench_function("tollgate_system_now", |b| {
        b.iter(|| black_box(system.now()))
    });
    let origin = Instant::now();
    group.bench_function("std_instant_elapsed", |b| {
        b.iter(|| black_box(origin.elapsed()))
    });
    let fake = tollgate::clock::FakeClock::new().clock();
    group.bench_function("tollgate_fake_now", |b| b.iter(|| black_box(fake.now())));
    group.finish();
}

criterion_group!(benches, bench_rate_limit, bench_window, bench_clock);
criterion_main!(benches);
