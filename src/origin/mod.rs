//! Origins: publishable keys only from the sites they were issued for.
//!
//! A publishable key is visible to anyone who loads the page it is embedded
//! in. [`OriginLayer`] makes it useless from other sites' pages: a browser
//! always states the page's origin in the `Origin` header, and the layer
//! refuses origins outside the key's allow-list with `origin_not_allowed`
//! (403, the refused origin in `details.origin`).
//!
//! The allow-list is the key record's own ([`KeyRecord::with_origins`]) or,
//! when that is empty, the route's [`OriginRule`]. Patterns are exact
//! origins, subdomain wildcards (`https://*.example.com`) and any-port
//! (`http://localhost:*`); see [`OriginPattern`]. This is a browser-side
//! protection: a script outside a browser can send any `Origin`, which is
//! why secret keys exist.
//!
//! [`KeyRecord::with_origins`]: crate::key::KeyRecord::with_origins
//!
//! # CORS
//!
//! Put `tower_http::cors::CorsLayer` *outside* the gate. Preflights then get
//! their CORS answer without a key, and rejections carry
//! `Access-Control-Allow-Origin` too, so browser code can read the error
//! body instead of seeing an opaque network error.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tollgate::key::{KeyKind, KeyRecord, Principal};
//! use tollgate::origin::{OriginLayer, OriginRule};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let policy = OriginRule::new().allow(["https://app.example.com"]).unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(OriginLayer::new(policy))
//!     .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! // (A KeyLayer would insert the principal; here it is inserted by hand.)
//! let principal = Principal::new(KeyRecord::new("key_1", "acme", KeyKind::Publishable).into());
//! let mut request = Request::post("/v1/track").header("origin", "https://evil.example").body(()).unwrap();
//! request.extensions_mut().insert(principal);
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # });
//! ```

mod check;
pub(crate) mod policy;
mod rule;

pub use crate::context::origin::OriginPattern;
pub use check::{OriginCheck, OriginLayer, OriginService};
pub use rule::{MissingOrigin, OriginRule};
