//! The check pipeline: paths matched as the handler serves them, settings
//! that never silently fall back, one clock, your own checks, and checks
//! that wait for a store.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use http::{Method, Request, StatusCode};
use serde_json::json;
use tollgate::Answer as StoreAnswer;
use tollgate::check::{Check, ResponseHeaders};
use tollgate::clock::FakeClock;
use tollgate::error::{ApiError, Category, ErrorCode};
use tollgate::gate::{Gate, GateConfig, RoutePolicy};
use tollgate::key::{KeyKind, KeyRecord};
use tollgate::rate_limit::{Partition, Quota};
use tollgate::render::{ErrorFormat, ErrorRenderer};
use tollgate::route::{PerRoute, RouteLayer, Routes, TrailingSlash};
use tollgate::scope::{ScopeLayer, ScopeRule};
use tower::{Layer, ServiceBuilder};

/// Every spelling of `POST /v1/track` a client might send.
const VARIANTS: [&str; 7] = [
    "/v1/track",
    "/v1//track",
    "//v1/track",
    "/v1/track/",
    "/v1/%74rack",
    "/v1/./track",
    "/v1/x/../track",
];

/// An app that normalizes paths itself (tower-http's `NormalizePathLayer`
/// inside the gate, in front of an axum router) gets every spelling under
/// the route's own policy: a read-only key never reaches the write handler.
#[tokio::test]
async fn paths_are_matched_as_the_handler_will_serve_them() {
    let keys = Keys::new();
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route("POST /v1/track", RoutePolicy::new().require_all(["ingest"]))
        .build()
        .unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&writes);
    let router = axum::Router::new().route(
        "/v1/track",
        axum::routing::post(move |uri: http::Uri| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { uri.path().to_owned() }
        }),
    );
    let app = ServiceBuilder::new()
        .layer(gate.layer())
        .layer(tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash())
        .service(router);
    let address = serve(app).await;

    for path in VARIANTS {
        let request = |key: &str| {
            Request::post(format!("http://{address}{path}"))
                .header("authorization", format!("Bearer {key}"))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                .unwrap()
        };
        let refused = fetch(request(keys.restricted.key())).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(refused.code(), "insufficient_scope", "{path}");

        let before = writes.load(Ordering::SeqCst);
        let admitted = fetch(request(keys.secret.key())).await;
        assert_eq!(admitted.status, StatusCode::OK, "{path}");
        assert_eq!(
            admitted.raw, "/v1/track",
            "{path}: the handler saw another path"
        );
        assert_eq!(writes.load(Ordering::SeqCst), before + 1, "{path}");
    }
    assert_eq!(writes.load(Ordering::SeqCst), VARIANTS.len());
}

/// Kept trailing slashes are a different path: a route may end with `/`,
/// and `/v1/track/` is not `/v1/track` (it gets the defaults).
#[tokio::test]
async fn a_kept_trailing_slash_is_another_route() {
    let keys = Keys::new();
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .trailing_slash(TrailingSlash::Keep)
        .route("POST /v1/track", RoutePolicy::new().require_all(["admin"]))
        .route("POST /v1/items/", RoutePolicy::new().require_all(["admin"]))
        .build()
        .unwrap();
    let handler = Handler::default();
    let service = gate.layer().layer(handler.gated());
    let post = |path: &str| {
        Request::post(path)
            .header("x-api-key", keys.restricted.key())
            .body(Default::default())
            .unwrap()
    };
    assert_eq!(
        send(service.clone(), post("/v1//track")).await.code(),
        "insufficient_scope"
    );
    assert_eq!(
        send(service.clone(), post("/v1/items//")).await.code(),
        "insufficient_scope"
    );
    assert_eq!(
        send(service.clone(), post("/v1/track/")).await.status,
        StatusCode::OK
    );
    assert_eq!(handler.calls(), 1);
    // Trimmed (the default), a pattern ending in `/` could never match.
    let error = Gate::builder(keys.store.clone())
        .route("POST /v1/items/", RoutePolicy::new())
        .build()
        .unwrap_err();
    assert_eq!(error.route(), Some("POST /v1/items/"));
}

