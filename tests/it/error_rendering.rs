//! Standard error responses: the default envelope, RFC 9457, gRPC, request
//! ids, and the five other envelope shapes users asked for, each in a few
//! lines of custom renderer.

use crate::common::*;
use http::header::{HeaderName, RETRY_AFTER};
use http::{HeaderValue, Request, StatusCode};
use serde_json::{Value, json};
use tollgate::error::{ApiError, ErrorCode};
use tollgate::key::KeyLayer;
use tollgate::render::{ErrorRenderer, RenderContext};
use tower::ServiceBuilder;

fn rate_limited() -> ApiError {
    ApiError::new(
        ErrorCode::RATE_LIMITED,
        "Rate limit exceeded on route POST /v1/track. Retry after 3 seconds.",
    )
    .with_details(json!({ "retry_after": 3, "limit": 200, "policy": "POST /v1/track" }))
    .with_header(RETRY_AFTER, HeaderValue::from_static("3"))
}

fn request() -> Request<()> {
    Request::post("/v1/track")
        .header("x-request-id", "7f3c9a")
        .body(())
        .unwrap()
}

fn body(response: &http::Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

#[test]
fn default_envelope_is_exact() {
    let response = ErrorRenderer::default().respond(rate_limited(), &request());
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(
        body(&response),
        json!({
            "error": {
                "code": "rate_limited",
                "message": "Rate limit exceeded on route POST /v1/track. Retry after 3 seconds.",
                "status": 429,
                "category": "rate_limit",
                "details": { "retry_after": 3, "limit": 200, "policy": "POST /v1/track" },
                "request_id": "7f3c9a"
            }
        })
    );
}

#[test]
fn envelope_leaves_out_absent_details_and_request_id() {
    let request = Request::get("/").body(()).unwrap();
    let response =
        ErrorRenderer::default().respond(ApiError::from(ErrorCode::MISSING_API_KEY), &request);
    assert_eq!(
        body(&response),
        json!({ "error": { "code": "missing_api_key", "message": "No API key was provided.", "status": 401, "category": "auth" } })
    );
}

#[test]
fn problem_json_is_exact() {
    let response = ErrorRenderer::problem_json().respond(rate_limited(), &request());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body(&response),
        json!({
            "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
            "title": "Request cannot be satisfied as assigned quota has been exceeded",
            "status": 429,
            "detail": "Rate limit exceeded on route POST /v1/track. Retry after 3 seconds.",
            "code": "rate_limited",
            "details": { "retry_after": 3, "limit": 200, "policy": "POST /v1/track" },
            "violated-policies": ["POST /v1/track"],
            "request_id": "7f3c9a"
        })
    );
    let typed = ErrorRenderer::new(
        tollgate::render::ProblemJson::new().with_type_base("https://docs.example.com/errors/"),
    );
    // The draft's problem type wins for a quota refusal; a type base for the rest.
    let response = typed.respond(rate_limited(), &request());
    assert_eq!(
        body(&response)["type"],
        tollgate::render::QUOTA_EXCEEDED_TYPE
    );
    let response = typed.respond(ApiError::from(ErrorCode::PAYLOAD_TOO_LARGE), &request());
    assert_eq!(
        body(&response)["type"],
        "https://docs.example.com/errors/payload_too_large"
    );
    let untyped =
        ErrorRenderer::problem_json().respond(ApiError::from(ErrorCode::NOT_FOUND), &request());
    assert_eq!(body(&untyped)["type"], "about:blank");
    assert_eq!(body(&untyped)["title"], "Not Found");
    assert!(body(&untyped).get("violated-policies").is_none());
}

#[test]
fn request_id_header_is_configurable() {
    let renderer =
        ErrorRenderer::default().with_request_id_header(HeaderName::from_static("x-trace-id"));
    let request = Request::get("/")
        .header("x-trace-id", "trace-9")
        .header("x-request-id", "other")
        .body(())
        .unwrap();
    let response = renderer.respond(ApiError::from(ErrorCode::NOT_FOUND), &request);
    assert_eq!(body(&response)["error"]["request_id"], "trace-9");
    // An absurdly long id is not echoed.
    let request = Request::get("/")
        .header("x-request-id", "a".repeat(1000))
        .body(())
        .unwrap();
    let response = ErrorRenderer::default().respond(ApiError::from(ErrorCode::NOT_FOUND), &request);
    assert!(body(&response)["error"].get("request_id").is_none());
}

