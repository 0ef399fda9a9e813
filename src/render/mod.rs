//! Rendering: the one place an [`ApiError`](crate::error::ApiError) becomes
//! an HTTP response.
//!
//! Every rejection, from every check, is rendered by one shared
//! [`ErrorRenderer`]. The shape of the body is pluggable ([`RenderError`],
//! implemented by closures); built in are the default JSON envelope
//! ([`JsonEnvelope`]), RFC 9457 problem details ([`ProblemJson`]), bodies
//! from a JSON [`Template`], JSON-RPC 2.0 errors ([`JsonRpc`]), and gRPC
//! statuses for gRPC requests. [`ErrorFormat`] names them in a
//! configuration file.
//!
//! ```
//! use http::Request;
//! use tollgate::error::{ApiError, ErrorCode};
//! use tollgate::render::ErrorRenderer;
//!
//! let renderer = ErrorRenderer::default();
//! let request = Request::post("/v1/track").header("x-request-id", "req-1").body(()).unwrap();
//! let response = renderer.respond(ApiError::from(ErrorCode::MISSING_API_KEY), &request);
//! assert_eq!(response.status(), 401);
//! let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
//! assert_eq!(body["error"]["code"], "missing_api_key");
//! assert_eq!(body["error"]["request_id"], "req-1");
//! // The typed error rides along for outer layers.
//! assert_eq!(response.extensions().get::<ApiError>().unwrap().code(), &ErrorCode::MISSING_API_KEY);
//! ```

#[cfg(feature = "axum")]
mod axum;
mod context;
mod format;
mod grpc;
mod jsonrpc;
mod number;
mod renderer;
pub(crate) mod request_id;
mod shape;
mod template;

pub use context::RenderContext;
pub use format::ErrorFormat;
pub use grpc::grpc_status;
pub use jsonrpc::{JSONRPC_SERVER_ERROR, JsonRpc};
pub(crate) use number::number_value;
pub use renderer::{DEFAULT_GRPC_DOMAIN, ErrorRenderer};
pub(crate) use renderer::{RefusedBody, RenderedByDefault};
pub use request_id::RequestIdOptions;
pub(crate) use shape::json_response_with;
pub use shape::{JsonEnvelope, ProblemJson, QUOTA_EXCEEDED_TYPE, RenderError, json_response};
pub use template::Template;
