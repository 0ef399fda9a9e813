//! What a rate store implements: [`RateStore`], and what it is asked
//! ([`Bucket`], [`RouteLimits`], [`QuotaSpec`]) and answers ([`Decision`],
//! each quota's [`QuotaState`]).

use std::fmt;
use std::future::Future;

mod limits;

pub(crate) use limits::{CREDITS_POLICY, SHARD_BITS, policy_label};
pub use limits::{QuotaSpec, RouteLimits};

use super::limit::MAX_STACK;
pub use super::partition::{PartitionKey, PartitionValue};
use crate::Answer;
use crate::clock::Nanos;
pub use crate::context::gcra::QuotaState;
use crate::context::route::Route;
use crate::error::StoreError;

/// Which bucket a request draws from: its partition on its route.
#[derive(Clone, Debug)]
pub struct Bucket<'a> {
    partition: PartitionKey<'a>,
    route: &'a str,
    route_hash: u64,
}

impl<'a> Bucket<'a> {
    /// The bucket of `partition` on the route named `route`.
    pub fn new(partition: PartitionKey<'a>, route: &'a str) -> Self {
        Self {
            partition,
            route,
            route_hash: crate::hash::keyed(crate::hash::ROUTE, route.as_bytes()),
        }
    }

    /// The bucket of `partition` for a request that reached the layer without
    /// a route (it counts as the default route; the hash is made once).
    pub(crate) fn unrouted(partition: PartitionKey<'a>) -> Self {
        static DEFAULT_ROUTE_HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        Self {
            partition,
            route: Route::DEFAULT_NAME,
            route_hash: *DEFAULT_ROUTE_HASH.get_or_init(|| {
                crate::hash::keyed(crate::hash::ROUTE, Route::DEFAULT_NAME.as_bytes())
            }),
        }
    }

    /// The bucket of `partition` on `route` (whose hash was made once, when
    /// the route table was built).
    pub fn on_route(partition: PartitionKey<'a>, route: &'a Route) -> Self {
        Self {
            partition,
            route: route.name(),
            route_hash: route.hash(),
        }
    }

    /// The partition.
    pub fn partition(&self) -> &PartitionKey<'a> {
        &self.partition
    }

    /// The route's name.
    pub fn route(&self) -> &'a str {
        self.route
    }

    /// The route's keyed hash (process-local).
    pub fn route_hash(&self) -> u64 {
        self.route_hash
    }

    /// The bucket's own hash: its partition's on its route (the in-memory
    /// key of the route's first quota, and how shared stores tell buckets
    /// apart).
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        crate::hash::combine(self.partition.hash(), self.route_hash, 0)
    }
}

/// A store's answer: allowed or not, and each quota's state for headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    over_capacity: bool,
    retry_after: Nanos,
    denied_by: u8,
    len: u8,
    states: [QuotaState; MAX_STACK],
}

impl Decision {
    fn with_states(states: &[QuotaState]) -> ([QuotaState; MAX_STACK], u8) {
        let mut all = [QuotaState::default(); MAX_STACK];
        let len = states.len().min(MAX_STACK);
        all[..len].copy_from_slice(&states[..len]);
        (all, len as u8)
    }

    /// Admitted; `states` are the quotas' states after it, in route order.
    pub fn allowed(states: &[QuotaState]) -> Self {
        let (states, len) = Self::with_states(states);
        Self {
            allowed: true,
            over_capacity: false,
            retry_after: 0,
            denied_by: 0,
            len,
            states,
        }
    }

    /// [`allowed`](Self::allowed) with the first `len` of `states`, moved
    /// in rather than copied.
    #[inline]
    pub(crate) fn allowed_from(states: [QuotaState; MAX_STACK], len: usize) -> Self {
        Self {
            allowed: true,
            over_capacity: false,
            retry_after: 0,
            denied_by: 0,
            len: len.min(MAX_STACK) as u8,
            states,
        }
    }