#[test]
fn typed_error_rides_in_the_response_extensions() {
    let response = ErrorRenderer::default().respond(rate_limited(), &request());
    let error = response.extensions().get::<ApiError>().unwrap();
    assert_eq!(error.code(), &ErrorCode::RATE_LIMITED);
    assert_eq!(error.details().unwrap()["limit"], 200);
}

/// Every refusal of the gate carries its typed rejection in the response's
/// extensions — and nothing of the refused request's (its route, its
/// caller, what an outer layer put there), though the response's map is
/// the request's own, emptied.
#[tokio::test]
async fn a_refusal_carries_its_rejection_and_none_of_the_requests_extensions() {
    use tower::{Layer, ServiceExt};
    #[derive(Clone)]
    struct Outer;
    let keys = Keys::new();
    let gate = tollgate::gate::Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route(
            "POST /v1/track",
            tollgate::gate::RoutePolicy::new()
                .require_all(["ingest"])
                .body_limit(8),
        )
        .route(
            "POST /v1/admin",
            tollgate::gate::RoutePolicy::new().require_all(["superuser"]),
        )
        .route(
            "POST /v1/tight",
            tollgate::gate::RoutePolicy::new()
                .quota(tollgate::rate_limit::Quota::per_day(1).burst(1)),
        )
        .build()
        .unwrap();
    let service = gate.layer().layer(Handler::default().gated());
    let secret = keys.secret.key().to_owned();
    let post = |path: &str, key: Option<&str>, length: usize| {
        let mut request = Request::post(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let mut request = request
            .header("content-length", length.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                b'x';
                length
            ])))
            .unwrap();
        request.extensions_mut().insert(Outer);
        request
    };
    let spend = service.clone().oneshot(post("/v1/tight", Some(&secret), 0));
    assert_eq!(spend.await.unwrap().status(), StatusCode::OK);
    let cases = [
        (post("/v1/track", None, 2), ErrorCode::MISSING_API_KEY),
        (
            post("/v1/admin", Some(&secret), 2),
            ErrorCode::INSUFFICIENT_SCOPE,
        ),
        (post("/v1/tight", Some(&secret), 2), ErrorCode::RATE_LIMITED),
        (
            post("/v1/track", Some(&secret), 9),
            ErrorCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, code) in cases {
        let response = service.clone().oneshot(request).await.unwrap();
        let extensions = response.extensions();
        let error = extensions.get::<ApiError>().expect("the typed rejection");
        assert_eq!(error.code(), &code);
        assert_eq!(response.status(), code.status());
        assert!(
            extensions.get::<Outer>().is_none(),
            "{code}: an outer layer's"
        );
        assert!(
            extensions.get::<tollgate::route::Route>().is_none(),
            "{code}: the route"
        );
        assert!(
            extensions.get::<tollgate::key::Principal>().is_none(),
            "{code}: the caller"
        );
        assert_eq!(extensions.len(), 1, "{code}");
    }
}

#[test]
fn grpc_requests_get_trailers_only_statuses() {
    let cases = [
        (ErrorCode::MISSING_API_KEY, "16"),
        (ErrorCode::ORIGIN_NOT_ALLOWED, "7"),
        (ErrorCode::RATE_LIMITED, "8"),
        (ErrorCode::PAYLOAD_TOO_LARGE, "8"),
        (ErrorCode::UPSTREAM_FAILED, "14"),
        (ErrorCode::INTERNAL_ERROR, "13"),
    ];
    for (code, grpc) in cases {
        let request = Request::post("/pkg.Service/Method")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let response = ErrorRenderer::default().respond(ApiError::from(code.clone()), &request);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], grpc, "{code}");
        let message = response.headers()["grpc-message"].to_str().unwrap();
        assert!(message.starts_with(code.as_str()), "{message}");
        assert!(response.body().is_empty());
    }
    let custom = ErrorCode::custom(
        "team_quota_spent",
        StatusCode::BAD_REQUEST,
        tollgate::error::Category::Validation,
    )
    .unwrap();
    let request = Request::post("/x")
        .header("content-type", "application/grpc+proto")
        .body(())
        .unwrap();
    let response = ErrorRenderer::default().respond(ApiError::new(custom, "50% used; é"), &request);
    assert_eq!(response.headers()["grpc-status"], "3");
    assert_eq!(
        response.headers()["grpc-message"],
        "team_quota_spent: 50%25 used; %C3%A9"
    );
    // Off when asked.
    let response = ErrorRenderer::default()
        .with_grpc(false)
        .respond(ApiError::from(ErrorCode::RATE_LIMITED), &request);
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

