//! The stacks the benches and `examples/hot_path.rs` compare, built in one
//! place: the trivial handler alone, the gate in front of it, and what a
//! user would assemble instead from tower-http and tower_governor.
//!
//! Data: 10 000 secret keys over 1 000 projects, used in a shuffled order;
//! quotas high enough never to refuse.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use tollgate::gate::{Gate, GateBuilder, RoutePolicy, TierPolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord};
use tollgate::rate_limit::{InMemoryRateStore, Quota};
use tower::Service;
use tower_governor::key_extractor::KeyExtractor;

pub const KEYS: usize = 10_000;
pub const PROJECTS: usize = 1_000;

/// One bench case: `service` on a request made by `make` from the next of
/// `keys` (the caller imports `KEYS`, `poll_once`, `BatchSize`,
/// `StatusCode` and `ServiceExt`), answered 200.
#[allow(unused_macros)]
macro_rules! case {
    ($group:expr, $name:expr, $service:expr, $keys:expr, $make:expr) => {{
        let service = $service;
        let keys = &$keys;
        let mut i = 0;
        $group.bench_function($name, |b| {
            b.iter_batched(
                || {
                    i = (i + 1) % KEYS;
                    $make(&keys[i])
                },
                |request| {
                    let response = poll_once(service.clone().oneshot(request)).unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    response
                },
                BatchSize::SmallInput,
            )
        });
    }};
}

/// Polls `future` once with a no-op waker: every stack here answers at once.
pub fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("every stack here answers at once"),
    }
}

pub type Reply = Response<axum::body::Body>;

/// The same trivial handler for every stack, whatever the request body: a
/// JSON `{}` with its content type. Its body is axum's, which tower_governor
/// can make its refusals of.
pub fn handler<B>() -> impl Service<
    Request<B>,
    Response = Reply,
    Error = Infallible,
    Future = std::future::Ready<Result<Reply, Infallible>>,
> + Clone {
    tower::service_fn(|_: Request<B>| {
        let mut response = Response::new(axum::body::Body::from(Bytes::from_static(b"{}")));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        ready(Ok(response))
    })
}

/// What the keyed peer knows of a caller.
#[derive(Clone, Copy)]
pub struct Caller {
    pub project: u32,
}

pub struct Fixture {
    pub gate: Gate<InMemoryKeyStore>,
    /// The same gate speaking another API's contract: codes renamed, a
    /// template envelope, bearer tokens only, each rule with its own code.
    pub contract: Gate<InMemoryKeyStore>,
    /// The same gate with tiers: every key in one of two tiers, each with
    /// its own quota and body cap on the benched route.
    pub tiered: Gate<InMemoryKeyStore>,
    /// The same gate with a daily calendar window stacked on the benched
    /// route's bucket.
    pub windowed: Gate<InMemoryKeyStore>,
    /// The same gate with every key carrying monthly credits (out of
    /// reach).
    pub credited: Gate<InMemoryKeyStore>,
    pub keys: Vec<String>,
    /// SHA-256 of each key → its project, for the keyed peer.
    pub digests: Arc<HashMap<[u8; 32], Caller>>,
}

