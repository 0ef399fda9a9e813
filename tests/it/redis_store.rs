//! The Redis rate store against a real `redis-server` that each test starts
//! on a free loopback port: limits shared by two gates on two sockets,
//! stacked quotas decided atomically, TTLs, the script cache, the denial
//! cache, and Redis dying and coming back in both failure modes.
//!
//! Needs `redis-server` on the PATH (`.ci/run` installs it) and the `redis`
//! feature: `cargo test --features redis --test it redis_store`.

use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tollgate::body_limit::LimitedBody;
use tollgate::clock::FakeClock;
use tollgate::error::StoreError;
use tollgate::gate::{Gate, RoutePolicy, TierPolicy};
use tollgate::key::{InMemoryKeyStore, KeyKind, KeyRecord, Principal};
use tollgate::rate_limit::redis::{FailureMode, RedisOptions, RedisRateStore};
use tollgate::rate_limit::store::Decision;
use tollgate::rate_limit::{Quota, RateLimit, RateLimitLayer};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

/// A `redis-server` of the test's own, stopped when dropped.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    /// Starts the server (again) on its port, and waits until it answers.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests: apt-get install -y redis-server");
        self.child = Some(child);
        // Readiness, not timing: poll until the server answers PING.
        for _ in 0..1_000 {
            if self
                .connection()
                .is_ok_and(|mut c| redis::cmd("PING").exec(&mut c).is_ok())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`STOP`) or thaws (`CONT`) the server: connections stay
    /// open but nothing answers.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }

    /// How many times Redis ran `command` (from `INFO commandstats`).
    fn calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection().unwrap())
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    }

    /// Script runs, by hash or by text.
    fn script_runs(&self) -> u64 {
        self.calls("evalsha") + self.calls("eval")
    }

    fn query<T: redis::FromRedisValue>(&self, command: &mut redis::Cmd) -> T {
        command.query(&mut self.connection().unwrap()).unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn store(server: &RedisServer, options: RedisOptions) -> RedisRateStore {
    RedisRateStore::connect(options)
        .await
        .unwrap_or_else(|error| panic!("connect to {}: {error}", server.url()))
}

fn options(server: &RedisServer) -> RedisOptions {
    RedisOptions::new(server.url()).timeout(Duration::from_millis(200))
}

/// A gate over `store` with `POST /v1/track` limited to 5 a minute.
fn gate(keys: &Keys, store: RedisRateStore) -> Gate<InMemoryKeyStore, RedisRateStore> {
    Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .rate_store(store)
        .route(
            "POST /v1/track",
            RoutePolicy::new().quota(Quota::per_minute(60).burst(5)),
        )
        .build()
        .unwrap()
}

async fn serve_gate(gate: &Gate<InMemoryKeyStore, RedisRateStore>) -> std::net::SocketAddr {
    let service = ServiceBuilder::new().layer(gate.layer()).service_fn(
        |_: Request<LimitedBody<hyper::body::Incoming>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    );
    serve(service).await
}

fn track(address: std::net::SocketAddr, key: &str) -> TestRequest {
    empty(
        Request::post(format!("http://{address}/v1/track"))
            .header("authorization", format!("Bearer {key}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gates_on_two_ports_share_one_limit() {
    let server = RedisServer::start();
    let keys = Keys::new();
    let key = keys.secret.key().to_owned();
    // Two instances: each its own gate, store, connection and port.
    let first = serve_gate(&gate(&keys, store(&server, options(&server)).await)).await;
    let second = serve_gate(&gate(&keys, store(&server, options(&server)).await)).await;

    let mut admitted = 0;
    let mut statuses = Vec::new();
    for round in 0..12 {
        let address = if round % 2 == 0 { first } else { second };
        let answer = fetch(track(address, &key)).await;
        statuses.push(answer.status.as_u16());
        if answer.status == StatusCode::OK {
            admitted += 1;
            let remaining = 5 - admitted;
            assert_eq!(
                answer.headers["ratelimit"],
                // One token a second: the next is at most a second away.
                format!("\"POST /v1/track\";r={remaining};t=1").as_str(),
                "round {round}"
            );
        } else {
            assert_eq!(
                answer.status,
                StatusCode::TOO_MANY_REQUESTS,
                "round {round}"
            );
            assert_eq!(answer.code(), "rate_limited");
            assert_eq!(answer.headers["retry-after"], "1");
        }
    }
    assert_eq!(
        admitted, 5,
        "burst 5 in total across both gates: {statuses:?}"
    );
    assert_eq!(&statuses[..5], &[200; 5]);
}

#[tokio::test]
async fn the_same_headers_and_errors_as_the_memory_store() {
    let server = RedisServer::start();
    let keys = Keys::new();
    let redis_gate = gate(&keys, store(&server, options(&server)).await);
    let memory_gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route(
            "POST /v1/track",
            RoutePolicy::new().quota(Quota::per_minute(60).burst(5)),
        )
        .build()
        .unwrap();
    let request = || {
        empty(
            Request::post("/v1/track")
                .header("authorization", format!("Bearer {}", keys.secret.key())),
        )
    };
    let handler = Handler::default();
    for round in 0..7 {
        let from_redis = send(
            ServiceBuilder::new()
                .layer(redis_gate.layer())
                .service(handler.service().map_request(strip_limit)),
            request(),
        )
        .await;
        let from_memory = send(
            ServiceBuilder::new()
                .layer(memory_gate.layer())
                .service(handler.service().map_request(strip_limit)),
            request(),
        )
        .await;
        assert_eq!(from_redis.status, from_memory.status, "round {round}");
        assert_eq!(from_redis.body, from_memory.body, "round {round}");
        for name in ["ratelimit", "ratelimit-policy", "retry-after"] {
            assert_eq!(
                from_redis.headers.get(name),
                from_memory.headers.get(name),
                "{name}, round {round}"
            );
        }
    }
}

fn strip_limit(request: Request<LimitedBody<Full<Bytes>>>) -> TestRequest {
    let (parts, _) = request.into_parts();
    Request::from_parts(parts, Default::default())
}

fn principal(project: &str) -> Principal {
    Principal::new(Arc::new(KeyRecord::new(
        format!("key_{project}"),
        project,
        KeyKind::Secret,
    )))
}

/// A request from `project` straight to a rate-limit layer.
fn from(project: &str) -> TestRequest {
    let mut request = empty(Request::post("/v1/batch"));
    request.extensions_mut().insert(principal(project));
    request
}

/// A rate-limit layer over `redis` in front of `handler`.
fn limited(redis: &RedisRateStore, limit: impl Into<RateLimit>, handler: &Handler) -> Limited {
    let layer = RateLimitLayer::with_store(redis.clone(), limit.into()).unwrap();
    let inner = handler_service(Arc::clone(&handler.calls));
    BoxCloneService::new(ServiceBuilder::new().layer(layer).service(inner))
}

type Limited = BoxCloneService<
    TestRequest,
    http::Response<tollgate::check::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

/// A Redis server, a store on it failing `on_failure` (on `fake`'s clock:
/// its retry interval passes only when the test says), and a layer with
/// burst `burst` that has admitted one request.
async fn admitting(
    on_failure: FailureMode,
    burst: u64,
    fake: &FakeClock,
) -> (RedisServer, RedisRateStore, Handler, Limited) {
    let server = RedisServer::start();
    let redis = store(&server, options(&server).on_failure(on_failure))
        .await
        .with_clock(fake.clock());
    let handler = Handler::default();
    let limit = RateLimit::new(Quota::per_minute(60).burst(burst));
    let service = limited(&redis, limit, &handler);
    let answer = send(service.clone(), from("acme")).await;
    assert_eq!(answer.status, StatusCode::OK);
    (server, redis, handler, service)
}

/// The default retry interval: how long a store decides by its failure
/// mode after Redis failed before it asks again.
const RETRY: Duration = Duration::from_secs(1);

/// Sends requests until one is admitted (a store reconnecting), at most
/// 200, each after a retry interval on `fake`'s clock.
async fn until_admitted(service: &Limited, fake: &FakeClock) -> StatusCode {
    let mut status = StatusCode::BAD_GATEWAY;
    for _ in 0..200 {
        fake.advance(RETRY);
        status = send(service.clone(), from("acme")).await.status;
        if status == StatusCode::OK {
            break;
        }
        tokio::task::yield_now().await;
    }
    status
}

#[tokio::test]
async fn stacked_quotas_consume_from_none_when_one_refuses() {
    let server = RedisServer::start();
    let redis = store(&server, options(&server)).await;
    let layer = RateLimitLayer::with_store(
        redis.clone(),
        RateLimit::stacked([
            Quota::per_minute(60).burst(5).named("burst"),
            Quota::per_day(2).named("daily"),
        ]),
    )
    .unwrap();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(handler.service());
    for _ in 0..2 {
        let answer = send(service.clone(), from("acme")).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let refused = send(service.clone(), from("acme")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["error"]["details"]["policy"], "daily");
    // The burst quota still has 3: the refused request took nothing from it.
    let ratelimit = refused.headers["ratelimit"].to_str().unwrap();
    assert!(ratelimit.starts_with("\"burst\";r=3;"), "{ratelimit}");
    assert!(ratelimit.contains("\"daily\";r=0;"), "{ratelimit}");
    // In Redis too: the burst bucket holds two requests' worth (2 s of debt).
    let limits = tollgate::rate_limit::store::RouteLimits::new(&RateLimit::stacked([
        Quota::per_minute(60).burst(5).named("burst"),
        Quota::per_day(2).named("daily"),
    ]))
    .unwrap();
    let key = redis.key(
        &tollgate::rate_limit::store::Bucket::new(
            tollgate::rate_limit::store::PartitionKey::project("acme"),
            tollgate::route::Route::DEFAULT_NAME,
        ),
        &limits.quotas()[0],
        0,
    );
    let ttl: i64 = server.query(redis::cmd("PTTL").arg(&key));
    assert!((1_000..=2_000).contains(&ttl), "PTTL {key} = {ttl}");
    assert_eq!(handler.calls(), 2);
}

#[tokio::test]
async fn keys_expire_when_the_bucket_would_be_full_and_carry_the_prefix() {
    let server = RedisServer::start();
    let redis = RedisRateStore::connect(options(&server).prefix("myapp:rl:"))
        .await
        .unwrap();
    let layer =
        RateLimitLayer::with_store(redis, RateLimit::new(Quota::per_second(10).burst(10))).unwrap();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(handler.service());
    for _ in 0..3 {
        assert_eq!(
            send(service.clone(), from("acme")).await.status,
            StatusCode::OK
        );
    }
    let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("*"));
    assert_eq!(keys, ["myapp:rl:{project:acme}:default:0"]);
    // Three tokens at 100 ms each: full again in at most 300 ms.
    let ttl: i64 = server.query(redis::cmd("PTTL").arg(&keys[0]));
    assert!((1..=300).contains(&ttl), "PTTL = {ttl}");
}

#[tokio::test]
async fn the_script_is_loaded_again_when_redis_forgets_it() {
    let server = RedisServer::start();
    let redis = store(&server, options(&server)).await;
    let layer =
        RateLimitLayer::with_store(redis.clone(), RateLimit::new(Quota::per_minute(100))).unwrap();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(Handler::default().service());
    assert_eq!(
        send(service.clone(), from("acme")).await.status,
        StatusCode::OK
    );
    let _: () = server.query(redis::cmd("SCRIPT").arg("FLUSH"));
    let answer = send(service.clone(), from("acme")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers["ratelimit"]
            .to_str()
            .unwrap()
            .contains(";r=98;")
    );
    assert_eq!(redis.stats().failures, 0);
    // Called by hash: the script's text crossed the wire only to load it.
    assert_eq!(server.calls("eval"), 0);
    assert_eq!(server.calls("evalsha"), 3, "one miss after the flush");
}

#[tokio::test]
async fn the_denial_cache_saves_redis_calls_and_keeps_retry_after_honest() {
    let server = RedisServer::start();
    let fake = FakeClock::new();
    let cached = store(&server, options(&server).prefix("cached:"))
        .await
        .with_clock(fake.clock());
    let uncached = store(
        &server,
        options(&server).prefix("uncached:").denial_cache(0),
    )
    .await;
    let limit = || RateLimit::new(Quota::per_minute(1).burst(2));
    let handler = Handler::default();
    let service = |redis: &RedisRateStore| {
        ServiceBuilder::new()
            .layer(RateLimitLayer::with_store(redis.clone(), limit()).unwrap())
            .service(handler.service())
    };

    // Without the cache: every refused request is a Redis call.
    let before = server.script_runs();
    for _ in 0..12 {
        send(service(&uncached), from("acme")).await;
    }
    assert_eq!(server.script_runs() - before, 12);
    assert_eq!(uncached.stats().calls, 12);

    // With it: 2 admitted, 1 refused by Redis, then 9 refused locally.
    let before = server.script_runs();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(send(service(&cached), from("acme")).await.status.as_u16());
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(server.script_runs() - before, 3);
    assert_eq!(cached.stats().calls, 3);
    assert_eq!(cached.stats().cached_denials, 9);

    // Retry-After counts down on the local clock while cached.
    let answer = send(service(&cached), from("acme")).await;
    let first: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&first), "{first}");
    fake.advance(Duration::from_secs(20));
    let answer = send(service(&cached), from("acme")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let later: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(later, first - 20);
    assert_eq!(answer.body["error"]["details"]["retry_after"], later);
    assert_eq!(cached.stats().calls, 3);

    // Once the refusal's window has passed, Redis is asked again.
    fake.advance(Duration::from_secs(first - 20));
    send(service(&cached), from("acme")).await;
    assert_eq!(cached.stats().calls, 4);
    // Other buckets are not affected by a cached refusal.
    assert_eq!(
        send(service(&cached), from("other")).await.status,
        StatusCode::OK
    );
}

/// Sends one request, and how long it took (to catch a hang, not to time it:
/// the bound is many times the store's timeout).
async fn timed<S>(service: S, request: TestRequest) -> (Answer, Duration)
where
    S: tower::Service<
            TestRequest,
            Response = http::Response<tollgate::check::ResponseBody<Full<Bytes>>>,
        >,
    S::Error: std::fmt::Debug,
{
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), send(service, request))
        .await
        .expect("a request hung although Redis has a timeout");
    (answer, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_open_logs_and_recovers() {
    let (logs, _guard) = Logs::capture();
    let fake = FakeClock::new();
    let (mut server, redis, handler, service) = admitting(FailureMode::Open, 3, &fake).await;

    server.kill();
    for _ in 0..5 {
        let (answer, took) = timed(service.clone(), from("acme")).await;
        assert_eq!(answer.status, StatusCode::OK, "fail open admits");
        assert!(
            !answer.headers.contains_key("ratelimit"),
            "no counts to show"
        );
        assert!(took < Duration::from_secs(5), "waited {took:?}");
    }
    // One asked Redis and failed; the four after it, within the retry
    // interval, were admitted without asking.
    let stats = redis.stats();
    assert_eq!((stats.failures, stats.skipped, stats.calls), (1, 4, 2));
    assert_eq!(handler.calls(), 6);
    let text = logs.text();
    assert_eq!(text.matches("admitting (fail open)").count(), 5, "{text}");

    // Redis comes back (empty): the same store uses it again, no restart.
    server.restart();
    let mut recovered = None;
    for attempt in 0..200 {
        fake.advance(RETRY);
        let answer = send(service.clone(), from("acme")).await;
        if answer.headers.contains_key("ratelimit") {
            recovered = Some(attempt);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(recovered.is_some(), "the store never reconnected");
    let failures = redis.stats().failures;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(send(service.clone(), from("acme")).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "limits hold again");
    assert_eq!(redis.stats().failures, failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_closed_with_upstream_failed() {
    let fake = FakeClock::new();
    let (mut server, redis, handler, service) = admitting(FailureMode::Closed, 3, &fake).await;

    server.kill();
    for _ in 0..3 {
        let (answer, took) = timed(service.clone(), from("acme")).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
        assert_eq!(answer.code(), "upstream_failed");
        assert!(took < Duration::from_secs(5), "waited {took:?}");
    }
    assert_eq!(handler.calls(), 1, "nothing admitted while Redis was away");
    let stats = redis.stats();
    assert_eq!((stats.failures, stats.skipped), (1, 2));

    server.restart();
    let status = until_admitted(&service, &fake).await;
    assert_eq!(status, StatusCode::OK, "the store never reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_leaves_each_gate_its_share_then_redis_decides_again() {
    let mut server = RedisServer::start();
    let keys = Keys::new();
    let key = keys.secret.key().to_owned();
    // 10 a day (no refill within the test), two instances: a share of 5.
    let instance = |store: RedisRateStore| {
        Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .rate_store(store)
            .route(
                "POST /v1/track",
                RoutePolicy::new().quota(Quota::per_day(10).burst(10)),
            )
            .build()
            .unwrap()
    };
    let local = || {
        options(&server)
            .timeout(Duration::from_millis(100))
            .on_failure(FailureMode::Local)
            .instances(2)
    };
    let fake = FakeClock::new();
    let stores = [
        store(&server, local()).await.with_clock(fake.clock()),
        store(&server, local()).await.with_clock(fake.clock()),
    ];
    let gates = [
        serve_gate(&instance(stores[0].clone())).await,
        serve_gate(&instance(stores[1].clone())).await,
    ];
    let admitted = |rounds: usize, gate: Option<usize>| {
        let key = key.clone();
        async move {
            let mut admitted = [0usize; 2];
            for round in 0..rounds {
                let index = gate.unwrap_or(round % 2);
                let answer = fetch(track(gates[index], &key)).await;
                match answer.status {
                    StatusCode::OK => admitted[index] += 1,
                    StatusCode::TOO_MANY_REQUESTS => assert_eq!(answer.code(), "rate_limited"),
                    other => panic!("{other}: {:?}", answer.body),
                }
            }
            admitted
        }
    };
    // Redis decides: 4 of the 10 spent.
    assert_eq!(admitted(4, None).await, [2, 2]);

    // Redis gone: each gate decides by its share, 5, whatever the fleet
    // spent before (its share's buckets are its own).
    server.kill();
    assert_eq!(admitted(8, Some(0)).await, [5, 0]);
    assert_eq!(admitted(8, Some(1)).await, [0, 5]);
    for store in &stores {
        let stats = store.stats();
        assert!(stats.degraded && stats.switches == 1, "{stats:?}");
        assert_eq!(stats.local_decisions, 8);
        // Only the first asked the dead Redis.
        assert_eq!((stats.failures, stats.skipped), (1, 7), "{stats:?}");
    }

    // Redis back (empty, as restarted): exact again, without a restart of
    // the gates: 10 across both.
    server.restart();
    for (index, store) in stores.iter().enumerate() {
        let mut attempts = 0;
        while store.stats().degraded {
            assert!(attempts < 500, "the store never went back to Redis");
            attempts += 1;
            fake.advance(RETRY);
            let _ = fetch(track(gates[index], &key)).await;
            if store.stats().degraded {
                tokio::task::yield_now().await;
            }
        }
    }
    let before: u64 = stores.iter().map(|s| s.stats().local_decisions).sum();
    // The two probes that found Redis back each took one of its 10.
    let [a, b] = admitted(16, None).await;
    assert_eq!(
        a + b,
        8,
        "10 in Redis, 2 taken by the requests that found it back"
    );
    let after: u64 = stores.iter().map(|s| s.stats().local_decisions).sum();
    assert_eq!(before, after, "decided in Redis again");
    for store in &stores {
        let stats = store.stats();
        assert_eq!(stats.switches, 2, "{stats:?}");
        assert!(stats.degraded_nanos > 0);
    }
}

/// Whether a decision asked Redis (waited), and what it decided.
async fn asked<F>(
    answer: tollgate::Answer<Result<Decision, StoreError>, F>,
) -> (bool, Result<Decision, StoreError>)
where
    F: std::future::Future<Output = Result<Decision, StoreError>>,
{
    match answer {
        tollgate::Answer::Ready(decision) => (false, decision),
        tollgate::Answer::Pending(future) => (true, future.await),
    }
}

/// A frozen Redis costs one timeout per retry interval, not one per
/// request: within the interval the local share decides at once; past it one
/// decision asks again while the others still decide locally; each switch
/// is logged once.
#[tokio::test]
async fn a_frozen_redis_is_asked_once_per_retry_interval() {
    use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
    let (logs, _guard) = Logs::capture();
    let server = RedisServer::start();
    let fake = FakeClock::new();
    let redis = store(
        &server,
        options(&server)
            .timeout(Duration::from_millis(100))
            .on_failure(FailureMode::Local)
            .instances(2),
    )
    .await
    .with_clock(fake.clock());
    let limits = RouteLimits::new(&RateLimit::new(Quota::per_day(100).burst(100))).unwrap();
    let bucket = Bucket::new(PartitionKey::project("acme"), "POST /v1/track");
    // Redis answers: every decision asks it.
    let (pending, decision) = asked(redis.decide(&bucket, &limits)).await;
    assert!(pending && decision.unwrap().is_allowed());

    server.signal("-STOP");
    let started = Instant::now();
    let (pending, decision) = asked(redis.decide(&bucket, &limits)).await;
    assert!(pending, "the first decision after the freeze asks Redis");
    assert!(decision.unwrap().is_allowed(), "decided by the local share");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "waited the timeout"
    );
    // Within the retry interval: 49 decisions at once, by the share of 50.
    for _ in 0..49 {
        let (pending, decision) = asked(redis.decide(&bucket, &limits)).await;
        assert!(!pending, "asked a Redis that failed within the interval");
        assert!(decision.unwrap().is_allowed());
    }
    let (_, decision) = asked(redis.decide(&bucket, &limits)).await;
    assert!(!decision.unwrap().is_allowed(), "the share is 50");
    let stats = redis.stats();
    assert_eq!((stats.calls, stats.failures, stats.skipped), (2, 1, 50));
    assert_eq!(stats.local_decisions, 51);

    // Past the interval one decision asks again (and fails again); the
    // rest of the next interval does not.
    fake.advance(RETRY);
    let (pending, _) = asked(redis.decide(&bucket, &limits)).await;
    assert!(pending, "one decision per interval asks again");
    let (pending, _) = asked(redis.decide(&bucket, &limits)).await;
    assert!(!pending);
    assert_eq!(redis.stats().failures, 2);

    // Thawed: the next try finds Redis, and every decision is its again.
    server.signal("-CONT");
    let mut tries = 0;
    while redis.stats().degraded {
        assert!(tries < 50, "never went back to Redis");
        tries += 1;
        fake.advance(RETRY);
        let _ = asked(redis.decide(&bucket, &limits)).await;
    }
    for _ in 0..3 {
        let (pending, decision) = asked(redis.decide(&bucket, &limits)).await;
        assert!(pending && decision.is_ok());
    }
    let text = logs.text();
    assert_eq!(
        text.matches("deciding by this instance's share").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("Redis answers again").count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approximate_stores_decide_in_memory_within_the_stated_bound() {
    use tollgate::rate_limit::redis::Mode;
    use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
    let server = RedisServer::start();
    // Synced by hand here (the interval is an hour).
    let approximate = || {
        options(&server)
            .mode(Mode::Approximate)
            .sync_interval(Duration::from_secs(3600))
    };
    let stores = [
        store(&server, approximate()).await,
        store(&server, approximate()).await,
    ];
    // 20 a day: no refill within the test.
    const BURST: usize = 20;
    let limits = Arc::new(RouteLimits::new(&RateLimit::new(Quota::per_day(20).burst(20))).unwrap());
    let decide = |store: &RedisRateStore| {
        let bucket = Bucket::new(PartitionKey::project("acme"), "POST /v1/track");
        match store.decide(&bucket, &limits) {
            tollgate::Answer::Ready(decision) => decision.unwrap(),
            tollgate::Answer::Pending(_) => panic!("an approximate decision waited for Redis"),
        }
    };
    // Eight clients on each instance at once, 10 requests each.
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let store = stores[client % 2].clone();
            let limits = Arc::clone(&limits);
            tokio::spawn(async move {
                let mut admitted = 0;
                for _ in 0..10 {
                    let bucket = Bucket::new(PartitionKey::project("acme"), "POST /v1/track");
                    let tollgate::Answer::Ready(decision) = store.decide(&bucket, &limits) else {
                        panic!("an approximate decision waited for Redis");
                    };
                    admitted += usize::from(decision.unwrap().is_allowed());
                    tokio::task::yield_now().await;
                }
                (client % 2, admitted)
            })
        })
        .collect();
    let mut admitted = [0; 2];
    for client in clients {
        let (instance, count) = client.await.unwrap();
        admitted[instance] += count;
    }
    // Neither saw the other's spending: each admitted the whole burst. The
    // stated bound: (instances − 1) × (burst + rate × (interval + round
    // trip)) over the quota; the rate here is 20 a day, so about 1 × 20.
    assert_eq!(admitted, [BURST, BURST]);
    const INSTANCES: usize = 2;
    assert!(admitted[0] + admitted[1] <= BURST + (INSTANCES - 1) * (BURST + 1));
    assert_eq!(
        stores[0].stats().calls + stores[1].stats().calls,
        0,
        "no round trip on the way"
    );
    assert_eq!(stores[0].stats().approximate_decisions, 80);

    // Synced: each instance's spending reaches Redis, and the fleet's total
    // comes back. The second to sync learns that 40 were spent: its next
    // refusal says so (21 emission intervals, not 1).
    let emission = Duration::from_secs(86_400 / 20);
    let before = decide(&stores[1]);
    assert!(!before.is_allowed());
    assert!(Duration::from_nanos(before.retry_after()) <= emission);
    assert_eq!(stores[0].sync().await.unwrap(), 1);
    assert_eq!(stores[1].sync().await.unwrap(), 1);
    let after = decide(&stores[1]);
    assert!(!after.is_allowed());
    assert!(
        Duration::from_nanos(after.retry_after()) > emission * 20,
        "{after:?}"
    );
    let debt_ms: i64 =
        server.query(redis::cmd("PTTL").arg("tollgate:{project:acme}:POST /v1/track:0"));
    assert!(
        debt_ms > 39 * emission.as_millis() as i64,
        "the bucket in Redis holds all 40: {debt_ms}"
    );
    assert_eq!(stores[1].stats().batches, 1);
    // Nothing spent since: a sync sends nothing.
    assert_eq!(stores[1].sync().await.unwrap(), 0);

    // By itself, every sync_interval_ms.
    let ticking = store(
        &server,
        approximate().sync_interval(Duration::from_millis(20)),
    )
    .await;
    let bucket = Bucket::new(PartitionKey::project("beta"), "POST /v1/track");
    let tollgate::Answer::Ready(Ok(decision)) = ticking.decide(&bucket, &limits) else {
        panic!("decided in memory");
    };
    assert!(decision.is_allowed());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ticking.stats().synced_buckets == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never synced by itself"
        );
        tokio::task::yield_now().await;
    }
    let debt_ms: i64 =
        server.query(redis::cmd("PTTL").arg("tollgate:{project:beta}:POST /v1/track:0"));
    assert!(debt_ms > 0, "the spending reached Redis");
}

/// Two gates in approximate mode, eight clients each, over many sync
/// intervals of a refilling quota: the fleet admits no more than the exact
/// allowance plus the stated bound, and not much less. Real time: the
/// buckets in Redis refill on Redis's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approximate_gates_hold_the_bound_over_many_sync_intervals() {
    use tollgate::rate_limit::redis::Mode;
    let server = RedisServer::start();
    let keys = Keys::new();
    let key = keys.secret.key().to_owned();
    const RATE: f64 = 100.0;
    const BURST: f64 = 10.0;
    const INTERVAL: Duration = Duration::from_millis(100);
    let instance = |store: RedisRateStore| {
        Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .rate_store(store)
            .route(
                "POST /v1/track",
                RoutePolicy::new().quota(Quota::per_second(RATE as u64).burst(BURST as u64)),
            )
            .build()
            .unwrap()
    };
    let approximate = || {
        options(&server)
            .mode(Mode::Approximate)
            .sync_interval(INTERVAL)
    };
    let stores = [
        store(&server, approximate()).await,
        store(&server, approximate()).await,
    ];
    let gates = [
        serve_gate(&instance(stores[0].clone())).await,
        serve_gate(&instance(stores[1].clone())).await,
    ];
    let run_for = Duration::from_millis(1500);
    let started = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let address = gates[client % 2];
            let key = key.clone();
            tokio::spawn(async move {
                let (mut admitted, mut refused) = (0u64, 0u64);
                while started.elapsed() < run_for {
                    let answer = fetch(track(address, &key)).await;
                    match answer.status {
                        StatusCode::OK => admitted += 1,
                        StatusCode::TOO_MANY_REQUESTS => refused += 1,
                        other => panic!("{other}: {:?}", answer.body),
                    }
                }
                (admitted, refused)
            })
        })
        .collect();
    let (mut admitted, mut refused) = (0, 0);
    for client in clients {
        let (a, r) = client.await.unwrap();
        admitted += a;
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let exact = BURST + RATE * elapsed;
    // (instances − 1) × (burst + rate × (interval + round trip)), the round
    // trip taken as a whole interval (loopback answers in well under 1 ms).
    let bound = BURST + RATE * 2.0 * INTERVAL.as_secs_f64();
    assert!(refused > 0, "the quota was never reached");
    assert!(
        (admitted as f64) <= exact + bound,
        "admitted {admitted} in {elapsed:.3} s: exact {exact:.0}, bound {bound:.0}"
    );
    assert!(
        (admitted as f64) >= exact / 2.0,
        "admitted {admitted} in {elapsed:.3} s, exact {exact:.0}: the views refuse too much"
    );
    println!("admitted {admitted} in {elapsed:.3} s: exact {exact:.0}, bound {bound:.0}");
    // Synced through the run (a sync sends something only when the
    // instance admitted since the last one, so not every interval).
    let intervals = (elapsed / INTERVAL.as_secs_f64()) as u64;
    for store in &stores {
        let stats = store.stats();
        assert_eq!(stats.calls, 0, "no decision waited for Redis");
        assert!(
            stats.batches >= intervals / 3,
            "{stats:?} in {intervals} intervals"
        );
    }
}

/// A calendar window in Redis: two gates share a daily window exactly; the
/// refusal waits for the next UTC midnight; the key ends in `:w` and
/// expires a second after the window; an approximate store's syncs carry
/// window counts; a local share divides the window's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_windows_are_shared_through_redis() {
    use tollgate::rate_limit::Calendar;
    use tollgate::rate_limit::redis::Mode;
    use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
    let server = RedisServer::start();
    let keys = Keys::new();
    let key = keys.secret.key().to_owned();
    let instance = |store: RedisRateStore| {
        Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .rate_store(store)
            .rate_limit_headers(tollgate::rate_limit::RateLimitHeaders::Both)
            .route(
                "POST /v1/track",
                RoutePolicy::new().quotas([
                    Quota::per_second(100).burst(100),
                    Quota::per_calendar(5, Calendar::Day),
                ]),
            )
            .build()
            .unwrap()
    };
    let gates = [
        serve_gate(&instance(store(&server, options(&server)).await)).await,
        serve_gate(&instance(store(&server, options(&server)).await)).await,
    ];
    let mut admitted = 0;
    let mut refusal = None;
    for round in 0..12 {
        let answer = fetch(track(gates[round % 2], &key)).await;
        match answer.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => refusal = Some(answer),
            other => panic!("{other}: {:?}", answer.body),
        }
    }
    assert_eq!(admitted, 5, "one window of 5 across both gates");
    let refusal = refusal.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let midnight = (now / 86_400 + 1) * 86_400;
    let retry: u64 = refusal.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry.abs_diff(midnight - now) <= 2,
        "{retry} vs {}",
        midnight - now
    );
    assert_eq!(
        refusal.headers["x-ratelimit-reset"],
        midnight.to_string().as_str()
    );
    assert_eq!(refusal.body["error"]["details"]["window"], "day");
    let window_key = "tollgate:{project:demo}:POST /v1/track:1:w";
    let ttl_ms: i64 = server.query(redis::cmd("PTTL").arg(window_key));
    let until = (midnight - now) as i64 * 1_000;
    assert!(
        ttl_ms > until - 3_000 && ttl_ms <= until + 2_000,
        "{ttl_ms} ms vs {until} ms to midnight"
    );

    // Approximate: each instance admits its view's 10, the syncs carry the
    // counts, and each view then holds the fleet's 20.
    let limits = RouteLimits::new(&RateLimit::new(Quota::per_calendar(10, Calendar::Day))).unwrap();
    let approximate = || {
        options(&server)
            .mode(Mode::Approximate)
            .sync_interval(Duration::from_secs(3600))
    };
    let stores = [
        store(&server, approximate()).await,
        store(&server, approximate()).await,
    ];
    let bucket = Bucket::new(PartitionKey::project("acme"), "POST /v1/track");
    let decide = |store: &RedisRateStore| match store.decide(&bucket, &limits) {
        tollgate::Answer::Ready(decision) => decision.unwrap(),
        tollgate::Answer::Pending(_) => panic!("an approximate decision waited for Redis"),
    };
    for store in &stores {
        let allowed = (0..12).filter(|_| decide(store).is_allowed()).count();
        assert_eq!(allowed, 10);
    }
    for store in &stores {
        assert_eq!(store.sync().await.unwrap(), 1);
    }
    let count: String =
        server.query(redis::cmd("GET").arg("tollgate:{project:acme}:POST /v1/track:0:w"));
    let count: f64 = count.parse().unwrap();
    assert_eq!(
        count as u64 % 1_000_000,
        20,
        "the window's end plus the fleet's 20"
    );
    let after = decide(&stores[0]);
    assert!(!after.is_allowed());
    assert_eq!(after.states()[0].remaining, 0);

    // Local share of a window while Redis is away: 10 / 2 instances.
    let fake = FakeClock::new();
    let local = store(
        &server,
        options(&server)
            .on_failure(FailureMode::Local)
            .instances(2)
            .timeout(Duration::from_millis(100)),
    )
    .await
    .with_clock(fake.clock());
    server.signal("-STOP");
    let mut allowed = 0;
    for _ in 0..8 {
        let decision = match local.decide(
            &Bucket::new(PartitionKey::project("beta"), "POST /v1/track"),
            &limits,
        ) {
            tollgate::Answer::Ready(decision) => decision.unwrap(),
            tollgate::Answer::Pending(future) => future.await.unwrap(),
        };
        allowed += usize::from(decision.is_allowed());
    }
    server.signal("-CONT");
    assert_eq!(allowed, 5, "the share of a window of 10 between 2");
}

