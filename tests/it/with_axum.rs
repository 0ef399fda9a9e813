//! axum integration over a real socket: the gate on a whole router and on
//! one route, and `Principal` as an extractor.

use crate::common::*;
use axum::Router;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::Full;
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::key::{InMemoryKeyStore, Principal};
use tollgate::rate_limit::Quota;

fn gate(keys: &Keys) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route("GET /health", RoutePolicy::public())
        .route(
            "POST /v1/track",
            RoutePolicy::new()
                .require_all(["ingest"])
                .quota(Quota::per_second(10).burst(2))
                .body_limit(64),
        )
        .route("GET /v1/stats", RoutePolicy::new().require_all(["read"]))
        .build()
        .unwrap()
}

async fn whoami(principal: Principal) -> String {
    format!(
        "{{\"project\":\"{}\",\"key_id\":\"{}\"}}",
        principal.project(),
        principal.key_id()
    )
}

async fn health(principal: Option<Principal>) -> String {
    format!("{{\"anonymous\":{}}}", principal.is_none())
}

async fn serve_router(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

#[tokio::test]
async fn gate_on_the_whole_router() {
    let keys = Keys::new();
    let router = Router::new()
        .route("/health", get(health))
        .route("/v1/track", post(whoami))
        .route("/v1/stats", get(whoami))
        .layer(gate(&keys).layer());
    let address = serve_router(router).await;
    let url = |path: &str| format!("http://{address}{path}");

    let answer = fetch(
        Request::post(url("/v1/track"))
            .header("x-api-key", keys.publishable.key())
            .header("origin", "https://x.example")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    // The publishable key's record lists no origin and the gate allows none: refused.
    assert_eq!(answer.body["error"]["code"], "origin_not_allowed");

    let answer = fetch(
        Request::post(url("/v1/track"))
            .header("authorization", format!("Bearer {}", keys.secret.key()))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        serde_json::json!({ "project": "demo", "key_id": "key_sk" })
    );
    assert!(answer.headers.contains_key("ratelimit"));

    let answer = fetch(
        Request::get(url("/v1/stats"))
            .header("x-api-key", keys.publishable.key())
            .header("origin", "https://x.example")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    let answer = fetch(Request::get(url("/health")).body(Full::default()).unwrap()).await;
    assert_eq!(answer.body["anonymous"], true);

    let answer = fetch(
        Request::post(url("/v1/track"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"]["code"], "missing_api_key");

    let big = Full::new(bytes::Bytes::from(vec![b'x'; 100]));
    let answer = fetch(
        Request::post(url("/v1/track"))
            .header("x-api-key", keys.secret.key())
            .body(big)
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn gate_on_a_single_route() {
    let keys = Keys::new();
    let gate = gate(&keys);
    let router = Router::new()
        .route("/open", get(|| async { "open" }))
        .route("/v1/track", post(whoami).layer(gate.layer()));
    let address = serve_router(router).await;
    let open = fetch(
        Request::get(format!("http://{address}/open"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(open.status, StatusCode::OK);
    let guarded = fetch(
        Request::post(format!("http://{address}/v1/track"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(guarded.body["error"]["code"], "missing_api_key");
    let guarded = fetch(
        Request::post(format!("http://{address}/v1/track"))
            .header("x-api-key", keys.secret.key())
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(guarded.status, StatusCode::OK);
}

#[tokio::test]
async fn the_extractor_refuses_without_a_gate() {
    let router = Router::new().route("/whoami", get(whoami));
    let address = serve_router(router).await;
    let answer = fetch(
        Request::get(format!("http://{address}/whoami"))
            .header("x-request-id", "r-9")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"]["code"], "missing_api_key");
    assert_eq!(answer.body["error"]["request_id"], "r-9");
}
