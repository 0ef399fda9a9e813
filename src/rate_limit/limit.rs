//! [`RateLimit`]: what one route allows, as configured.

use super::charge::{Counted, Settle};
use crate::context::quota::Quota;

/// The rate limit of one route: no limit, or one or more quotas that must all
/// allow a request, and what a request costs.
///
/// ```
/// use tollgate::rate_limit::{Quota, RateLimit};
///
/// let track = RateLimit::new(Quota::per_second(50).burst(200));
/// let batch = RateLimit::stacked([Quota::per_second(5).burst(20), Quota::per_day(100_000)]).cost(2);
/// let health = RateLimit::unlimited();
/// # let _ = (track, batch, health);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    quotas: Vec<Quota>,
    cost: u64,
    tiers: Vec<(String, Vec<Quota>)>,
    /// Shadowed: decided and recorded, never refused, no headers sent.
    pub(crate) shadowed: bool,
    /// Settled after the response (see [`charge`](super::charge)).
    pub(crate) settle: Option<Settle>,
}

/// The most quotas one route may stack.
pub const MAX_STACKED_QUOTAS: usize = 4;

/// The most quotas one decision counts: a route's, and a key's credits.
pub(crate) const MAX_STACK: usize = MAX_STACKED_QUOTAS + 1;

impl RateLimit {
    /// One quota.
    pub fn new(quota: Quota) -> Self {
        Self {
            quotas: vec![quota],
            cost: 1,
            tiers: Vec::new(),
            shadowed: false,
            settle: None,
        }
    }

    /// Several quotas, all of which must allow a request (at most
    /// [`MAX_STACKED_QUOTAS`]). A request one of them denies consumes from none.
    pub fn stacked(quotas: impl IntoIterator<Item = Quota>) -> Self {
        Self {
            quotas: quotas.into_iter().collect(),
            cost: 1,
            tiers: Vec::new(),
            shadowed: false,
            settle: None,
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self {
            quotas: Vec::new(),
            cost: 1,
            tiers: Vec::new(),
            shadowed: false,
            settle: None,
        }
    }

    /// Sets what one request costs (default 1).
    #[must_use]
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = cost;
        self
    }

    /// Settles each request's cost after its response: the
    /// [`Cost`](super::Cost) the handler put in the response's extensions
    /// (else [`cost`](Self::cost)). The cost is still taken when the request
    /// is admitted; the difference is taken or given back once the response
    /// is made (see [`charge`](super::charge) for debt).
    #[must_use]
    pub fn cost_from_response(mut self) -> Self {
        self.settle
            .get_or_insert_with(Settle::default)
            .from_response = true;
        self
    }

    /// Charges only responses of these statuses: `"2xx"` gives back what
    /// the handler refused, `["401", "403"]` charges only refusals. Settled
    /// after the response, as with [`cost_from_response`](Self::cost_from_response).
    #[must_use]
    pub fn count(mut self, counted: Counted) -> Self {
        self.settle.get_or_insert_with(Settle::default).counted = Some(counted);
        self
    }

    /// Keys of tier `tier` (see
    /// [`KeyRecord::with_tier`](crate::key::KeyRecord::with_tier)) draw from
    /// `quotas` instead (from the same buckets: a key that changes tier
    /// keeps what it has used). `[]` leaves the tier unlimited.
    ///
    /// ```
    /// use tollgate::rate_limit::{Quota, RateLimit};
    ///
    /// let track = RateLimit::new(Quota::per_second(10))
    ///     .tier("pro", [Quota::per_second(100).burst(500)]);
    /// assert_eq!(track.tiers()[0].0, "pro");
    /// ```
    #[must_use]
    pub fn tier(
        mut self,
        tier: impl Into<String>,
        quotas: impl IntoIterator<Item = Quota>,
    ) -> Self {
        let tier = tier.into();
        let quotas: Vec<Quota> = quotas.into_iter().collect();
        match self.tiers.iter_mut().find(|(name, _)| *name == tier) {
            Some((_, slot)) => *slot = quotas,
            None => self.tiers.push((tier, quotas)),
        }
        self
    }

    /// The quotas.
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// Each tier's own quotas.
    pub fn tiers(&self) -> &[(String, Vec<Quota>)] {
        &self.tiers
    }

    /// What one request costs.
    pub fn request_cost(&self) -> u64 {
        self.cost
    }

    /// Whether there is no quota, for any tier.
    pub fn is_unlimited(&self) -> bool {
        self.quotas.is_empty() && self.tiers.iter().all(|(_, quotas)| quotas.is_empty())
    }
}

impl From<Quota> for RateLimit {
    fn from(quota: Quota) -> Self {
        Self::new(quota)
    }
}
