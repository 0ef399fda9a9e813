//! The gate in a `tower::ServiceBuilder` in front of a hyper service, over a
//! real socket, with the decision hook counting outcomes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tollgate::body_limit::LimitedBody;
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::rate_limit::Quota;
use tower::ServiceBuilder;

#[tokio::test]
async fn gate_in_front_of_hyper_with_a_decision_hook() {
    let keys = Keys::new();
    let counts: Arc<Mutex<BTreeMap<(String, String), usize>>> = Arc::default();
    let recorder = Arc::clone(&counts);
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route("GET /health", RoutePolicy::public())
        .route(
            "POST /v1/track",
            RoutePolicy::new()
                .quota(Quota::per_minute(1).burst(1))
                .body_limit(16),
        )
        .on_decision(move |event| {
            let outcome = event
                .code()
                .map_or("allowed", |code| code.as_str())
                .to_owned();
            *recorder
                .lock()
                .unwrap()
                .entry((event.route().to_owned(), outcome))
                .or_default() += 1;
        })
        .build()
        .unwrap();
    let service = ServiceBuilder::new().layer(gate.layer()).service_fn(
        |request: Request<LimitedBody<Incoming>>| async move {
            let body = request.into_body().collect().await;
            let status = if body.is_ok() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        },
    );
    let address = serve(service).await;
    let post = |body: &'static [u8], key: Option<&str>| {
        let mut builder = Request::post(format!("http://{address}/v1/track"));
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        builder.body(Full::new(Bytes::from_static(body))).unwrap()
    };

    assert_eq!(
        fetch(post(b"{}", Some(keys.secret.key()))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        fetch(post(b"{}", Some(keys.secret.key()))).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        fetch(post(b"{}", None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fetch(
            Request::get(format!("http://{address}/health"))
                .body(Full::default())
                .unwrap()
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        fetch(
            Request::get(format!("http://{address}/nope"))
                .body(Full::default())
                .unwrap()
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    let counts = counts.lock().unwrap().clone();
    let expected: BTreeMap<(String, String), usize> = [
        (("POST /v1/track", "allowed"), 1),
        (("POST /v1/track", "rate_limited"), 1),
        (("POST /v1/track", "missing_api_key"), 1),
        (("GET /health", "allowed"), 1),
        (("default", "missing_api_key"), 1),
    ]
    .into_iter()
    .map(|((route, outcome), n)| ((route.to_owned(), outcome.to_owned()), n))
    .collect();
    assert_eq!(counts, expected);
}
