//! Body caps: a per-route limit on request body size.
//!
//! [`BodyLimitLayer`] answers `payload_too_large` (413, the cap in
//! `details.limit_bytes`):
//!
//! - at once, body unread and inner service not called, when the declared
//!   `Content-Length` is over the cap — a client that sent
//!   `Expect: 100-continue` gets the 413 before sending its body;
//! - otherwise (chunked HTTP/1.1, HTTP/2 streams without a length) the inner
//!   service gets a [`LimitedBody`] that yields an error once the cap would
//!   be passed, and the layer replaces whatever response the inner service
//!   made — even one that swallowed the error — with the standard 413.
//!
//! Nothing is buffered: frames pass through as they come. Unlike
//! tower-http's `RequestBodyLimitLayer`, both cases get the standard error.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tollgate::body_limit::{BodyLimitLayer, LimitedBody};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let service = ServiceBuilder::new()
//!     .layer(BodyLimitLayer::new(8 * 1024))
//!     .service_fn(|_: Request<LimitedBody<Full<Bytes>>>| async {
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     });
//! let request = Request::post("/v1/track")
//!     .header("content-length", "100000")
//!     .body(Full::new(Bytes::new()))
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
//! # });
//! ```

mod body;
mod layer;
mod limits;
pub(crate) mod policy;

pub use body::{BodyTooLarge, LimitedBody};
pub use layer::{BodyLimitLayer, BodyLimitService};
pub(crate) use limits::TierLimits;
pub use limits::{BodyLimits, DrainLimits};
pub use policy::DEFAULT_BODY_LIMIT;
