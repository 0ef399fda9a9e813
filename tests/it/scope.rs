//! `ScopeLayer` through real services: all/any scopes, wildcards, kinds with
//! a custom code, the 404 mode, and gRPC.

use crate::common::*;
use http::StatusCode;
use serde_json::json;
use tollgate::error::{Category, ErrorCode};
use tollgate::key::{KeyKind, KeyLayer, KeyRecord, MintedKey};
use tollgate::route::{PerRoute, RouteLayer, Routes};
use tollgate::scope::{ScopeLayer, ScopeRule};
use tower::ServiceBuilder;

struct Fixture {
    keys: Keys,
    people: MintedKey,
    everything: MintedKey,
    handler: Handler,
    routes: Routes,
}

fn fixture() -> Fixture {
    let keys = Keys::new();
    let people = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_people", "demo", KeyKind::Secret).with_scopes(["people.*", "read"]),
    );
    let everything = keys.add(
        KeyKind::Restricted,
        KeyRecord::new("key_star", "demo", KeyKind::Restricted).with_scopes(["*"]),
    );
    let routes = Routes::builder()
        .public("GET /health")
        .route("POST /v1/track")
        .route("GET /v1/stats")
        .route("GET /v1/people/paygap")
        .route("GET /v1/readwrite")
        .route("POST /v1/forget")
        .route("GET /v1/admin")
        .route("GET /v1/either")
        .build()
        .unwrap();
    Fixture {
        keys,
        people,
        everything,
        handler: Handler::default(),
        routes,
    }
}

impl Fixture {
    fn service(
        &self,
    ) -> impl tower::Service<
        TestRequest,
        Response = http::Response<
            impl http_body::Body<Data = bytes::Bytes, Error = impl std::fmt::Debug>,
        >,
        Error = std::convert::Infallible,
    > + Clone {
        let forget_code = ErrorCode::custom(
            "forget_requires_secret_key",
            StatusCode::FORBIDDEN,
            Category::Auth,
        )
        .unwrap();
        let rules = PerRoute::new(&self.routes, ScopeRule::new())
            .route("POST /v1/track", ScopeRule::all_of(["ingest"]).unwrap())
            .unwrap()
            .route("GET /v1/stats", ScopeRule::all_of(["read"]).unwrap())
            .unwrap()
            .route(
                "GET /v1/people/paygap",
                ScopeRule::all_of(["people.view_paygap", "read"]).unwrap(),
            )
            .unwrap()
            .route(
                "GET /v1/readwrite",
                ScopeRule::all_of(["readwrite"]).unwrap(),
            )
            .unwrap()
            .route(
                "POST /v1/forget",
                ScopeRule::new()
                    .kinds(KeyKind::Secret)
                    .kind_code(forget_code),
            )
            .unwrap()
            .route(
                "GET /v1/admin",
                ScopeRule::all_of(["admin"]).unwrap().hidden(true),
            )
            .unwrap()
            .route(
                "GET /v1/either",
                ScopeRule::any_of(["admin", "people.view"]).unwrap(),
            )
            .unwrap();
        ServiceBuilder::new()
            .layer(RouteLayer::new(self.routes.clone()))
            .layer(KeyLayer::new(self.keys.store.clone()).hasher(self.keys.hasher.clone()))
            .layer(ScopeLayer::new(rules))
            .service(self.handler.service())
    }
}

fn call(method: &str, path: &str, key: &str) -> TestRequest {
    empty(
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", key),
    )
}

