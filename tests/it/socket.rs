//! The key layer over a real socket: a hyper server on 127.0.0.1 and a real
//! HTTP client.

use std::convert::Infallible;

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tollgate::key::{KeyLayer, Principal};
use tollgate::route::{RouteLayer, Routes};
use tower::ServiceBuilder;

#[tokio::test]
async fn key_layer_over_a_real_socket() {
    let keys = Keys::new();
    let routes = Routes::builder()
        .public("GET /health")
        .route("POST /v1/track")
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(RouteLayer::new(routes))
        .layer(KeyLayer::new(keys.store.clone()).hasher(keys.hasher.clone()))
        .service(tower::service_fn(|request: Request<Incoming>| async move {
            let project = request
                .extensions()
                .get::<Principal>()
                .map_or("-", |p| p.project())
                .to_owned();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{{\"project\":\"{project}\"}}"
            )))))
        }));
    let address = serve(service).await;
    let url = |path: &str| format!("http://{address}{path}");
    let post = |path: &str| Request::post(url(path));

    let accepted = fetch(
        post("/v1/track")
            .header("authorization", format!("Bearer {}", keys.secret.key()))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::OK);
    assert_eq!(accepted.body["project"], "demo");

    let missing = fetch(
        post("/v1/track")
            .header("x-request-id", "sock-1")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers["content-type"], "application/json");
    assert_eq!(missing.body["error"]["code"], "missing_api_key");
    assert_eq!(missing.body["error"]["request_id"], "sock-1");

    let unknown = keys
        .hasher
        .mint(tollgate::key::KeyKind::Secret, None)
        .unwrap();
    let invalid = fetch(
        post("/v1/track")
            .header("x-api-key", unknown.key())
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(invalid.body["error"]["code"], "invalid_api_key");

    let health = fetch(Request::get(url("/health")).body(Full::default()).unwrap()).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["project"], "-");
}
