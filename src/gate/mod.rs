//! The [`Gate`]: one builder, one policy per route, every check in order.
//!
//! ```text
//! request ─► route ─► key ─► origin ─► scope ─► your checks ─► rate limit ─► body cap ─► your service
//! ```
//!
//! The gate is one [`CheckService`]: the checks
//! run in order in one service and one response future, then the body cap,
//! then your service — or the first rejection is rendered. It matches each
//! request's route once; every check then reads its per-route setting from
//! the [`RoutePolicy`] of that route (or the gate's defaults).
//! [`GateBuilder::build`] checks everything at start-up and names the route
//! and field of any mistake.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tollgate::body_limit::LimitedBody;
//! use tollgate::gate::{Gate, RoutePolicy};
//! use tollgate::key::{InMemoryKeyStore, KeyHasher, KeyKind, KeyRecord};
//! use tollgate::rate_limit::Quota;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let hasher = KeyHasher::with_pepper(b"pepper");
//! let store = InMemoryKeyStore::new();
//! let minted = hasher.mint(KeyKind::Secret, None).unwrap();
//! store.insert(minted.digest(), KeyRecord::new("key_1", "acme", KeyKind::Secret));
//!
//! let gate = Gate::builder(store)
//!     .hasher(hasher)
//!     .route("GET /health", RoutePolicy::public())
//!     .route("POST /v1/track", RoutePolicy::new().require_all(["ingest"]).quota(Quota::per_second(50).burst(200)).body_limit(8192))
//!     .build()
//!     .unwrap();
//!
//! let service = ServiceBuilder::new()
//!     .layer(gate.layer())
//!     // Behind the gate, the body is capped: the service sees a `LimitedBody`.
//!     .service_fn(|_: Request<LimitedBody<Full<Bytes>>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
//!     });
//! let request = Request::post("/v1/track")
//!     .header("authorization", format!("Bearer {}", minted.key()))
//!     .body(Full::new(Bytes::from_static(b"{}")))
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["ratelimit"], "\"POST /v1/track\";r=199;t=1");
//! # });
//! ```

mod build;
mod builder;
mod config;
mod live;
mod observe;
mod policy;
mod route_config;
mod tier;

use std::fmt;

use http::HeaderName;

pub use crate::check::observe::{GateEvent, Outcome};
pub use builder::GateBuilder;
pub use config::GateConfig;
pub use live::LiveGate;
pub use policy::RoutePolicy;
pub use route_config::RouteConfig;
pub use tier::TierPolicy;

use crate::Answer;
use crate::body_limit::BodyLimits;
use crate::check::{CheckLayer, CheckService, Then};
use crate::context::record::KeyRecord;
use crate::error::StoreError;
use crate::key::KeyCheck;
use crate::key::store::KeyStore;
use crate::origin::OriginCheck;
use crate::rate_limit::store::{Bucket, PartitionKey, RateStore, RouteLimits};
use crate::rate_limit::{Credits, MAX_CREDITS};
use crate::rate_limit::{InMemoryRateStore, RateLimitCheck};
use crate::render::ErrorRenderer;
use crate::route::{RouteCheck, Routes};
use crate::scope::ScopeCheck;

/// The gate's checks, in order: route, key, origin, scope, yours (`C`),
/// rate limit.
pub type GateChecks<St, Rs, C = ()> = Then<
    Then<Then<Then<Then<RouteCheck, KeyCheck<St>>, OriginCheck>, ScopeCheck>, C>,
    RateLimitCheck<Rs>,
>;

/// The whole gate as one Tower layer: its checks and the body cap. Cheap to
/// clone.
pub type GateLayer<St, Rs = InMemoryRateStore, C = ()> =
    CheckLayer<GateChecks<St, Rs, C>, BodyLimits>;

/// The service a [`GateLayer`] makes around `S`.
pub type GateService<S, St, Rs = InMemoryRateStore, C = ()> =
    CheckService<S, GateChecks<St, Rs, C>, BodyLimits>;

/// A built gate: its routes and its [`GateLayer`]. Cheap to clone.
pub struct Gate<St, Rs = InMemoryRateStore, C = ()> {
    layer: GateLayer<St, Rs, C>,
}

impl<St: KeyStore> Gate<St, InMemoryRateStore> {
    /// Starts a gate authenticating against `key_store`, rate-limiting in
    /// memory (on the builder's clock).
    pub fn builder(key_store: St) -> GateBuilder<St, InMemoryRateStore> {
        GateBuilder::new(key_store)
    }
}

impl<St, Rs, C> Gate<St, Rs, C> {
    /// The layer to put in front of your service (axum `Router::layer`,
    /// `tower::ServiceBuilder::layer`, tonic `Server::builder().layer`).
    pub fn layer(&self) -> GateLayer<St, Rs, C> {
        self.layer.clone()
    }

    fn checks(&self) -> &GateChecks<St, Rs, C> {
        self.layer.checks()
    }

