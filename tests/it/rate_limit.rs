//! `RateLimitLayer` with a fake clock: burst, refill, honest `Retry-After`,
//! stacked quotas, separate buckets, eviction, the cap, concurrency, and
//! headers (also over a real socket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use http::{Request, StatusCode};
use serde_json::json;
use tollgate::clock::FakeClock;
use tollgate::key::{KeyKind, KeyRecord, Principal};
use tollgate::rate_limit::{
    InMemoryRateStore, Partition, Quota, RateLimit, RateLimitHeaders, RateLimitLayer,
};
use tollgate::route::{PerRoute, RouteLayer, Routes};
use tower::ServiceBuilder;

fn principal(project: &str) -> Principal {
    Principal::new(Arc::new(KeyRecord::new(
        format!("key_{project}"),
        project,
        KeyKind::Secret,
    )))
}

fn request(method: &str, path: &str, project: &str) -> TestRequest {
    let mut request = empty(Request::builder().method(method).uri(path));
    request.extensions_mut().insert(principal(project));
    request
}

fn track(project: &str) -> TestRequest {
    request("POST", "/v1/track", project)
}

fn routes() -> Routes {
    Routes::builder()
        .public("GET /health")
        .route("POST /v1/track")
        .route("POST /v1/batch")
        .route("GET /v1/items/{id}")
        .build()
        .unwrap()
}

struct Fixture {
    fake: FakeClock,
    store: InMemoryRateStore,
    handler: Handler,
}

impl Fixture {
    fn new() -> Self {
        let fake = FakeClock::new();
        Self {
            store: InMemoryRateStore::with_clock(fake.clock()),
            fake,
            handler: Handler::default(),
        }
    }

    fn service(
        &self,
        limits: impl Into<PerRoute<RateLimit>>,
    ) -> impl tower::Service<
        TestRequest,
        Response = http::Response<
            impl http_body::Body<Data = bytes::Bytes, Error = impl std::fmt::Debug>,
        >,
        Error = std::convert::Infallible,
    > + Clone
    + Send
    + 'static {
        self.service_with(limits, |layer| layer)
    }

    fn service_with(
        &self,
        limits: impl Into<PerRoute<RateLimit>>,
        configure: impl FnOnce(RateLimitLayer) -> RateLimitLayer,
    ) -> impl tower::Service<
        TestRequest,
        Response = http::Response<
            impl http_body::Body<Data = bytes::Bytes, Error = impl std::fmt::Debug>,
        >,
        Error = std::convert::Infallible,
    > + Clone
    + Send
    + 'static {
        let layer = RateLimitLayer::with_store(self.store.clone(), limits)
            .unwrap()
            .clock(self.fake.clock());
        ServiceBuilder::new()
            .layer(RouteLayer::new(routes()))
            .layer(configure(layer))
            .service(self.handler.service())
    }

    fn advance(&self, by: Duration) {
        self.fake.advance(by);
    }
}

