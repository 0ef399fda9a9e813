//! The cost of the per-request policy layers, each through its service on a
//! trivial inner service, polled once with a no-op waker (no runtime, no
//! clock). `bare` is the inner service alone, for subtraction. The inner
//! service hands the request back, so dropping it is never measured.
//!
//! - `origin_check_10_patterns`: a publishable key, an allow-list of 10
//!   patterns (exact, wildcard, any-port), the matching one last.
//! - `scope_check`: a route requiring two scopes, one covered by a wildcard.
//! - `body_limit_declared`: a body with a `Content-Length` under the cap.
//! - `body_limit_streamed`: a body without a length (wrapped and watched).

use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tollgate::body_limit::BodyLimitLayer;
use tollgate::key::{KeyKind, KeyRecord, Principal};
use tollgate::origin::{OriginLayer, OriginRule};
use tollgate::scope::{ScopeLayer, ScopeRule};
use tower::{Layer, Service};

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the policy layers answer at once"),
    }
}

/// Hands the request back inside the response, so that criterion drops it
/// outside the measurement in every case alike.
type Echo<B> = Response<Request<B>>;

fn trivial<B>() -> impl Service<
    Request<B>,
    Response = Echo<B>,
    Error = Infallible,
    Future = std::future::Ready<Result<Echo<B>, Infallible>>,
> + Clone {
    tower::service_fn(|request: Request<B>| ready(Ok::<_, Infallible>(Response::new(request))))
}

fn bench_policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    let publishable = Principal::new(Arc::new(KeyRecord::new(
        "key_1",
        "project_1",
        KeyKind::Publishable,
    )));
    let secret = Principal::new(Arc::new(
        KeyRecord::new("key_2", "project_1", KeyKind::Secret)
            .with_scopes(["ingest", "people.*", "read"]),
    ));

    let mut bare = trivial::<()>();
    group.bench_function("bare", |b| {
        b.iter_batched(
            || Request::post("/v1/track").body(()).unwrap(),
            |request| poll_once(bare.call(request)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let policy = OriginRule::new()
        .allow([
            "https://app.example.com",
            "https://www.example.com",
            "https://*.example.org",
            "https://*.cdn.example.net",
            "http://localhost:*",
            "http://127.0.0.1:*",
            "https://staging.example.com",
            "https://admin.example.com:8443",
            "https://*.preview.example.dev",
            "https://shop.customer.example",
        ])
        .unwrap();
    let mut origin = OriginLayer::new(policy).layer(trivial::<()>());
    group.bench_function("origin_check_10_patterns", |b| {
        b.iter_batched(
            || {
                let mut request = Request::post("/v1/track")
                    .header("origin", "https://shop.customer.example")
                    .body(())
                    .unwrap();
                request.extensions_mut().insert(publishable.clone());
                request
            },
            |request| {
                let response = poll_once(origin.call(request)).unwrap();
                assert!(response.status().is_success());
                response
            },
            BatchSize::SmallInput,
        )
    });

    let mut scope = ScopeLayer::new(ScopeRule::all_of(["read", "people.view_paygap"]).unwrap())
        .layer(trivial::<()>());
    group.bench_function("scope_check", |b| {
        b.iter_batched(
            || {
                let mut request = Request::get("/v1/people/paygap").body(()).unwrap();
                request.extensions_mut().insert(secret.clone());
                request
            },
            |request| {
                let response = poll_once(scope.call(request)).unwrap();
                assert!(response.status().is_success());
                response
            },
            BatchSize::SmallInput,
        )
    });

    let mut body_limit = BodyLimitLayer::new(8 * 1024).layer(trivial());
    group.bench_function("body_limit_declared", |b| {
        b.iter_batched(
            || {
                Request::post("/v1/track")
                    .header("content-length", "512")
                    .body(String::new())
                    .unwrap()
            },
            |request| poll_once(body_limit.call(request)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("body_limit_streamed", |b| {
        b.iter_batched(
            || Request::post("/v1/track").body(String::new()).unwrap(),
            |request| poll_once(body_limit.call(request)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
