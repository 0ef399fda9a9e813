//! [`BodyLimitLayer`]: the pipeline with no check and a [`BodyLimits`] cap.

use super::limits::BodyLimits;
use crate::check::{CheckLayer, CheckService};
use crate::context::per_route::PerRoute;
use crate::render::ErrorRenderer;

/// Caps request bodies per route; see the [module docs](super). A
/// [`CheckLayer`] with no check and a [`BodyLimits`] cap.
///
/// [`LimitedBody`]: super::LimitedBody
pub type BodyLimitLayer = CheckLayer<(), BodyLimits>;

/// The service made by [`BodyLimitLayer`]: its inner service receives a
/// [`LimitedBody`].
pub type BodyLimitService<S> = CheckService<S, (), BodyLimits>;

impl CheckLayer<(), BodyLimits> {
    /// Caps bodies at `limits` bytes (one cap, or one per route;
    /// `u64::MAX` for no cap).
    pub fn new(limits: impl Into<PerRoute<u64>>) -> Self {
        Self::from_parts((), BodyLimits::new(limits), ErrorRenderer::default(), None)
    }
}