async fn admitted<S, B>(service: &S, make: impl Fn() -> TestRequest, n: usize) -> usize
where
    S: tower::Service<TestRequest, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut count = 0;
    for _ in 0..n {
        if send(service.clone(), make()).await.status == StatusCode::OK {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn a_full_bucket_admits_exactly_burst() {
    let f = Fixture::new();
    let service = f.service(RateLimit::new(Quota::per_second(10).burst(5)));
    assert_eq!(admitted(&service, || track("acme"), 20).await, 5);
    assert_eq!(
        f.handler.calls(),
        5,
        "refused requests never reach the handler"
    );
    let answer = send(service, track("acme")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.code(), "rate_limited");
    assert_eq!(answer.body["error"]["category"], "rate_limit");
    assert_eq!(
        answer.body["error"]["details"],
        json!({ "retry_after": 1, "limit": 5, "policy": "POST /v1/track" })
    );
    assert_eq!(
        answer.body["error"]["message"],
        "Rate limit exceeded on route POST /v1/track. Retry after 1 second."
    );
}

#[tokio::test]
async fn refills_at_the_stated_rate_up_to_burst() {
    let f = Fixture::new();
    let service = f.service(RateLimit::new(Quota::per_second(2).burst(4)));
    assert_eq!(admitted(&service, || track("acme"), 10).await, 4);
    f.advance(Duration::from_millis(499));
    assert_eq!(admitted(&service, || track("acme"), 3).await, 0);
    f.advance(Duration::from_millis(1));
    assert_eq!(admitted(&service, || track("acme"), 3).await, 1);
    f.advance(Duration::from_secs(1));
    assert_eq!(admitted(&service, || track("acme"), 5).await, 2);
    // Long idle: refills to burst, never beyond.
    f.advance(Duration::from_secs(3600));
    assert_eq!(admitted(&service, || track("acme"), 10).await, 4);
}

#[tokio::test]
async fn retry_after_rounds_up_and_waiting_it_is_enough() {
    // (quota with burst 1, expected Retry-After): waits of 0.2 s, 1.0 s, 1.01 s.
    let cases = [
        (Quota::per_second(5).burst(1), "1"),
        (Quota::per_second(1).burst(1), "1"),
        (Quota::per(100, Duration::from_secs(101)).burst(1), "2"),
    ];
    for (quota, expected) in cases {
        let f = Fixture::new();
        let service = f.service(RateLimit::new(quota.clone()));
        assert_eq!(
            send(service.clone(), track("acme")).await.status,
            StatusCode::OK
        );
        let refused = send(service.clone(), track("acme")).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers["retry-after"], expected, "{quota:?}");
        assert_eq!(
            refused.body["error"]["details"]["retry_after"].to_string(),
            expected
        );
        let wait: u64 = expected.parse().unwrap();
        f.advance(Duration::from_secs(wait));
        assert_eq!(
            send(service.clone(), track("acme")).await.status,
            StatusCode::OK,
            "{quota:?} after {wait} s"
        );
    }
}

#[tokio::test]
async fn stacked_quotas_consume_nothing_on_denial() {
    let f = Fixture::new();
    let service = f.service(RateLimit::stacked([
        Quota::per_second(10).burst(3).named("burst"),
        Quota::per_minute(5).named("minute"),
    ]));
    assert_eq!(admitted(&service, || track("acme"), 3).await, 3);
    // The burst quota refuses; the minute quota keeps its 2 tokens.
    for _ in 0..10 {
        let refused = send(service.clone(), track("acme")).await;
        assert_eq!(refused.body["error"]["details"]["policy"], "burst");
        // `t`: seconds until one more token (draft 11), not until full
        // (the minute quota is full in 36 s, its next token comes in 12 s);
        // the refusing policy's `t` is the `Retry-After`.
        assert_eq!(
            refused.headers["ratelimit"],
            r#""burst";r=0;t=1, "minute";r=2;t=12"#
        );
        assert_eq!(refused.headers["retry-after"], "1");
    }
    f.advance(Duration::from_secs(1));
    assert_eq!(admitted(&service, || track("acme"), 2).await, 2);
    // Now the minute quota refuses; the burst quota keeps what it has.
    let refused = send(service.clone(), track("acme")).await;
    assert_eq!(refused.body["error"]["details"]["policy"], "minute");
    assert_eq!(refused.body["error"]["details"]["limit"], 5);
    // 5 tokens a minute (one per 12 s) all taken by t = 1 s: the next comes at 12 s.
    assert_eq!(refused.headers["retry-after"], "11");
    assert!(
        refused.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(r#""burst";r=1;"#),
        "{:?}",
        refused.headers["ratelimit"]
    );
    assert_eq!(f.handler.calls(), 5);
}

#[tokio::test]
async fn routes_and_partitions_have_separate_buckets() {
    let f = Fixture::new();
    let limits = PerRoute::new(&routes(), RateLimit::new(Quota::per_second(1).burst(2)));
    let service = f.service(limits);
    assert_eq!(admitted(&service, || track("acme"), 5).await, 2);
    assert_eq!(admitted(&service, || track("globex"), 5).await, 2);
    assert_eq!(
        admitted(&service, || request("POST", "/v1/batch", "acme"), 5).await,
        2
    );
    // One route, whatever its parameters.
    assert_eq!(
        admitted(&service, || request("GET", "/v1/items/1", "acme"), 1).await,
        1
    );
    assert_eq!(
        admitted(&service, || request("GET", "/v1/items/2", "acme"), 5).await,
        1
    );
    assert_eq!(f.store.len(), 4);
}

#[tokio::test]
async fn partitions_by_key_ip_global_and_function() {
    let f = Fixture::new();
    let quota = || RateLimit::new(Quota::per_second(1).burst(1));
    // By key: two keys of one project have separate buckets.
    let by_key = f.service_with(quota(), |layer| layer.partition(Partition::KeyId));
    let mut first = track("acme");
    first
        .extensions_mut()
        .insert(Principal::new(Arc::new(KeyRecord::new(
            "key_a",
            "acme",
            KeyKind::Secret,
        ))));
    let mut second = track("acme");
    second
        .extensions_mut()
        .insert(Principal::new(Arc::new(KeyRecord::new(
            "key_b",
            "acme",
            KeyKind::Secret,
        ))));
    assert_eq!(send(by_key.clone(), first).await.status, StatusCode::OK);
    assert_eq!(send(by_key, second).await.status, StatusCode::OK);

    // Global: everyone shares one bucket.
    let f = Fixture::new();
    let global = f.service_with(quota(), |layer| layer.partition(Partition::Global));
    assert_eq!(
        send(global.clone(), track("acme")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(global, track("globex")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // A user function.
    let f = Fixture::new();
    let custom = f.service_with(quota(), |layer| {
        layer.partition(Partition::custom(|view| {
            view.headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }))
    });
    let tenant = |name: &str| {
        let mut r = track("acme");
        r.headers_mut().insert("x-tenant", name.parse().unwrap());
        r
    };
    assert_eq!(
        send(custom.clone(), tenant("t1")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(custom.clone(), tenant("t2")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(custom, tenant("t1")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

fn from(peer: &str, forwarded: Option<&str>, path: &str) -> TestRequest {
    let mut builder = Request::get(path);
    if let Some(forwarded) = forwarded {
        builder = builder.header("x-forwarded-for", forwarded);
    }
    let mut request = empty(builder);
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    request
}

#[tokio::test]
async fn public_routes_partition_by_client_ip_behind_trusted_proxies() {
    let f = Fixture::new();
    let service = f.service_with(RateLimit::new(Quota::per_second(1).burst(1)), |layer| {
        layer.trusted_proxies(["10.0.0.0/8".parse().unwrap()])
    });
    // Direct clients: the peer address.
    assert_eq!(
        send(service.clone(), from("203.0.113.1:1", None, "/health"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(service.clone(), from("203.0.113.2:1", None, "/health"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(
            service.clone(),
            from("203.0.113.1:2", Some("9.9.9.9"), "/health")
        )
        .await
        .status,
        StatusCode::TOO_MANY_REQUESTS,
        "an untrusted peer cannot pick its partition"
    );
    // Behind the proxy: the right-most untrusted hop, whatever the client prepends.
    assert_eq!(
        send(
            service.clone(),
            from("10.0.0.5:1", Some("1.1.1.1, 198.51.100.7"), "/health")
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(
            service.clone(),
            from("10.0.0.5:1", Some("2.2.2.2, 198.51.100.7"), "/health")
        )
        .await
        .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(
            service,
            from("10.0.0.5:1", Some("198.51.100.8, 10.0.0.9"), "/health")
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_route_without_a_principal_is_refused() {
    let f = Fixture::new();
    let service = f.service(RateLimit::new(Quota::per_second(1)));
    let answer = send(service, empty(Request::post("/v1/track"))).await;
    assert_eq!(answer.code(), "missing_api_key");
}

#[tokio::test]
async fn full_buckets_are_evicted() {
    let f = Fixture::new();
    let service = f.service(RateLimit::new(Quota::per_second(10).burst(10)));
    for i in 0..200 {
        send(service.clone(), track(&format!("p{i}"))).await;
    }
    assert_eq!(f.store.len(), 200);
    // Not full yet: nothing to evict.
    assert_eq!(f.store.evict_full(), 0);
    f.advance(Duration::from_millis(100));
    assert_eq!(f.store.evict_full(), 200);
    assert_eq!(f.store.len(), 0);
}

#[test]
fn full_buckets_are_evicted_automatically_on_the_request_path() {
    // A thread of its own, so that the per-thread sweep counter starts at 0.
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let f = Fixture::new();
                let service = f.service(RateLimit::new(
                    Quota::per_second(1_000_000).burst(1_000_000),
                ));
                for i in 0..500 {
                    send(service.clone(), track(&format!("p{i}"))).await;
                }
                assert_eq!(f.store.len(), 500);
                f.advance(Duration::from_secs(1));
                // 64 shards, one swept every 1 024 decisions: after 64 × 1 024
                // more decisions on one partition every shard has been swept.
                for _ in 0..64 * 1024 {
                    send(service.clone(), track("steady")).await;
                }
                assert_eq!(f.store.len(), 1, "only the partition still in use is left");
            });
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn the_live_bucket_cap_holds() {
    let fake = FakeClock::new();
    let store = InMemoryRateStore::with_clock(fake.clock()).max_buckets(10);
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(RouteLayer::new(routes()))
        .layer(
            RateLimitLayer::with_store(
                store.clone(),
                RateLimit::new(Quota::per_second(1).burst(2)),
            )
            .unwrap(),
        )
        .service(handler.service());
    for i in 0..10 {
        assert_eq!(
            send(service.clone(), track(&format!("p{i}"))).await.status,
            StatusCode::OK
        );
    }
    let answer = send(service.clone(), track("p10")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        answer.body["error"]["details"],
        json!({ "retry_after": 1, "reason": "capacity" })
    );
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(store.len(), 10);
    // Known partitions are unaffected.
    fake.advance(Duration::from_millis(999));
    assert_eq!(
        send(service.clone(), track("p3")).await.status,
        StatusCode::OK
    );
    // Once buckets are full again they make room.
    fake.advance(Duration::from_secs(1));
    assert_eq!(
        send(service.clone(), track("p10")).await.status,
        StatusCode::OK
    );
    assert!(store.len() <= 10);
}

#[test]
fn eight_threads_on_one_bucket_with_a_frozen_clock_admit_exactly_burst() {
    let f = Fixture::new();
    let service = f.service(RateLimit::new(Quota::per_second(1).burst(250)));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let service = service.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(async { admitted(&service, || track("acme"), 1000).await })
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 250);
    assert_eq!(f.handler.calls(), 250);
}

#[tokio::test]
async fn draft_headers_on_every_response() {
    let f = Fixture::new();
    let service = f.service(RateLimit::new(Quota::per_second(50).burst(200)));
    let answer = send(service.clone(), track("acme")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers["ratelimit-policy"],
        r#""POST /v1/track";q=200;w=4"#
    );
    assert_eq!(answer.headers["ratelimit"], r#""POST /v1/track";r=199;t=1"#);
    assert!(!answer.headers.contains_key("x-ratelimit-limit"));
    assert!(!answer.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn legacy_and_no_headers() {
    let f = Fixture::new();
    let start = f.fake.clock().unix_seconds();
    let legacy = f.service_with(RateLimit::new(Quota::per_second(1).burst(3)), |l| {
        l.rate_limit_headers(RateLimitHeaders::Legacy)
    });
    let answer = send(legacy.clone(), track("acme")).await;
    assert_eq!(answer.headers["x-ratelimit-limit"], "3");
    assert_eq!(answer.headers["x-ratelimit-remaining"], "2");
    assert_eq!(
        answer.headers["x-ratelimit-reset"],
        (start + 1).to_string().as_str()
    );
    assert!(!answer.headers.contains_key("ratelimit"));

    let f = Fixture::new();
    let both = f.service_with(RateLimit::new(Quota::per_second(1)), |l| {
        l.rate_limit_headers(RateLimitHeaders::Both)
    });
    let answer = send(both, track("acme")).await;
    assert!(
        answer.headers.contains_key("ratelimit")
            && answer.headers.contains_key("x-ratelimit-remaining")
    );

    let f = Fixture::new();
    let none = f.service_with(RateLimit::new(Quota::per_second(1).burst(1)), |l| {
        l.rate_limit_headers(RateLimitHeaders::None)
    });
    let answer = send(none.clone(), track("acme")).await;
    assert!(
        !answer.headers.contains_key("ratelimit")
            && !answer.headers.contains_key("x-ratelimit-limit")
    );
    let refused = send(none, track("acme")).await;
    assert_eq!(
        refused.headers["retry-after"], "1",
        "a refusal always says when to come back"
    );
}

#[tokio::test]
async fn unlimited_routes_and_costs() {
    let f = Fixture::new();
    let limits = PerRoute::new(&routes(), RateLimit::unlimited())
        .route(
            "POST /v1/batch",
            RateLimit::new(Quota::per_second(1).burst(10)).cost(4),
        )
        .unwrap();
    let service = f.service(limits);
    let answer = send(service.clone(), track("acme")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.headers.contains_key("ratelimit"));
    assert_eq!(
        admitted(&service, || request("POST", "/v1/batch", "acme"), 5).await,
        2
    );
}

#[tokio::test]
async fn grpc_refusal_is_resource_exhausted() {
    let f = Fixture::new();
    let service = f.service(RateLimit::new(Quota::per_second(1).burst(1)));
    let grpc = || {
        let mut r = track("acme");
        r.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        r
    };
    send(service.clone(), grpc()).await;
    let answer = send(service, grpc()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["grpc-status"], "8");
    assert_eq!(answer.headers["retry-after"], "1");
}

#[test]
fn bad_quotas_are_configuration_errors() {
    let cases: Vec<(RateLimit, &str)> = vec![
        (RateLimit::new(Quota::per_second(0)), "quotas"),
        (RateLimit::new(Quota::per_second(5).burst(0)), "quotas"),
        (RateLimit::new(Quota::per(1, Duration::ZERO)), "quotas"),
        (
            RateLimit::new(Quota::per(u64::MAX, Duration::from_secs(1))),
            "quotas",
        ),
        (RateLimit::new(Quota::per_day(1).burst(u64::MAX)), "quotas"),
        (
            RateLimit::new(Quota::per(1, Duration::from_secs(u64::MAX))),
            "quotas",
        ),
        (RateLimit::new(Quota::per_second(5)).cost(0), "cost"),
        (RateLimit::new(Quota::per_second(5)).cost(6), "cost"),
        (RateLimit::stacked((1..=5).map(Quota::per_second)), "quotas"),
    ];
    for (limit, field) in cases {
        let error = RateLimitLayer::new(limit.clone()).unwrap_err();
        assert_eq!(error.field(), field, "{limit:?}: {error}");
    }
    let per_route = PerRoute::new(&routes(), RateLimit::unlimited())
        .route("POST /v1/batch", RateLimit::new(Quota::per_second(0)))
        .unwrap();
    let error = RateLimitLayer::new(per_route).unwrap_err();
    assert_eq!(error.route(), Some("POST /v1/batch"));
}

#[tokio::test]
async fn headers_on_a_200_and_a_429_over_a_real_socket() {
    use hyper::body::Incoming;
    let store = InMemoryRateStore::new();
    let layer = RateLimitLayer::with_store(store, RateLimit::new(Quota::per_minute(2).burst(2)))
        .unwrap()
        .partition(Partition::ClientIp)
        .rate_limit_headers(RateLimitHeaders::Both);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|_: Request<Incoming>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"{}"),
            )))
        }));
    // The server inserts each connection's peer address, as a real one would.
    let address = serve(service).await;
    let get = || {
        Request::get(format!("http://{address}/v1/track"))
            .body(http_body_util::Full::default())
            .unwrap()
    };

    let first = fetch(get()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["ratelimit-policy"], r#""default";q=2;w=60"#);
    assert_eq!(first.headers["ratelimit"], r#""default";r=1;t=30"#);
    assert_eq!(first.headers["x-ratelimit-remaining"], "1");
    assert_eq!(fetch(get()).await.status, StatusCode::OK);
    let refused = fetch(get()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    assert_eq!(refused.headers["x-ratelimit-remaining"], "0");
    assert!(
        refused.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(r#""default";r=0;t="#)
    );
    assert_eq!(refused.body["error"]["code"], "rate_limited");
}
