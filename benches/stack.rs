//! The whole gate against what a user would assemble instead, on the same
//! trivial handler, through `tower::ServiceExt::oneshot`.
//!
//! Data: 10 000 secret keys over 1 000 projects, used in a shuffled order;
//! quotas high enough never to refuse. Clocks: tollgate's `Clock::system()`
//! and governor's default (both quanta). Each `oneshot` future answers at
//! once and is polled once with a no-op waker: no async runtime is measured.
//!
//! Group `stack`:
//! - `bare`: the handler alone.
//! - `tollgate_gate`: the full `Gate` — route match, key (parse, checksum,
//!   HMAC-SHA256, in-memory store of 10 000 keys), origin, scope, rate limit
//!   (a bucket per project, draft headers), body cap.
//! - `tollgate_gate_contract`, `tollgate_gate_tiers`: the same gate speaking
//!   another API's contract, and with every key in one of two tiers that
//!   have their own quota and body cap on the route.
//! - `peer_stack`: tower-http's `RequestBodyLimitLayer` and `tower_governor`
//!   keyed by the bearer token: no key check at all.
//! - `peer_stack_keyed`: what a user who does check keys would assemble:
//!   tower-http's `ValidateRequestHeaderLayer::custom` taking the bearer
//!   token, hashing it with SHA-256 and looking the digest up in a `HashMap`
//!   of the same 10 000 keys (inserting the caller's project into the
//!   extensions), then `tower_governor` keyed by the token; tower-http's
//!   `RequestBodyLimitLayer` around both (as in `peer_stack`: its own
//!   response body type is one the layers inside could not answer with).
//!
//! With `--features metrics`, the gate reports to the no-op recorder, or
//! with `BENCH_RECORDER=prometheus` to an installed Prometheus recorder.
//!
//! Group `clone`: cloning and dropping each stack, as servers do for every
//! request, on one thread and on two at once.
//!
//! Group `rejection`: what each kind of refusal costs through the full gate
//! (401 missing key, 401 unknown key, 403 scope, 429, 413).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use tollgate::gate::{Gate, RoutePolicy, TierPolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord};
use tollgate::rate_limit::Quota;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_http::validate_request::ValidateRequestHeaderLayer;

const KEYS: usize = 10_000;
const PROJECTS: usize = 1_000;

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("every stack here answers at once"),
    }
}

type Reply = Response<axum::body::Body>;

/// The same trivial handler for every stack, whatever the request body: a
/// JSON `{}` with its content type. Its body is axum's, which tower_governor
/// can make its refusals of.
fn handler<B>() -> impl Service<
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

struct Fixture {
    gate: Gate<InMemoryKeyStore>,
    /// The same gate speaking another API's contract: codes renamed, a
    /// template envelope, bearer tokens only, each rule with its own code.
    contract: Gate<InMemoryKeyStore>,
    /// The same gate with tiers: every key in one of two tiers, each with
    /// its own quota and body cap on the benched route.
    tiered: Gate<InMemoryKeyStore>,
    keys: Vec<String>,
    /// SHA-256 of each key → its project, for the keyed peer.
    digests: HashMap<[u8; 32], Caller>,
}

/// What the keyed peer knows of a caller.
#[derive(Clone, Copy)]
struct Caller {
    #[allow(dead_code)]
    project: u32,
}

fn fixture() -> Fixture {
    let hasher = KeyHasher::with_pepper(b"bench pepper");
    let store = InMemoryKeyStore::new();
    let tiered_store = InMemoryKeyStore::new();
    let mut keys = Vec::with_capacity(KEYS);
    let mut digests = HashMap::with_capacity(KEYS);
    for i in 0..KEYS {
        let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Live)).unwrap();
        store.insert(
            minted.digest(),
            KeyRecord::new(
                format!("key_{i}"),
                format!("project_{}", i % PROJECTS),
                KeyKind::Secret,
            ),
        );
        tiered_store.insert(
            minted.digest(),
            KeyRecord::new(
                format!("key_{i}"),
                format!("project_{}", i % PROJECTS),
                KeyKind::Secret,
            )
            .with_tier(if i % 2 == 0 { "pro" } else { "free" })
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
        keys,
        digests,
    }
}

/// The benches' routes on `builder` (with settings for two tiers on the
/// benched route, or none).
fn routes(
    builder: tollgate::gate::GateBuilder<InMemoryKeyStore, tollgate::rate_limit::InMemoryRateStore>,
    tiers: bool,
) -> tollgate::gate::GateBuilder<InMemoryKeyStore, tollgate::rate_limit::InMemoryRateStore> {
    let mut track = RoutePolicy::new()
        .require_all(["ingest"])
        .quota(Quota::per_second(1_000_000_000).burst(1_000_000_000))
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
            "GET /v1/admin",
            RoutePolicy::new().require_all(["superuser"]),
        )
}