    /// Refused by quota `denied_by`, which allows it again in `retry_after`
    /// nanoseconds; nothing was consumed.
    pub fn denied(retry_after: Nanos, denied_by: usize, states: &[QuotaState]) -> Self {
        let (states, len) = Self::with_states(states);
        Self {
            allowed: false,
            over_capacity: false,
            retry_after,
            denied_by: denied_by.min(MAX_STACK - 1) as u8,
            len,
            states,
        }
    }

    /// Refused because the store holds as many buckets as it may.
    pub(crate) fn over_capacity(retry_after: Nanos) -> Self {
        Self {
            over_capacity: true,
            ..Self::denied(retry_after, 0, &[])
        }
    }

    /// Whether the request is admitted.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Whether it was refused because the store was full.
    pub fn is_over_capacity(&self) -> bool {
        self.over_capacity
    }

    /// Nanoseconds until a refused request would be admitted.
    pub fn retry_after(&self) -> Nanos {
        self.retry_after
    }

    /// The index of the quota that refused.
    pub fn denied_by(&self) -> usize {
        usize::from(self.denied_by)
    }

    /// Each quota's state.
    pub fn states(&self) -> &[QuotaState] {
        &self.states[..usize::from(self.len)]
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("allowed", &self.allowed)
            .field("over_capacity", &self.over_capacity)
            .field("retry_after", &self.retry_after)
            .field("denied_by", &self.denied_by)
            .field("states", &self.states())
            .finish()
    }
}

/// Where buckets live: in memory ([`InMemoryRateStore`](super::InMemoryRateStore))
/// or in a store shared by several instances.
///
/// A store answering at once returns [`Answer::Ready`]: the layer then
/// calls the inner service straight away, with no extra future state and no
/// allocation.
pub trait RateStore: Send + Sync + 'static {
    /// The decision in progress, for stores that must wait.
    type Future: Future<Output = Result<Decision, StoreError>> + Send + 'static;

    /// Decides a request drawing from `bucket` on a route with `limits`: all of the
    /// route's quotas must allow it, and one that is refused consumes from
    /// none.
    fn decide(
        &self,
        bucket: &Bucket<'_>,
        limits: &RouteLimits,
    ) -> Answer<Result<Decision, StoreError>, Self::Future>;

    /// What to call once a response says a request admitted from `bucket`
    /// cost more or less than its decision took (a route that settles after
    /// the response, see [`charge`](super::charge)): taking more may put
    /// the buckets in debt, giving back never fills them past full. Made
    /// when the request is admitted, called (at most once) when its response
    /// is; it must not wait. The default settles nothing: such a store
    /// charges every request its route's cost when admitted.
    fn settlement(&self, bucket: &Bucket<'_>, limits: &RouteLimits) -> Option<Settlement> {
        let _ = (bucket, limits);
        None
    }

    /// Takes `tokens` from every quota of `limits` in `bucket` whatever
    /// they hold (into debt), or gives `-tokens` back (a key's credits:
    /// past the allowance; a bucket or window: never past full), and
    /// answers their states after it, as an admitted decision. With 0,
    /// reads them. What [`Gate::credits_left`](crate::gate::Gate::credits_left)
    /// and [`Gate::top_up_credits`](crate::gate::Gate::top_up_credits) call.
    /// The default answers an error: such a store cannot be adjusted.
    fn adjust(
        &self,
        bucket: &Bucket<'_>,
        limits: &RouteLimits,
        tokens: i64,
    ) -> Answer<Result<Decision, StoreError>, Self::Future> {
        let _ = (bucket, limits, tokens);
        Answer::Ready(Err(StoreError::new(
            "this rate store cannot read or top up credits",
        )))
    }
}

/// A request's settlement after its response: called with the tokens to
/// take (positive) or give back (negative). See [`RateStore::settlement`].
pub struct Settlement(Box<dyn FnOnce(i64) + Send>);

impl Settlement {
    /// A settlement that runs `settle`.
    pub fn new(settle: impl FnOnce(i64) + Send + 'static) -> Self {
        Self(Box::new(settle))
    }

    /// Takes `tokens` more (or gives `-tokens` back).
    pub fn apply(self, tokens: i64) {
        (self.0)(tokens);
    }
}

impl fmt::Debug for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Settlement")
    }
}
