//! Guards: layers that check each request synchronously and either pass it
//! on or answer the standard rejection.
//!
//! [`OriginLayer`](crate::origin::OriginLayer) and
//! [`ScopeLayer`](crate::scope::ScopeLayer) are guards. A [`Guard`] of your own
//! gets the same service, future and rejection rendering for free.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tollgate::error::{ApiError, ErrorCode, ErrorRenderer};
//! use tollgate::guard::{Guard, GuardLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! /// Refuses requests without a `user-agent`.
//! #[derive(Clone, Default)]
//! struct NeedsUserAgent(ErrorRenderer);
//!
//! impl Guard for NeedsUserAgent {
//!     fn check<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
//!         match request.headers().contains_key("user-agent") {
//!             true => Ok(()),
//!             false => Err(ApiError::from(ErrorCode::MALFORMED_API_KEY)),
//!         }
//!     }
//!     fn renderer(&self) -> &ErrorRenderer {
//!         &self.0
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let service = ServiceBuilder::new()
//!     .layer(GuardLayer::from_guard(NeedsUserAgent::default()))
//!     .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//! let response = service.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(response.status(), 401);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::{ApiError, ErrorRenderer};

/// A synchronous check of a request.
pub trait Guard: Send + Sync + 'static {
    /// `Ok` to pass the request on, or the rejection.
    fn check<B>(&self, request: &Request<B>) -> Result<(), ApiError>;

    /// The renderer for rejections.
    fn renderer(&self) -> &ErrorRenderer;
}

/// Two guards in one service: `A`'s check, then `B`'s. Rejections are
/// rendered by `A`'s renderer. (The gate applies its origin and scope
/// guards this way: one service, one shared count to touch per clone.)
impl<A: Guard, B: Guard> Guard for (A, B) {
    fn check<Body>(&self, request: &Request<Body>) -> Result<(), ApiError> {
        self.0.check(request)?;
        self.1.check(request)
    }

    fn renderer(&self) -> &ErrorRenderer {
        self.0.renderer()
    }
}

/// A layer applying a [`Guard`]. Cheap to clone.
pub struct GuardLayer<G> {
    pub(crate) guard: Arc<G>,
}

impl<G: Guard> GuardLayer<G> {
    /// A layer applying `guard`.
    pub fn from_guard(guard: G) -> Self {
        Self {
            guard: Arc::new(guard),
        }
    }

    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }
}

impl<G: Clone> GuardLayer<G> {
    pub(crate) fn change(mut self, change: impl FnOnce(&mut G)) -> Self {
        change(Arc::make_mut(&mut self.guard));
        self
    }
}

impl<G> Clone for GuardLayer<G> {
    fn clone(&self) -> Self {
        Self {
            guard: Arc::clone(&self.guard),
        }
    }
}

impl<G: fmt::Debug> fmt::Debug for GuardLayer<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GuardLayer").field(&self.guard).finish()
    }
}

impl<S, G> Layer<S> for GuardLayer<G> {
    type Service = GuardService<S, G>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: Arc::clone(&self.guard),
        }
    }
}

/// The service made by a [`GuardLayer`].
pub struct GuardService<S, G> {
    inner: S,
    guard: Arc<G>,
}

impl<S, G> GuardService<S, G> {
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
}

impl<S: Clone, G> Clone for GuardService<S, G> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            guard: Arc::clone(&self.guard),
        }
    }
}

impl<S: fmt::Debug, G: fmt::Debug> fmt::Debug for GuardService<S, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardService")
            .field("inner", &self.inner)
            .field("guard", &self.guard)
            .finish()
    }
}

impl<S, G, ReqBody, ResBody> Service<Request<ReqBody>> for GuardService<S, G>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    G: Guard,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.guard.check(&request) {
            Ok(()) => GuardFuture::inner(self.inner.call(request)),
            Err(error) => GuardFuture::rejected(self.guard.renderer().respond(error, &request)),
        }
    }
}

pin_project! {
    /// The inner service's response, or a rejection made without calling it.
    pub struct GuardFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Box<Response<Bytes>>> },
    }
}

impl<F> GuardFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(Box::new(response)),
            },
        }
    }
}

impl<F, ResBody, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            StateProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("tollgate::guard::GuardFuture polled after completion");
                Poll::Ready(Ok((*response).map(ResponseBody::rejection)))
            }
        }
    }
}

impl<F> fmt::Debug for GuardFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Inner { .. } => "GuardFuture::Inner",
            State::Rejected { .. } => "GuardFuture::Rejected",
        })
    }
}

/// Who a request is from, as far as the policy layers are concerned.
pub(crate) enum Caller<'a> {
    /// An authenticated key.
    Key(&'a crate::key::Principal),
    /// A public route: no key needed, none checked.
    Public,
}

/// The caller of `request`, or `missing_api_key` when a key was needed and
/// no [`KeyLayer`](crate::key::KeyLayer) ran before this layer.
pub(crate) fn caller<B>(request: &Request<B>) -> Result<Caller<'_>, ApiError> {
    let extensions = request.extensions();
    if let Some(principal) = extensions.get::<crate::key::Principal>() {
        return Ok(Caller::Key(principal));
    }
    if extensions
        .get::<crate::route::Route>()
        .is_some_and(crate::route::Route::is_public)
    {
        return Ok(Caller::Public);
    }
    Err(ApiError::from(crate::error::ErrorCode::MISSING_API_KEY))
}
