//! `OriginLayer` through real services: allow-lists from records and from
//! the layer, near-miss hosts, missing-origin modes, kinds, gRPC, and the
//! CORS recipe.

use crate::common::*;
use http::{Method, StatusCode};
use serde_json::Value;
use tollgate::key::{KeyKind, KeyKinds, KeyLayer, KeyRecord, MintedKey};
use tollgate::origin::{MissingOrigin, OriginLayer, OriginPattern, OriginRule};
use tollgate::route::{PerRoute, RouteLayer, Routes};
use tower::ServiceBuilder;

struct Fixture {
    keys: Keys,
    /// A publishable key whose record lists its own origins.
    listed: MintedKey,
    routes: Routes,
    handler: Handler,
}

fn fixture() -> Fixture {
    let keys = Keys::new();
    let listed = keys.add(
        KeyKind::Publishable,
        KeyRecord::new("key_listed", "demo", KeyKind::Publishable)
            .with_origins([
                "https://app.example.com",
                "https://*.example.org",
                "http://localhost:*",
            ])
            .unwrap(),
    );
    let routes = Routes::builder()
        .public("GET /health")
        .route("POST /v1/track")
        .route("POST /v1/widget")
        .build()
        .unwrap();
    Fixture {
        keys,
        listed,
        routes,
        handler: Handler::default(),
    }
}

impl Fixture {
    fn service(
        &self,
        policies: impl Into<PerRoute<OriginRule>>,
    ) -> impl tower::Service<
        TestRequest,
        Response = http::Response<
            impl http_body::Body<Data = bytes::Bytes, Error = impl std::fmt::Debug>,
        >,
        Error = std::convert::Infallible,
    > + Clone {
        ServiceBuilder::new()
            .layer(RouteLayer::new(self.routes.clone()))
            .layer(KeyLayer::new(self.keys.store.clone()).hasher(self.keys.hasher.clone()))
            .layer(OriginLayer::new(policies))
            .service(self.handler.service())
    }
}

fn track(key: &str, origin: Option<&str>) -> TestRequest {
    let mut builder = http::Request::post("/v1/track").header("x-api-key", key);
    if let Some(origin) = origin {
        builder = builder.header("origin", origin);
    }
    empty(builder)
}

#[tokio::test]
async fn record_allow_list_admits_its_origins_and_refuses_near_misses() {
    let f = fixture();
    let service = f.service(OriginRule::new());
    for origin in [
        "https://app.example.com",
        "https://APP.example.com:443",
        "https://shop.example.org",
        "https://a.b.example.org",
        "http://localhost:3000",
        "http://localhost",
    ] {
        let answer = send(service.clone(), track(f.listed.key(), Some(origin))).await;
        assert_eq!(answer.status, StatusCode::OK, "{origin}: {}", answer.body);
    }
    for origin in [
        "https://example.org",
        "https://evil-example.org",
        "https://example.org.evil.net",
        "https://app.example.com.evil.net",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://localhost:3000",
        "null",
        "not an origin",
    ] {
        let answer = send(service.clone(), track(f.listed.key(), Some(origin))).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(answer.code(), "origin_not_allowed");
        assert_eq!(answer.body["error"]["details"]["origin"], origin);
    }
    assert_eq!(f.handler.calls(), 6);
}

