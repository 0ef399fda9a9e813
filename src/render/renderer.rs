//! [`ErrorRenderer`]: the one place an [`ApiError`] becomes an HTTP response.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method, Request, Response, Uri};
use serde_json::Value;

use super::grpc::{GrpcContext, grpc_response, is_grpc};
use super::request_id;
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
    /// Whether a shape reads the request's path.
    reads_path: bool,
    /// Whether the shape of routes without one of their own reads the
    /// request's route or caller.
    reads_route_or_caller: bool,
    /// Whether requests without an id get one.
    generate_ids: bool,
    /// The domain of gRPC refusals' `ErrorInfo`.
    grpc_domain: Arc<str>,
}

/// The domain of gRPC refusals' `ErrorInfo` unless another is set.
pub const DEFAULT_GRPC_DOMAIN: &str = "tollgate";

impl ErrorRenderer {
    /// A renderer producing the shape of `renderer`.
    pub fn new(renderer: impl RenderError) -> Self {
        let reads_path = renderer.reads_path();
        let reads_route_or_caller = renderer.reads_route_or_caller();
        Self {
            reads_path,
            reads_route_or_caller,
            generate_ids: false,
            grpc_domain: Arc::from(DEFAULT_GRPC_DOMAIN),
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

    /// Gives requests that come without a request id one (a UUID v7), in
    /// the request's header for your service, the response's header and
    /// every error body, and echoes the ids requests bring in the
    /// response's header too (see [`RequestIdOptions`](super::RequestIdOptions)). Off by default:
    /// ids are only read.
    #[must_use]
    pub fn with_generated_request_ids(mut self, generate: bool) -> Self {
        self.generate_ids = generate;
        self
    }

    /// Whether requests without an id get one.
    pub fn generates_request_ids(&self) -> bool {
        self.generate_ids
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
        self.note_reads();
    }

    pub(crate) fn set_route_shape(&mut self, route: &str, shape: Arc<dyn RenderError>) {
        Arc::make_mut(&mut self.routes).insert(route.into(), shape);
        self.note_reads();
    }

    fn note_reads(&mut self) {
        self.reads_path =
            self.renderer.reads_path() || self.routes.values().any(|shape| shape.reads_path());
        self.reads_route_or_caller = self.renderer.reads_route_or_caller();
    }

    /// Whether a shape of this renderer reads the request's path.
    pub(crate) fn reads_path(&self) -> bool {
        self.reads_path
    }

    /// Whether a request with `headers` is answered with a gRPC status.
    pub(crate) fn answers_grpc(&self, headers: &HeaderMap) -> bool {
        self.grpc && is_grpc(headers)
    }

    /// Whether a rejection of `request` (not gRPC), rendered after the
    /// request was handed on, reads its route and caller: its shape reads
    /// them or is chosen by the route, or the rejection's log is listened
    /// to. (A gRPC status names the route: see [`Self::answers_grpc`].)
    pub(crate) fn reads_route_or_caller_of<B>(&self, request: &Request<B>) -> bool {
        // A route's own shape is chosen by the route's name.
        let own_shape = || {
            !self.routes.is_empty()
                && request
                    .extensions()
                    .get::<Route>()
                    .is_some_and(|route| self.routes.contains_key(route.name()))
        };
        self.reads_route_or_caller || own_shape() || log_listened()
    }

    /// The code map.
    pub fn codes(&self) -> &CodeMap {
        &self.codes
    }

    /// The header the request id is read from.
    pub fn request_id_header(&self) -> &HeaderName {
        &self.request_id_header
    }

    /// Names `domain` (your API's service name, say `api.example.com`) as
    /// the domain of the `ErrorInfo` in gRPC refusals'
    /// `grpc-status-details-bin` (feature `grpc-details`; default
    /// [`DEFAULT_GRPC_DOMAIN`]).
    #[must_use]
    pub fn with_grpc_domain(mut self, domain: impl AsRef<str>) -> Self {
        self.grpc_domain = Arc::from(domain.as_ref());
        self
    }

    /// Whether gRPC requests get gRPC status responses (on by default).
    #[must_use]
    pub fn with_grpc(mut self, enabled: bool) -> Self {
        self.grpc = enabled;
        self
    }

    /// The response rejecting `request` with `error`.
    pub fn respond<B>(&self, error: ApiError, request: &Request<B>) -> Response<Bytes> {
        with_rejection(self.rendered(
            error,
            Some(request.method()),
            Some(request.uri()),
            request.headers(),
            request.extensions(),
        ))
    }

    /// The response to a panic in your service, for tower-http's
    /// `CatchPanicLayer::custom`: `500 internal_error` in this renderer's
    /// shape and codes, never the panic's message. (It knows nothing of the
    /// request: no request id, route or caller; gRPC requests get the body
    /// shape too.)
    ///
    /// ```
    /// use tollgate::render::ErrorRenderer;
    ///
    /// let respond = ErrorRenderer::problem_json().panic_response();
    /// let response = respond(Box::new("index out of bounds"));
    /// assert_eq!(response.status(), 500);
    /// assert_eq!(response.headers()["content-type"], "application/problem+json");
    /// assert!(!response.body().contains("index out of bounds"));
    /// // With tower-http: CatchPanicLayer::custom(gate.renderer().panic_response())
    /// ```
    pub fn panic_response(
        &self,
    ) -> impl Fn(Box<dyn std::any::Any + Send + 'static>) -> Response<String>
    + Clone
    + Send
    + Sync
    + 'static
    + use<> {
        // Shared, not copied: the handler is cloned with the service.
        let renderer = Arc::new(self.clone());
        move |_panic| {
            let error = ApiError::from(crate::error::ErrorCode::INTERNAL_ERROR);
            let response = with_rejection(renderer.rendered(
                error,
                None,
                None,
                &HeaderMap::new(),
                &http::Extensions::new(),
            ));
            response.map(|body| String::from_utf8(body.to_vec()).unwrap_or_default())
        }
    }

    /// The response rejecting the request whose head is `parts`.
    pub fn respond_parts(&self, error: ApiError, parts: &http::request::Parts) -> Response<Bytes> {
        with_rejection(self.rendered_parts(error, parts))
    }

    /// [`Self::rendered`] for the request whose head is `parts`.
    pub(crate) fn rendered_parts(
        &self,
        error: ApiError,
        parts: &http::request::Parts,
    ) -> (Response<Bytes>, ApiError) {
        self.rendered(
            error,
            Some(&parts.method),
            Some(&parts.uri),
            &parts.headers,
            &parts.extensions,
        )
    }

    /// The response rejecting a request with `error`, and the rejection (in
    /// its contract's code) to put in the response's extensions: the
    /// caller's to put there, into a map it has (the refused request's), so
    /// that the response needs none of its own.
    pub(crate) fn rendered(
        &self,
        error: ApiError,
        method: Option<&Method>,
        uri: Option<&Uri>,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> (Response<Bytes>, ApiError) {
        let request_id = request_id::of(headers, extensions, &self.request_id_header);
        let route = extensions.get::<Route>().map(Route::name);
        let error = self.codes.apply(error);
        log_rejection(&error, extensions, route);

        let mut response = if self.grpc && is_grpc(headers) {
            grpc_response(
                &error,
                &GrpcContext {
                    request_id,
                    route,
                    domain: &self.grpc_domain,
                },
            )
        } else {
            let context = RenderContext {
                request_id,
                route,
                method,
                path: uri.map(Uri::path).filter(|path| !path.is_empty()),
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
        (response, error)
    }
}

impl ErrorRenderer {
    /// The parts of `request` that rendering a rejection reads (its request
    /// id and content type, its route and principal), for a rejection decided
    /// after the request itself was handed on.
    pub(crate) fn snapshot<B>(&self, request: &Request<B>) -> Request<()> {
        let mut snapshot = Request::new(());
        *snapshot.method_mut() = request.method().clone();
        if self.reads_path {
            *snapshot.uri_mut() = request.uri().clone();
        }
        for name in [&self.request_id_header, &CONTENT_TYPE] {
            if let Some(value) = request.headers().get(name) {
                snapshot.headers_mut().insert(name.clone(), value.clone());
            }
        }
        if self.answers_grpc(request.headers()) || self.reads_route_or_caller_of(request) {
            let extensions = request.extensions();
            if let Some(route) = extensions.get::<Route>() {
                snapshot.extensions_mut().insert(route.clone());
            }
            if let Some(principal) = extensions.get::<Principal>() {
                snapshot.extensions_mut().insert(principal.clone());
            }
        }
        snapshot
    }
}

/// `response` with its rejection `error` in its extensions (what
/// [`ErrorRenderer::rendered`] leaves to its caller).
pub(crate) fn with_rejection(
    (mut response, error): (Response<Bytes>, ApiError),
) -> Response<Bytes> {
    response.extensions_mut().insert(error);
    response
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
            .field("reads_path", &self.reads_path)
            .field("generate_ids", &self.generate_ids)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tracing")]
fn log_rejection(error: &ApiError, extensions: &http::Extensions, route: Option<&str>) {
    // Nothing is read for a log nobody listens to: the key id sits at the
    // end of its record, a cache miss of its own (measured: 6 % of a 429's
    // time when it was read first).
    if !log_enabled(error.status().is_server_error()) {
        return;
    }
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

/// Whether someone listens to the log of a rejection: at `warn` for a
/// server error, else at `info`.
#[cfg(feature = "tracing")]
fn log_enabled(server_error: bool) -> bool {
    if server_error {
        tracing::enabled!(target: "tollgate", tracing::Level::WARN)
    } else {
        tracing::enabled!(target: "tollgate", tracing::Level::INFO)
    }
}

/// Whether someone listens to rejections' logs (at either of their levels).
#[cfg(feature = "tracing")]
fn log_listened() -> bool {
    log_enabled(false) || log_enabled(true)
}

#[cfg(not(feature = "tracing"))]
fn log_listened() -> bool {
    false
}
