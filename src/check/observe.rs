//! What the pipeline reports of each request, once its response is ready:
//! a [`GateEvent`] to whatever observes it ([`Observer`], which the gate
//! implements with its decision hook and metrics), and the outcome of the
//! per-request `tracing` span.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};

use crate::context::principal::Principal;
use crate::context::route::Route;
use crate::context::shadow::Shadowed;
use crate::error::{ApiError, ErrorCode, Rule};

/// How a request through the gate ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Let through to your service.
    Allowed,
    /// Refused with an error response.
    Rejected,
    /// Let through, though a shadowed check would have refused it (see
    /// [`Shadow`](crate::check::Shadow)).
    Shadow,
}

impl Outcome {
    /// Rejected if a rejection was answered, else shadow if a shadowed
    /// check would have refused, else allowed.
    fn from_parts(rejected: bool, shadow: bool) -> Self {
        match (rejected, shadow) {
            (true, _) => Self::Rejected,
            (false, true) => Self::Shadow,
            (false, false) => Self::Allowed,
        }
    }

    /// The outcome of `response` (`shadow`: a shadowed check would have
    /// refused the request).
    #[cfg(feature = "tracing")]
    pub(crate) fn of<B>(response: &Response<B>, shadow: bool) -> Self {
        Self::from_parts(response.extensions().get::<ApiError>().is_some(), shadow)
    }

    /// `allowed`, `rejected` or `shadow`, as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Rejected => "rejected",
            Self::Shadow => "shadow",
        }
    }
}

/// What the gate decided for one request: passed to the hook set with
/// [`GateBuilder::on_decision`](crate::gate::GateBuilder::on_decision) once the
/// response is ready. It shows the caller as its [`Principal`] (key id,
/// project, kind, tier), never the key.
#[derive(Clone, Copy, Debug)]
pub struct GateEvent<'a> {
    route: &'a str,
    status: StatusCode,
    error: Option<&'a ApiError>,
    shadowed: Option<&'a ApiError>,
    principal: Option<&'a Principal>,
    elapsed: Duration,
}

impl<'a> GateEvent<'a> {
    /// The matched route's name (`default` when none matched).
    pub fn route(&self) -> &str {
        self.route
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Allowed, rejected, or let through in shadow mode.
    pub fn outcome(&self) -> Outcome {
        Outcome::from_parts(self.error.is_some(), self.shadowed.is_some())
    }

    /// The code answered — or, in shadow mode, the code that would have
    /// been; `None` when the request was let through.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.error.or(self.shadowed).map(ApiError::code)
    }

    /// The rule that refused (or would have, in shadow mode).
    pub fn rule(&self) -> Option<Rule> {
        self.error.or(self.shadowed).and_then(ApiError::rule)
    }

    /// The rejection, if any.
    pub fn error(&self) -> Option<&ApiError> {
        self.error
    }

    /// The rejection a shadowed check would have answered.
    pub fn shadowed(&self) -> Option<&ApiError> {
        self.shadowed
    }

    /// The caller, when a key was accepted.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal
    }

    /// How long the gate took to decide: from the request reaching it until
    /// its checks had decided, store lookups included, your service not.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Whether the request reached your service and was not replaced by a
    /// rejection afterwards (a streamed body over its cap is).
    pub fn is_allowed(&self) -> bool {
        self.error.is_none()
    }
}

/// What observes a pipeline: told of every request once its response is
/// ready. The gate's decision hook and metrics are one.
pub(crate) trait Observer: Send + Sync + 'static {
    /// Whether a report needs the time the checks took.
    fn needs_time(&self) -> bool;

    /// Whether a report needs the caller.
    fn needs_principal(&self) -> bool;

    /// Telemetry `event`, on `route`.
    fn observe(&self, route: Option<&Route>, event: &GateEvent<'_>);
}

/// One request's report, made once its checks have decided and sent once
/// its response is ready.
pub(crate) struct Report {
    observer: Arc<dyn Observer>,
    route: Option<Route>,
    principal: Option<Principal>,
    shadowed: Option<ApiError>,
    elapsed: Duration,
}

impl Report {
    /// When the checks of `request` have decided (it reached the gate at
    /// `started`): what there is to report, if anything listens.
    pub(crate) fn of<B>(
        observer: &Option<Arc<dyn Observer>>,
        request: &Request<B>,
        started: Option<Instant>,
    ) -> Option<Self> {
        let observer = observer.as_ref()?;
        Some(Self {
            observer: Arc::clone(observer),
            route: crate::context::route(request).cloned(),
            principal: observer
                .needs_principal()
                .then(|| crate::context::principal(request).cloned())
                .flatten(),
            shadowed: request
                .extensions()
                .get::<Shadowed>()
                .map(|shadowed| shadowed.0.clone()),
            elapsed: started.map_or(Duration::ZERO, |started| started.elapsed()),
        })
    }

    pub(crate) fn send<B>(self, response: &Response<B>) {
        let route = self.route.as_ref();
        let event = GateEvent {
            route: route.map_or(Route::DEFAULT_NAME, Route::name),
            status: response.status(),
            error: response.extensions().get::<ApiError>(),
            shadowed: self.shadowed.as_ref(),
            principal: self.principal.as_ref(),
            elapsed: self.elapsed,
        };
        self.observer.observe(route, &event);
    }
}
