//! [`LiveGate`]: a gate whose policy and keys can be replaced while it
//! serves.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Gate, GateChecks, GateLayer};
use crate::body_limit::BodyLimits;
use crate::check::CheckLayer;
use crate::check::service::Live;

/// A gate that can be replaced while it serves: its [`layer`](Self::layer)
/// reads the current gate on each request, and [`replace`](Self::replace)
/// swaps policy, routes, key store and everything else at once. A request
/// already in the gate finishes under the gate it started with; open
/// connections are not touched.
///
/// Build the new gate over the running one's rate store
/// ([`GateBuilder::rate_store`](super::GateBuilder::rate_store) with
/// `live.current().rate_store().clone()`) and the buckets carry over: a
/// bucket is named by its partition, route and quota, so every (route,
/// quota) that still exists keeps its state (one whose rate changed keeps
/// the time it owes, at its new rate).
///
/// ```
/// use tollgate::gate::{GateConfig, LiveGate};
///
/// let config = |quota: u32| GateConfig::from_toml(&format!(r#"
///     [[routes]]
///     route = "POST /v1/track"
///     quotas = [{{ rate = {quota}, per = "second" }}]
/// "#)).unwrap();
/// let live = LiveGate::new(config(50).build().unwrap());
/// let layer = live.layer(); // in front of your service, once
///
/// // Later (on SIGHUP, an admin call, a file watcher…):
/// let next = config(100)
///     .builder().unwrap()
///     .rate_store(live.current().rate_store().clone())
///     .build().unwrap();
/// live.replace(next);
/// # let _ = layer;
/// ```
pub struct LiveGate<St, Rs, C = ()> {
    current: Live<GateChecks<St, Rs, C>, BodyLimits>,
}

impl<St, Rs, C> LiveGate<St, Rs, C> {
    /// Serves `gate` until it is replaced.
    pub fn new(gate: Gate<St, Rs, C>) -> Self {
        Self {
            current: Arc::new(ArcSwap::new(Arc::clone(&gate.layer.shared))),
        }
    }

    /// A layer that follows every replacement. Cheap to clone.
    pub fn layer(&self) -> GateLayer<St, Rs, C> {
        CheckLayer {
            shared: self.current.load_full(),
            live: Some(Arc::clone(&self.current)),
        }
    }

    /// The gate serving now (its routes, stores, renderer…).
    pub fn current(&self) -> Gate<St, Rs, C> {
        Gate {
            layer: CheckLayer {
                shared: self.current.load_full(),
                live: None,
            },
        }
    }

    /// Serves `gate` from the next request on.
    pub fn replace(&self, gate: Gate<St, Rs, C>) {
        self.current.store(Arc::clone(&gate.layer.shared));
    }
}

impl<St, Rs, C> Clone for LiveGate<St, Rs, C> {
    fn clone(&self) -> Self {
        Self {
            current: Arc::clone(&self.current),
        }
    }
}

impl<St, Rs, C> fmt::Debug for LiveGate<St, Rs, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LiveGate")
    }
}
