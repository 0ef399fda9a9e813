//! The `metrics` feature: what the gate counts, through a real recorder,
//! and the demo's Prometheus endpoint scraped over a socket.
//!
//! `cargo test --features metrics --test metrics`
#![cfg(feature = "metrics")]

#[path = "it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::demo::Gateway;
use common::fixture::*;
use common::{SlowStore, empty, post, read_reply, send};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::rate_limit::Quota;
use tower::ServiceBuilder;

/// Every metric recorded, as `name{label=value,…}` → value.
fn snapshot(snapshotter: &metrics_util::debugging::Snapshotter) -> BTreeMap<String, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn counter(metrics: &BTreeMap<String, DebugValue>, key: &str) -> u64 {
    match metrics.get(key) {
        Some(DebugValue::Counter(value)) => *value,
        other => panic!("{key}: {other:?} in {:#?}", metrics.keys()),
    }
}

const ROUTES: &str = r#"
[[routes]]
route = "POST /v1/track"
quotas = [{ rate = 5, per = "minute" }]

[[routes]]
route = "GET /v1/flags"
quotas = [{ rate = 1, per = "minute", name = "flags" }]
shadow = ["rate_limit"]
"#;

/// One test: the recorder is global to the process, and a snapshot
/// empties it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_counts_what_it_decided() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let keys = TestKeys::new();
    let gate = from_toml(&keys, ROUTES, &FakeClock::new());
    let client = Client(start(&gate).await);
    let with_key = |method: &str, path: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", client.0))
            .header("authorization", format!("Bearer {}", keys.secret.key()))
    };
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            client
                .send(with_key("POST", "/v1/track"))
                .await
                .status
                .as_u16(),
        );
    }
    statuses.push(
        client
            .send(http::Request::post(format!("http://{}/v1/track", client.0)))
            .await
            .status
            .as_u16(),
    );
    for _ in 0..3 {
        statuses.push(
            client
                .send(with_key("GET", "/v1/flags"))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429, 401, 200, 200, 200]
    );

    // A key store that has to wait, and one that fails.
    let slow = Gate::builder(SlowStore {
        inner: keys.store(),
        delay: Duration::from_millis(2),
    })
    .hasher(hasher())
    .route(
        "GET /slow",
        RoutePolicy::new().quota(Quota::per_second(100)),
    )
    .build()
    .unwrap();
    let failing = Gate::builder(common::FailingStore)
        .hasher(hasher())
        .route("GET /failing", RoutePolicy::new())
        .build()
        .unwrap();
    let handler = common::Handler::default();
    let answer = send(
        ServiceBuilder::new()
            .layer(slow.layer())
            .service(handler.gated()),
        empty(
            http::Request::get("/slow")
                .header("authorization", format!("Bearer {}", keys.secret.key())),
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    let answer = send(
        ServiceBuilder::new()
            .layer(failing.layer())
            .service(handler.gated()),
        empty(
            http::Request::get("/failing")
                .header("authorization", format!("Bearer {}", keys.secret.key())),
        ),
    )
    .await;
    assert_eq!(answer.status, 502);

    let metrics = snapshot(&snapshotter);
    let requests = |route: &str, outcome: &str, code: &str| {
        counter(
            &metrics,
            &format!("tollgate_requests_total{{route={route},outcome={outcome},code={code}}}"),
        )
    };
    assert_eq!(requests("POST /v1/track", "allowed", ""), 5);
    assert_eq!(requests("POST /v1/track", "rejected", "rate_limited"), 2);
    assert_eq!(requests("POST /v1/track", "rejected", "missing_api_key"), 1);
    assert_eq!(requests("GET /v1/flags", "allowed", ""), 1);
    assert_eq!(requests("GET /v1/flags", "shadow", "rate_limited"), 2);
    assert_eq!(requests("GET /slow", "allowed", ""), 1);
    assert_eq!(requests("GET /failing", "rejected", "upstream_failed"), 1);
    // Admitted with at most 20 % of the burst left: the 4th and 5th of
    // five, and the one request a minute on `flags`.
    assert_eq!(
        counter(
            &metrics,
            "tollgate_rate_limit_near_limit_total{route=POST /v1/track,policy=POST /v1/track}"
        ),
        2
    );
    assert_eq!(
        counter(
            &metrics,
            "tollgate_rate_limit_near_limit_total{route=GET /v1/flags,policy=flags}"
        ),
        1
    );
    assert_eq!(
        counter(&metrics, "tollgate_store_failures_total{store=key}"),
        1
    );
    match &metrics["tollgate_store_duration_seconds{store=key}"] {
        DebugValue::Histogram(values) => {
            assert_eq!(values.len(), 1);
            assert!(values[0].0 > 0.0);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(metrics["tollgate_rate_limit_buckets{}"], DebugValue::Gauge(live) if live.0 >= 1.0),
        "{:?}",
        metrics["tollgate_rate_limit_buckets{}"]
    );
    // No label carries a key, a digest, a path or the project.
    let digest = hasher().digest(keys.secret.key()).to_hex();
    for name in metrics.keys() {
        for secret in [keys.secret.key(), digest.as_str(), "acme", "project="] {
            assert!(!name.contains(secret), "{name}");
        }
    }
    // The Redis rate store's modes (with the `redis` feature).
    #[cfg(feature = "redis")]
    redis_modes(&snapshotter).await;
}

/// The demo serves the Prometheus text format on its own listener; the
/// counts there are the requests sent.
#[tokio::test]
async fn the_demo_serves_its_metrics_to_a_scraper() {
    let dir = std::env::temp_dir().join(format!("tollgate-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = hasher().mint(tollgate::key::KeyKind::Secret, None).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "pepper = \"{PEPPER}\"\n{ROUTES}\n[[keys]]\nname = \"server\"\nkey = \"{}\"\nproject = \"demo\"\n",
            server.key()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(
        "",
        &format!("--config {} --metrics-addr 127.0.0.1:0", config.display()),
    );
    let metrics_addr = gateway
        .metrics
        .expect("the gateway printed its metrics address");
    let mut stream = tokio::net::TcpStream::connect(gateway.address)
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for key in [Some(server.key()); 6].into_iter().chain([None, None]) {
        post(&mut stream, "/v1/track", key, b"{}", Duration::ZERO).await;
        statuses.push(read_reply(&mut stream).await.unwrap().status);
    }
    assert_eq!(statuses, [202, 202, 202, 202, 202, 429, 401, 401]);

    let mut scrape = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut scrape,
        b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let reply = read_reply(&mut scrape).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.head.contains("text/plain"), "{}", reply.head);
    let value = |outcome: &str, code: &str| -> f64 {
        reply
            .body
            .lines()
            .find(|line| {
                line.starts_with("tollgate_requests_total{")
                    && line.contains("route=\"POST /v1/track\"")
                    && line.contains(&format!("outcome=\"{outcome}\""))
                    && line.contains(&format!("code=\"{code}\""))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{outcome} {code} in\n{}", reply.body))
    };
    assert_eq!(value("allowed", ""), 5.0);
    assert_eq!(value("rejected", "rate_limited"), 1.0);
    assert_eq!(value("rejected", "missing_api_key"), 2.0);
    assert!(
        reply.body.contains("tollgate_rate_limit_buckets"),
        "{}",
        reply.body
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// How the Redis rate store decided, counted by mode: round trips, the
/// denial cache, the local share while Redis is away; its switches; the
/// time spent on the local share.
#[cfg(feature = "redis")]
#[path = "../benches/support/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
async fn redis_modes(snapshotter: &metrics_util::debugging::Snapshotter) {
    use redis_server::RedisServer;
    use tollgate::Answer;
    use tollgate::rate_limit::redis::{FailureMode, RedisOptions, RedisRateStore};
    use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
    use tollgate::rate_limit::{Quota, RateLimit};

    let server = RedisServer::start();
    let port = server.port;
    let fake = tollgate::clock::FakeClock::new();
    let store = RedisRateStore::connect(
        RedisOptions::new(server.url())
            .timeout(Duration::from_millis(100))
            .on_failure(FailureMode::Local)
            .instances(2),
    )
    .await
    .unwrap()
    .with_clock(fake.clock());
    let limits = RouteLimits::new(&RateLimit::new(Quota::per_day(4).burst(4))).unwrap();
    let decide = async |project: &str| {
        let bucket = Bucket::new(PartitionKey::project(project), "POST /v1/track");
        match store.decide(&bucket, &limits) {
            Answer::Ready(decision) => decision.unwrap(),
            Answer::Pending(future) => future.await.unwrap(),
        }
    };
    // 4 admitted and 1 refused by Redis, then 1 refused from the cache.
    for _ in 0..5 {
        decide("acme").await;
    }
    assert!(!decide("acme").await.is_allowed());
    drop(server);
    // The local share (another project: acme's refusal is remembered): 2
    // of the 4.
    let mut admitted = 0;
    for _ in 0..3 {
        admitted += usize::from(decide("beta").await.is_allowed());
    }
    assert_eq!(admitted, 2);
    let server = RedisServer::on(port);
    while store.stats().degraded {
        fake.advance(Duration::from_secs(1));
        decide("beta").await;
    }
    // An approximate store's sync: one batch, one round trip per bucket.
    let approximate = RedisRateStore::connect(
        RedisOptions::new(server.url()).mode(tollgate::rate_limit::redis::Mode::Approximate),
    )
    .await
    .unwrap();
    for project in ["gamma", "delta"] {
        let bucket = Bucket::new(PartitionKey::project(project), "POST /v1/track");
        assert!(matches!(
            approximate.decide(&bucket, &limits),
            Answer::Ready(Ok(_))
        ));
    }
    assert_eq!(approximate.sync().await.unwrap(), 2);
    let metrics = snapshot(snapshotter);
    let decisions = |mode: &str| {
        counter(
            &metrics,
            &format!("tollgate_rate_store_decisions_total{{mode={mode}}}"),
        )
    };
    assert!(decisions("redis") >= 6, "{metrics:#?}");
    assert_eq!(decisions("denial_cache"), 1);
    assert!(decisions("local") >= 3);
    assert_eq!(
        counter(&metrics, "tollgate_rate_store_switches_total{to=local}"),
        1
    );
    assert_eq!(
        counter(&metrics, "tollgate_rate_store_switches_total{to=redis}"),
        1
    );
    // Round trips: each decision Redis made, the failed ones (one per
    // retry interval while it was away), the two synced buckets.
    let ok = counter(&metrics, "tollgate_rate_store_round_trips_total{result=ok}");
    let failed = counter(
        &metrics,
        "tollgate_rate_store_round_trips_total{result=failed}",
    );
    assert_eq!(ok, decisions("redis") + 2, "{metrics:#?}");
    assert!(failed >= 1, "{metrics:#?}");
    assert!(
        failed < decisions("local"),
        "skipped while it failed: {metrics:#?}"
    );
    assert_eq!(counter(&metrics, "tollgate_rate_store_batches_total{}"), 1);
    match metrics.get("tollgate_rate_store_degraded_seconds{}") {
        Some(DebugValue::Gauge(seconds)) => assert!(seconds.into_inner() > 0.0),
        other => panic!("{other:?}"),
    }
    drop(server);
}
