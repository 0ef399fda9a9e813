//! The gate's hot path, for instruction counts: `valgrind --tool=callgrind`
//! counts are repeatable where wall time on a shared machine is not.
//!
//! ```sh
//! cargo build --release --example hot_path
//! valgrind --tool=callgrind --callgrind-out-file=gate.out target/release/examples/hot_path gate 20000
//! callgrind_annotate gate.out | head -40
//! ```
//!
//! Cases: `bare` (the handler alone), `gate` (a secret key on a scoped,
//! rate-limited route, as `stack/tollgate_gate`), `tiers` (the same with
//! every key in one of two tiers, each with its own quota and body cap on
//! the route, as `stack/tollgate_gate_tiers`), `public` (a public route,
//! as `stack/tollgate_gate_public_route`). Built with `--features metrics`,
//! the gate reports to the no-op recorder, or with `BENCH_RECORDER=prometheus`
//! to a Prometheus one. Each runs the given number of
//! requests after as many for warm-up; subtract `bare` (and a run of 0) to
//! get the cost per request.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tollgate::gate::{Gate, RoutePolicy, TierPolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord};
use tollgate::rate_limit::Quota;
use tower::{Layer, Service, ServiceExt};

fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("every case answers at once"),
    }
}

type Reply = Response<Full<Bytes>>;

fn handler<B>() -> impl Service<
    Request<B>,
    Response = Reply,
    Error = Infallible,
    Future = std::future::Ready<Result<Reply, Infallible>>,
> + Clone {
    tower::service_fn(|_: Request<B>| {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"{}")))))
    })
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

    let hasher = KeyHasher::with_pepper(b"bench pepper");
    let store = InMemoryKeyStore::new();
    let keys: Vec<String> = (0..10_000)
        .map(|i| {
            let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Live)).unwrap();
            let mut record = KeyRecord::new(
                format!("key_{i}"),
                format!("project_{}", i % 1000),
                KeyKind::Secret,
            );
            if case == "tiers" {
                record = record
                    .with_tier(if i % 2 == 0 { "pro" } else { "free" })
                    .unwrap();
            }
            store.insert(minted.digest(), record);
            minted.into_key()
        })
        .collect();
    let high = Quota::per_second(1_000_000_000).burst(1_000_000_000);
    let mut track = RoutePolicy::new()
        .require_all(["ingest"])
        .quota(high.clone())
        .body_limit(8192);
    if case == "tiers" {
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
    let gate = Gate::builder(store)
        .hasher(hasher)
        .route("GET /health", RoutePolicy::public().quota(high))
        .route("POST /v1/track", track)
        .build()
        .unwrap();
    let gated = gate.layer().layer(handler());
    let bare = handler::<Full<Bytes>>();
    let request = |i: usize| -> Request<Full<Bytes>> {
        match case.as_str() {
            "public" => Request::get("/health").body(Full::default()).unwrap(),
            _ => Request::post("/v1/track")
                .header("authorization", format!("Bearer {}", keys[i % keys.len()]))
                .header("content-length", "2")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        }
    };
    for i in 0..2 * count {
        let status = match case.as_str() {
            "bare" => poll_once(bare.clone().oneshot(request(i)))
                .unwrap()
                .status(),
            _ => poll_once(gated.clone().oneshot(request(i)))
                .unwrap()
                .status(),
        };
        assert_eq!(status, StatusCode::OK);
    }
}