/// A check whose settings were built for one route table, behind a route
/// layer of another, refuses with `internal_error` and logs why — it never
/// applies its (weaker) defaults.
#[tokio::test]
async fn settings_of_another_route_table_refuse_loudly() {
    let tagging = Routes::builder().route("GET /v1/admin").build().unwrap();
    let other = Routes::builder()
        .route("GET /v1/public")
        .route("GET /v1/admin")
        .build()
        .unwrap();
    let rules = PerRoute::new(&other, ScopeRule::new())
        .route("GET /v1/admin", ScopeRule::all_of(["admin"]).unwrap())
        .unwrap();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(RouteLayer::new(tagging))
        .map_request(|mut request: TestRequest| {
            let record = KeyRecord::new("key_rk", "demo", KeyKind::Restricted);
            request
                .extensions_mut()
                .insert(tollgate::key::Principal::new(Arc::new(record)));
            request
        })
        .layer(ScopeLayer::new(rules))
        .service(handler.service());
    let (logs, _guard) = Logs::capture();
    let answer = send(service, empty(get("/v1/admin"))).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.code(), "internal_error");
    assert_eq!(handler.calls(), 0);
    assert!(logs.text().contains("route table"), "{}", logs.text());
}

/// The builder's clock is the one clock: the default rate store refills on
/// it, and keys expire on it.
#[tokio::test]
async fn the_builders_clock_drives_buckets_and_expiry() {
    let fake = FakeClock::new();
    let keys = Keys::new();
    let expiring = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_expiring", "other", KeyKind::Secret)
            .with_expiry(fake.clock().unix_now() + Duration::from_secs(90)),
    );
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .clock(fake.clock())
        .route(
            "GET /v1/stats",
            RoutePolicy::new().quota(Quota::per_minute(1).burst(1)),
        )
        .build()
        .unwrap();
    let service = gate.layer().layer(Handler::default().gated());
    let stats = |key: &str| empty(get("/v1/stats").header("x-api-key", key));
    assert_eq!(
        send(service.clone(), stats(keys.secret.key())).await.status,
        StatusCode::OK
    );
    let refused = send(service.clone(), stats(keys.secret.key())).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "60");
    assert_eq!(
        send(service.clone(), stats(expiring.key())).await.status,
        StatusCode::OK
    );

    fake.advance(Duration::from_secs(60));
    assert_eq!(
        send(service.clone(), stats(keys.secret.key())).await.status,
        StatusCode::OK
    );
    fake.advance(Duration::from_secs(30));
    assert_eq!(
        send(service, stats(expiring.key())).await.code(),
        "expired_api_key"
    );
}

/// `config.builder()?.renderer(custom)` keeps the config's request-id
/// header.
#[tokio::test]
async fn a_custom_renderer_keeps_the_configured_request_id_header() {
    let config = GateConfig::from_toml(
        r#"
        request_id_header = "x-trace-id"
        [[routes]]
        route = "GET /v1/stats"
        "#,
    )
    .unwrap();
    let gate = config
        .builder()
        .unwrap()
        .renderer(ErrorRenderer::from_fn(|error, context| {
            json!({ "code": error.code().as_str(), "trace": context.request_id() })
        }))
        .build()
        .unwrap();
    let service = gate.layer().layer(Handler::default().gated());
    let answer = send(
        service,
        empty(get("/v1/stats").header("x-trace-id", "t-42")),
    )
    .await;
    assert_eq!(
        answer.body,
        json!({ "code": "missing_api_key", "trace": "t-42" })
    );
}

/// Refuses requests without an `x-tenant` header.
struct NeedsTenant {
    code: ErrorCode,
    seen: Arc<AtomicUsize>,
}

impl Check for NeedsTenant {
    type Pending = Infallible;

    fn check<B>(
        &self,
        request: &mut Request<B>,
        _: &mut ResponseHeaders,
    ) -> StoreAnswer<Result<(), ApiError>, Infallible> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        // It runs after the key check: the principal is there.
        assert!(tollgate::context::principal(request).is_some());
        StoreAnswer::Ready(match request.headers().contains_key("x-tenant") {
            true => Ok(()),
            false => Err(ApiError::new(self.code.clone(), "Name the tenant.")),
        })
    }
}

