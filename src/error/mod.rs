//! Standard error responses.
//!
//! Every rejection, from every layer, is an [`ApiError`] with a stable
//! [`ErrorCode`] from one catalogue, rendered by one shared [`ErrorRenderer`].
//! The renderer is pluggable ([`RenderError`], implemented by closures), and
//! built in are the default JSON envelope ([`JsonEnvelope`]), RFC 9457
//! problem details ([`ProblemJson`]) and gRPC statuses for gRPC requests.
//!
//! ```
//! use http::Request;
//! use tollgate::error::{ApiError, ErrorCode, ErrorRenderer};
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

mod api_error;
mod code;
mod codes;
mod jsonrpc;
mod render;
mod template;

pub use crate::store::StoreError;
pub use api_error::ApiError;
pub use code::{Category, ErrorCode};
pub use codes::CodeMap;
pub use jsonrpc::{JSONRPC_SERVER_ERROR, JsonRpc};
pub(crate) use jsonrpc::{JsonRpcId, request_id as jsonrpc_request_id};
pub(crate) use render::RenderedByDefault;
pub use render::{
    ErrorFormat, ErrorRenderer, JsonEnvelope, ProblemJson, QUOTA_EXCEEDED_TYPE, RenderContext,
    RenderError, grpc_status, json_response,
};
pub use template::Template;
