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
//! - `peer_stack_headers`: the same with tower_governor's rate-limit headers
//!   (`use_headers()`), as the gate's public route sends its own.
//! - `peer_stack_keyed_headers`: what a user who does check keys would
//!   assemble: tower-http's `ValidateRequestHeaderLayer::custom` taking the
//!   bearer token, hashing it with SHA-256 and looking the digest up in a
//!   `HashMap` of the same 10 000 keys (inserting the caller's project into
//!   the extensions), then `tower_governor` keyed by the token with its
//!   rate-limit headers (`use_headers()`: the gate sends its own on every
//!   response); tower-http's `RequestBodyLimitLayer` around both.
//! - `peer_stack_keyed`: the same without rate-limit headers, for reference.
//!
//! The stacks are built in `benches/support/stacks.rs`, which
//! `examples/hot_path.rs` (instruction and allocation counts) shares.
//!
//! With `--features metrics`, the gate reports to the no-op recorder, or
//! with `BENCH_RECORDER=prometheus` to an installed Prometheus recorder.
//!
//! Group `clone`: cloning and dropping each stack, as servers do for every
//! request, on one thread and on two at once.
//!
//! Group `rejection`: what each kind of refusal costs through the full gate
//! (401 missing key, 401 unknown key, 403 scope, 429, 413).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use http_body_util::Full;
use tollgate::key::{KeyEnv, KeyHasher, KeyKind};
use tower::{Layer, ServiceExt};

#[macro_use]
#[path = "support/stacks.rs"]
mod stacks;

use stacks::{KEYS, poll_once, track};

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

fn bench_stack(c: &mut Criterion) {
    install_recorder();
    let f = stacks::fixture();
    let mut group = c.benchmark_group("stack");
    case!(
        group,
        "bare",
        stacks::handler::<Full<Bytes>>(),
        f.keys,
        track
    );
    let gated = f.gate.layer().layer(stacks::handler());
    case!(group, "tollgate_gate", gated.clone(), f.keys, track);
    case!(
        group,
        "tollgate_gate_contract",
        f.contract.layer().layer(stacks::handler()),
        f.keys,
        track
    );
    case!(
        group,
        "tollgate_gate_credits",
        f.credited.layer().layer(stacks::handler()),
        f.keys,
        track
    );
    case!(
        group,
        "tollgate_gate_daily_window",
        f.windowed.layer().layer(stacks::handler()),
        f.keys,
        track
    );
    case!(
        group,
        "tollgate_gate_tiers",
        f.tiered.layer().layer(stacks::handler()),
        f.keys,
        track
    );
    let peer = peer_stack!();
    case!(group, "peer_stack", peer.clone(), f.keys, track);
    case!(
        group,
        "peer_stack_headers",
        peer_stack!(use_headers),
        f.keys,
        track
    );
    let peer_keyed_headers = peer_stack_keyed!(f.digests, use_headers);
    case!(
        group,
        "peer_stack_keyed_headers",
        peer_keyed_headers.clone(),
        f.keys,
        track
    );
    let peer_keyed = peer_stack_keyed!(f.digests);
    case!(group, "peer_stack_keyed", peer_keyed.clone(), f.keys, track);
    // The layers without a key to check: a public route (no key, no
    // origin or scope check; rate limit by client address; body cap).
    case!(
        group,
        "tollgate_gate_public_route",
        gated.clone(),
        f.keys,
        |_: &String| stacks::health()
    );
    group.finish();

    // Servers (hyper-util's `TowerToHyperService`, axum) clone the whole
    // service stack for every request: what that costs, alone and with both
    // cores cloning at once (each clone and drop touches every shared
    // `Arc`'s count).
    let mut group = c.benchmark_group("clone");
    clone_bench(&mut group, "tollgate_gate", &gated);
    clone_bench(&mut group, "peer_stack", &peer);
    clone_bench(&mut group, "peer_stack_keyed_headers", &peer_keyed_headers);
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
        ("429_window_spent", StatusCode::TOO_MANY_REQUESTS, {
            let key = key.clone();
            Box::new(move || {
                Request::post("/v1/spent")
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
    // Spend the tight quota's one token, and the spent route's one request
    // of the day, first.
    let _ = poll_once(gated.clone().oneshot(cases[3].2()));
    let _ = poll_once(gated.clone().oneshot(cases[4].2()));
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
