//! [`RateLimitCheck`]: one decision per request, and the rate-limit headers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Request;
use pin_project_lite::pin_project;
use serde_json::json;

use super::headers::{RateHeaders, retry_after_seconds};
use super::limit::RateLimit;
use super::memory::InMemoryRateStore;
use super::options::RateLimitOptions;
use super::partition::{Partition, PartitionKey, RequestView};
use super::store::{
    Bucket, CREDITS_POLICY, Decision, QuotaSpec, QuotaState, RateStore, RouteLimits,
};
use crate::Answer;
use crate::ConfigError;
use crate::check::{Check, ResponseHeaders, Step, Wait};
use crate::clock::Clock;
use crate::context::client_ip::client_ip;
use crate::context::credits::{Credits, NEVER};
use crate::context::per_route::PerRoute;
use crate::context::principal::Principal;
use crate::context::route::Route;
use crate::context::{self, Caller};
use crate::error::sentence::{Piece::Number, Piece::Text, sentence};
use crate::error::{ApiError, ErrorCode, Rule, StoreError, TypedDetails};

/// The rate-limit check: one decision per request against the bucket of its
/// (partition, route), and the rate-limit headers for the response.
pub struct RateLimitCheck<St = InMemoryRateStore> {
    store: Arc<St>,
    limits: PerRoute<Arc<RouteLimits>>,
    pub(crate) options: RateLimitOptions,
    /// The wall clock of `X-RateLimit-Reset`.
    pub(crate) clock: Clock,
    /// The share of a burst under which an admitted request counts as
    /// near the limit (metrics).
    #[cfg(feature = "metrics")]
    pub(crate) near_limit: f64,
}

impl<St: RateStore> RateLimitCheck<St> {
    /// Limits with `limits` (one for every route, or one per route), keeping
    /// buckets in `store`. Every quota is checked now.
    pub fn new(store: St, limits: impl Into<PerRoute<RateLimit>>) -> Result<Self, ConfigError> {
        Self::with_parts(
            Arc::new(store),
            limits.into(),
            RateLimitOptions::default(),
            Clock::system(),
        )
    }

    pub(crate) fn with_parts(
        store: Arc<St>,
        limits: PerRoute<RateLimit>,
        options: RateLimitOptions,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        let limits =
            limits.resolve(|route, limit| RouteLimits::compile(route, limit).map(Arc::new))?;
        Ok(Self {
            store,
            limits,
            options,
            clock,
            #[cfg(feature = "metrics")]
            near_limit: 0.2,
        })
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<St> Clone for RateLimitCheck<St> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            limits: self.limits.clone(),
            options: self.options.clone(),
            clock: self.clock.clone(),
            #[cfg(feature = "metrics")]
            near_limit: self.near_limit,
        }
    }
}

