//! Scopes and key kinds: what a key may call.
//!
//! [`ScopeLayer`] applies one [`ScopeRule`] per route: the scopes a key must
//! hold (all of a list, or any of it) and the kinds of key the route accepts.
//! A granted scope `people.*` covers `people.view_paygap`; `*` covers
//! everything; otherwise scopes match exactly (`read` does not cover
//! `readwrite`).
//!
//! | rejection | status | details |
//! |---|---|---|
//! | `insufficient_scope` | 403 | `required`, `granted`, `missing`, `mode` |
//! | `key_kind_not_allowed` (or the route's own code) | 403 | `accepted`, `kind` |
//! | `not_found`, when the route is hidden | 404 | none |
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Method, Request, Response, StatusCode};
//! use tollgate::key::{KeyKind, KeyRecord, Principal};
//! use tollgate::route::{PerRoute, RouteLayer, Routes};
//! use tollgate::scope::{ScopeLayer, ScopeRule};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let routes = Routes::builder().route("GET /v1/stats").build().unwrap();
//! let rules = PerRoute::new(&routes, ScopeRule::new())
//!     .route("GET /v1/stats", ScopeRule::all_of(["read"]).unwrap())
//!     .unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(RouteLayer::new(routes))
//!     .layer(ScopeLayer::new(rules))
//!     .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! let ingest_only = Principal::new(KeyRecord::new("key_1", "acme", KeyKind::Publishable).into());
//! let mut request = Request::get("/v1/stats").body(()).unwrap();
//! request.extensions_mut().insert(ingest_only);
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # });
//! ```

mod check;
pub(crate) mod policy;
mod rule;
mod syntax;

pub use check::{ScopeCheck, ScopeLayer, ScopeService};
pub use rule::ScopeRule;
pub use syntax::covers;
