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

use crate::body_limit::BodyLimits;
use crate::check::{CheckLayer, CheckService, Then};
use crate::key::KeyCheck;
use crate::key::store::KeyStore;
use crate::origin::OriginCheck;
use crate::rate_limit::store::RateStore;
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
