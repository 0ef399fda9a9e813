//! [`BodyLimitLayer`]: the pipeline with no check and a [`BodyLimits`] cap.

use super::limits::{BodyLimits, DrainLimits};
use crate::check::{CheckLayer, CheckService};
use crate::context::per_route::PerRoute;
use crate::error::ErrorCode;
use crate::render::ErrorRenderer;

/// Caps request bodies per route; see the [module docs](super). A
/// [`CheckLayer`] with no check and a [`BodyLimits`] cap.
///
/// [`LimitedBody`]: super::LimitedBody
pub type BodyLimitLayer = CheckLayer<(), BodyLimits>;

/// The service made by [`BodyLimitLayer`]: its inner service receives a
/// [`LimitedBody`](super::LimitedBody).
pub type BodyLimitService<S> = CheckService<S, (), BodyLimits>;

impl CheckLayer<(), BodyLimits> {
    /// Caps bodies at `limits` bytes (one cap, or one per route;
    /// `u64::MAX` for no cap).
    pub fn new(limits: impl Into<PerRoute<u64>>) -> Self {
        Self::from_parts((), BodyLimits::new(limits), ErrorRenderer::default(), None)
    }

    /// Refuses bodies over the cap with these codes (one, or one per route)
    /// instead of `payload_too_large`.
    #[must_use]
    pub fn body_limit_code(self, codes: impl Into<PerRoute<ErrorCode>>) -> Self {
        let codes = codes.into();
        self.change(|shared| shared.limit.set_codes(codes))
    }

    /// Drains the bodies of refused requests within `drain`.
    #[must_use]
    pub fn drain(self, drain: DrainLimits) -> Self {
        self.change(|shared| shared.limit.set_drain(drain))
    }
}