impl<St> fmt::Debug for RateLimitCheck<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitCheck")
            .field("limits", &self.limits)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<St> RateLimitCheck<St> {
    /// The bucket `request` draws from.
    pub(crate) fn bucket_of<'a, B>(
        &'a self,
        request: &'a Request<B>,
    ) -> Result<Bucket<'a>, ApiError> {
        self.bucket_on(
            request,
            context::route(request),
            context::principal(request),
        )
    }

    /// [`bucket_of`](Self::bucket_of) with the request's route and
    /// principal already looked up (each lookup in the extensions is a
    /// hash probe and two dynamic calls: the check has both at hand).
    fn bucket_on<'a, B>(
        &'a self,
        request: &'a Request<B>,
        route: Option<&'a Route>,
        principal: Option<&'a Principal>,
    ) -> Result<Bucket<'a>, ApiError> {
        let partition = self.partition_of(request, principal)?;
        Ok(match route {
            Some(route) => Bucket::on_route(partition, route),
            None => Bucket::unrouted(partition),
        })
    }

    fn partition_of<'a, B>(
        &self,
        request: &'a Request<B>,
        principal: Option<&'a Principal>,
    ) -> Result<PartitionKey<'a>, ApiError> {
        let by_ip = || PartitionKey::ip(client_ip(request, &self.options.trusted_proxies));
        let caller = || context::caller_given(request, principal);
        Ok(match &self.options.partition {
            Partition::Global => PartitionKey::global(),
            Partition::ClientIp => by_ip(),
            Partition::Custom(function) => PartitionKey::custom(function(&RequestView {
                method: request.method(),
                uri: request.uri(),
                headers: request.headers(),
                extensions: request.extensions(),
            })),
            Partition::Project => match caller()? {
                Caller::Key(principal) => PartitionKey::of_project(principal),
                Caller::Public => by_ip(),
            },
            Partition::KeyId => match caller()? {
                Caller::Key(principal) => PartitionKey::of_key(principal),
                Caller::Public => by_ip(),
            },
        })
    }

    /// Adds the rate-limit headers to `out`, or gives the rejection
    /// (carrying them).
    pub(crate) fn conclude(
        &self,
        result: Result<Decision, StoreError>,
        limits: &RouteLimits,
        bucket: &Bucket<'_>,
        out: &mut ResponseHeaders,
    ) -> Result<(), ApiError> {
        let decision = match result {
            Ok(decision) => decision,
            Err(error) => {
                #[cfg(feature = "metrics")]
                crate::metrics::store_failure("rate");
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", error = %error, route = bucket.route(), "rate store failed");
                let _ = error;
                return Err(ApiError::from(ErrorCode::UPSTREAM_FAILED));
            }
        };
        let headers = RateHeaders::new(
            self.options.rate_limit_headers,
            limits,
            bucket,
            &decision,
            || self.clock.unix_seconds(),
        );
        // Admitted or refused, the response carries them: one writer. Not
        // where the limit is only tried (shadowed): clients must not slow
        // down for it.
        if !limits.shadowed {
            headers.write(out);
        }
        if decision.is_allowed() {
            #[cfg(feature = "metrics")]
            self.count_near_limit(limits, bucket, &decision);
            return Ok(());
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
            let code = quota.map_or(ErrorCode::RATE_LIMITED, |quota| quota.code().clone());
            if let Some(credits) = quota.and_then(QuotaSpec::credits) {
                let state = decision.states().get(index).copied().unwrap_or_default();
                return Err(self.credits_refusal(code, credits, state, &decision, limits.cost()));
            }
            match quota.and_then(QuotaSpec::calendar) {
                // A calendar window: spent until its boundary, which the
                // details give as a Unix time.
                Some(calendar) => ApiError::new(
                    code,
                    sentence(&[
                        Text("Quota of "),
                        Number(quota.map_or(0, QuotaSpec::burst)),
                        Text(" a "),
                        Text(calendar.as_str()),
                        Text(" exceeded on route "),
                        Text(bucket.route()),
                        Text(". It resets in "),
                        Number(seconds),
                        Text(" second"),
                        Text(plural),
                        Text("."),
                    ]),
                )
                .with_typed_details(TypedDetails::Window {
                    limit: quota.map(QuotaSpec::burst),
                    policy: limits.label(bucket.route_hash(), bucket.route(), index),
                    reason: None,
                    reset: self.clock.unix_seconds() + seconds,
                    retry_after: seconds,
                    window: calendar.as_str(),
                }),
                None => ApiError::new(
                    code,
                    sentence(&[
                        Text("Rate limit exceeded on route "),
                        Text(bucket.route()),
                        Text(". Retry after "),
                        Number(seconds),
                        Text(" second"),
                        Text(plural),
                        Text("."),
                    ]),
                )
                .with_typed_details(TypedDetails::RateLimited {
                    retry_after: seconds,
                    limit: quota.map(QuotaSpec::burst),
                    policy: limits.label(bucket.route_hash(), bucket.route(), index),
                }),
            }
        };
        Err(error)
    }
}

impl<St> RateLimitCheck<St> {
    /// The refusal of a key whose credits are short of the route's cost:
    /// until the refill (which `Retry-After` and `reset` give), or, without
    /// one, until the key is topped up (no `Retry-After`).
    fn credits_refusal(
        &self,
        code: ErrorCode,
        credits: &Credits,
        state: QuotaState,
        decision: &Decision,
        cost: u64,
    ) -> ApiError {
        let refill = credits.refill();
        let retry =
            (decision.retry_after() != NEVER).then(|| retry_after_seconds(decision.retry_after()));
        let message = match retry {
            Some(seconds) => {
                let plural = if seconds == 1 { "" } else { "s" };
                format!(
                    "The API key has {} credits left and this request costs {cost}. They are refilled in {seconds} second{plural}.",
                    state.remaining
                )
            }
            None => format!(
                "The API key has {} credits left and this request costs {cost}. They are not refilled.",
                state.remaining
            ),
        };
        ApiError::new(code, message).with_details(json!({
            "policy": CREDITS_POLICY,
            "credits": state.remaining,
            "cost": cost,
            "limit": credits.allowance(),
            "refill": refill.map(|every| every.as_str()),
            "retry_after": retry,
            "reset": retry.map(|seconds| self.clock.unix_seconds() + seconds),
        }))
    }