#[tokio::test]
async fn layer_list_applies_when_the_record_has_none() {
    let f = fixture();
    let policy = OriginRule::new()
        .allow(["https://site.example.net"])
        .unwrap();
    let service = f.service(policy);
    let pk = f.keys.publishable.key();
    assert_eq!(
        send(service.clone(), track(pk, Some("https://site.example.net")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(service.clone(), track(pk, Some("https://app.example.com")))
            .await
            .code(),
        "origin_not_allowed"
    );
    // The record's own list replaces the layer's.
    assert_eq!(
        send(
            service.clone(),
            track(f.listed.key(), Some("https://site.example.net"))
        )
        .await
        .code(),
        "origin_not_allowed"
    );
}

#[tokio::test]
async fn null_matches_only_when_listed() {
    let f = fixture();
    let service = f.service(OriginRule::new().allow(["null"]).unwrap());
    assert_eq!(
        send(
            service.clone(),
            track(f.keys.publishable.key(), Some("null"))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(
            service,
            track(f.keys.publishable.key(), Some("https://a.example.com"))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn missing_origin_modes() {
    let f = fixture();
    let key = f.listed.key();

    let reject = f.service(OriginRule::new());
    let answer = send(reject, track(key, None)).await;
    assert_eq!(answer.code(), "origin_not_allowed");
    assert_eq!(answer.body["error"]["details"]["origin"], Value::Null);

    let allow = f.service(OriginRule::new().missing_origin(MissingOrigin::Allow));
    assert_eq!(
        send(allow.clone(), track(key, None)).await.status,
        StatusCode::OK
    );
    // Allowing a missing origin does not allow a wrong one.
    assert_eq!(
        send(allow, track(key, Some("https://evil.com")))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let referer = f.service(OriginRule::new().missing_origin(MissingOrigin::Referer));
    let with_referer = |value: &str| {
        empty(
            http::Request::post("/v1/track")
                .header("x-api-key", key)
                .header("referer", value),
        )
    };
    assert_eq!(
        send(
            referer.clone(),
            with_referer("https://app.example.com/pricing?x=1")
        )
        .await
        .status,
        StatusCode::OK
    );
    let answer = send(referer.clone(), with_referer("https://evil.com/page")).await;
    assert_eq!(answer.code(), "origin_not_allowed");
    assert_eq!(
        answer.body["error"]["details"]["origin"],
        "https://evil.com/page"
    );
    assert_eq!(
        send(referer, track(key, None)).await.code(),
        "origin_not_allowed"
    );
}

#[tokio::test]
async fn only_configured_kinds_are_checked() {
    let f = fixture();
    let service = f.service(OriginRule::new());
    // Secret and restricted keys are not browser keys: not checked by default.
    assert_eq!(
        send(
            service.clone(),
            track(f.keys.secret.key(), Some("https://evil.com"))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(service.clone(), track(f.keys.restricted.key(), None))
            .await
            .status,
        StatusCode::OK
    );
    let strict = f.service(
        OriginRule::new().kinds(KeyKinds::only(KeyKind::Publishable).with(KeyKind::Restricted)),
    );
    assert_eq!(
        send(strict.clone(), track(f.keys.restricted.key(), None))
            .await
            .code(),
        "origin_not_allowed"
    );
    assert_eq!(
        send(strict, track(f.keys.secret.key(), None)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn per_route_policies() {
    let f = fixture();
    let policies = PerRoute::new(&f.routes, OriginRule::new())
        .route(
            "POST /v1/widget",
            OriginRule::new()
                .allow(["https://*.widgets.example"])
                .unwrap()
                .missing_origin(MissingOrigin::Allow),
        )
        .unwrap();
    let service = f.service(policies);
    let pk = f.keys.publishable.key();
    let widget = |origin: Option<&str>| {
        let mut builder = http::Request::post("/v1/widget").header("x-api-key", pk);
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        empty(builder)
    };
    assert_eq!(
        send(service.clone(), widget(Some("https://a.widgets.example")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(service.clone(), widget(None)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(
            service.clone(),
            track(pk, Some("https://a.widgets.example"))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(service, track(pk, None)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn public_routes_pass_and_a_missing_principal_is_refused() {
    let f = fixture();
    let service = f.service(OriginRule::new());
    assert_eq!(
        send(service, empty(get("/health"))).await.status,
        StatusCode::OK
    );
    // Placed without a KeyLayer before it, on a route that needs a key.
    let bare = ServiceBuilder::new()
        .layer(RouteLayer::new(f.routes.clone()))
        .layer(OriginLayer::new(OriginRule::new()))
        .service(f.handler.service());
    assert_eq!(
        send(bare.clone(), empty(http::Request::post("/v1/track")))
            .await
            .code(),
        "missing_api_key"
    );
    assert_eq!(
        send(bare, empty(get("/health"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn grpc_rejection_is_permission_denied() {
    let f = fixture();
    let request = empty(
        http::Request::post("/v1/track")
            .header("x-api-key", f.listed.key())
            .header("origin", "https://evil.com")
            .header("content-type", "application/grpc"),
    );
    let answer = send(f.service(OriginRule::new()), request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["grpc-status"], "7");
    assert!(
        answer.headers["grpc-message"]
            .to_str()
            .unwrap()
            .starts_with("origin_not_allowed")
    );
}

#[test]
fn bad_patterns_are_configuration_errors_naming_them() {
    let error = OriginRule::new()
        .allow(["https://ok.example.com", "https://*.com"])
        .unwrap_err();
    assert!(error.to_string().contains("https://*.com"));
    let error = KeyRecord::new("k", "p", KeyKind::Publishable)
        .with_origins(["ftp//nope"])
        .unwrap_err();
    assert_eq!(error.field(), "origins");
    assert!(error.to_string().contains("ftp//nope"));
    assert!("https://app.example.com".parse::<OriginPattern>().is_ok());
}

/// The documented recipe: tower-http's `CorsLayer` outside the gate.
#[tokio::test]
async fn cors_recipe_preflight_passes_and_rejections_are_readable() {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let f = fixture();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::POST])
        .allow_headers([
            http::header::CONTENT_TYPE,
            http::HeaderName::from_static("x-api-key"),
        ]);
    let service = ServiceBuilder::new()
        .layer(cors)
        .layer(RouteLayer::new(f.routes.clone()))
        .layer(KeyLayer::new(f.keys.store.clone()).hasher(f.keys.hasher.clone()))
        .layer(OriginLayer::new(OriginRule::new()))
        .service(f.handler.service());

    let preflight = empty(
        http::Request::options("/v1/track")
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key"),
    );
    let answer = send(service.clone(), preflight).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers["access-control-allow-origin"],
        "https://app.example.com"
    );

    let answer = send(
        service.clone(),
        track(f.listed.key(), Some("https://evil.com")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.headers["access-control-allow-origin"],
        "https://evil.com"
    );
    assert_eq!(answer.code(), "origin_not_allowed");

    let answer = send(service, track("garbage", Some("https://app.example.com"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
}
