//! Routes: which declared route a request is for.
//!
//! [`Routes`] matches `METHOD /path/{param}` patterns and gives each route a
//! dense [`RouteId`] and a name (its pattern).
//!
//! Requests are matched on their normalized path — slashes merged, `.` and
//! `..` resolved, percent-encoded unreserved characters decoded, a trailing
//! slash trimmed unless [`TrailingSlash::Keep`] — and the normalized path is
//! what the inner service receives. So `/v1//track`, `/v1/track/` and
//! `/v1/%74rack` are all `POST /v1/track`, for the gate and for the handler
//! alike: no spelling of a path reaches a route's handler under another
//! route's policy, whatever the application normalizes itself. [`RouteLayer`] matches each
//! request once and inserts its [`Route`] into the request's extensions,
//! where every later layer reads it for its per-route settings, kept in a
//! [`PerRoute`].
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tollgate::route::{Route, RouteLayer, Routes};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let routes = Routes::builder().route("GET /v1/items/{id}").build().unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(RouteLayer::new(routes))
//!     .service_fn(|request: Request<()>| async move {
//!         let route = request.extensions().get::<Route>().unwrap();
//!         Ok::<_, Infallible>(Response::new(route.name().to_owned()))
//!     });
//! let response = service.oneshot(Request::get("/v1/items/7").body(()).unwrap()).await.unwrap();
//! assert_eq!(response.body(), "GET /v1/items/{id}");
//! # });
//! ```

mod layer;

pub use crate::context::path::TrailingSlash;
pub use crate::context::per_route::PerRoute;
pub use crate::context::route::{Route, RouteId};
pub use crate::context::routes::{MAX_PARAMETERS, Routes, RoutesBuilder};
pub use layer::{RouteCheck, RouteLayer, RouteService};
