//! [`ErrorRenderer`]: the one place an [`ApiError`] becomes an HTTP response.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method, Request, Response};
use serde_json::Value;

use super::grpc::{grpc_response, is_grpc};
use super::{JsonEnvelope, ProblemJson, RenderContext, RenderError};
use crate::context::principal::Principal;
use crate::context::route::Route;
use crate::error::{ApiError, CodeMap};

/// The renderer every layer shares: set once, cheap to clone.
///
/// It picks the response shape ([`JsonEnvelope`] by default), answers gRPC
/// requests (`content-type: application/grpc…`) with a trailers-only gRPC
/// status instead, echoes the request id, adds the error's headers, puts the
/// typed [`ApiError`] in the response's extensions, and emits one `tracing`
/// event per rejection (code, status, route, and key id and project when
/// known; never the key).
#[derive(Clone)]
pub struct ErrorRenderer {
    renderer: Arc<dyn RenderError>,
    /// Routes with a shape of their own, by route name.
    routes: Arc<HashMap<Box<str>, Arc<dyn RenderError>>>,
    request_id_header: HeaderName,
    grpc: bool,
    codes: CodeMap,
}

/// The longest request id echoed back; longer ones are ignored.
const MAX_REQUEST_ID_LEN: usize = 200;

impl ErrorRenderer {
    /// A renderer producing the shape of `renderer`.
    pub fn new(renderer: impl RenderError) -> Self {
        Self {
            renderer: Arc::new(renderer),
            routes: Arc::default(),
            request_id_header: HeaderName::from_static("x-request-id"),
            grpc: true,
            codes: CodeMap::new(),
        }
    }

