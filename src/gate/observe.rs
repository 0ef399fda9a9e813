//! What the gate reports each request to: the decision hook and metrics.

use std::sync::Arc;

use crate::check::observe::{GateEvent, Observer};
use crate::route::Route;

/// The decision hook.
pub(crate) type Hook = Arc<dyn Fn(&GateEvent<'_>) + Send + Sync>;

/// The gate's observer: its decision hook and its metrics, shared by every
/// clone of its service.
pub(crate) struct Telemetry {
    hook: Option<Hook>,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::RequestMetrics>,
    /// Whether a report needs the caller (the hook, a project label).
    needs_principal: bool,
}

impl Telemetry {
    /// The gate's observer, if it has anything to report to.
    pub(crate) fn of(
        hook: Option<Hook>,
        #[cfg(feature = "metrics")] metrics: Option<crate::metrics::RequestMetrics>,
    ) -> Option<Arc<dyn Observer>> {
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
        if nothing {
            return None;
        }
        Some(Arc::new(Self {
            needs_principal: hook.is_some() || project_label,
            hook,
            #[cfg(feature = "metrics")]
            metrics,
        }))
    }
}

impl Observer for Telemetry {
    fn needs_time(&self) -> bool {
        // Only the hook shows the time the gate took.
        self.hook.is_some()
    }

    fn needs_principal(&self) -> bool {
        self.needs_principal
    }

    fn observe(&self, route: Option<&Route>, event: &GateEvent<'_>) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.count(route, event);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = route;
        if let Some(hook) = &self.hook {
            hook(event);
        }
    }
}