pub fn fixture() -> Fixture {
    let hasher = KeyHasher::with_pepper(b"bench pepper");
    let store = InMemoryKeyStore::new();
    let tiered_store = InMemoryKeyStore::new();
    let credited_store = InMemoryKeyStore::new();
    let mut keys = Vec::with_capacity(KEYS);
    let mut digests = HashMap::with_capacity(KEYS);
    for i in 0..KEYS {
        let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Live)).unwrap();
        let record = || {
            KeyRecord::new(
                format!("key_{i}"),
                format!("project_{}", i % PROJECTS),
                KeyKind::Secret,
            )
        };
        store.insert(minted.digest(), record());
        tiered_store.insert(
            minted.digest(),
            record()
                .with_tier(if i % 2 == 0 { "pro" } else { "free" })
                .unwrap(),
        );
        credited_store.insert(
            minted.digest(),
            record()
                .with_credits(tollgate::rate_limit::Credits::refilled(
                    tollgate::rate_limit::MAX_CREDITS,
                    tollgate::rate_limit::Calendar::Month,
                ))
                .unwrap(),
        );
        let digest: [u8; 32] = Sha256::digest(minted.key().as_bytes()).into();
        digests.insert(
            digest,
            Caller {
                project: (i % PROJECTS) as u32,
            },
        );
        keys.push(minted.into_key());
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..keys.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        keys.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let gate = routes(Gate::builder(store.clone()).hasher(hasher.clone()), false)
        .build()
        .unwrap();
    let tiered = routes(Gate::builder(tiered_store).hasher(hasher.clone()), true)
        .build()
        .unwrap();
    let credited = routes(Gate::builder(credited_store).hasher(hasher.clone()), false)
        .build()
        .unwrap();
    let windowed = routes_with_window(Gate::builder(store.clone()).hasher(hasher.clone()))
        .build()
        .unwrap();
    let template = tollgate::render::Template::new(serde_json::json!({
        "error": { "type": "{category}", "code": "{code}", "message": "{message}", "request_id": "{request_id}" }
    }))
    .unwrap()
    .category("auth", "authentication_error");
    let contract = routes(
        Gate::builder(store)
            .hasher(hasher)
            .credentials([tollgate::key::CredentialSource::Bearer])
            .renderer(tollgate::render::ErrorRenderer::new(template))
            .codes(
                tollgate::error::CodeMap::new()
                    .rename("missing_api_key", "missing_bearer_token")
                    .unwrap(),
            )
            .defaults(
                RoutePolicy::new()
                    .scope_code("scope_required")
                    .body_limit_code("too_large"),
            ),
        false,
    )
    .build()
    .unwrap();
    Fixture {
        gate,
        contract,
        tiered,
        windowed,
        credited,
        keys,
        digests: Arc::new(digests),
    }
}

/// The benches' routes on `builder` (with settings for two tiers on the
/// benched route, or none).
pub fn routes<St: tollgate::key::store::KeyStore>(
    builder: GateBuilder<St, InMemoryRateStore>,
    tiers: bool,
) -> GateBuilder<St, InMemoryRateStore> {
    let bucket = Quota::per_second(1_000_000_000).burst(1_000_000_000);
    routes_quoted(builder, tiers, vec![bucket])
}

/// [`routes`], with a daily calendar window (out of reach) stacked on the
/// benched route's bucket.
pub fn routes_with_window<St: tollgate::key::store::KeyStore>(
    builder: GateBuilder<St, InMemoryRateStore>,
) -> GateBuilder<St, InMemoryRateStore> {
    let bucket = Quota::per_second(1_000_000_000).burst(1_000_000_000);
    let daily = Quota::per_calendar(u64::from(u32::MAX), tollgate::rate_limit::Calendar::Day);
    routes_quoted(builder, false, vec![bucket, daily])
}

fn routes_quoted<St: tollgate::key::store::KeyStore>(
    builder: GateBuilder<St, InMemoryRateStore>,
    tiers: bool,
    quotas: Vec<Quota>,
) -> GateBuilder<St, InMemoryRateStore> {
    let mut track = RoutePolicy::new()
        .require_all(["ingest"])
        .quotas(quotas)
        .body_limit(8192);
    if tiers {
        let quota = |rate| Quota::per_second(rate).burst(rate);
        track = track
            .tier(
                "free",
                TierPolicy::new().quota(quota(500_000_000)).body_limit(4096),
            )
            .tier(
                "pro",
                TierPolicy::new()
                    .quota(quota(900_000_000))
                    .body_limit(16384),
            );
    }
    builder
        .route(
            "GET /health",
            RoutePolicy::public().quota(Quota::per_second(1_000_000_000).burst(1_000_000_000)),
        )
        .route("POST /v1/track", track)
        .route(
            "POST /v1/tight",
            RoutePolicy::new().quota(Quota::per_day(1).burst(1)),
        )
        .route(
            "POST /v1/spent",
            RoutePolicy::new().quota(Quota::per_calendar(1, tollgate::rate_limit::Calendar::Day)),
        )
        .route(
            "GET /v1/admin",
            RoutePolicy::new().require_all(["superuser"]),
        )
}

