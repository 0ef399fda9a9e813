//! The gate's hot path, and what a user would assemble instead, for
//! instruction and allocation counts: `valgrind --tool=callgrind` counts
//! are repeatable where wall time on a shared machine is not, and a
//! counting allocator says how many allocations each request costs.
//!
//! ```sh
//! cargo build --release --example hot_path
//! target/release/examples/hot_path gate 20000            # allocations per request
//! valgrind --tool=callgrind --toggle-collect='*one_request*' --callgrind-out-file=gate.out target/release/examples/hot_path gate 5000
//! callgrind_annotate gate.out | head -40
//! ```
//!
//! Cases (the stacks of `benches/stack.rs`, built by the same
//! `benches/support/stacks.rs`): `bare` (the handler alone), `gate` (a
//! secret key on a scoped, rate-limited route, as `stack/tollgate_gate`),
//! `tiers`, `window` (a daily window stacked on the route's bucket),
//! `credits` (every key with monthly credits),
//! `contract`, `public` (a public route), `peer`, `peer_headers` (the
//! peer with tower_governor's rate-limit headers, as the public route sends
//! its own),
//! `peer_keyed_headers` (the keyed peer with tower_governor's rate-limit
//! headers), `peer_keyed` (without them), and the gate's refusals
//! `reject_missing`, `reject_missing_grpc` (the same from a gRPC client),
//! `reject_unknown`, `reject_scope`, `reject_429`, `reject_window` (a
//! calendar window's 429), `reject_413`. Each runs the given number of requests after as many for
//! warm-up, then prints the allocations (and bytes) per request of the
//! service call and the drop of its response — the request is built
//! outside the count. Built with
//! `--features metrics`, the gate reports to the no-op recorder, or with
//! `BENCH_RECORDER=prometheus` to a Prometheus one. Under callgrind with
//! `--toggle-collect='*one_request*'` only the counted service calls are
//! (the warm-up round calls another function): divide the total by the
//! count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tollgate::key::{KeyEnv, KeyHasher, KeyKind};
use tower::{Layer, ServiceExt};

#[macro_use]
#[path = "../benches/support/stacks.rs"]
mod stacks;

use stacks::{poll_once, track};

/// Counts the allocations made while [`COUNTING`] is on.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `count` requests made by `make` through `service` after as many for
/// warm-up, each answered `status`, and prints the allocations per request.
macro_rules! run {
    ($service:expr, $make:expr, $count:expr, $status:expr) => {{
        let service = $service;
        for round in 0..2 {
            if round == 1 {
                ALLOCATIONS.store(0, Ordering::Relaxed);
                BYTES.store(0, Ordering::Relaxed);
            }
            for i in 0..$count {
                let request = $make(i);
                COUNTING.store(round == 1, Ordering::Relaxed);
                let status = if round == 1 {
                    one_request(&service, request)
                } else {
                    warm_up(&service, request)
                };
                COUNTING.store(false, Ordering::Relaxed);
                assert_eq!(status, $status);
            }
        }
        let count = $count.max(1) as f64;
        println!(
            "{:.2} allocations, {:.0} bytes per request",
            ALLOCATIONS.load(Ordering::Relaxed) as f64 / count,
            BYTES.load(Ordering::Relaxed) as f64 / count
        );
    }};
}

/// One counted request through `service`, its response dropped: what
/// callgrind's `--toggle-collect=*one_request*` counts alone.
#[inline(never)]
fn one_request<S, B>(service: &S, request: Request<Full<Bytes>>) -> StatusCode
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = poll_once(service.clone().oneshot(request)).unwrap();
    let status = response.status();
    drop(response);
    status
}

/// The same, for the warm-up round (which callgrind does not count).
#[inline(never)]
fn warm_up<S, B>(service: &S, request: Request<Full<Bytes>>) -> StatusCode
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    poll_once(service.clone().oneshot(request))
        .unwrap()
        .status()
}