    /// A renderer from a closure that returns the JSON body.
    pub fn from_fn<F>(render: F) -> Self
    where
        F: Fn(&ApiError, &RenderContext<'_>) -> Value + Send + Sync + 'static,
    {
        Self::new(render)
    }

    /// RFC 9457 `application/problem+json` responses.
    pub fn problem_json() -> Self {
        Self::new(ProblemJson::new())
    }

    /// Reads the request id from `header` instead of `x-request-id`.
    #[must_use]
    pub fn with_request_id_header(mut self, header: HeaderName) -> Self {
        self.request_id_header = header;
        self
    }

    /// Renames codes and changes their statuses as `codes` says, for every
    /// rejection rendered.
    #[must_use]
    pub fn with_codes(mut self, codes: CodeMap) -> Self {
        self.codes = codes;
        self
    }

    /// Renders the rejections of the route named `route` (its pattern) in
    /// another shape than the rest.
    #[must_use]
    pub fn with_route_shape(mut self, route: &str, shape: impl RenderError) -> Self {
        self.set_route_shape(route, Arc::new(shape));
        self
    }

    /// How many bytes of a refused `request`'s body its route's shape reads
    /// before rendering, if any.
    pub(crate) fn body_read_limit<B>(&self, request: &Request<B>) -> Option<u64> {
        if self.grpc && is_grpc(request.headers()) {
            return None;
        }
        let route = request.extensions().get::<Route>().map(Route::name);
        route
            .and_then(|route| self.routes.get(route))
            .unwrap_or(&self.renderer)
            .body_read_limit()
    }

    pub(crate) fn set_shape(&mut self, shape: Arc<dyn RenderError>) {
        self.renderer = shape;
    }

    pub(crate) fn set_route_shape(&mut self, route: &str, shape: Arc<dyn RenderError>) {
        Arc::make_mut(&mut self.routes).insert(route.into(), shape);
    }

    /// The code map.
    pub fn codes(&self) -> &CodeMap {
        &self.codes
    }

    /// The header the request id is read from.
    pub fn request_id_header(&self) -> &HeaderName {
        &self.request_id_header
    }

    /// Whether gRPC requests get gRPC status responses (on by default).
    #[must_use]
    pub fn with_grpc(mut self, enabled: bool) -> Self {
        self.grpc = enabled;
        self
    }

    /// The response rejecting `request` with `error`.
    pub fn respond<B>(&self, error: ApiError, request: &Request<B>) -> Response<Bytes> {
        self.respond_to(
            error,
            Some(request.method()),
            request.headers(),
            request.extensions(),
        )
    }

    /// The response rejecting the request whose head is `parts`.
    pub fn respond_parts(&self, error: ApiError, parts: &http::request::Parts) -> Response<Bytes> {
        self.respond_to(
            error,
            Some(&parts.method),
            &parts.headers,
            &parts.extensions,
        )
    }

    pub(crate) fn respond_to(
        &self,
        error: ApiError,
        method: Option<&Method>,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Response<Bytes> {
        let request_id = headers
            .get(&self.request_id_header)
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN);
        let route = extensions.get::<Route>().map(Route::name);
        let error = self.codes.apply(error);
        log_rejection(&error, extensions, route);

        let mut response = if self.grpc && is_grpc(headers) {
            grpc_response(&error)
        } else {
            let context = RenderContext {
                request_id,
                route,
                method,
                principal: extensions.get::<Principal>(),
                subject: error.subject_ids(),
                rule: error.rule(),
                body: extensions.get::<RefusedBody>().map(|body| &*body.0),
            };
            let renderer = route
                .and_then(|route| self.routes.get(route))
                .unwrap_or(&self.renderer);
            renderer.render(&error, &context)
        };
        for (name, value) in error.headers() {
            response.headers_mut().append(name, value.clone());
        }
        response.extensions_mut().insert(error);
        response
    }
}

impl ErrorRenderer {
    /// The parts of `request` that rendering a rejection reads (its request
    /// id and content type, its route and principal), for a rejection decided
    /// after the request itself was handed on.
    pub(crate) fn snapshot<B>(&self, request: &Request<B>) -> Request<()> {
        let mut snapshot = Request::new(());
        *snapshot.method_mut() = request.method().clone();
        for name in [&self.request_id_header, &CONTENT_TYPE] {
            if let Some(value) = request.headers().get(name) {
                snapshot.headers_mut().insert(name.clone(), value.clone());
            }
        }
        let extensions = request.extensions();
        if let Some(route) = extensions.get::<Route>() {
            snapshot.extensions_mut().insert(route.clone());
        }
        if let Some(principal) = extensions.get::<Principal>() {
            snapshot.extensions_mut().insert(principal.clone());
        }
        snapshot
    }
}

/// In the extensions of a response an `ApiError` was rendered into without
/// the gate's settings (axum's `IntoResponse`, the `Principal` extractor):
/// the gate renders it again, in its own shape, codes and request id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RenderedByDefault;

/// In the extensions of a refused request's snapshot: the start of its body,
/// read because its shape asked for it ([`RenderError::body_read_limit`]).
#[derive(Clone, Debug)]
pub(crate) struct RefusedBody(pub(crate) Bytes);

impl Default for ErrorRenderer {
    fn default() -> Self {
        Self::new(JsonEnvelope)
    }
}

impl fmt::Debug for ErrorRenderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRenderer")
            .field("request_id_header", &self.request_id_header)
            .field("grpc", &self.grpc)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tracing")]
fn log_rejection(error: &ApiError, extensions: &http::Extensions, route: Option<&str>) {
    let principal = extensions.get::<Principal>();
    let (key_id, project) = match (error.subject(), principal) {
        (Some(subject), _) => (
            Some(subject.key_id.as_str()),
            Some(subject.project.as_str()),
        ),
        (None, Some(principal)) => (Some(principal.key_id()), Some(principal.project())),
        (None, None) => (None, None),
    };
    let code = error.code().as_str();
    let status = error.status().as_u16();
    if error.status().is_server_error() {
        tracing::warn!(target: "tollgate", code, status, route, key_id, project, "request rejected");
    } else {
        tracing::info!(target: "tollgate", code, status, route, key_id, project, "request rejected");
    }
}

#[cfg(not(feature = "tracing"))]
fn log_rejection(_: &ApiError, _: &http::Extensions, _: Option<&str>) {}
