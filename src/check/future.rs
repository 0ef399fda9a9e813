//! [`ResponseFuture`]: a check that waits, then the inner call (or the
//! rejection), then the response headers, the body-cap watch and the
//! decision hook.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::body_limit::{BodyLimit, Limited, Overflow};
use super::drain::{Drain, close};
#[cfg(feature = "tracing")]
use super::observe::Outcome;
use super::observe::Report;
use super::rerender::{Collecting, Echo};
use super::service::Shared;
#[cfg(feature = "tracing")]
use super::trace;
use super::trace::Trace;
use super::{Check, ResponseHeaders, Wait};
use crate::error::ApiError;

pin_project! {
    /// The response future of [`CheckService`](super::CheckService).
    pub struct ResponseFuture<F, S, C, L, B>
    where
        C: Check,
    {
        #[pin]
        state: State<F, S, C, L, B>,
        report: Option<Report>,
        trace: Trace,
    }
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
        // Not boxed: no larger than the inner call's state, and every
        // refusal would pay an allocation for it.
        Rejected {
            response: Option<Response<Bytes>>,
            drain: Option<Drain>,
        },
        // A rejection that echoes something of the body (JSON-RPC's id):
        // the body is read first, then the rejection rendered.
        Collecting { collecting: Option<Box<Collecting>> },
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

impl<F, S, C: Check, L, B> ResponseFuture<F, S, C, L, B> {
    /// The checks decided at once: call `service`, or answer the rejection.
    #[inline(always)]
    pub(crate) fn decided(
        verdict: Result<(), ApiError>,
        request: Request<B>,
        headers: ResponseHeaders,
        service: &mut S,
        shared: &Arc<Shared<C, L>>,
        report: Option<Report>,
        trace: Trace,
    ) -> Self
    where
        S: Service<Request<L::Body>, Future = F>,
        L: BodyLimit<B>,
    {
        Self {
            state: State::next(verdict, request, headers, service, shared),
            report,
            trace,
        }
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
            report: None,
            trace,
        }
    }
}

impl<F, S, C: Check, L, B> State<F, S, C, L, B> {
    /// The rejection of `request` with `error`, its body drained or its
    /// connection closed.
    fn refuse(
        error: ApiError,
        request: Request<B>,
        headers: ResponseHeaders,
        over_limit: bool,
        shared: &Arc<Shared<C, L>>,
    ) -> Self
    where
        L: BodyLimit<B>,
    {
        let (mut parts, body) = request.into_parts();
        let (mut response, error) = shared.renderer.rendered_parts(error, &parts);
        headers.apply(&mut response);
        let drain = shared
            .limit
            .refused(&parts, body, &mut response, over_limit);
        // The refused request's extension map, emptied, carries the
        // rejection: the response needs no map of its own (two allocations
        // fewer a refusal).
        let mut extensions = std::mem::take(&mut parts.extensions);
        extensions.clear();
        extensions.insert(error);
        *response.extensions_mut() = extensions;
        State::Rejected {
            response: Some(response),
            drain,
        }
    }

    #[inline(always)]
    fn next(
        verdict: Result<(), ApiError>,
        request: Request<B>,
        headers: ResponseHeaders,
        service: &mut S,
        shared: &Arc<Shared<C, L>>,
    ) -> Self
    where
        S: Service<Request<L::Body>, Future = F>,
        L: BodyLimit<B>,
    {
        let rejected = |error, request: Request<B>, headers: ResponseHeaders, over_limit: bool| {
            // A shape that echoes something of the body reads it first.
            let request = match shared.renderer.body_read_limit(&request) {
                Some(limit) if !over_limit => {
                    let snapshot = shared.renderer.snapshot(&request);
                    let version = request.version();
                    match shared.limit.collect(request, limit) {
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
            Self::refuse(error, request, headers, over_limit, shared)
        };
        if let Err(error) = verdict {
            return rejected(error, request, headers, false);
        }
        match shared.limit.limit(request, &shared.renderer) {
            Limited::Pass { request, overflow } => {
                let echo = Echo::of(shared, &request);
                State::Inner {
                    future: service.call(request),
                    headers,
                    overflow,
                    echo,
                }
            }
            Limited::Refused { error, request } => rejected(error, request, headers, true),
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "tollgate::check::ResponseFuture polled after completion";

impl<F, S, C, L, B, ResBody, E> Future for ResponseFuture<F, S, C, L, B>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    S: Service<Request<L::Body>, Response = Response<ResBody>, Error = E, Future = F>,
    C: Check,
    L: BodyLimit<B>,
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
                    *this.report = Report::of(&shared.observer, &request, started);
                    #[cfg(feature = "tracing")]
                    if let Some(traced) = this.trace.as_mut() {
                        traced.shadow = trace::decision(&traced.span, &request);
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
                    std::mem::take(headers).apply(&mut response);
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
                    response.map(ResponseBody::rejection)
                }
            };
            #[cfg(feature = "tracing")]
            if let Some(traced) = this.trace.as_ref() {
                let outcome = Outcome::of(&response, traced.shadow);
                traced.span.record("outcome", outcome.as_str());
            }
            if let Some(report) = this.report.take() {
                report.send(&response);
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
