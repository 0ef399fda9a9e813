//! The demo gateway's service: CORS, the gate from a config, the handlers.
//! Shared by `main.rs` and the integration test `tests/it/gateway.rs`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tollgate::body_limit::LimitedBody;
use tollgate::error::{ApiError, ErrorCode};
use tollgate::gate::{Gate, GateLayer, LiveGate};
use tollgate::key::Principal;
use tollgate::key::store::KeyStore;
use tollgate::rate_limit::store::RateStore;
use tollgate::render::ErrorRenderer;
use tower::ServiceBuilder;
use tower::util::BoxCloneService;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The body every response of the demo has.
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The demo's whole HTTP service.
pub type App = BoxCloneService<Request<Incoming>, Response<Body>, Infallible>;

/// What the handlers get: the request behind the gate.
pub type GatedRequest = Request<LimitedBody<Incoming>>;

/// The demo's handlers, for requests with bodies of type `B`.
pub type Handlers<B = LimitedBody<Incoming>> =
    BoxCloneService<Request<B>, Response<Full<Bytes>>, Infallible>;

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The demo API: each answer names the caller's project, key id and kind.
pub fn handlers<B>(renderer: ErrorRenderer) -> Handlers<B>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    // Shared, not copied, by every request.
    let renderer = std::sync::Arc::new(renderer);
    BoxCloneService::new(tower::service_fn(move |request: Request<B>| {
        let renderer = std::sync::Arc::clone(&renderer);
        async move {
            let (parts, body) = request.into_parts();
            let caller = parts.extensions.get::<Principal>().map(|p| {
                serde_json::json!({ "project": p.project(), "key_id": p.key_id(), "kind": p.kind().as_str() })
            });
            // Read the body: past its cap this fails, and the gate answers 413
            // whatever this handler says.
            let received = match body.collect().await {
                Ok(body) => body.to_bytes().len(),
                Err(_) => {
                    return Ok(json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({ "error": "unreadable body" }),
                    ));
                }
            };
            let response = match (parts.method.clone(), parts.uri.path()) {
                (Method::GET, "/health") => json(StatusCode::OK, serde_json::json!({ "ok": true })),
                (Method::POST, "/v1/track" | "/v1/batch") => json(
                    StatusCode::ACCEPTED,
                    serde_json::json!({ "accepted": true, "bytes": received, "caller": caller }),
                ),
                (Method::POST, "/v1/forget") => json(
                    StatusCode::ACCEPTED,
                    serde_json::json!({ "forgetting": true, "caller": caller }),
                ),
                (Method::GET, "/v1/stats" | "/v1/export" | "/v1/admin") => json(
                    StatusCode::OK,
                    serde_json::json!({ "events": 0, "caller": caller }),
                ),
                _ => renderer
                    .respond_parts(ApiError::from(ErrorCode::NOT_FOUND), &parts)
                    .map(Full::new),
            };
            Ok::<_, Infallible>(response)
        }
    }))
}

/// How long a browser may cache a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The request headers browser tracing and error-reporting SDKs add to
/// every `fetch`: W3C trace context, baggage, Sentry's.
pub const TRACING_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
    HeaderName::from_static("baggage"),
    HeaderName::from_static("sentry-trace"),
];

/// CORS for browser callers of `gate`, derived from its settings: the
/// headers the gate reads (credentials, request id) and the ones tracing
/// SDKs add may be sent; exactly the rate-limit headers the gate sends may
/// be read; preflights are cached for [`PREFLIGHT_MAX_AGE`].
pub fn cors<St, Rs, C>(gate: &Gate<St, Rs, C>) -> CorsLayer {
    let mut allow = gate.request_header_names();
    allow.push(CONTENT_TYPE);
    allow.extend(TRACING_HEADERS);
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(allow)
        .expose_headers(gate.response_header_names())
        .max_age(PREFLIGHT_MAX_AGE)
}

/// A panic in a handler is answered with the standard `internal_error`.
pub fn catch_panics(
    renderer: &ErrorRenderer,
) -> CatchPanicLayer<impl Fn(Box<dyn std::any::Any + Send>) -> Response<String> + Clone + use<>> {
    CatchPanicLayer::custom(renderer.panic_response())
}

/// CORS outside, then the gate, then `handlers`.
pub fn app<St: KeyStore, Rs: RateStore>(gate: &Gate<St, Rs>, handlers: Handlers) -> App {
    app_with(gate, gate.layer(), handlers)
}

/// The same in front of a gate that the configuration file can replace
/// while it serves (its CORS settings are the first gate's).
pub fn live_app<St: KeyStore, Rs: RateStore>(live: &LiveGate<St, Rs>, handlers: Handlers) -> App {
    app_with(&live.current(), live.layer(), handlers)
}

fn app_with<St: KeyStore, Rs: RateStore>(
    gate: &Gate<St, Rs>,
    layer: GateLayer<St, Rs>,
    handlers: Handlers,
) -> App {
    let service = ServiceBuilder::new()
        .layer(cors(gate))
        .map_response(|response: Response<_>| {
            response.map(|body: tollgate::check::ResponseBody<_>| {
                body.map_err(Into::into).boxed_unsync()
            })
        })
        .layer(layer)
        .layer(catch_panics(gate.renderer()))
        .service(handlers);
    BoxCloneService::new(service)
}

/// The same service without the gate, for measuring what the gate costs.
/// Every request is given `caller` as its principal, so that the handlers
/// do the same work (and answer the same bodies) as behind the gate; `cors`
/// is the gated app's.
pub fn bare_app(
    cors: CorsLayer,
    renderer: ErrorRenderer,
    handlers: Handlers<Incoming>,
    caller: Principal,
) -> App {
    let service = ServiceBuilder::new()
        .layer(cors)
        .map_response(|response: Response<_>| {
            response.map(|body: tower_http::body::UnsyncBoxBody<_, _>| body.boxed_unsync())
        })
        .layer(catch_panics(&renderer))
        .map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(caller.clone());
            request
        })
        .service(handlers);
    BoxCloneService::new(service)
}
