//! # tollgate
//!
//! Composable [Tower](https://docs.rs/tower) layers that guard the edge of a
//! public API, the way a good API gateway would:
//!
//! - [`RouteLayer`](route::RouteLayer) tags each request with the [`Route`](route::Route)
//!   it matched, so every later layer can apply per-route settings;
//! - [`KeyLayer`](key::KeyLayer) classifies API keys by prefix (`pk_` publishable,
//!   `sk_` secret, `rk_` restricted), validates their checksum, looks their
//!   digest up in a [`KeyStore`](key::KeyStore) and inserts the caller's
//!   [`Principal`](key::Principal) into the request;
//! - every rejection, from every layer, is one standard error response built
//!   by a shared [`ErrorRenderer`](error::ErrorRenderer): a JSON envelope by
//!   default, RFC 9457 `application/problem+json`, any shape of your own, or a
//!   gRPC status when the request is gRPC.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyLayer, KeyRecord};
//! use tollgate::route::{RouteLayer, Routes};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio_test_shim::block_on(async {
//! let hasher = KeyHasher::new();
//! let store = InMemoryKeyStore::new();
//! let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
//! store.insert(minted.digest(), KeyRecord::new("key_1", "demo", KeyKind::Secret));
//!
//! let routes = Routes::builder().public("GET /health").route("POST /v1/track").build().unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(RouteLayer::new(routes))
//!     .layer(KeyLayer::new(store).hasher(hasher))
//!     .service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::from("ok"))) });
//!
//! let request = Request::post("/v1/track")
//!     .header("authorization", format!("Bearer {}", minted.key()))
//!     .body(String::new())
//!     .unwrap();
//! let response = service.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let anonymous = Request::post("/v1/track").body(String::new()).unwrap();
//! let response = service.oneshot(anonymous).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # });
//! # mod tokio_test_shim { pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) } }
//! ```
//!
//! Features: `tracing` (default: one event per rejection), `axum`
//! (extractors and `IntoResponse` for the crate's types), `redis`
//! ([`RedisRateStore`](rate_limit::RedisRateStore), buckets shared by
//! several instances).
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Floor 1, the ground: imports nothing of the crate.
mod answer;
pub mod clock;
pub mod error;
mod fields;
mod hash;
// Floor 2: the request context.
pub mod context;
// Floor 3: rendering.
pub mod render;
// Floor 4: the pipeline.
pub mod check;
// Floor 5: metrics.
#[cfg(feature = "metrics")]
pub mod metrics;
// Floor 6: the checks.
pub mod body_limit;
pub mod key;
pub mod origin;
pub mod rate_limit;
pub mod route;
pub mod scope;
// Floor 7: the gate.
pub mod gate;

pub use answer::Answer;
pub use error::config_error::ConfigError;
