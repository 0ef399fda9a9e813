//! [`RateLimitLayer`]: the pipeline with the rate-limit check, and its
//! setters.

use super::check::RateLimitCheck;
use super::headers::RateLimitHeaders;
use super::limit::RateLimit;
use super::memory::InMemoryRateStore;
use super::partition::Partition;
use super::store::RateStore;
use crate::ConfigError;
use crate::check::{CheckLayer, CheckService};
use crate::clock::Clock;
use crate::context::client_ip::IpNet;
use crate::context::per_route::PerRoute;

/// Rate-limits requests per (partition, route); see the [module docs](super).
/// A [`CheckLayer`] with the [`RateLimitCheck`].
///
/// Cheap to clone.
pub type RateLimitLayer<St = InMemoryRateStore> = CheckLayer<RateLimitCheck<St>>;

/// The service made by [`RateLimitLayer`].
pub type RateLimitService<S, St = InMemoryRateStore> = CheckService<S, RateLimitCheck<St>>;

impl CheckLayer<RateLimitCheck<InMemoryRateStore>> {
    /// Limits with `limits` (one for every route, or one per route) in an
    /// in-memory store on the system clock. Every quota is checked now.
    pub fn new(limits: impl Into<PerRoute<RateLimit>>) -> Result<Self, ConfigError> {
        Self::with_store(InMemoryRateStore::new(), limits)
    }
}

impl<St: RateStore> CheckLayer<RateLimitCheck<St>> {
    /// Limits with `limits`, keeping buckets in `store`.
    pub fn with_store(
        store: St,
        limits: impl Into<PerRoute<RateLimit>>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::from_check(RateLimitCheck::new(store, limits)?))
    }

    fn with(self, change: impl FnOnce(&mut RateLimitCheck<St>)) -> Self {
        self.change(|shared| change(&mut shared.checks))
    }

    /// Groups requests into buckets by `partition` (default: project).
    #[must_use]
    pub fn partition(self, partition: Partition) -> Self {
        self.with(|check| check.options.partition = partition)
    }

    /// Trusts these proxies to report the client in `X-Forwarded-For`: the
    /// client is the right-most address there that is not one of them.
    /// Without trusted proxies, the peer address is the client and
    /// `X-Forwarded-For` is ignored. (A network is parsed by
    /// [`IpNet::parse`], which names a mistake.)
    #[must_use]
    pub fn trusted_proxies(self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        let nets: Vec<IpNet> = proxies.into_iter().collect();
        self.with(|check| check.options.trusted_proxies = nets)
    }

    /// Chooses the rate-limit headers (default: the IETF draft's).
    #[must_use]
    pub fn rate_limit_headers(self, headers: RateLimitHeaders) -> Self {
        self.with(|check| check.options.rate_limit_headers = headers)
    }

    /// Reads wall time (for `X-RateLimit-Reset`) from `clock`.
    #[must_use]
    pub fn clock(self, clock: Clock) -> Self {
        self.with(|check| check.clock = clock)
    }

    /// The store.
    pub fn store(&self) -> &St {
        self.checks().store()
    }
}
