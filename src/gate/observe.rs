//! The decision hook: one event per request that reached the gate.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ApiError, ErrorCode};
use crate::route::Route;

/// What the gate decided for one request: passed to the hook set with
/// [`GateBuilder::on_decision`](super::GateBuilder::on_decision) once the
/// response is ready.
#[derive(Clone, Copy, Debug)]
pub struct GateEvent<'a> {
    route: &'a str,
    status: StatusCode,
    error: Option<&'a ApiError>,
}

impl GateEvent<'_> {
    /// The matched route's name (`default` when none matched).
    pub fn route(&self) -> &str {
        self.route
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The rejection's code, or `None` when the request was let through.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.error.map(ApiError::code)
    }

    /// The rejection, if any.
    pub fn error(&self) -> Option<&ApiError> {
        self.error
    }

    /// Whether the request reached your service and was not replaced by a
    /// rejection afterwards (a streamed body over its cap is).
    pub fn is_allowed(&self) -> bool {
        self.error.is_none()
    }
}

pub(crate) type Hook = Arc<dyn Fn(&GateEvent<'_>) + Send + Sync>;

#[derive(Clone, Default)]
pub(crate) struct ObserveLayer {
    pub(crate) hook: Option<Hook>,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService {
            inner,
            hook: self.hook.clone(),
        }
    }
}

/// Calls the decision hook with each response (see [`GateEvent`]).
#[derive(Clone)]
pub struct ObserveService<S> {
    inner: S,
    hook: Option<Hook>,
}

impl<S: fmt::Debug> fmt::Debug for ObserveService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveService")
            .field("inner", &self.inner)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for ObserveService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let watch = self.hook.as_ref().map(|hook| {
            let route = request.extensions().get::<Route>().cloned();
            (Arc::clone(hook), route)
        });
        ObserveFuture {
            future: self.inner.call(request),
            watch,
        }
    }
}

pin_project! {
    /// The response future of [`ObserveService`].
    pub struct ObserveFuture<F> {
        #[pin]
        future: F,
        watch: Option<(Hook, Option<Route>)>,
    }
}

impl<F, ResBody, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let (Ok(response), Some((hook, route))) = (&result, this.watch.take()) {
            hook(&GateEvent {
                route: route.as_ref().map_or(Route::DEFAULT_NAME, Route::name),
                status: response.status(),
                error: response.extensions().get::<ApiError>(),
            });
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ObserveFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObserveFuture")
    }
}
