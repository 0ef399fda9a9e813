//! Decisions per second and latency percentiles of the Redis rate store
//! against a `redis-server` it starts on a free loopback port, with and
//! without the denial cache, beside the in-memory store.
//!
//! ```text
//! cargo bench --features redis --bench redis [-- --seconds 5 --tasks 32]
//! ```
//!
//! Not criterion: what matters here is throughput under concurrency and the
//! tail, so each run drives `--tasks` concurrent callers for `--seconds`
//! and records every decision's latency. Two workloads:
//! - `admitted`: 1 000 projects well under their limits; every decision is
//!   a Redis call.
//! - `abusive`: 90 % of decisions come from one project far over its limit
//!   (the rest as above); the denial cache answers most of them locally.
//!
//! Then `admitted` once more on a three-master Redis Cluster on loopback
//! (`benches/support/redis_cluster.rs`), beside the single node; and two
//! instances in approximate mode (syncing every 100 ms) on one tight quota
//! per project for the whole run: what the fleet admitted beside what an
//! exact store would have (burst + rate × time) and the stated bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::Answer;
use tollgate::rate_limit::redis::{Mode, RedisOptions, RedisRateStore};
use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
use tollgate::rate_limit::{InMemoryRateStore, Quota, RateLimit};

#[path = "support/redis_cluster.rs"]
mod redis_cluster;
#[path = "support/redis_server.rs"]
mod redis_server;

struct Args {
    seconds: u64,
    tasks: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 5,
        tasks: 32,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--seconds" => args.seconds = given.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--tasks" => args.tasks = given.next().and_then(|v| v.parse().ok()).unwrap_or(32),
            _ => {} // cargo bench passes `--bench`
        }
    }
    args
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Admitted,
    Abusive,
}

struct Outcome {
    decisions: u64,
    allowed: u64,
    latencies: Vec<u32>,
    elapsed: Duration,
}