/// A route whose response decides the cost, on Redis: the settlement of a
/// batch of 37 reaches Redis (one script, not waited for), so the other
/// gate sees it; in approximate mode the view takes it at once and the
/// next sync carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_costs_are_settled_in_redis() {
    use tollgate::rate_limit::Cost;
    use tollgate::rate_limit::redis::Mode;
    use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
    let server = RedisServer::start();
    let keys = Keys::new();
    let key = keys.secret.key().to_owned();
    let instance = |store: RedisRateStore| {
        let gate = Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .rate_store(store)
            .route(
                "POST /v1/track",
                RoutePolicy::new()
                    .quota(Quota::per_day(100).burst(100))
                    .cost_from_response(),
            )
            .build()
            .unwrap();
        let service = ServiceBuilder::new().layer(gate.layer()).service_fn(
            |_: Request<LimitedBody<hyper::body::Incoming>>| async {
                let mut response = http::Response::new(Full::new(Bytes::new()));
                response.extensions_mut().insert(Cost(37));
                Ok::<_, Infallible>(response)
            },
        );
        serve(service)
    };
    let gates = [
        instance(store(&server, options(&server)).await).await,
        instance(store(&server, options(&server)).await).await,
    ];
    let remaining = Answer::remaining;
    assert_eq!(remaining(&fetch(track(gates[0], &key)).await), 99);
    // The settlement runs on its own: the other gate sees it once it has.
    let mut seen = 99;
    for _ in 0..500 {
        seen = remaining(&fetch(track(gates[1], &key)).await);
        if seen < 90 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(seen <= 62, "the batch's 37 reached Redis: {seen}");

    let approximate = store(
        &server,
        options(&server)
            .mode(Mode::Approximate)
            .sync_interval(Duration::from_secs(3600)),
    )
    .await;
    let limits =
        RouteLimits::new(&RateLimit::new(Quota::per_day(100).burst(100)).cost_from_response())
            .unwrap();
    let bucket = Bucket::new(PartitionKey::project("zeta"), "POST /v1/track");
    let decide = || match approximate.decide(&bucket, &limits) {
        tollgate::Answer::Ready(decision) => decision.unwrap(),
        tollgate::Answer::Pending(_) => panic!("waited for Redis"),
    };
    assert_eq!(decide().states()[0].remaining, 99);
    approximate.settlement(&bucket, &limits).unwrap().apply(36);
    assert_eq!(
        decide().states()[0].remaining,
        62,
        "the view took it at once"
    );
    assert_eq!(approximate.sync().await.unwrap(), 1);
    let debt_ms: i64 =
        server.query(redis::cmd("PTTL").arg("tollgate:{project:zeta}:POST /v1/track:0"));
    let emission_ms = 86_400_000 / 100;
    assert!(
        debt_ms > 37 * emission_ms,
        "Redis holds the 38 spent: {debt_ms} ms"
    );
}