/// `POST /v1/track` with `key` as a bearer token and a 2-byte body.
pub fn track(key: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/track")
        .header("authorization", format!("Bearer {key}"))
        .header("content-length", "2")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// `GET /health` with no key.
pub fn health() -> Request<Full<Bytes>> {
    Request::get("/health")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The peers' rate-limit key: the bearer token, as is.
#[derive(Clone)]
pub struct BearerToken;

impl KeyExtractor for BearerToken {
    type Key = String;

    fn extract<T>(&self, request: &Request<T>) -> Result<Self::Key, tower_governor::GovernorError> {
        request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::to_owned)
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}

/// `tower_governor` keyed by the bearer token behind tower-http's
/// `RequestBodyLimitLayer`: no key check at all. `peer_stack!(use_headers)`
/// adds tower_governor's rate-limit headers, as the gate's public route
/// sends its own.
macro_rules! peer_stack {
    ($($headers:ident)?) => {{
        let mut config = tower_governor::governor::GovernorConfigBuilder::default()
            .key_extractor(stacks::BearerToken);
        config.per_nanosecond(1).burst_size(1_000_000_000);
        $( let mut config = config.$headers(); )?
        let config = config.finish().unwrap();
        tower::ServiceBuilder::new()
            .layer(tower_http::limit::RequestBodyLimitLayer::new(8192))
            .layer(tower_governor::GovernorLayer::<_, _, axum::body::Body>::new(config))
            .service(stacks::handler())
    }};
}

/// What a user who does check keys would assemble: tower-http's
/// `ValidateRequestHeaderLayer::custom` taking the bearer token, hashing it
/// with SHA-256 and looking the digest up in a `HashMap` of the same keys
/// (the caller into the extensions), then `tower_governor` keyed by the
/// token, behind `RequestBodyLimitLayer` (outermost, as in `peer_stack`:
/// its response body type is one the layers inside could not answer with).
/// `peer_stack_keyed!(digests, headers)` adds tower_governor's rate-limit
/// headers (`use_headers()`), as the gate sends its own.
macro_rules! peer_stack_keyed {
    ($digests:expr $(, $headers:ident)?) => {{
        let digests = std::sync::Arc::clone(&$digests);
        let mut config = tower_governor::governor::GovernorConfigBuilder::default()
            .key_extractor(stacks::BearerToken);
        config.per_nanosecond(1).burst_size(1_000_000_000);
        $( let mut config = config.$headers(); )?
        let config = config.finish().unwrap();
        tower::ServiceBuilder::new()
            .layer(tower_http::limit::RequestBodyLimitLayer::new(8192))
            .layer(tower_http::validate_request::ValidateRequestHeaderLayer::custom(
                #[allow(clippy::result_large_err)]
                move |request: &mut http::Request<tower_http::body::Limited<http_body_util::Full<bytes::Bytes>>>| {
                    stacks::validate(&digests, request)
                },
            ))
            .layer(tower_governor::GovernorLayer::<_, _, axum::body::Body>::new(config))
            .service(stacks::handler())
    }};
}

/// The keyed peer's key check: the bearer token's SHA-256 among `digests`.
// tower-http's validation wants a whole `Response` in the `Err`.
#[allow(clippy::result_large_err)]
pub fn validate<B>(
    digests: &HashMap<[u8; 32], Caller>,
    request: &mut Request<B>,
) -> Result<(), Response<axum::body::Body>> {
    let caller = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            digests.get(&digest).copied()
        });
    match caller {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            Ok(())
        }
        None => {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Err(response)
        }
    }
}
