//! [`RouteLayer`] and [`RouteCheck`]: tag each request with its [`Route`](super::Route).

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::Answer;
use crate::check::{Check, ResponseHeaders, Step};
use crate::context::per_route::PerRoute;
use crate::context::routes::Routes;
use crate::context::shadow::{RouteShadow, Shadow};

/// Matches each request against [`Routes`] and inserts the matched [`Route`](super::Route)
/// (or the default route) into its extensions; see [`Routes::tag`]. Never
/// rejects.
#[derive(Clone, Debug)]
pub struct RouteLayer {
    routes: Routes,
}

impl RouteLayer {
    /// A layer matching against `routes`.
    pub fn new(routes: Routes) -> Self {
        Self { routes }
    }

    /// The routes it matches against.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = RouteService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RouteService {
            inner,
            routes: self.routes.clone(),
        }
    }
}

/// The service made by [`RouteLayer`].
#[derive(Clone, Debug)]
pub struct RouteService<S> {
    inner: S,
    routes: Routes,
}

impl<S> RouteService<S> {
    /// Wraps `inner`, matching against `routes`.
    pub fn new(inner: S, routes: Routes) -> Self {
        Self { inner, routes }
    }

    /// A layer that makes this service.
    pub fn layer(routes: Routes) -> RouteLayer {
        RouteLayer::new(routes)
    }

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

impl<S, B> Service<Request<B>> for RouteService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.routes.tag(&mut request);
        self.inner.call(request)
    }
}

/// The route check: the first check of the gate's pipeline. It never
/// refuses; it tags the request with its [`Route`](super::Route), as [`RouteLayer`] does
/// (see [`Routes::tag`]).
#[derive(Clone, Debug)]
pub struct RouteCheck {
    routes: Routes,
    /// What each route shadows, if any route shadows anything.
    shadows: Option<PerRoute<Shadow>>,
}

impl RouteCheck {
    /// A check matching against `routes`.
    pub fn new(routes: Routes) -> Self {
        Self {
            routes,
            shadows: None,
        }
    }

    /// RouteShadow these checks of each route (see [`Shadow`]).
    #[must_use]
    pub fn with_shadows(mut self, shadows: PerRoute<Shadow>) -> Self {
        self.shadows = Some(shadows);
        self
    }

    /// The routes it matches against.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }
}

impl Check for RouteCheck {
    type Pending = Infallible;

    #[inline]
    fn check<B>(&self, request: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Infallible> {
        self.routes.tag(request);
        if let Some(shadows) = &self.shadows
            && let Some(shadow) = shadows.get(crate::context::route(request))
            && !shadow.is_none()
        {
            request.extensions_mut().insert(RouteShadow(*shadow));
        }
        Answer::Ready(Ok(()))
    }
}
