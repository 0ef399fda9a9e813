//! Floods stay bounded: a million well-formed unknown keys, and a million
//! one-off partitions, through real services, measured by the stores' own
//! counts (not by time).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tollgate::body_limit::LimitedBody;
use tollgate::clock::FakeClock;
use tollgate::error::{ApiError, ErrorCode};
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::key::CachedKeyStore;
use tollgate::key::format::checksum;
use tollgate::rate_limit::{InMemoryRateStore, Partition, Quota, RateLimit, RateLimitLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

const FLOOD: u32 = 1_000_000;

fn code(response: &Response<impl Sized>) -> Option<ErrorCode> {
    response
        .extensions()
        .get::<ApiError>()
        .map(|e| e.code().clone())
}

#[tokio::test]
async fn a_million_unknown_keys_make_no_bucket_and_a_bounded_negative_cache() {
    const NEGATIVE_CAPACITY: usize = 10_000;
    let keys = Keys::new();
    let lookups = CountingStore::new(keys.store.clone());
    let cached = CachedKeyStore::builder(lookups.clone())
        .negative_capacity(NEGATIVE_CAPACITY)
        .build();
    let gate = Gate::builder(cached.clone())
        .hasher(keys.hasher.clone())
        .route(
            "POST /v1/track",
            RoutePolicy::new().quota(Quota::per_second(1_000).burst(1_000)),
        )
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let mut service = ServiceBuilder::new().layer(gate.layer()).service_fn(
        move |_: Request<LimitedBody<Full<Bytes>>>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
        },
    );

    let mut most_cached = 0;
    for i in 0..FLOOD {
        // Well formed: right prefix, length and checksum; in no store.
        let body = format!("sk_test_{i:032}");
        let key = format!("{body}{}", checksum(&body));
        let request = Request::post("/v1/track")
            .header("x-api-key", key)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "key {i}");
        assert_eq!(code(&response), Some(ErrorCode::INVALID_API_KEY), "key {i}");
        most_cached = most_cached.max(cached.negative_len());
    }
    assert!(
        most_cached <= NEGATIVE_CAPACITY,
        "negative cache grew to {most_cached}"
    );
    assert!(most_cached > NEGATIVE_CAPACITY / 2, "the cache was used");
    assert_eq!(gate.rate_store().len(), 0, "no bucket for an unknown key");
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(
        lookups.lookups(),
        FLOOD as usize,
        "each unknown key looked up once"
    );

    // A known key still works after the flood.
    let request = Request::post("/v1/track")
        .header("x-api-key", keys.secret.key())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(gate.rate_store().len(), 1);
}

fn from_ip(i: u32) -> TestRequest {
    let mut request = empty(get("/"));
    let ip = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i));
    request.extensions_mut().insert(SocketAddr::new(ip, 40_000));
    request
}

#[tokio::test]
async fn a_million_one_off_partitions_never_exceed_the_cap() {
    const CAP: usize = 50_000;
    let fake = FakeClock::new();
    let store = InMemoryRateStore::with_clock(fake.clock()).max_buckets(CAP);
    let handler = Handler::default();
    let mut service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::with_store(
                store.clone(),
                RateLimit::new(Quota::per_second(1).burst(5)),
            )
            .unwrap()
            .partition(Partition::ClientIp),
        )
        .service(handler.service());

    // The clock stands still: no bucket is ever full again, so once the cap
    // is reached every new client is refused, and known ones still work.
    let (mut admitted, mut refused, mut most_live) = (0u32, 0u32, 0);
    for i in 0..FLOOD {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(from_ip(i))
            .await
            .unwrap();
        match response.status() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(code(&response), Some(ErrorCode::RATE_LIMITED));
                refused += 1;
            }
            other => panic!("client {i}: {other}"),
        }
        most_live = most_live.max(store.len());
    }
    assert!(most_live <= CAP, "live buckets reached {most_live}");
    assert_eq!(admitted as usize, CAP);
    assert_eq!(refused, FLOOD - CAP as u32);
    let known = service
        .ready()
        .await
        .unwrap()
        .call(from_ip(7))
        .await
        .unwrap();
    assert_eq!(
        known.status(),
        StatusCode::OK,
        "a known client is not affected"
    );

    // Time moves on: buckets refill and are swept as new clients arrive, so
    // a second million one-off clients are all admitted, still under the cap.
    let mut most_live = 0;
    for i in FLOOD..2 * FLOOD {
        if i % 10_000 == 0 {
            fake.advance(Duration::from_secs(6));
        }
        let response = service
            .ready()
            .await
            .unwrap()
            .call(from_ip(i))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "client {i}");
        most_live = most_live.max(store.len());
    }
    assert!(most_live <= CAP, "live buckets reached {most_live}");
    fake.advance(Duration::from_secs(6));
    let live = store.len();
    assert_eq!(store.evict_full(), live);
    assert_eq!(store.len(), 0, "all full again, all evicted");
}
