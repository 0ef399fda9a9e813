//! [`BodyLimitLayer`] and [`BodyLimitService`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use serde_json::json;
use tower_layer::Layer;
use tower_service::Service;

use super::body::LimitedBody;
use super::future::{ResponseFuture, Watch};
use crate::body::ResponseBody;
use crate::error::{ApiError, ErrorCode, ErrorRenderer};
use crate::route::{PerRoute, Route};

/// Caps request bodies per route; see the [module docs](super).
#[derive(Clone)]
pub struct BodyLimitLayer {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    limits: PerRoute<u64>,
    renderer: ErrorRenderer,
}

impl Shared {
    pub(crate) fn too_large<B>(&self, limit: u64, request: &Request<B>) -> Response<Bytes> {
        let error = ApiError::new(
            ErrorCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than this route's limit of {limit} bytes."),
        )
        .with_details(json!({ "limit_bytes": limit }));
        self.renderer.respond(error, request)
    }
}

impl BodyLimitLayer {
    /// Caps bodies at `limits` bytes (one cap, or one per route;
    /// `u64::MAX` for no cap).
    pub fn new(limits: impl Into<PerRoute<u64>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits: limits.into(),
                renderer: ErrorRenderer::default(),
            }),
        }
    }

    /// Renders rejections with `renderer`.
    #[must_use]
    pub fn with_renderer(self, renderer: ErrorRenderer) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits: self.shared.limits.clone(),
                renderer,
            }),
        }
    }
}

impl fmt::Debug for BodyLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyLimitLayer")
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimitService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service made by [`BodyLimitLayer`]: its inner service receives a
/// [`LimitedBody`].
#[derive(Clone)]
pub struct BodyLimitService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> BodyLimitService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// A layer that makes this service.
    pub fn layer(limits: impl Into<PerRoute<u64>>) -> BodyLimitLayer {
        BodyLimitLayer::new(limits)
    }
}

impl<S: fmt::Debug> fmt::Debug for BodyLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BodyLimitService<S>
where
    S: Service<Request<LimitedBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let limit = *self.shared.limits.get(request.extensions().get::<Route>());
        match declared_length(&request) {
            Some(length) if length > limit => {
                ResponseFuture::rejected(self.shared.too_large(limit, &request))
            }
            // A declared length within the cap is enforced by the HTTP
            // implementation, and a body that says it cannot grow past the
            // cap (an empty one, say) will not: it is still capped, but no
            // watch is needed to replace the response.
            Some(_) => {
                let request = request.map(|body| LimitedBody::new(body, limit, None));
                ResponseFuture::inner(self.inner.call(request), None)
            }
            None if request
                .body()
                .size_hint()
                .upper()
                .is_some_and(|upper| upper <= limit) =>
            {
                let request = request.map(|body| LimitedBody::new(body, limit, None));
                ResponseFuture::inner(self.inner.call(request), None)
            }
            None => {
                let tripped = Arc::new(AtomicBool::new(false));
                let watch = Box::new(Watch {
                    tripped: Arc::clone(&tripped),
                    request: self.shared.renderer.snapshot(&request),
                    limit,
                    shared: Arc::clone(&self.shared),
                });
                let request = request.map(|body| LimitedBody::new(body, limit, Some(tripped)));
                ResponseFuture::inner(self.inner.call(request), Some(watch))
            }
        }
    }
}