#[tokio::test]
async fn required_scopes_admit_and_refuse() {
    let f = fixture();
    let s = f.service();
    assert_eq!(
        send(
            s.clone(),
            call("POST", "/v1/track", f.keys.publishable.key())
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(s.clone(), call("GET", "/v1/stats", f.keys.restricted.key()))
            .await
            .status,
        StatusCode::OK
    );

    let answer = send(
        s.clone(),
        call("GET", "/v1/stats", f.keys.publishable.key()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "insufficient_scope");
    assert_eq!(
        answer.body["error"]["details"],
        json!({ "required": ["read"], "granted": ["ingest"], "missing": ["read"], "mode": "all" })
    );
    assert_eq!(f.handler.calls(), 2);
}

#[tokio::test]
async fn wildcard_scopes() {
    let f = fixture();
    let s = f.service();
    // `people.*` covers `people.view_paygap`; `read` is held too.
    assert_eq!(
        send(s.clone(), call("GET", "/v1/people/paygap", f.people.key()))
            .await
            .status,
        StatusCode::OK
    );
    // `*` covers everything.
    for (method, path) in [
        ("GET", "/v1/people/paygap"),
        ("GET", "/v1/admin"),
        ("GET", "/v1/readwrite"),
        ("POST", "/v1/track"),
    ] {
        assert_eq!(
            send(s.clone(), call(method, path, f.everything.key()))
                .await
                .status,
            StatusCode::OK,
            "{path}"
        );
    }
    // `read` does not cover `readwrite`.
    let answer = send(s.clone(), call("GET", "/v1/readwrite", f.people.key())).await;
    assert_eq!(answer.code(), "insufficient_scope");
    // A secret key's default `read` does not cover `people.view_paygap`.
    let answer = send(s, call("GET", "/v1/people/paygap", f.keys.secret.key())).await;
    assert_eq!(answer.code(), "insufficient_scope");
    assert_eq!(
        answer.body["error"]["details"]["missing"],
        json!(["people.view_paygap"])
    );
}

#[tokio::test]
async fn any_of() {
    let f = fixture();
    let s = f.service();
    assert_eq!(
        send(s.clone(), call("GET", "/v1/either", f.people.key()))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(s.clone(), call("GET", "/v1/either", f.keys.secret.key()))
            .await
            .status,
        StatusCode::OK
    );
    let answer = send(s, call("GET", "/v1/either", f.keys.restricted.key())).await;
    assert_eq!(answer.code(), "insufficient_scope");
    assert_eq!(answer.body["error"]["details"]["mode"], "any");
}

#[tokio::test]
async fn kind_rule_with_a_custom_code() {
    let f = fixture();
    let s = f.service();
    assert_eq!(
        send(s.clone(), call("POST", "/v1/forget", f.keys.secret.key()))
            .await
            .status,
        StatusCode::OK
    );
    for key in [f.keys.publishable.key(), f.keys.restricted.key()] {
        let answer = send(s.clone(), call("POST", "/v1/forget", key)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.code(), "forget_requires_secret_key");
        assert_eq!(
            answer.body["error"]["details"]["accepted"],
            json!(["secret"])
        );
    }
}

#[tokio::test]
async fn default_kind_code() {
    let f = fixture();
    let routes = f.routes.clone();
    let rules = PerRoute::new(&routes, ScopeRule::new().kinds(KeyKind::Secret));
    let s = ServiceBuilder::new()
        .layer(RouteLayer::new(routes))
        .layer(KeyLayer::new(f.keys.store.clone()).hasher(f.keys.hasher.clone()))
        .layer(ScopeLayer::new(rules))
        .service(f.handler.service());
    let answer = send(s, call("GET", "/v1/stats", f.keys.restricted.key())).await;
    assert_eq!(answer.code(), "key_kind_not_allowed");
    assert_eq!(
        answer.body["error"]["details"],
        json!({ "accepted": ["secret"], "kind": "restricted" })
    );
}

#[tokio::test]
async fn hidden_routes_answer_404() {
    let f = fixture();
    let s = f.service();
    let answer = send(s.clone(), call("GET", "/v1/admin", f.keys.restricted.key())).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "not_found");
    assert!(
        answer.body["error"].get("details").is_none(),
        "nothing about the route is revealed"
    );
    assert_eq!(
        send(s, call("GET", "/v1/admin", f.keys.secret.key()))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn public_routes_pass_and_grpc_gets_permission_denied() {
    let f = fixture();
    let s = f.service();
    assert_eq!(
        send(s.clone(), empty(get("/health"))).await.status,
        StatusCode::OK
    );
    let request = empty(
        http::Request::get("/v1/stats")
            .header("x-api-key", f.keys.publishable.key())
            .header("content-type", "application/grpc"),
    );
    let answer = send(s.clone(), request).await;
    assert_eq!(answer.headers["grpc-status"], "7");
    let request = empty(
        http::Request::get("/v1/admin")
            .header("x-api-key", f.keys.publishable.key())
            .header("content-type", "application/grpc"),
    );
    assert_eq!(send(s, request).await.headers["grpc-status"], "12");
}

#[tokio::test]
async fn standalone_without_routes_uses_one_rule() {
    let f = fixture();
    let s = ServiceBuilder::new()
        .layer(KeyLayer::new(f.keys.store.clone()).hasher(f.keys.hasher.clone()))
        .layer(ScopeLayer::new(ScopeRule::all_of(["admin"]).unwrap()))
        .service(f.handler.service());
    assert_eq!(
        send(s.clone(), call("GET", "/anything", f.keys.secret.key()))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(s, call("GET", "/anything", f.keys.restricted.key()))
            .await
            .code(),
        "insufficient_scope"
    );
}