/// Waits (a readiness poll, bounded) until `done` holds.
async fn until(mut done: impl FnMut() -> bool, what: &str) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// A settlement Redis does not take (it is down) is not lost: kept, merged
/// with the bucket's next one, sent again by the store itself once Redis
/// answers, and by `sync()` at once; while Redis is down `sync()` fails
/// and keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_redis_did_not_take_are_sent_again() {
    use tollgate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
    let mut server = RedisServer::start();
    let redis = store(
        &server,
        options(&server)
            .timeout(Duration::from_millis(100))
            .retry_interval(Duration::from_millis(100)),
    )
    .await;
    let limits =
        RouteLimits::new(&RateLimit::new(Quota::per_day(100).burst(100)).cost_from_response())
            .unwrap();
    let bucket = Bucket::new(PartitionKey::project("acme"), "POST /v1/track");
    let (_, decision) = asked(redis.decide(&bucket, &limits)).await;
    assert_eq!(decision.unwrap().states()[0].remaining, 99);
    let key = "tollgate:{project:acme}:POST /v1/track:0";
    let emission_ms = 86_400_000 / 100;
    let debt = |server: &RedisServer| -> i64 { server.query(redis::cmd("PTTL").arg(key)) };

    // Down: two settlements of the bucket fail, and are kept as one.
    server.kill();
    redis.settlement(&bucket, &limits).unwrap().apply(36);
    until(|| redis.stats().unsettled == 1, "the first settlement kept").await;
    let failures = redis.stats().failures;
    redis.settlement(&bucket, &limits).unwrap().apply(4);
    until(
        || redis.stats().failures > failures,
        "the second settlement failed",
    )
    .await;
    assert_eq!(redis.stats().unsettled, 1, "one bucket owes both");
    assert!(redis.sync().await.is_err(), "Redis is down");
    assert_eq!(redis.stats().unsettled, 1, "kept by the failed sync");

    // Back (empty: a restarted Redis without persistence): the store sends
    // the 40 by itself.
    server.restart();
    until(|| redis.stats().unsettled == 0, "sent again by the store").await;
    let owed = debt(&server);
    assert!(
        owed > 39 * emission_ms && owed <= 40 * emission_ms,
        "Redis holds the 40 settled while it was down: {owed} ms"
    );

    // And by `sync()`, at once.
    server.kill();
    redis.settlement(&bucket, &limits).unwrap().apply(5);
    until(|| redis.stats().unsettled == 1, "the third settlement kept").await;
    server.restart();
    let mut sent = 0;
    for _ in 0..100 {
        if let Ok(count) = redis.sync().await {
            sent += count;
        }
        if redis.stats().unsettled == 0 {
            break;
        }
    }
    assert_eq!(redis.stats().unsettled, 0);
    // Sent by `sync()` or, racing it, by the store's own task: either way
    // once.
    assert!(sent <= 1);
    let owed = debt(&server);
    assert!(
        owed > 4 * emission_ms && owed <= 5 * emission_ms,
        "the restarted Redis holds the 5: {owed} ms"
    );
}