    // Where each check sits in `GateChecks`: the one place that knows.
    fn route_check(&self) -> &RouteCheck {
        self.checks().first().first().first().first().first()
    }

    fn key_check(&self) -> &KeyCheck<St> {
        self.checks().first().first().first().first().second()
    }

    fn rate_check(&self) -> &RateLimitCheck<Rs> {
        self.checks().second()
    }

    /// The route table.
    pub fn routes(&self) -> &Routes {
        self.route_check().routes()
    }

    /// The renderer every check shares.
    pub fn renderer(&self) -> &ErrorRenderer {
        &self.layer.shared.renderer
    }

    /// The key store.
    pub fn key_store(&self) -> &St
    where
        St: KeyStore,
    {
        self.key_check().store()
    }

    /// The rate store.
    pub fn rate_store(&self) -> &Rs
    where
        Rs: RateStore,
    {
        self.rate_check().store()
    }

    /// The request headers the gate reads that a browser may send only once
    /// a CORS preflight allows them: the credential headers
    /// (`Authorization`, `X-API-Key`) and the request-id header. For
    /// `Access-Control-Allow-Headers`, beside your own API's.
    pub fn request_header_names(&self) -> Vec<HeaderName> {
        let mut names = self.key_check().credential_headers().to_vec();
        names.push(self.renderer().request_id_header().clone());
        names
    }

    /// The response headers the gate adds that browser code can read only
    /// when CORS exposes them (none of them is CORS-safelisted): exactly the
    /// rate-limit headers the gate is set to send (see
    /// [`RateLimitHeaders::names`](crate::rate_limit::RateLimitHeaders::names)). For
    /// `Access-Control-Expose-Headers`.
    pub fn response_header_names(&self) -> Vec<HeaderName> {
        self.rate_check()
            .options
            .rate_limit_headers
            .names()
            .to_vec()
    }
}

impl<St, Rs: RateStore, C> Gate<St, Rs, C> {
    /// The credits `record`'s key has left now, as the rate store counts
    /// them (shared through Redis, with a Redis store); `None` if the key
    /// has no credits.
    pub async fn credits_left(&self, record: &KeyRecord) -> Result<Option<u64>, StoreError> {
        match record.credits() {
            None => Ok(None),
            Some(credits) => self.adjust_credits(record, *credits, 0).await.map(Some),
        }
    }

    /// Gives `record`'s key `credits` more, now, on every instance sharing
    /// the rate store: beyond its allowance if need be, and kept across
    /// refills (a refill only brings a balance below the amount back up).
    /// Answers the credits it has now. An error if the key has no credits
    /// (give its record some first: [`KeyRecord::with_credits`]), or if
    /// the store cannot answer.
    ///
    /// ```
    /// use tollgate::gate::Gate;
    /// use tollgate::key::{InMemoryKeyStore, KeyKind, KeyRecord};
    /// use tollgate::rate_limit::Credits;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let gate = Gate::builder(InMemoryKeyStore::new()).build().unwrap();
    /// let record = KeyRecord::new("key_1", "acme", KeyKind::Secret)
    ///     .with_credits(Credits::new(3))
    ///     .unwrap();
    /// assert_eq!(gate.credits_left(&record).await.unwrap(), Some(3));
    /// assert_eq!(gate.top_up_credits(&record, 10).await.unwrap(), 13);
    /// # });
    /// ```
    pub async fn top_up_credits(
        &self,
        record: &KeyRecord,
        credits: u64,
    ) -> Result<u64, StoreError> {
        let Some(given) = record.credits() else {
            return Err(StoreError::new(format!(
                "key `{}` has no credits to top up: give its record credits first",
                record.key_id()
            )));
        };
        if credits > MAX_CREDITS {
            return Err(StoreError::new(format!(
                "a top-up gives at most {MAX_CREDITS} credits, not {credits}"
            )));
        }
        self.adjust_credits(record, *given, -(credits as i64)).await
    }

    async fn adjust_credits(
        &self,
        record: &KeyRecord,
        credits: Credits,
        tokens: i64,
    ) -> Result<u64, StoreError> {
        let limits = RouteLimits::credits_only(credits, record.key_id_hash(), record.key_id());
        let bucket = Bucket::unrouted(PartitionKey::global());
        let decision = match self.rate_store().adjust(&bucket, &limits, tokens) {
            Answer::Ready(decision) => decision?,
            Answer::Pending(decision) => decision.await?,
        };
        Ok(decision.states().first().map_or(0, |state| state.remaining))
    }
}

impl<St, Rs, C> Clone for Gate<St, Rs, C> {
    fn clone(&self) -> Self {
        Self {
            layer: self.layer.clone(),
        }
    }
}

impl<St, Rs, C> fmt::Debug for Gate<St, Rs, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("routes", self.routes())
            .finish_non_exhaustive()
    }
}