    /// Counts each quota that admitted with at most the near-limit share
    /// of its burst left.
    #[cfg(feature = "metrics")]
    fn count_near_limit(&self, limits: &RouteLimits, bucket: &Bucket<'_>, decision: &Decision) {
        for (index, (quota, state)) in limits.quotas().iter().zip(decision.states()).enumerate() {
            if (state.remaining as f64) <= quota.burst() as f64 * self.near_limit {
                crate::metrics::near_limit(bucket.route(), &quota.label(bucket.route(), index));
            }
        }
    }
}

impl<St: RateStore> Check for RateLimitCheck<St> {
    type Pending = RateDecision<St::Future>;

    fn check<B>(
        &self,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Step<Self::Pending> {
        let route = context::route(request);
        let limits = match self.limits.for_route(route) {
            Ok(limits) => limits,
            Err(error) => return Answer::Ready(Err(error)),
        };
        // A public route has no caller whose tier, overrides or credits
        // could apply.
        let principal = context::principal(request);
        let caller = match route {
            Some(route) if route.is_public() => None,
            _ => principal,
        };
        if limits.is_unlimited()
            && caller.is_none_or(|principal| principal.record().credits().is_none())
        {
            return Answer::Ready(Ok(()));
        }
        let limits = limits.for_caller(caller);
        if limits.quotas().is_empty() {
            return Answer::Ready(Ok(()));
        }
        let bucket = match self.bucket_on(request, route, principal) {
            Ok(bucket) => bucket,
            Err(error) => return Answer::Ready(Err(error)),
        };
        match self.store.decide(&bucket, &limits) {
            Answer::Ready(result) => Answer::Ready(
                self.conclude(result, &limits, &bucket, headers)
                    .map(|()| self.settle_after(&limits, &bucket, headers))
                    .map_err(|error| error.with_rule(Rule::RateLimit)),
            ),
            Answer::Pending(decision) => Answer::Pending(RateDecision {
                waiting: Box::pin(Deciding {
                    decision,
                    limits: limits.into_owned(),
                    started: std::time::Instant::now(),
                }),
            }),
        }
    }
}

impl<St: RateStore> RateLimitCheck<St> {
    /// On a route that settles after the response, asks to be told of the
    /// response, and then takes or gives back the difference between what
    /// the request took and what it cost.
    #[inline]
    fn settle_after(&self, limits: &RouteLimits, bucket: &Bucket<'_>, out: &mut ResponseHeaders) {
        let Some(settle) = &limits.settle else {
            return;
        };
        if limits.shadowed {
            return;
        }
        let Some(settlement) = self.store.settlement(bucket, limits) else {
            return;
        };
        let settle = settle.clone();
        let upfront = limits.cost();
        out.after_response(move |status, extensions| {
            let cost = settle.cost(upfront, status, extensions);
            let difference = i64::try_from(cost).unwrap_or(i64::MAX)
                - i64::try_from(upfront).unwrap_or(i64::MAX);
            if difference != 0 {
                settlement.apply(difference);
            }
        });
    }
}

impl<St: RateStore> Wait<RateLimitCheck<St>> for RateDecision<St::Future> {
    fn poll_wait<B>(
        &mut self,
        check: &RateLimitCheck<St>,
        cx: &mut Context<'_>,
        request: &mut Request<B>,
        headers: &mut ResponseHeaders,
    ) -> Poll<Result<(), ApiError>> {
        let waiting = self.waiting.as_mut().project();
        let result = ready!(waiting.decision.poll(cx));
        #[cfg(feature = "metrics")]
        crate::metrics::store_duration("rate", waiting.started.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = waiting.started;
        let bucket = check.bucket_of(request)?;
        Poll::Ready(
            check
                .conclude(result, waiting.limits, &bucket, headers)
                .map(|()| check.settle_after(waiting.limits, &bucket, headers))
                .map_err(|error| error.with_rule(Rule::RateLimit)),
        )
    }
}

/// A decision in progress, for stores that must wait (boxed: only shared
/// stores pay for it).
pub struct RateDecision<D> {
    waiting: Pin<Box<Deciding<D>>>,
}

pin_project! {
    struct Deciding<D> {
        #[pin]
        decision: D,
        limits: Arc<RouteLimits>,
        // When the decision began (for the store-duration metric).
        started: std::time::Instant,
    }
}

impl<D> fmt::Debug for RateDecision<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateDecision")
    }
}
