//! The request's `tracing` span (feature `tracing`): made only when a
//! subscriber wants it, boxed so the future stays small otherwise.

#[cfg(feature = "tracing")]
use http::Request;

#[cfg(feature = "tracing")]
use crate::context::shadow::Shadowed;

/// The request's span (entered while the future is polled) and whether a
/// shadowed check would have refused it: boxed, and only when a subscriber
/// wants the span, so that the future stays small otherwise.
pub(crate) type Trace = Option<Box<Traced>>;

pub(crate) struct Traced {
    #[cfg(feature = "tracing")]
    pub(super) span: tracing::Span,
    #[cfg(feature = "tracing")]
    pub(super) shadow: bool,
}

/// A span for one request through the gate (`debug` level, like
/// tower-http's `TraceLayer`), if a subscriber wants it: its route and
/// outcome are recorded when known.
#[cfg(feature = "tracing")]
pub(crate) fn start() -> Trace {
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
pub(crate) fn decided<R>(trace: &mut Trace, request: &Request<R>) {
    if let Some(traced) = trace.as_mut() {
        traced.shadow = decision(&traced.span, request);
    }
}

/// Records `request`'s route in `span` once its checks have decided;
/// whether a shadowed check would have refused it.
#[cfg(feature = "tracing")]
pub(crate) fn decision<R>(span: &tracing::Span, request: &Request<R>) -> bool {
    if span.is_disabled() {
        return false;
    }
    if let Some(route) = crate::context::route(request) {
        span.record("route", route.name());
    }
    request.extensions().get::<Shadowed>().is_some()
}