/// A check of your own runs in the gate's pipeline after the key and scope
/// checks and before the rate limit: what it refuses costs no token.
#[tokio::test]
async fn a_check_of_your_own_runs_before_the_rate_limit() {
    let keys = Keys::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let code = ErrorCode::custom(
        "tenant_required",
        StatusCode::BAD_REQUEST,
        Category::Validation,
    )
    .unwrap();
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .check(NeedsTenant {
            code,
            seen: Arc::clone(&seen),
        })
        .route(
            "GET /v1/stats",
            RoutePolicy::new()
                .require_all(["ingest"])
                .quota(Quota::per_day(1).burst(1)),
        )
        .build()
        .unwrap();
    let handler = Handler::default();
    let service = gate.layer().layer(handler.gated());
    let request = |tenant: bool| {
        let builder = get("/v1/stats").header("x-api-key", keys.secret.key());
        empty(if tenant {
            builder.header("x-tenant", "t1")
        } else {
            builder
        })
    };
    for _ in 0..3 {
        let answer = send(service.clone(), request(false)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.code(), "tenant_required");
        assert!(!answer.headers.contains_key("ratelimit"));
    }
    assert_eq!(
        send(service.clone(), request(true)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(service.clone(), request(true)).await.code(),
        "rate_limited"
    );
    // A key without the scope is refused before the check runs.
    let before = seen.load(Ordering::SeqCst);
    let no_scope = empty(get("/v1/stats").header("x-api-key", keys.restricted.key()));
    assert_eq!(send(service, no_scope).await.code(), "insufficient_scope");
    assert_eq!(seen.load(Ordering::SeqCst), before);
    assert_eq!(handler.calls(), 1);
}

/// A key store that must wait: the checks after it run once it answers, in
/// the same pipeline (scope refusals, rate-limit headers).
#[tokio::test(start_paused = true)]
async fn checks_after_a_slow_key_store_run_when_it_answers() {
    let keys = Keys::new();
    let gate = Gate::builder(SlowStore {
        inner: keys.store.clone(),
        delay: Duration::from_millis(300),
    })
    .hasher(keys.hasher.clone())
    .route(
        "GET /v1/stats",
        RoutePolicy::new()
            .require_all(["ingest"])
            .quota(Quota::per_second(10).burst(20)),
    )
    .build()
    .unwrap();
    let handler = Handler::default();
    let service = gate.layer().layer(handler.gated());
    let stats = |key: &str| empty(get("/v1/stats").header("x-api-key", key));
    let admitted = send(service.clone(), stats(keys.secret.key())).await;
    assert_eq!(admitted.status, StatusCode::OK);
    assert_eq!(admitted.headers["ratelimit"], "\"GET /v1/stats\";r=19;t=1");
    assert_eq!(admitted.body["principal"]["key_id"], "key_sk");
    let refused = send(service, stats(keys.restricted.key())).await;
    assert_eq!(refused.code(), "insufficient_scope");
    assert_eq!(handler.calls(), 1);
}

/// The configuration file reads into the builder's own types.
#[test]
fn the_config_reads_into_the_builders_types() {
    let config = GateConfig::from_toml(
        r#"
        errors = "problem"
        partition = "ip"
        trailing_slash = "keep"
        [defaults]
        body_limit = 4096
        [[routes]]
        route = "POST /v1/track"
        scopes = ["ingest"]
        quotas = [{ rate = 50, per = "second", burst = 200, name = "track" }]
        "#,
    )
    .unwrap();
    assert_eq!(config.errors, ErrorFormat::Problem);
    assert_eq!(config.rate.partition, Partition::ClientIp);
    assert_eq!(config.trailing_slash, TrailingSlash::Keep);
    assert_eq!(config.defaults, RoutePolicy::new().body_limit(4096));
    assert_eq!(config.routes[0].route.as_deref(), Some("POST /v1/track"));
    assert_eq!(
        config.routes[0].policy,
        RoutePolicy::new()
            .require_all(["ingest"])
            .quota(Quota::per_second(50).burst(200).named("track"))
    );
    // And writes back to the same.
    let again = GateConfig::from_toml(&toml::to_string(&config).unwrap()).unwrap();
    assert_eq!(again, config);
    // A mistake inside a route names the route.
    let error =
        GateConfig::from_toml("[[routes]]\nroute = \"GET /x\"\nscope = [\"a\"]").unwrap_err();
    assert!(
        error.reason().contains("GET /x") && error.reason().contains("scope"),
        "{error}"
    );
    let _ = Method::GET;
}