// The five other shapes of DESIGN §2, each a few lines of renderer.

#[test]
fn shape_error_string_with_details() {
    let renderer = ErrorRenderer::from_fn(
        |e, _| json!({ "error": e.code().as_str(), "details": e.details() }),
    );
    let response = renderer.respond(rate_limited(), &request());
    assert_eq!(
        response.body().as_ref(),
        br#"{"details":{"limit":200,"policy":"POST /v1/track","retry_after":3},"error":"rate_limited"}"#
    );
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[test]
fn shape_error_object_with_detail() {
    let renderer = ErrorRenderer::from_fn(
        |e, _| json!({ "error": { "code": e.code().as_str(), "message": e.message(), "detail": e.details() } }),
    );
    let response = renderer.respond(rate_limited(), &request());
    assert_eq!(
        body(&response),
        json!({ "error": {
            "code": "rate_limited",
            "message": "Rate limit exceeded on route POST /v1/track. Retry after 3 seconds.",
            "detail": { "retry_after": 3, "limit": 200, "policy": "POST /v1/track" }
        } })
    );
}

#[test]
fn shape_flat_with_issues_and_attempt_id() {
    let renderer = ErrorRenderer::from_fn(|e, cx: &RenderContext<'_>| {
        let issues = e
            .details()
            .and_then(|d| d.get("issues"))
            .cloned()
            .unwrap_or_else(|| json!([]));
        json!({ "error": e.code().as_str(), "message": e.message(), "issues": issues, "attemptId": cx.request_id() })
    });
    let error = ApiError::new(ErrorCode::PAYLOAD_TOO_LARGE, "Body over 8192 bytes.")
        .with_details(json!({ "issues": [{ "path": "body", "limit_bytes": 8192 }] }));
    let response = renderer.respond(error, &request());
    assert_eq!(
        body(&response),
        json!({
            "error": "payload_too_large",
            "message": "Body over 8192 bytes.",
            "issues": [{ "path": "body", "limit_bytes": 8192 }],
            "attemptId": "7f3c9a"
        })
    );
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn shape_camel_case_status_code() {
    let renderer = ErrorRenderer::from_fn(|e, _| {
        json!({ "error": {
            "message": e.message(), "statusCode": e.status().as_u16(), "code": e.code().as_str(),
            "category": e.category().as_str(), "details": e.details()
        } })
    });
    let response = renderer.respond(ApiError::from(ErrorCode::INVALID_API_KEY), &request());
    assert_eq!(
        body(&response),
        json!({ "error": {
            "message": "The API key is not valid.", "statusCode": 401, "code": "invalid_api_key",
            "category": "auth", "details": null
        } })
    );
}

#[test]
fn shape_status_error_wrapper() {
    let renderer = ErrorRenderer::from_fn(|e, _| {
        json!({
            "code": e.status().as_u16(), "status": "error", "message": e.message(),
            "error": { "code": e.code().as_str(), "message": e.message(), "details": e.details() }
        })
    });
    let response = renderer.respond(rate_limited(), &request());
    assert_eq!(
        body(&response),
        json!({
            "code": 429,
            "status": "error",
            "message": "Rate limit exceeded on route POST /v1/track. Retry after 3 seconds.",
            "error": {
                "code": "rate_limited",
                "message": "Rate limit exceeded on route POST /v1/track. Retry after 3 seconds.",
                "details": { "retry_after": 3, "limit": 200, "policy": "POST /v1/track" }
            }
        })
    );
    assert_eq!(response.headers()["retry-after"], "3");
}

#[tokio::test]
async fn a_layer_uses_the_renderer_it_is_given() {
    let keys = Keys::new();
    let renderer = ErrorRenderer::problem_json();
    let service = ServiceBuilder::new()
        .layer(
            KeyLayer::new(keys.store.clone())
                .hasher(keys.hasher.clone())
                .renderer(renderer),
        )
        .service(Handler::default().service());
    let answer = send(service, empty(get("/").header("x-request-id", "r-1"))).await;
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(answer.body["code"], "missing_api_key");
    assert_eq!(answer.body["request_id"], "r-1");
    assert_eq!(answer.body["status"], 401);
}

/// A handler that answers every request with its own `ApiError` in axum's
/// default shape, noting how many holders the caller's key record has
/// while the request is in the gate.
fn failing_handler<B: Send + 'static>(
    holders: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> impl tower::Service<
    Request<B>,
    Response = http::Response<axum::body::Body>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    use axum::response::IntoResponse;
    tower::service_fn(move |request: Request<B>| {
        let holders = holders.clone();
        async move {
            let principal = request.extensions().get::<tollgate::key::Principal>();
            let count = principal.map_or(0, |principal| {
                std::sync::Arc::strong_count(principal.record())
            });
            holders.store(count, std::sync::atomic::Ordering::SeqCst);
            Ok(ApiError::new(ErrorCode::NOT_FOUND, "No such order.").into_response())
        }
    })
}