fn main() {
    // With `--features metrics`: the facade's no-op recorder, or with
    // `BENCH_RECORDER=prometheus` an installed Prometheus one.
    #[cfg(feature = "metrics")]
    if std::env::var("BENCH_RECORDER").as_deref() == Ok("prometheus") {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("a Prometheus recorder");
        std::mem::forget(handle);
    }
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "gate".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let f = stacks::fixture();
    let keys = &f.keys;
    let key = |i: usize| track(&keys[i % keys.len()]);
    let gated = f.gate.layer().layer(stacks::handler());
    let unknown = KeyHasher::new()
        .mint(KeyKind::Secret, Some(KeyEnv::Live))
        .unwrap()
        .into_key();
    let with_key = |method: &str, path: &str, i: usize| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", keys[i % keys.len()]))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    match case.as_str() {
        "bare" => run!(stacks::handler::<Full<Bytes>>(), key, count, StatusCode::OK),
        "gate" => run!(gated, key, count, StatusCode::OK),
        "tiers" => run!(
            f.tiered.layer().layer(stacks::handler()),
            key,
            count,
            StatusCode::OK
        ),
        "credits" => run!(
            f.credited.layer().layer(stacks::handler()),
            key,
            count,
            StatusCode::OK
        ),
        "window" => run!(
            f.windowed.layer().layer(stacks::handler()),
            key,
            count,
            StatusCode::OK
        ),
        "contract" => run!(
            f.contract.layer().layer(stacks::handler()),
            key,
            count,
            StatusCode::OK
        ),
        "public" => run!(gated, |_| stacks::health(), count, StatusCode::OK),
        "peer" => run!(peer_stack!(), key, count, StatusCode::OK),
        "peer_headers" => run!(peer_stack!(use_headers), key, count, StatusCode::OK),
        "peer_keyed" => run!(peer_stack_keyed!(f.digests), key, count, StatusCode::OK),
        "peer_keyed_headers" => run!(
            peer_stack_keyed!(f.digests, use_headers),
            key,
            count,
            StatusCode::OK
        ),
        "reject_missing" => run!(
            gated,
            |_| Request::post("/v1/track")
                .body(Full::<Bytes>::default())
                .unwrap(),
            count,
            StatusCode::UNAUTHORIZED
        ),
        // A gRPC client without a key: a trailers-only gRPC status.
        "reject_missing_grpc" => run!(
            gated,
            |_| Request::post("/v1/track")
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .body(Full::<Bytes>::default())
                .unwrap(),
            count,
            StatusCode::OK
        ),
        "reject_unknown" => run!(gated, |_| track(&unknown), count, StatusCode::UNAUTHORIZED),
        "reject_scope" => run!(
            gated,
            |i| with_key("GET", "/v1/admin", i),
            count,
            StatusCode::FORBIDDEN
        ),
        "reject_429" => {
            // Spend each project's one token of the day first.
            for i in 0..keys.len() {
                let _ = poll_once(gated.clone().oneshot(with_key("POST", "/v1/tight", i)));
            }
            run!(
                gated,
                |i| with_key("POST", "/v1/tight", i),
                count,
                StatusCode::TOO_MANY_REQUESTS
            )
        }
        "reject_window" => {
            // Spend each project's one request of the (calendar) day first.
            for i in 0..keys.len() {
                let _ = poll_once(gated.clone().oneshot(with_key("POST", "/v1/spent", i)));
            }
            run!(
                gated,
                |i| with_key("POST", "/v1/spent", i),
                count,
                StatusCode::TOO_MANY_REQUESTS
            )
        }
        "reject_413" => run!(
            gated,
            |i| {
                let mut request = with_key("POST", "/v1/track", i);
                request.headers_mut().insert(
                    http::header::CONTENT_LENGTH,
                    http::HeaderValue::from_static("100000"),
                );
                request
            },
            count,
            StatusCode::PAYLOAD_TOO_LARGE
        ),
        other => {
            eprintln!("hot_path: no case `{other}`");
            std::process::exit(2);
        }
    }
}
