//! What the pipeline renders after the request itself was handed on or
//! read: a handler's error in the gate's shape ([`Echo`]), and a rejection
//! that echoes something of the refused body ([`Collecting`]).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Uri, Version};

use super::ResponseHeaders;
use super::drain::{Drain, close};
use super::service::Shared;
use crate::context::principal::Principal;
use crate::context::route::Route;
use crate::error::ApiError;
use crate::render::{ErrorRenderer, RefusedBody, RenderedByDefault};

/// A refused request whose body is being read before its rejection is
/// rendered.
pub(crate) struct Collecting {
    pub(super) error: ApiError,
    pub(super) snapshot: Request<()>,
    pub(super) version: Version,
    pub(super) headers: ResponseHeaders,
    pub(super) drain: Drain,
    pub(super) renderer: ErrorRenderer,
}

impl Collecting {
    /// The rejection, once the body was read (`reusable`: to its end).
    pub(super) fn render(mut self, reusable: bool) -> Response<Bytes> {
        // The body goes to the renderer only when it was read whole.
        if let Some(body) = self.drain.take_kept().filter(|_| reusable) {
            self.snapshot
                .extensions_mut()
                .insert(RefusedBody(Bytes::from(body)));
        }
        let mut response = self.renderer.respond(self.error, &self.snapshot);
        self.headers.apply(&mut response);
        if !reusable && self.version == Version::HTTP_11 {
            close(&mut response);
        }
        response
    }
}

/// What rendering an error your service returns takes: the gate's renderer,
/// the request's id and method, whether it is gRPC, and its path, route
/// and caller when rendering will read them (kept as cheap clones).
pub(crate) struct Echo<C, L> {
    shared: Arc<Shared<C, L>>,
    method: Method,
    /// The request's URI, for a shape that shows its path.
    /// (Boxed: the admitted request's future stays small.)
    uri: Option<Box<Uri>>,
    request_id: Option<HeaderValue>,
    /// Whether the request is answered with a gRPC status.
    grpc: bool,
    route: Option<Route>,
    principal: Option<Principal>,
}

impl<C, L> Echo<C, L> {
    pub(super) fn of<B>(shared: &Arc<Shared<C, L>>, request: &Request<B>) -> Self {
        let grpc = shared.renderer.answers_grpc(request.headers());
        // The route and caller only when rendering will read them: two
        // reference counts fewer for every admitted request otherwise.
        let caller = grpc || shared.renderer.reads_route_or_caller_of(request);
        Self {
            grpc,
            shared: Arc::clone(shared),
            method: request.method().clone(),
            uri: shared
                .renderer
                .reads_path()
                .then(|| Box::new(request.uri().clone())),
            request_id: request
                .headers()
                .get(shared.renderer.request_id_header())
                .cloned(),
            route: caller
                .then(|| crate::context::route(request).cloned())
                .flatten(),
            principal: caller
                .then(|| crate::context::principal(request).cloned())
                .flatten(),
        }
    }

    /// `response` again in the gate's shape, codes and request id, if it
    /// is an [`ApiError`] your service rendered in the default shape (axum's
    /// `IntoResponse` for `ApiError`, the `Principal` extractor's rejection).
    pub(super) fn rerender<T>(&self, response: &mut Response<T>) -> Option<Response<Bytes>> {
        response.extensions_mut().remove::<RenderedByDefault>()?;
        let error = response.extensions_mut().remove::<ApiError>()?;
        let mut request = Request::new(());
        *request.method_mut() = self.method.clone();
        if let Some(uri) = &self.uri {
            *request.uri_mut() = Uri::clone(uri);
        }
        if self.grpc {
            request.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
        }
        if let Some(id) = &self.request_id {
            request
                .headers_mut()
                .insert(self.shared.renderer.request_id_header().clone(), id.clone());
        }
        if let Some(route) = &self.route {
            request.extensions_mut().insert(route.clone());
        }
        if let Some(principal) = &self.principal {
            request.extensions_mut().insert(principal.clone());
        }
        Some(self.shared.renderer.respond(error, &request))
    }
}
