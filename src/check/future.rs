//! [`ResponseFuture`]: a check that waits, then the inner call (or the
//! rejection), then the response headers, the body-cap watch and the
//! decision hook.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Version};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::cap::{BodyCap, Capped, Overflow};
use super::drain::{Drain, close};
use super::observe::Observe;
#[cfg(feature = "tracing")]
use super::observe::Outcome;
use super::service::Shared;
use super::{Check, ResponseHeaders, Wait};
use crate::context::principal::Principal;
use crate::context::route::Route;
#[cfg(feature = "tracing")]
use crate::context::shadow::Shadowed;
use crate::error::ApiError;
use crate::render::{ErrorRenderer, RefusedBody, RenderedByDefault};

pin_project! {
    /// The response future of [`CheckService`](super::CheckService).
    pub struct ResponseFuture<F, S, C, L, B>
    where
        C: Check,
    {
        #[pin]
        state: State<F, S, C, L, B>,
        observe: Option<Observe>,
        trace: Trace,
    }
}

/// The request's span (entered while the future is polled) and whether a
/// shadowed check would have refused it: boxed, and only when a subscriber
/// wants the span, so that the future stays small otherwise.
pub(crate) type Trace = Option<Box<Traced>>;

pub(crate) struct Traced {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "tracing")]
    shadow: bool,
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, C, L, B>
    where
        C: Check,
    {
        // Only while a check waits for a store: boxed, so the common path's
        // future stays small.
        Waiting { waiting: Option<Box<Waiting<S, C, L, B>>> },
        Inner {
            #[pin]
            future: F,
            headers: ResponseHeaders,
            overflow: Option<Box<Overflow>>,
            echo: Echo<C, L>,
        },
        Rejected {
            response: Option<Box<Response<Bytes>>>,
            drain: Option<Drain>,
        },
        // A rejection that echoes something of the body (JSON-RPC's id):
        // the body is read first, then the rejection rendered.
        Collecting { collecting: Option<Box<Collecting>> },
    }
}

/// A refused request whose body is being read before its rejection is
/// rendered.
pub(crate) struct Collecting {
    error: ApiError,
    snapshot: Request<()>,
    version: Version,
    headers: ResponseHeaders,
    drain: Drain,
    renderer: ErrorRenderer,
}

impl Collecting {
    /// The rejection, once the body was read (`reusable`: to its end).
    fn render(mut self, reusable: bool) -> Response<Bytes> {
        // The body goes to the renderer only when it was read whole.
        if let Some(body) = self.drain.take_kept().filter(|_| reusable) {
            self.snapshot
                .extensions_mut()
                .insert(RefusedBody(Bytes::from(body)));
        }
        let mut response = self.renderer.respond(self.error, &self.snapshot);
        self.headers.apply(response.headers_mut());
        if !reusable && self.version == Version::HTTP_11 {
            close(&mut response);
        }
        response
    }
}

/// A request whose checks are still deciding.
struct Waiting<S, C: Check, L, B> {
    pending: C::Pending,
    request: Request<B>,
    service: S,
    headers: ResponseHeaders,
    shared: Arc<Shared<C, L>>,
    started: Option<std::time::Instant>,
}

/// What rendering an error your service returns takes: the gate's renderer
/// and the request's id, method, route and caller (kept as cheap clones).
pub(crate) struct Echo<C, L> {
    shared: Arc<Shared<C, L>>,
    method: Method,
    request_id: Option<HeaderValue>,
    route: Option<Route>,
    principal: Option<Principal>,
}

impl<C, L> Echo<C, L> {
    fn of<B>(shared: &Arc<Shared<C, L>>, request: &Request<B>) -> Self {
        Self {
            shared: Arc::clone(shared),
            method: request.method().clone(),
            request_id: request
                .headers()
                .get(shared.renderer.request_id_header())
                .cloned(),
            route: crate::context::route(request).cloned(),
            principal: crate::context::principal(request).cloned(),
        }
    }

