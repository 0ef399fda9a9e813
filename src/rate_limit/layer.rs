//! [`RateLimitLayer`] and [`RateLimitService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde_json::json;
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::headers::{RateHeaders, RateLimitHeaders, retry_after_seconds};
use super::memory::InMemoryRateStore;
use super::partition::{IpNet, Partition, PartitionKey, RequestView, client_ip};
use super::quota::RateLimit;
use super::store::{Bucket, Decision, QuotaSpec, RateStore, RouteLimits};
use crate::ConfigError;
use crate::body::ResponseBody;
use crate::clock::Clock;
use crate::error::{ApiError, ErrorCode, ErrorRenderer};
use crate::guard::{Caller, caller};
use crate::route::{PerRoute, Route};
use crate::store::{Answer, StoreError};

/// Rate-limits requests per (partition, route); see the [module docs](super).
///
/// Cheap to clone.
pub struct RateLimitLayer<St = InMemoryRateStore> {
    store: Arc<St>,
    options: Arc<Options>,
}

#[derive(Clone, Debug)]
pub(crate) struct Options {
    limits: PerRoute<Arc<RouteLimits>>,
    partition: Partition,
    trusted_proxies: Arc<[IpNet]>,
    headers: RateLimitHeaders,
    pub(crate) renderer: ErrorRenderer,
    clock: Clock,
}

impl RateLimitLayer<InMemoryRateStore> {
    /// Limits with `limits` (one for every route, or one per route) in an
    /// in-memory store on the system clock. Every quota is checked now.
    pub fn new(limits: impl Into<PerRoute<RateLimit>>) -> Result<Self, ConfigError> {
        Self::with_store(InMemoryRateStore::new(), limits)
    }
}

impl<St: RateStore> RateLimitLayer<St> {
    /// Limits with `limits`, keeping buckets in `store`.
    pub fn with_store(
        store: St,
        limits: impl Into<PerRoute<RateLimit>>,
    ) -> Result<Self, ConfigError> {
        let limits = limits
            .into()
            .resolve(|route, limit| RouteLimits::compile(route, limit).map(Arc::new))?;
        Ok(Self {
            store: Arc::new(store),
            options: Arc::new(Options {
                limits,
                partition: Partition::default(),
                trusted_proxies: Arc::from([]),
                headers: RateLimitHeaders::default(),
                renderer: ErrorRenderer::default(),
                clock: Clock::system(),
            }),
        })
    }

    fn with(mut self, change: impl FnOnce(&mut Options)) -> Self {
        change(Arc::make_mut(&mut self.options));
        self
    }

    /// Groups requests into buckets by `partition` (default: project).
    #[must_use]
    pub fn with_partition(self, partition: Partition) -> Self {
        self.with(|o| o.partition = partition)
    }

    /// Trusts these proxies (CIDR networks or addresses) to report the client
    /// in `X-Forwarded-For`: the client is the right-most address there that
    /// is not one of them. Without trusted proxies, the peer address is the
    /// client and `X-Forwarded-For` is ignored.
    pub fn with_trusted_proxies<I, S>(self, proxies: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = proxies
            .into_iter()
            .map(|net| IpNet::parse(net.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.with(|o| o.trusted_proxies = nets.into()))
    }

    /// Chooses the rate-limit headers (default: the IETF draft's).
    #[must_use]
    pub fn with_headers(self, headers: RateLimitHeaders) -> Self {
        self.with(|o| o.headers = headers)
    }

    /// Renders rejections with `renderer`.
    #[must_use]
    pub fn with_renderer(self, renderer: ErrorRenderer) -> Self {
        self.with(|o| o.renderer = renderer)
    }

    /// Reads wall time (for `X-RateLimit-Reset`) from `clock`.
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        self.with(|o| o.clock = clock)
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<St> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            options: Arc::clone(&self.options),
        }
    }
}

impl<St> fmt::Debug for RateLimitLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S, St> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimitService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: Arc::new(Shared {
                store: Arc::clone(&self.store),
                options: Arc::clone(&self.options),
            }),
        }
    }
}

/// The service made by [`RateLimitLayer`].
pub struct RateLimitService<S, St = InMemoryRateStore> {
    inner: S,
    /// One `Arc`, so that cloning the service (servers do, per request)
    /// touches one shared count.
    shared: Arc<Shared<St>>,
}