#[tokio::test]
async fn connecting_to_nothing_fails_at_start_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = RedisRateStore::connect(RedisOptions::new(format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(!error.to_string().is_empty());
    let error = RedisRateStore::connect(RedisOptions::new("memcached://x"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("redis.url"), "{error}");
}

#[tokio::test]
async fn a_config_file_names_the_redis_store() {
    let server = RedisServer::start();
    let text = format!(
        r#"
        pepper = "p"
        [redis]
        url = "{}"
        prefix = "fromconfig:"
        timeout_ms = 100
        on_failure = "closed"
        denial_cache = 10

        [[keys]]
        name = "server"
        key = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad"
        project = "demo"

        [[routes]]
        route = "POST /v1/track"
        quotas = [{{ rate = 1, per = "minute", burst = 1 }}]
        "#,
        server.url()
    );
    let config = tollgate::gate::GateConfig::from_toml(&text).unwrap();
    assert_eq!(
        config.redis,
        Some(
            RedisOptions::new(server.url())
                .prefix("fromconfig:")
                .timeout(Duration::from_millis(100))
                .on_failure(FailureMode::Closed)
                .denial_cache(10)
        )
    );
    // Building in memory would silently multiply limits by the instances.
    assert_eq!(config.build().unwrap_err().field(), "redis");
    let store = config.redis_store().await.unwrap().expect("a store");
    let gate = config.builder().unwrap().rate_store(store).build().unwrap();
    let address = serve_gate(&gate).await;
    let answer = fetch(empty(Request::post(format!("http://{address}/v1/track")))).await;
    assert_eq!(answer.code(), "missing_api_key");
    let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("fromconfig:*"));
    assert!(keys.is_empty(), "nothing counted before the key check");
    let key = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";
    assert_eq!(fetch(track(address, key)).await.status, StatusCode::OK);
    assert_eq!(fetch(track(address, key)).await.code(), "rate_limited");
    let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("fromconfig:*"));
    assert_eq!(keys, ["fromconfig:{project:demo}:POST /v1/track:0"]);

    let error = tollgate::gate::GateConfig::from_toml("[redis]\nurl = \"redis://x\"\nttl = 3\n")
        .unwrap_err();
    assert!(error.to_string().contains("ttl"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_each_request_at_most_the_timeout() {
    let fake = FakeClock::new();
    let (server, redis, handler, service) = admitting(FailureMode::Closed, 10, &fake).await;

    // The connection stays up but Redis answers nothing: only the timeout
    // (200 ms here) ends the wait; the next request, within the retry
    // interval, does not wait at all.
    server.signal("-STOP");
    for _ in 0..2 {
        let (answer, took) = timed(service.clone(), from("acme")).await;
        assert_eq!(answer.code(), "upstream_failed");
        assert!(took < Duration::from_secs(5), "waited {took:?}");
    }
    let stats = redis.stats();
    assert_eq!((stats.failures, stats.skipped, stats.calls), (1, 1, 2));
    assert_eq!(handler.calls(), 1);

    server.signal("-CONT");
    let status = until_admitted(&service, &fake).await;
    assert_eq!(status, StatusCode::OK, "the store never came back");
    // The request that timed out reached Redis and was counted when it
    // thawed (a timeout cannot take back a command already sent): of 10,
    // at most 10 - (1 + 1 + 1 + 1) remain.
    let answer = send(service.clone(), from("acme")).await;
    let remaining = answer.remaining();
    assert!(remaining <= 6, "{:?}", answer.headers);
}

/// Per-key and per-tier quotas and a budget shared by two routes hold
/// across two instances sharing one Redis, as they do in memory; the shared
/// budget lives under one key per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_tier_and_shared_budgets_hold_across_instances() {
    let server = RedisServer::start();
    let keys = Keys::new();
    let pro = keys.add(
        KeyKind::Secret,
        KeyRecord::new("pro", "p-pro", KeyKind::Secret)
            .with_tier("pro")
            .unwrap(),
    );
    let custom = keys.add(
        KeyKind::Secret,
        KeyRecord::new("custom", "p-custom", KeyKind::Secret)
            .with_quota("sdk", Quota::per_minute(6))
            .unwrap(),
    );
    let instance = |store: RedisRateStore| {
        Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .rate_store(store)
            .shared_quota(Quota::per_minute(4).named("sdk"))
            .route(
                "POST /v1/track",
                RoutePolicy::new()
                    .quota(Quota::per_minute(2))
                    .tier("pro", TierPolicy::new().quota(Quota::per_minute(5))),
            )
            .route(
                "GET /v1/flags",
                RoutePolicy::new().quota(Quota::shared("sdk")),
            )
            .route(
                "POST /v1/events",
                RoutePolicy::new().quotas([Quota::per_second(100), Quota::shared("sdk")]),
            )
            .build()
            .unwrap()
    };
    let first = serve_gate(&instance(store(&server, options(&server)).await)).await;
    let second = serve_gate(&instance(store(&server, options(&server)).await)).await;
    let admitted = |key: String, routes: &'static [(&'static str, &'static str)]| async move {
        let mut admitted = 0;
        for round in 0..12 {
            let address = if round % 2 == 0 { first } else { second };
            let (method, path) = routes[round % routes.len()];
            let answer = fetch(empty(
                Request::builder()
                    .method(method)
                    .uri(format!("http://{address}{path}"))
                    .header("authorization", format!("Bearer {key}")),
            ))
            .await;
            match answer.status {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("{other}: {:?}", answer.body),
            }
        }
        admitted
    };
    const TRACK: &[(&str, &str)] = &[("POST", "/v1/track")];
    const SDK: &[(&str, &str)] = &[
        ("GET", "/v1/flags"),
        ("POST", "/v1/events"),
        ("POST", "/v1/events"),
    ];
    assert_eq!(admitted(keys.secret.key().to_owned(), TRACK).await, 2);
    assert_eq!(admitted(pro.key().to_owned(), TRACK).await, 5);
    assert_eq!(admitted(keys.secret.key().to_owned(), SDK).await, 4);
    assert_eq!(admitted(custom.key().to_owned(), SDK).await, 6);
    let mut stored: Vec<String> = server.query(redis::cmd("KEYS").arg("*shared*"));
    stored.sort();
    assert_eq!(
        stored,
        [
            "tollgate:{project:demo}:shared:sdk",
            "tollgate:{project:p-custom}:shared:sdk"
        ]
    );
}

/// A key's 40 credits shared by two gates on one Redis: 8 concurrent
/// clients (4 on each gate's socket) spend exactly 40, never more; the
/// rest are refused `credits_exhausted`; a top-up through one gate is
/// spent through the other at once (no denial cache in the way); the
/// route's bucket gave nothing back for the refused requests. Then a
/// daily refill read back from Redis, top-ups kept past the boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_shared_through_redis_without_over_spending() {
    use tollgate::rate_limit::Credits;
    let server = RedisServer::start();
    let keys = Keys::new();
    let record = KeyRecord::new("key_credits", "demo", KeyKind::Secret)
        .with_credits(Credits::new(40))
        .unwrap();
    let key = keys.add(KeyKind::Secret, record.clone()).key().to_owned();
    let instance = |store: RedisRateStore| {
        Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .rate_store(store)
            .route(
                "POST /v1/track",
                RoutePolicy::new().quota(Quota::per_minute(1).burst(1000)),
            )
            .build()
            .unwrap()
    };
    let gates = [
        instance(store(&server, options(&server)).await),
        instance(store(&server, options(&server)).await),
    ];
    let addresses = [serve_gate(&gates[0]).await, serve_gate(&gates[1]).await];
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (address, key) = (addresses[client % 2], key.clone());
            tokio::spawn(async move {
                let (mut admitted, mut refused) = (0, 0);
                for _ in 0..10 {
                    let answer = fetch(track(address, &key)).await;
                    match answer.status {
                        StatusCode::OK => admitted += 1,
                        StatusCode::TOO_MANY_REQUESTS => {
                            assert_eq!(answer.code(), "credits_exhausted");
                            refused += 1;
                        }
                        other => panic!("{other}: {:?}", answer.body),
                    }
                }
                (admitted, refused)
            })
        })
        .collect();
    let (mut admitted, mut refused) = (0, 0);
    for client in clients {
        let (a, r) = client.await.unwrap();
        admitted += a;
        refused += r;
    }
    assert_eq!((admitted, refused), (40, 40), "exactly the 40 credits");
    assert_eq!(gates[1].credits_left(&record).await.unwrap(), Some(0));
    assert_eq!(gates[0].top_up_credits(&record, 3).await.unwrap(), 3);
    for _ in 0..3 {
        assert_eq!(
            fetch(track(addresses[1], &key)).await.status,
            StatusCode::OK
        );
    }
    let last = fetch(track(addresses[1], &key)).await;
    assert_eq!(last.code(), "credits_exhausted");
    assert!(last.headers.get("retry-after").is_none());
    // 43 admitted of the bucket's 1000 (a token a minute back at most):
    // the 41 refusals took nothing from it.
    let bucket: String =
        server.query(redis::cmd("GET").arg("tollgate:{project:demo}:POST /v1/track:0"));
    assert!(!bucket.is_empty());
    assert!(
        last.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"POST /v1/track\";r=957;"),
        "{:?}",
        last.headers
    );
    let stored: String = server.query(redis::cmd("GET").arg("tollgate:{credits:key_credits}"));
    assert_eq!(
        stored, "0:40",
        "no refill: period 0; 43 spent less 3 topped up"
    );
    let ttl: i64 = server.query(redis::cmd("PTTL").arg("tollgate:{credits:key_credits}"));
    assert_eq!(ttl, -1, "credits without a refill never expire");

    // A daily refill: the fake clock at 23:59:59 UTC on both stores.
    use tollgate::rate_limit::Calendar;
    let daily = KeyRecord::new("key_daily", "demo", KeyKind::Secret)
        .with_credits(Credits::refilled(2, Calendar::Day))
        .unwrap();
    let daily_key = keys.add(KeyKind::Secret, daily.clone()).key().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let last_second = (now / 86_400 + 1) * 86_400 - 1;
    let fake = FakeClock::starting_at(std::time::UNIX_EPOCH + Duration::from_secs(last_second));
    let on_fake = |store: RedisRateStore| instance(store.with_clock(fake.clock()));
    let fakes = [
        on_fake(store(&server, options(&server)).await),
        on_fake(store(&server, options(&server)).await),
    ];
    let addresses = [serve_gate(&fakes[0]).await, serve_gate(&fakes[1]).await];
    for address in addresses {
        assert_eq!(
            fetch(track(address, &daily_key)).await.status,
            StatusCode::OK
        );
    }
    let refused = fetch(track(addresses[0], &daily_key)).await;
    assert_eq!(refused.code(), "credits_exhausted");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(fakes[1].top_up_credits(&daily, 5).await.unwrap(), 5);
    let ttl: i64 = server.query(redis::cmd("PTTL").arg("tollgate:{credits:key_daily}"));
    assert_eq!(ttl, -1, "a top-up beyond the amount is kept: no expiry");
    fake.advance(Duration::from_secs(1));
    assert_eq!(fakes[0].credits_left(&daily).await.unwrap(), Some(5));
    assert_eq!(fakes[0].top_up_credits(&daily, 0).await.unwrap(), 5);
}