    /// `response` again in the gate's shape, codes and request id, if it
    /// is an [`ApiError`] your service rendered in the default shape (axum's
    /// `IntoResponse` for `ApiError`, the `Principal` extractor's rejection).
    fn rerender<T>(&self, response: &mut Response<T>) -> Option<Response<Bytes>> {
        response.extensions_mut().remove::<RenderedByDefault>()?;
        let error = response.extensions_mut().remove::<ApiError>()?;
        let mut request = Request::new(());
        *request.method_mut() = self.method.clone();
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

impl<F, S, C: Check, L, B> ResponseFuture<F, S, C, L, B> {
    /// The checks decided at once: call `service`, or answer the rejection.
    pub(crate) fn decided(
        verdict: Result<(), ApiError>,
        request: Request<B>,
        headers: ResponseHeaders,
        service: &mut S,
        shared: &Arc<Shared<C, L>>,
        observe: Option<Observe>,
        trace: Trace,
    ) -> Self
    where
        S: Service<Request<L::Body>, Future = F>,
        L: BodyCap<B>,
    {
        Self {
            state: State::next(verdict, request, headers, service, shared),
            observe,
            trace,
        }
    }

    /// A span for one request through the gate (`debug` level, like
    /// tower-http's `TraceLayer`), if a subscriber wants it: its route and
    /// outcome are recorded when known.
    #[cfg(feature = "tracing")]
    pub(crate) fn trace() -> Trace {
        // Without any subscriber nobody can see it: not even made.
        if !tracing::dispatcher::has_been_set() {
            return None;
        }
        let span = tracing::debug_span!(
            target: "tollgate",
            "tollgate",
            route = tracing::field::Empty,
            outcome = tracing::field::Empty
        );
        (!span.is_disabled()).then(|| {
            Box::new(Traced {
                span,
                shadow: false,
            })
        })
    }

    /// The request's span, to enter while its checks run.
    #[cfg(feature = "tracing")]
    pub(crate) fn span_of(trace: &Trace) -> Option<tracing::Span> {
        trace.as_ref().map(|traced| traced.span.clone())
    }

    /// Records the route of `request`, whose checks have decided, and
    /// whether a shadowed check would have refused it.
    #[cfg(feature = "tracing")]
    pub(crate) fn trace_decided<R>(trace: &mut Trace, request: &Request<R>) {
        if let Some(traced) = trace.as_mut() {
            traced.shadow = Self::trace_decision(&traced.span, request);
        }
    }

    /// Records `request`'s route in `span` once its checks have decided;
    /// whether a shadowed check would have refused it.
    #[cfg(feature = "tracing")]
    pub(crate) fn trace_decision<R>(span: &tracing::Span, request: &Request<R>) -> bool {
        if span.is_disabled() {
            return false;
        }
        if let Some(route) = crate::context::route(request) {
            span.record("route", route.name());
        }
        request.extensions().get::<Shadowed>().is_some()
    }

    pub(crate) fn waiting(
        pending: C::Pending,
        request: Request<B>,
        headers: ResponseHeaders,
        service: S,
        shared: Arc<Shared<C, L>>,
        started: Option<std::time::Instant>,
        trace: Trace,
    ) -> Self {
        Self {
            state: State::Waiting {
                waiting: Some(Box::new(Waiting {
                    pending,
                    request,
                    service,
                    headers,
                    shared,
                    started,
                })),
            },
            observe: None,
            trace,
        }
    }
}

impl<F, S, C: Check, L, B> State<F, S, C, L, B> {
    fn next(
        verdict: Result<(), ApiError>,
        request: Request<B>,
        headers: ResponseHeaders,
        service: &mut S,
        shared: &Arc<Shared<C, L>>,
    ) -> Self
    where
        S: Service<Request<L::Body>, Future = F>,
        L: BodyCap<B>,
    {
        let rejected = |error, request: Request<B>, headers: ResponseHeaders, over_cap: bool| {
            // A shape that echoes something of the body reads it first.
            let request = match shared.renderer.body_read_limit(&request) {
                Some(limit) if !over_cap => {
                    let snapshot = shared.renderer.snapshot(&request);
                    let version = request.version();
                    match shared.cap.collect(request, limit) {
                        Ok(drain) => {
                            return State::Collecting {
                                collecting: Some(Box::new(Collecting {
                                    error,
                                    snapshot,
                                    version,
                                    headers,
                                    drain,
                                    renderer: shared.renderer.clone(),
                                })),
                            };
                        }
                        Err(request) => request,
                    }
                }
                _ => request,
            };
            let mut response = shared.renderer.respond(error, &request);
            headers.apply(response.headers_mut());
            let drain = shared.cap.refused(request, &mut response, over_cap);
            State::Rejected {
                response: Some(Box::new(response)),
                drain,
            }
        };
        if let Err(error) = verdict {
            return rejected(error, request, headers, false);
        }
        match shared.cap.cap(request, &shared.renderer) {
            Capped::Pass { request, overflow } => {
                let echo = Echo::of(shared, &request);
                State::Inner {
                    future: service.call(request),
                    headers,
                    overflow,
                    echo,
                }
            }
            Capped::Refused { error, request } => rejected(error, request, headers, true),
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "tollgate::check::ResponseFuture polled after completion";

impl<F, S, C, L, B, ResBody, E> Future for ResponseFuture<F, S, C, L, B>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    S: Service<Request<L::Body>, Response = Response<ResBody>, Error = E, Future = F>,
    C: Check,
    L: BodyCap<B>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        #[cfg(feature = "tracing")]
        let span = self
            .as_mut()
            .project()
            .trace
            .as_ref()
            .map(|traced| traced.span.clone());
        #[cfg(feature = "tracing")]
        let _entered = span.as_ref().map(tracing::Span::enter);
        loop {
            let mut this = self.as_mut().project();
            let response = match this.state.as_mut().project() {
                StateProj::Waiting { waiting } => {
                    let state = waiting.as_mut().expect(POLLED_AFTER_COMPLETION);
                    let state = &mut **state;
                    let verdict = ready!(state.pending.poll_wait(
                        &state.shared.checks,
                        cx,
                        &mut state.request,
                        &mut state.headers,
                    ));
                    let Waiting {
                        request,
                        mut service,
                        headers,
                        shared,
                        started,
                        ..
                    } = *waiting.take().expect(POLLED_AFTER_COMPLETION);
                    *this.observe = Observe::of(&shared.observer, &request, started);
                    #[cfg(feature = "tracing")]
                    if let Some(traced) = this.trace.as_mut() {
                        traced.shadow = Self::trace_decision(&traced.span, &request);
                    }
                    let next = State::next(verdict, request, headers, &mut service, &shared);
                    this.state.set(next);
                    continue;
                }
                StateProj::Inner {
                    future,
                    headers,
                    overflow,
                    echo,
                } => {
                    let mut response = ready!(future.poll(cx))?;
                    // Whatever the handler made of a body over its cap, the
                    // client gets the standard answer.
                    let mut response = match overflow.take().and_then(|o| o.rejection()) {
                        Some(mut rejection) => {
                            // The body is part read: the connection cannot
                            // be reused.
                            close(&mut rejection);
                            rejection.map(ResponseBody::rejection)
                        }
                        // An error the handler rendered in the default shape
                        // comes out in the gate's.
                        None => match echo.rerender(&mut response) {
                            Some(rendered) => rendered.map(ResponseBody::rejection),
                            None => response.map(ResponseBody::inner),
                        },
                    };
                    std::mem::take(headers).apply(response.headers_mut());
                    response
                }
                StateProj::Collecting { collecting } => {
                    let state = collecting.as_mut().expect(POLLED_AFTER_COMPLETION);
                    let reusable = ready!(state.drain.poll_drain(cx));
                    let state = collecting.take().expect(POLLED_AFTER_COMPLETION);
                    state.render(reusable).map(ResponseBody::rejection)
                }
                StateProj::Rejected { response, drain } => {
                    if let Some(draining) = drain {
                        // Answer once the refused body is read, so that the
                        // connection can carry the next request; or say
                        // it cannot.
                        let reusable = ready!(draining.poll_drain(cx));
                        *drain = None;
                        if !reusable && let Some(response) = response.as_mut() {
                            close(response);
                        }
                    }
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    (*response).map(ResponseBody::rejection)
                }
            };
            #[cfg(feature = "tracing")]
            if let Some(traced) = this.trace.as_ref() {
                let outcome = Outcome::of(&response, traced.shadow);
                traced.span.record("outcome", outcome.as_str());
            }
            if let Some(observe) = this.observe.take() {
                observe.report(&response);
            }
            return Poll::Ready(Ok(response));
        }
    }
}

impl<F, S, C: Check, L, B> fmt::Debug for ResponseFuture<F, S, C, L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Waiting { .. } => "ResponseFuture::Waiting",
            State::Inner { .. } => "ResponseFuture::Inner",
            State::Rejected { .. } => "ResponseFuture::Rejected",
            State::Collecting { .. } => "ResponseFuture::Collecting",
        })
    }
}
