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