struct Shared<St> {
    store: Arc<St>,
    options: Arc<Options>,
}

impl<S, St> RateLimitService<S, St> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St> Clone for RateLimitService<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for RateLimitService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// The bucket `request` draws from.
    pub(crate) fn bucket_of<'a, B>(
        &'a self,
        request: &'a Request<B>,
    ) -> Result<Bucket<'a>, ApiError> {
        let partition = self.partition_of(request)?;
        Ok(match request.extensions().get::<Route>() {
            Some(route) => Bucket::on_route(partition, route),
            None => Bucket::unrouted(partition),
        })
    }

    fn partition_of<'a, B>(&self, request: &'a Request<B>) -> Result<PartitionKey<'a>, ApiError> {
        let by_ip = || PartitionKey::ip(client_ip(request, &self.trusted_proxies));
        Ok(match &self.partition {
            Partition::Global => PartitionKey::global(),
            Partition::ClientIp => by_ip(),
            Partition::Custom(function) => PartitionKey::custom(function(&RequestView {
                method: request.method(),
                uri: request.uri(),
                headers: request.headers(),
                extensions: request.extensions(),
            })),
            Partition::Project => match caller(request)? {
                Caller::Key(principal) => PartitionKey::of_project(principal),
                Caller::Public => by_ip(),
            },
            Partition::KeyId => match caller(request)? {
                Caller::Key(principal) => PartitionKey::of_key(principal),
                Caller::Public => by_ip(),
            },
        })
    }

    /// The headers to add to the inner response, or the rejection.
    pub(crate) fn conclude(
        &self,
        result: Result<Decision, StoreError>,
        limits: &RouteLimits,
        bucket: &Bucket<'_>,
    ) -> Result<RateHeaders, ApiError> {
        let decision = match result {
            Ok(decision) => decision,
            Err(error) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", error = %error, route = bucket.route(), "rate store failed");
                let _ = error;
                return Err(ApiError::from(ErrorCode::UPSTREAM_FAILED));
            }
        };
        let headers = RateHeaders::new(self.headers, limits, bucket, &decision, || {
            self.clock.unix_seconds()
        });
        if decision.is_allowed() {
            return Ok(headers);
        }
        let seconds = retry_after_seconds(decision.retry_after());
        let plural = if seconds == 1 { "" } else { "s" };
        let error = if decision.is_over_capacity() {
            ApiError::new(
                ErrorCode::RATE_LIMITED,
                format!("Too many clients are rate limited right now. Retry after {seconds} second{plural}."),
            )
            .with_details(json!({ "retry_after": seconds, "reason": "capacity" }))
        } else {
            let index = decision.denied_by();
            let quota = limits.quotas().get(index);
            ApiError::new(
                ErrorCode::RATE_LIMITED,
                format!(
                    "Rate limit exceeded on route {}. Retry after {seconds} second{plural}.",
                    bucket.route()
                ),
            )
            .with_details(json!({
                "retry_after": seconds,
                "limit": quota.map(QuotaSpec::burst),
                "policy": quota.map(|q| q.label(bucket.route(), index)),
            }))
        };
        Ok(headers
            .into_pairs()
            .fold(error, |error, (name, value)| error.with_header(name, value)))
        .and_then(Err)
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: RateStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, St::Future, S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Shared { store, options } = &*self.shared;
        let limits = options.limits.get(request.extensions().get::<Route>());
        if limits.is_unlimited() {
            return ResponseFuture::inner(self.inner.call(request), None);
        }
        let bucket = match options.bucket_of(&request) {
            Ok(bucket) => bucket,
            Err(error) => {
                return ResponseFuture::rejected(options.renderer.respond(error, &request));
            }
        };
        let result = match store.decide(&bucket, limits) {
            Answer::Ready(result) => result,
            Answer::Pending(decision) => {
                let limits = Arc::clone(limits);
                // Take the service `poll_ready` readied; leave a clone.
                let fresh = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, fresh);
                return ResponseFuture::deciding(
                    decision,
                    ready,
                    request,
                    Arc::clone(options),
                    limits,
                );
            }
        };
        match options.conclude(result, limits, &bucket) {
            Ok(headers) => ResponseFuture::inner(self.inner.call(request), Some(headers)),
            Err(error) => ResponseFuture::rejected(options.renderer.respond(error, &request)),
        }
    }
}
