//! [`GateLayer`]: the layers of the request path, in order.

use std::fmt;

use tower_layer::Layer;

use super::observe::{ObserveLayer, ObserveService};
use crate::body_limit::{BodyLimitLayer, BodyLimitService};
use crate::guard::{GuardLayer, GuardService};
use crate::key::{KeyLayer, KeyService};
use crate::origin::OriginGuard;
use crate::rate_limit::{RateLimitLayer, RateLimitService};
use crate::route::{RouteLayer, RouteService};
use crate::scope::ScopeGuard;

/// The whole gate as one Tower layer: route, key, origin, scope, rate limit
/// and body cap, outer to inner. Cheap to clone.
pub struct GateLayer<St, Rs> {
    pub(crate) route: RouteLayer,
    pub(crate) observe: ObserveLayer,
    pub(crate) key: KeyLayer<St>,
    /// The origin and scope checks, in one service.
    pub(crate) guards: GuardLayer<(OriginGuard, ScopeGuard)>,
    pub(crate) rate: RateLimitLayer<Rs>,
    pub(crate) body: BodyLimitLayer,
}

/// The service a [`GateLayer`] makes around `S`.
pub type GateService<S, St, Rs> = RouteService<
    ObserveService<
        KeyService<
            GuardService<RateLimitService<BodyLimitService<S>, Rs>, (OriginGuard, ScopeGuard)>,
            St,
        >,
    >,
>;

impl<S, St, Rs> Layer<S> for GateLayer<St, Rs> {
    type Service = GateService<S, St, Rs>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.body.layer(inner);
        let inner = self.rate.layer(inner);
        let inner = self.guards.layer(inner);
        let inner = self.key.layer(inner);
        let inner = self.observe.layer(inner);
        self.route.layer(inner)
    }
}

impl<St, Rs> Clone for GateLayer<St, Rs> {
    fn clone(&self) -> Self {
        Self {
            route: self.route.clone(),
            observe: self.observe.clone(),
            key: self.key.clone(),
            guards: self.guards.clone(),
            rate: self.rate.clone(),
            body: self.body.clone(),
        }
    }
}

impl<St, Rs> fmt::Debug for GateLayer<St, Rs> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateLayer")
            .field("routes", self.route.routes())
            .finish_non_exhaustive()
    }
}
