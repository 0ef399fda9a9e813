//! Rate limits: keyed token buckets with an honest `Retry-After`.
//!
//! [`RateLimitLayer`] keeps one token bucket per (partition, route, quota):
//! by default the partition is the caller's project, so all of a project's
//! keys share its buckets, and `/v1/items/1` and `/v1/items/2` share the
//! route `GET /v1/items/{id}`. A [`Quota`] holds `burst` tokens and refills
//! `rate` per period; a request costs one (or its route's cost). A route may
//! stack quotas (a burst limit and a daily one): all must allow a request,
//! and one refused by any consumes from none.
//!
//! The algorithm is GCRA: one `AtomicU64` per bucket, updated with a
//! compare-exchange loop, no lock held across a decision. Buckets live in an
//! [`InMemoryRateStore`] by default, which evicts buckets that are full again
//! and caps how many are live; a [`RateStore`](store::RateStore) shared by several instances
//! can replace it without touching the layer.
//!
//! A refusal is `rate_limited` (429) with `Retry-After` in whole seconds,
//! rounded up and at least 1 — a client that waits exactly that long is
//! admitted — and `details` `retry_after`, `limit` and `policy`. Every
//! response through the layer, 200s too, carries the rate-limit headers
//! chosen by [`RateLimitHeaders`] (the IETF draft's by default).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tollgate::rate_limit::{Partition, Quota, RateLimit, RateLimitLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer = RateLimitLayer::new(RateLimit::new(Quota::per_second(1).burst(2)))
//!     .unwrap()
//!     .partition(Partition::Global);
//! let mut service = ServiceBuilder::new()
//!     .layer(layer)
//!     .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! for _ in 0..2 {
//!     let response = service.ready().await.unwrap().call(Request::new(())).await.unwrap();
//!     assert_eq!(response.status(), StatusCode::OK);
//!     assert!(response.headers().contains_key("ratelimit"));
//! }
//! let response = service.ready().await.unwrap().call(Request::new(())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(response.headers()["retry-after"], "1");
//! # });
//! ```

pub mod charge;
mod check;
mod headers;
mod layer;
mod limit;
mod memory;
mod options;
mod partition;
pub(crate) mod policy;
#[cfg(feature = "redis")]
pub mod redis;
pub mod store;

pub use crate::context::client_ip::IpNet;
pub use crate::context::credits::{Credits, MAX_CREDITS};
pub use crate::context::quota::Quota;
pub use crate::context::window::{Calendar, UtcOffset};
pub use charge::{Cost, Counted};
pub use check::RateLimitCheck;
pub use headers::RateLimitHeaders;
pub use layer::{RateLimitLayer, RateLimitService};
pub use limit::{MAX_STACKED_QUOTAS, RateLimit};
pub use memory::{DEFAULT_MAX_BUCKETS, InMemoryRateStore};
pub use options::RateLimitOptions;
pub use partition::{Partition, RequestView};
