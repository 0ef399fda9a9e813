//! # tollgate
//!
//! Composable [Tower](https://docs.rs/tower) layers that guard the edge of a
//! public API, the way a good API gateway would: API keys classified by
//! prefix (`pk_` publishable, `sk_` secret, `rk_` restricted) and checked
//! against a key store by digest, origin allow-lists for browser keys,
//! scopes and key kinds per route, keyed token-bucket rate limits with an
//! honest `Retry-After`, body caps, and one standard error response for
//! every rejection — for axum, hyper and tonic servers.
//!
//! ## The request path
//!
//! ```text
//! request ─► route ─► key ─► origin ─► scope ─► your checks ─► rate limit ─► body limit ─► your service
//! ```
//!
//! The [`Gate`](gate::Gate) is all of it in one Tower layer, built from one
//! policy per route ([`RoutePolicy`](gate::RoutePolicy)) or a configuration
//! file ([`GateConfig`](gate::GateConfig)); a [`LiveGate`](gate::LiveGate)
//! can be replaced while it serves. Each step is also a layer of its own:
//!
//! | layer | check | what it does |
//! |---|---|---|
//! | [`RouteLayer`](route::RouteLayer) | [`RouteCheck`](route::RouteCheck) | matches the request's [`Route`](route::Route) in the [`Routes`](route::Routes) table; every per-route setting is read by it |
//! | [`KeyLayer`](key::KeyLayer) | [`KeyCheck`](key::KeyCheck) | finds the key, checks its format and checksum, looks its digest up in a key store, inserts the caller's [`Principal`](key::Principal) |
//! | [`OriginLayer`](origin::OriginLayer) | [`OriginCheck`](origin::OriginCheck) | refuses browser keys from origins outside their allow-list |
//! | [`ScopeLayer`](scope::ScopeLayer) | [`ScopeCheck`](scope::ScopeCheck) | refuses keys without the route's scopes, or of a kind it does not take |
//! | [`RateLimitLayer`](rate_limit::RateLimitLayer) | [`RateLimitCheck`](rate_limit::RateLimitCheck) | one token-bucket decision per (partition, route), and the rate-limit headers |
//! | [`BodyLimitLayer`](body_limit::BodyLimitLayer) | — | caps the request body, declared or streamed |
//!
//! Every one of them is the same service, the check pipeline
//! ([`CheckLayer`](check::CheckLayer)): checks run in order in one service
//! and one response future, the first to refuse answers, and a refusal never
//! calls your service. A [`Check`](check::Check) of your own joins the same
//! pipeline. Every refusal is an [`ApiError`](error::ApiError) with a stable
//! code, rendered by one [`ErrorRenderer`](render::ErrorRenderer): a JSON
//! envelope by default, RFC 9457 problem details, a template, JSON-RPC, or a
//! gRPC status when the request is gRPC.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tollgate::gate::{Gate, RoutePolicy};
//! use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord};
//! use tollgate::rate_limit::Quota;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let hasher = KeyHasher::with_pepper(b"from a secret manager");
//! let store = InMemoryKeyStore::new();
//! let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
//! store.insert(minted.digest(), KeyRecord::new("key_1", "demo", KeyKind::Secret));
//!
//! let gate = Gate::builder(store)
//!     .hasher(hasher)
//!     .route("GET /health", RoutePolicy::public())
//!     .route("POST /v1/track", RoutePolicy::new().require_all(["ingest"]).quota(Quota::per_second(50)))
//!     .build()
//!     .unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(gate.layer())
//!     .service_fn(|_: Request<_>| async { Ok::<_, Infallible>(Response::new(String::from("ok"))) });
//!
//! let request = Request::post("/v1/track")
//!     .header("authorization", format!("Bearer {}", minted.key()))
//!     .body(String::new())
//!     .unwrap();
//! assert_eq!(service.clone().oneshot(request).await.unwrap().status(), StatusCode::OK);
//! let anonymous = Request::post("/v1/track").body(String::new()).unwrap();
//! assert_eq!(service.oneshot(anonymous).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # });
//! ```
//!
//! ## The crate in floors
//!
//! Each module imports only the floors below its own, never a module of
//! its floor (a test holds the code to this table):
//!
//! | floor | modules | what they hold |
//! |---|---|---|
//! | 1 | `error`, `clock`, `answer`, `hash`, `fields` | errors and codes ([`ApiError`](error::ApiError), [`ErrorCode`](error::ErrorCode), [`Rule`](error::Rule), [`ConfigError`], [`StoreError`](error::StoreError)), time, [`Answer`], keyed hashing, how settings are written |
//! | 2 | `context` | what checks hand each other: the route, the caller and its key record, key kinds, origin patterns, quotas, shadow mode ([`context`]) |
//! | 3 | `render` | how an error becomes a response |
//! | 4 | `check` | the pipeline, knowing no particular check: checks, the body limit step, draining refused bodies, what it reports |
//! | 5 | `metrics` | counters and histograms (feature `metrics`) |
//! | 6 | `route`, `key`, `origin`, `scope`, `rate_limit`, `body_limit` | the checks, their settings and their stores |
//! | 7 | `gate` | the builder and the configuration over all of them |
//!
//! Store implementers find their side in submodules: [`key::store`] and
//! [`rate_limit::store`]; the key format is [`key::format`].
//!
//! ## Features
//!
//! - `tracing` (default): one event per rejection, a `debug` span per
//!   request while a subscriber listens.
//! - `axum`: [`ApiError`](error::ApiError) as a response,
//!   [`Principal`](key::Principal) as an extractor.
//! - `redis`: `rate_limit::redis`, buckets shared by several instances.
//! - `metrics`: counters, a histogram and a gauge through the `metrics`
//!   facade (the `metrics` module).
//! - `tower-http`: request ids from the `RequestId` tower-http's
//!   `SetRequestIdLayer` leaves in a request's extensions.
//! - `grpc-details`: gRPC refusals carry `grpc-status-details-bin`
//!   (Google's rich error model, through `tonic-types`).
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The floors, as the table above lists them.
mod answer;
pub mod clock;
pub mod error;
mod fields;
mod hash;

pub mod context;

pub mod render;

pub mod check;

#[cfg(feature = "metrics")]
pub mod metrics;

pub mod body_limit;
pub mod key;
pub mod origin;
pub mod rate_limit;
pub mod route;
pub mod scope;

pub mod gate;

pub use answer::Answer;
pub use error::config_error::ConfigError;