/// What rendering a handler's error reads of the request's route and
/// caller is kept for it, and only then: the default envelope reads
/// neither, so an admitted request's key record has no holder more than
/// its request's own `Principal`; a template that shows the key id, a
/// route's own shape, a gRPC request and a listened log each keep them.
#[tokio::test]
async fn handler_errors_keep_the_route_and_caller_only_for_what_reads_them() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tollgate::gate::{Gate, RoutePolicy};
    use tollgate::render::{ErrorFormat, Template};
    use tower::Layer;

    let keys = Keys::new();
    let gate = |renderer: Option<ErrorRenderer>| {
        let builder = Gate::builder(keys.store.clone())
            .hasher(keys.hasher.clone())
            .route("GET /orders/{id}", RoutePolicy::new())
            .route(
                "GET /problems/{id}",
                RoutePolicy::new().errors(ErrorFormat::Problem),
            );
        match renderer {
            Some(renderer) => builder.renderer(renderer),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let record = keys.store.get(&keys.secret.digest()).unwrap();
    let with_key = |path: &str| {
        get(path)
            .header("x-api-key", keys.secret.key())
            .header("x-request-id", "req-3")
    };
    // The holders seen by the handler, beyond those left once the request
    // is done (the store, the gate's verified-key cache, `record` here).
    let extra_holders = |renderer: Option<ErrorRenderer>, path: &'static str, grpc: bool| {
        let holders = Arc::new(AtomicUsize::new(0));
        let service = gate(renderer)
            .layer()
            .layer(failing_handler(holders.clone()));
        let request = |grpc: bool| {
            let builder = with_key(path);
            empty(match grpc {
                true => builder.header("content-type", "application/grpc"),
                false => builder,
            })
        };
        let record = record.clone();
        async move {
            // Once to fill the verified-key cache, then measured.
            send(service.clone(), request(grpc)).await;
            let answer = send(service.clone(), request(grpc)).await;
            // With the gate still alive: its caches hold what they held.
            let left = Arc::strong_count(&record);
            drop(service);
            (holders.load(Ordering::SeqCst) - left, answer)
        }
    };

    // The default envelope: the request's `Principal` is the one holder more.
    let (extra, answer) = extra_holders(None, "/orders/7", false).await;
    assert_eq!(extra, 1);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["error"]["code"], "not_found");
    assert_eq!(answer.body["error"]["request_id"], "req-3");

    // A template showing the key id and route keeps them, and shows them.
    let template = Template::new(json!({
        "code": "{code}", "key": "{key_id}", "route": "{route}"
    }))
    .unwrap();
    let renderer = ErrorRenderer::new(template);
    let (extra, answer) = extra_holders(Some(renderer), "/orders/7", false).await;
    assert_eq!(extra, 2);
    assert_eq!(
        answer.body,
        json!({ "code": "not_found", "key": "key_sk", "route": "GET /orders/{id}" })
    );

    // A route with a shape of its own is found by the route.
    let (extra, answer) = extra_holders(None, "/problems/7", false).await;
    assert_eq!(extra, 2);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(answer.body["code"], "not_found");

    // A gRPC status names the route.
    let (extra, answer) = extra_holders(None, "/orders/7", true).await;
    assert_eq!(extra, 2);
    assert_eq!(answer.headers["grpc-status"], "12");
    {
        use tonic_types::StatusExt;
        let status = tonic::Status::from_header_map(&answer.headers).unwrap();
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.metadata["route"], "GET /orders/{id}");
    }

    // A log someone listens to names the key and the route.
    let (logs, _guard) = Logs::capture();
    let (extra, answer) = extra_holders(None, "/orders/7", false).await;
    assert_eq!(extra, 2);
    assert_eq!(answer.status, 404);
    let logs = logs.text();
    assert!(logs.contains("key_id=\"key_sk\""), "{logs}");
    assert!(logs.contains("route=\"GET /orders/{id}\""), "{logs}");
}