/// A key's credits in approximate mode: each gate decides by its view, so
/// before a sync two gates spend at most one balance each (10 + 10 of 10)
/// and no more; the syncs carry what each spent, both views then hold the
/// fleet's balance and refuse; a top-up through one gate reaches Redis and
/// that gate's view at once, and the other's with the sync after a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_in_approximate_mode_sync_and_stay_within_the_bound() {
    use tollgate::rate_limit::Credits;
    use tollgate::rate_limit::redis::Mode;
    let server = RedisServer::start();
    let keys = Keys::new();
    let record = KeyRecord::new("key_approx", "demo", KeyKind::Secret)
        .with_credits(Credits::new(10))
        .unwrap();
    let key = keys.add(KeyKind::Secret, record.clone()).key().to_owned();
    let approximate = || {
        options(&server)
            .mode(Mode::Approximate)
            .sync_interval(Duration::from_secs(3600))
    };
    let stores = [
        store(&server, approximate()).await,
        store(&server, approximate()).await,
    ];
    let instance = |store: RedisRateStore| {
        Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .rate_store(store)
            .route(
                "POST /v1/track",
                RoutePolicy::new().quota(Quota::per_minute(1).burst(1000)),
            )
            .build()
            .unwrap()
    };
    let gates = [instance(stores[0].clone()), instance(stores[1].clone())];
    let addresses = [serve_gate(&gates[0]).await, serve_gate(&gates[1]).await];
    // Before a sync each view admits the whole allowance: 10 each, 20 in
    // all (instances × allowance), and no more.
    let mut admitted = [0; 2];
    for (index, address) in addresses.into_iter().enumerate() {
        for _ in 0..15 {
            let answer = fetch(track(address, &key)).await;
            match answer.status {
                StatusCode::OK => admitted[index] += 1,
                _ => assert_eq!(answer.code(), "credits_exhausted"),
            }
        }
    }
    assert_eq!(admitted, [10, 10]);
    for store in &stores {
        assert_eq!(store.sync().await.unwrap(), 1);
    }
    let stored: String = server.query(redis::cmd("GET").arg("tollgate:{credits:key_approx}"));
    assert_eq!(stored, "0:20", "the fleet's 20 spent");
    // Each view now holds the fleet's balance: none left, both refuse.
    for address in addresses {
        assert_eq!(
            fetch(track(address, &key)).await.code(),
            "credits_exhausted"
        );
    }
    assert_eq!(gates[0].credits_left(&record).await.unwrap(), Some(0));
    // 10 over the allowance spent: a top-up of 15 leaves 5, in Redis and in
    // the topping gate's view at once (the other's at its next read).
    assert_eq!(gates[1].top_up_credits(&record, 15).await.unwrap(), 5);
    let mut after = 0;
    while fetch(track(addresses[1], &key)).await.status == StatusCode::OK {
        after += 1;
    }
    assert_eq!(after, 5);
    stores[1].sync().await.unwrap();
    // The other gate refused since its sync: that refusal has its next sync
    // read the fleet's balance, so a top-up reaches its view too.
    assert_eq!(gates[1].top_up_credits(&record, 3).await.unwrap(), 3);
    assert_eq!(
        fetch(track(addresses[0], &key)).await.code(),
        "credits_exhausted"
    );
    stores[0].sync().await.unwrap();
    let mut other = 0;
    while fetch(track(addresses[0], &key)).await.status == StatusCode::OK {
        other += 1;
    }
    assert_eq!(
        other, 3,
        "the top-up, seen by the other gate after its sync"
    );
}