async fn drive<St: RateStore>(
    store: Arc<St>,
    workload: Workload,
    tasks: usize,
    seconds: u64,
) -> Outcome {
    let generous =
        Arc::new(RouteLimits::new(&RateLimit::new(Quota::per_second(1_000_000))).unwrap());
    let tight = Arc::new(RouteLimits::new(&RateLimit::new(Quota::per_minute(10))).unwrap());
    let projects: Arc<Vec<String>> = Arc::new((0..1_000).map(|i| format!("project_{i}")).collect());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (store, generous, tight, projects) = (
            store.clone(),
            generous.clone(),
            tight.clone(),
            projects.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let (mut decisions, mut allowed) = (0u64, 0u64);
            let mut i = task;
            while Instant::now() < deadline {
                i = i.wrapping_mul(31).wrapping_add(7);
                let abusive = workload == Workload::Abusive && i % 10 != 0;
                let (project, limits) = if abusive {
                    ("abuser", &tight)
                } else {
                    (projects[i % projects.len()].as_str(), &generous)
                };
                let bucket = Bucket::new(PartitionKey::project(project), "POST /v1/track");
                let begun = Instant::now();
                let decision = match store.decide(&bucket, limits) {
                    Answer::Ready(decision) => decision,
                    Answer::Pending(future) => future.await,
                };
                latencies.push(u32::try_from(begun.elapsed().as_nanos()).unwrap_or(u32::MAX));
                decisions += 1;
                allowed += u64::from(decision.map(|d| d.is_allowed()).unwrap_or(false));
            }
            (decisions, allowed, latencies)
        }));
    }
    let mut outcome = Outcome {
        decisions: 0,
        allowed: 0,
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for handle in handles {
        let (decisions, allowed, latencies) = handle.await.unwrap();
        outcome.decisions += decisions;
        outcome.allowed += allowed;
        outcome.latencies.extend(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn report(name: &str, outcome: &mut Outcome) {
    outcome.latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((outcome.latencies.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_nanos(u64::from(outcome.latencies[index]))
    };
    println!(
        "{name:<34} {:>10.0} decisions/s   p50 {:>10.1?}   p99 {:>10.1?}   admitted {:>5.1} %",
        outcome.decisions as f64 / outcome.elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        100.0 * outcome.allowed as f64 / outcome.decisions.max(1) as f64,
    );
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = redis_server::RedisServer::start();
        let url = server.url();
        println!(
            "{} concurrent callers, {} s per run, redis-server on loopback, system clock",
            args.tasks, args.seconds
        );
        for workload in [Workload::Admitted, Workload::Abusive] {
            let label = match workload {
                Workload::Admitted => "admitted",
                Workload::Abusive => "abusive",
            };
            for (name, cache) in [
                ("redis, denial cache", 100_000),
                ("redis, no denial cache", 0),
            ] {
                let store = RedisRateStore::connect(
                    RedisOptions::new(&url)
                        .prefix(format!("bench:{label}:{cache}:"))
                        .denial_cache(cache),
                )
                .await
                .expect("connect");
                let mut outcome =
                    drive(Arc::new(store.clone()), workload, args.tasks, args.seconds).await;
                report(&format!("{label:<9} {name}"), &mut outcome);
                let stats = store.stats();
                println!(
                    "{:<34} redis calls {}, answered locally {}, failures {}",
                    "", stats.calls, stats.cached_denials, stats.failures
                );
            }
            let mut outcome = drive(
                Arc::new(InMemoryRateStore::new()),
                workload,
                args.tasks,
                args.seconds,
            )
            .await;
            report(&format!("{label:<9} in memory"), &mut outcome);
        }
        let cluster = redis_cluster::Cluster::start(3, 0);
        let store = RedisRateStore::connect(
            RedisOptions::cluster(cluster.urls())
                .prefix("bench:cluster:")
                .denial_cache(0),
        )
        .await
        .expect("connect to the cluster");
        let mut outcome = drive(
            Arc::new(store.clone()),
            Workload::Admitted,
            args.tasks,
            args.seconds,
        )
        .await;
        report("admitted  redis cluster (3 masters)", &mut outcome);
        let stats = store.stats();
        println!(
            "{:<34} redis calls {}, failures {}",
            "", stats.calls, stats.failures
        );
        approximate_fleet(&url, args.tasks, args.seconds).await;
    });
}

/// Two approximate instances, `tasks` callers each, on 10 projects limited
/// to 1 000 a second (burst 1 000) for `seconds`: the fleet's admissions
/// per project beside an exact store's allowance and the stated bound.
async fn approximate_fleet(url: &str, tasks: usize, seconds: u64) {
    const RATE: u64 = 1_000;
    const PROJECTS: usize = 10;
    let interval = Duration::from_millis(100);
    let mut stores = Vec::new();
    for _ in 0..2 {
        stores.push(
            RedisRateStore::connect(
                RedisOptions::new(url)
                    .prefix("bench:approximate:")
                    .mode(Mode::Approximate)
                    .sync_interval(interval),
            )
            .await
            .expect("connect"),
        );
    }
    let limits =
        Arc::new(RouteLimits::new(&RateLimit::new(Quota::per_second(RATE).burst(RATE))).unwrap());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..2 * tasks {
        let (store, limits) = (stores[task % 2].clone(), limits.clone());
        handles.push(tokio::spawn(async move {
            let mut admitted = [0u64; PROJECTS];
            let mut i = task;
            while Instant::now() < deadline {
                i = i.wrapping_add(1);
                let project = format!("project_{}", i % PROJECTS);
                let bucket = Bucket::new(PartitionKey::project(&project), "POST /v1/track");
                let allowed = match store.decide(&bucket, &limits) {
                    Answer::Ready(decision) => decision.map(|d| d.is_allowed()).unwrap_or(false),
                    Answer::Pending(future) => {
                        future.await.map(|d| d.is_allowed()).unwrap_or(false)
                    }
                };
                admitted[i % PROJECTS] += u64::from(allowed);
                tokio::task::yield_now().await;
            }
            admitted
        }));
    }
    let mut admitted = [0u64; PROJECTS];
    for handle in handles {
        for (total, own) in admitted.iter_mut().zip(handle.await.unwrap()) {
            *total += own;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let exact = RATE as f64 + RATE as f64 * elapsed;
    // (instances − 1) × (burst + rate × (interval + a round trip, taken
    // here as 1 ms)).
    let bound = RATE as f64 + RATE as f64 * (interval.as_secs_f64() + 0.001);
    let worst = admitted.iter().copied().max().unwrap_or(0) as f64;
    let mean = admitted.iter().sum::<u64>() as f64 / PROJECTS as f64;
    println!(
        "approximate, 2 instances x {tasks} callers, {RATE}/s burst {RATE}, {PROJECTS} projects, \
         {elapsed:.1} s: admitted per project mean {mean:.0}, most {worst:.0}; exact allowance \
         {exact:.0}; over it by at most {:.0} ({:.1} % of the bound {bound:.0})",
        worst - exact,
        100.0 * (worst - exact).max(0.0) / bound
    );
    for store in &stores {
        let stats = store.stats();
        println!(
            "{:<34} decisions {}, batches {}, buckets synced {}, failures {}",
            "", stats.approximate_decisions, stats.batches, stats.synced_buckets, stats.failures
        );
    }
}