fn track(key: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/track")
        .header("authorization", format!("Bearer {key}"))
        .header("content-length", "2")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// The peer stack's key: the bearer token, as is.
#[derive(Clone)]
struct BearerToken;

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

// The keyed peer's validator answers `Result<(), Response<_>>`: that is
// tower-http's signature.
#[allow(clippy::result_large_err)]
/// With the `metrics` feature and `BENCH_RECORDER=prometheus`, the gate
/// reports to an installed Prometheus recorder; with the feature alone, to
/// the facade's no-op recorder.
fn install_recorder() {
    #[cfg(feature = "metrics")]
    if std::env::var("BENCH_RECORDER").as_deref() == Ok("prometheus") {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("a Prometheus recorder");
        // Kept alive for the whole run, as a server keeps its handle.
        std::mem::forget(handle);
    }
}

// The keyed peer answers its rejection as tower-http's validation layer
// wants it: a whole `Response` in the `Err`.
#[allow(clippy::result_large_err)]
fn bench_stack(c: &mut Criterion) {
    install_recorder();
    let f = fixture();
    let mut group = c.benchmark_group("stack");

    let bare = handler::<Full<Bytes>>();
    let mut i = 0;
    group.bench_function("bare", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                track(&f.keys[i])
            },
            |request| poll_once(bare.clone().oneshot(request)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let gated = f.gate.layer().layer(handler());
    let mut i = 0;
    group.bench_function("tollgate_gate", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                track(&f.keys[i])
            },
            |request| {
                let response = poll_once(gated.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });

    let contract = f.contract.layer().layer(handler());
    let mut i = 0;
    group.bench_function("tollgate_gate_contract", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                track(&f.keys[i])
            },
            |request| {
                let response = poll_once(contract.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });

    let tiered = f.tiered.layer().layer(handler());
    let mut i = 0;
    group.bench_function("tollgate_gate_tiers", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                track(&f.keys[i])
            },
            |request| {
                let response = poll_once(tiered.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });

    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000_000)
        .key_extractor(BearerToken)
        .finish()
        .unwrap();
    let peer = ServiceBuilder::new()
        .layer(tower_http::limit::RequestBodyLimitLayer::new(8192))
        .layer(GovernorLayer::<_, _, axum::body::Body>::new(config))
        .service(handler());
    let mut i = 0;
    group.bench_function("peer_stack", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                track(&f.keys[i])
            },
            |request| {
                let response = poll_once(peer.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });
    let digests = Arc::new(f.digests.clone());
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000_000)
        .key_extractor(BearerToken)
        .finish()
        .unwrap();
    // The body limit outermost, as in `peer_stack`: its response body type
    // is its own, which the layers inside could not answer with.
    let peer_keyed = ServiceBuilder::new()
        .layer(tower_http::limit::RequestBodyLimitLayer::new(8192))
        .layer(ValidateRequestHeaderLayer::custom(
            move |request: &mut Request<tower_http::body::Limited<Full<Bytes>>>| {
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
            },
        ))
        .layer(GovernorLayer::<_, _, axum::body::Body>::new(config))
        .service(handler());
    let mut i = 0;
    group.bench_function("peer_stack_keyed", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                track(&f.keys[i])
            },
            |request| {
                let response = poll_once(peer_keyed.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });

    // The layers without a key to check: a public route (no key, no
    // origin or scope check; rate limit by client address; body cap).
    let mut i = 0;
    group.bench_function("tollgate_gate_public_route", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                Request::get("/health")
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            },
            |request| {
                let response = poll_once(gated.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // Servers (hyper-util's `TowerToHyperService`, axum) clone the whole
    // service stack for every request: what that costs, alone and with both
    // cores cloning at once (each clone and drop touches every shared
    // `Arc`'s count).
    let mut group = c.benchmark_group("clone");
    clone_bench(&mut group, "tollgate_gate", &gated);
    clone_bench(&mut group, "peer_stack", &peer);
    clone_bench(&mut group, "peer_stack_keyed", &peer_keyed);
    group.finish();

    let mut group = c.benchmark_group("rejection");
    let key = f.keys[0].clone();
    type MakeRequest = Box<dyn Fn() -> Request<Full<Bytes>>>;
    let cases: Vec<(&str, StatusCode, MakeRequest)> = vec![
        (
            "401_missing_key",
            StatusCode::UNAUTHORIZED,
            Box::new(|| Request::post("/v1/track").body(Full::default()).unwrap()),
        ),
        ("401_unknown_key", StatusCode::UNAUTHORIZED, {
            let unknown = KeyHasher::new()
                .mint(KeyKind::Secret, Some(KeyEnv::Live))
                .unwrap()
                .into_key();
            Box::new(move || track(&unknown))
        }),
        ("403_insufficient_scope", StatusCode::FORBIDDEN, {
            let key = key.clone();
            Box::new(move || {
                Request::get("/v1/admin")
                    .header("authorization", format!("Bearer {key}"))
                    .body(Full::default())
                    .unwrap()
            })
        }),
        ("429_rate_limited", StatusCode::TOO_MANY_REQUESTS, {
            let key = key.clone();
            Box::new(move || {
                Request::post("/v1/tight")
                    .header("authorization", format!("Bearer {key}"))
                    .body(Full::default())
                    .unwrap()
            })
        }),
        ("413_payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, {
            let key = key.clone();
            Box::new(move || {
                Request::post("/v1/track")
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-length", "100000")
                    .body(Full::default())
                    .unwrap()
            })
        }),
    ];
    // Spend the tight quota's one token first.
    let _ = poll_once(gated.clone().oneshot(cases[3].2()));
    for (name, status, make) in &cases {
        group.bench_function(*name, |b| {
            b.iter_batched(
                make,
                |request| {
                    let response = poll_once(gated.clone().oneshot(request)).unwrap();
                    assert_eq!(response.status(), *status);
                    black_box(response)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Clone and drop `service`, on one thread, then on two at once (time per
/// clone on each thread).
fn clone_bench<S: Clone + Send>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    service: &S,
) {
    group.bench_function(format!("{name}_clone_drop"), |b| {
        b.iter(|| drop(black_box(service.clone())))
    });
    group.bench_function(format!("{name}_clone_drop_2threads"), |b| {
        b.iter_custom(|iterations| {
            let start = std::time::Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    let service = service.clone();
                    scope.spawn(move || {
                        for _ in 0..iterations {
                            drop(black_box(service.clone()));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
}

criterion_group!(benches, bench_stack);
criterion_main!(benches);
