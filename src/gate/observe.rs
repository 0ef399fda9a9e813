//! What the gate reports of each request: the decision hook, metrics (feature
//! `metrics`) and the per-request `tracing` span.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};

use crate::check::Shadowed;
use crate::error::{ApiError, ErrorCode};
use crate::key::Principal;
use crate::route::Route;

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
/// [`GateBuilder::on_decision`](super::GateBuilder::on_decision) once the
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

    /// The rule that refused (or would have, in shadow mode): `key`,
    /// `origin`, `kind`, `scope`, `rate_limit`, `body_limit`, or your
    /// check's (see [`ApiError::rule`]).
    pub fn rule(&self) -> Option<&str> {
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

/// The decision hook.
pub(crate) type Hook = Arc<dyn Fn(&GateEvent<'_>) + Send + Sync>;

/// Everything the gate reports each request to, shared by every clone of
/// its service.
#[derive(Default)]
pub(crate) struct Observer {
    pub(crate) hook: Option<Hook>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::RequestMetrics>,
    /// Whether a report needs the caller (the hook, a project label).
    needs_principal: bool,
}

impl Observer {
    /// The gate's observer, if it has anything to report to.
    pub(crate) fn of(
        hook: Option<Hook>,
        #[cfg(feature = "metrics")] metrics: Option<crate::metrics::RequestMetrics>,
    ) -> Option<Arc<Self>> {
        #[cfg(feature = "metrics")]
        let nothing = hook.is_none() && metrics.is_none();
        #[cfg(not(feature = "metrics"))]
        let nothing = hook.is_none();
        #[cfg(feature = "metrics")]
        let project_label = metrics
            .as_ref()
            .is_some_and(crate::metrics::RequestMetrics::needs_principal);
        #[cfg(not(feature = "metrics"))]
        let project_label = false;
        (!nothing).then(|| {
            Arc::new(Self {
                needs_principal: hook.is_some() || project_label,
                hook,
                #[cfg(feature = "metrics")]
                metrics,
            })
        })
    }

    /// Whether a report needs the time the gate took (only the hook shows it).
    pub(crate) fn needs_time(&self) -> bool {
        self.hook.is_some()
    }
}

/// One request's report, made once its checks have decided and sent once
/// its response is ready.
pub(crate) struct Observe {
    observer: Arc<Observer>,
    route: Option<Route>,
    principal: Option<Principal>,
    shadowed: Option<ApiError>,
    elapsed: Duration,
}

impl Observe {
    /// When the checks of `request` have decided (it reached the gate at
    /// `started`): what there is to report, if anything listens.
    pub(crate) fn of<B>(
        observer: &Option<Arc<Observer>>,
        request: &Request<B>,
        started: Option<Instant>,
    ) -> Option<Self> {
        let observer = observer.as_ref()?;
        Some(Self {
            observer: Arc::clone(observer),
            route: crate::context::route(request).cloned(),
            principal: observer
                .needs_principal
                .then(|| crate::context::principal(request).cloned())
                .flatten(),
            shadowed: request
                .extensions()
                .get::<Shadowed>()
                .map(|shadowed| shadowed.0.clone()),
            elapsed: started.map_or(Duration::ZERO, |started| started.elapsed()),
        })
    }

    pub(crate) fn report<B>(self, response: &Response<B>) {
        let route = self.route.as_ref();
        let event = GateEvent {
            route: route.map_or(Route::DEFAULT_NAME, Route::name),
            status: response.status(),
            error: response.extensions().get::<ApiError>(),
            shadowed: self.shadowed.as_ref(),
            principal: self.principal.as_ref(),
            elapsed: self.elapsed,
        };
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.observer.metrics {
            metrics.count(route, &event);
        }
        if let Some(hook) = &self.observer.hook {
            hook(&event);
        }
    }
}
