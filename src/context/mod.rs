//! What the checks of one request tell each other, in one place: the
//! second floor of the crate, above [`error`](crate::error), [`clock`](crate::clock)
//! and [`Answer`](crate::Answer).
//!
//! Checks never talk through globals: each reads and writes the request's
//! extensions, so the same check works alone in a `ServiceBuilder` and inside
//! the [`Gate`](crate::gate::Gate). This is the whole contract:
//!
//! | what | type in the extensions | written by | read by |
//! |---|---|---|---|
//! | the matched route | [`Route`] | [`RouteCheck`](crate::route::RouteCheck), [`RouteLayer`](crate::route::RouteLayer) | every check with per-route settings; the renderer (route name); your handler |
//! | the caller | [`Principal`] | [`KeyCheck`](crate::key::KeyCheck) | origin, scope and rate-limit checks; your handler (an axum extractor) |
//! | the peer's address | [`SocketAddr`] (or axum's `ConnectInfo<SocketAddr>`) | your server's accept loop | the rate-limit check, to partition by client IP |
//!
//! Headers a check wants on the response (the rate-limit headers) go into
//! the [`ResponseHeaders`](crate::check::ResponseHeaders) the pipeline hands
//! every check; a rejection's own headers ride on its
//! [`ApiError`].
//!
//! Rules every check keeps:
//!
//! - **No route** in the extensions (no route check ran before it): the
//!   check uses its default setting.
//! - **A route from another table** than the one its settings were built
//!   for: the request is refused with `internal_error` and an error is logged
//!   — never the defaults, which could be weaker than the route's own rules
//!   (see [`PerRoute::for_route`](crate::route::PerRoute::for_route)).
//! - **A public route** has no principal: origin and scope checks pass, and
//!   rate limits partition by client address. So has a route with optional
//!   authentication (`anonymous`) called without a key: the key check marks
//!   the request anonymous, and [`caller`] answers `Public` for it. A key
//!   that is presented there is judged in full.
//! - **Elsewhere, no principal** (the check was placed before the key check)
//!   is `missing_api_key`: [`caller`].

use std::net::{IpAddr, SocketAddr};

use http::{Extensions, Request};

use crate::error::{ApiError, ErrorCode};

pub(crate) mod client_ip;
pub(crate) mod credits;
pub(crate) mod digest;
pub(crate) mod gcra;
pub(crate) mod kind;
pub(crate) mod meter;
pub(crate) mod origin;
pub(crate) mod path;
pub(crate) mod per_route;
pub(crate) mod principal;
pub(crate) mod quota;
pub(crate) mod record;
pub(crate) mod route;
pub(crate) mod routes;
pub(crate) mod shadow;
pub(crate) mod window;

use principal::Principal;
use route::Route;
use shadow::Anonymous;

/// The route a request matched, if a route check ran.
#[inline]
pub fn route<B>(request: &Request<B>) -> Option<&Route> {
    request.extensions().get::<Route>()
}

/// The authenticated caller, if a key check admitted the request.
#[inline]
pub fn principal<B>(request: &Request<B>) -> Option<&Principal> {
    request.extensions().get::<Principal>()
}

/// Whether the request's route is public (no key needed).
#[inline]
pub fn is_public<B>(request: &Request<B>) -> bool {
    route(request).is_some_and(Route::is_public)
}

/// Who a request is from, as far as the checks after the key check are
/// concerned.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Caller<'a> {
    /// An authenticated key.
    Key(&'a Principal),
    /// A public route (no key needed, none checked), or a route with
    /// optional authentication called without a key.
    Public,
}

/// The caller of `request`: its principal, `Public` on a public route, or
/// `missing_api_key` when a key was needed and no key check admitted it.
pub fn caller<B>(request: &Request<B>) -> Result<Caller<'_>, ApiError> {
    caller_given(request, principal(request))
}

/// [`caller`], for a check that has already looked up the request's
/// principal (`principal`, as [`principal`] gives it).
pub(crate) fn caller_given<'a, B>(
    request: &'a Request<B>,
    principal: Option<&'a Principal>,
) -> Result<Caller<'a>, ApiError> {
    if let Some(principal) = principal {
        return Ok(Caller::Key(principal));
    }
    if is_public(request) || request.extensions().get::<Anonymous>().is_some() {
        return Ok(Caller::Public);
    }
    Err(ApiError::from(ErrorCode::MISSING_API_KEY))
}

/// The address of the peer that sent the request, as the server recorded
/// it: a [`SocketAddr`] in the extensions (insert it in your accept loop),
/// or axum's `ConnectInfo<SocketAddr>` with the `axum` feature.
pub fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(addr.ip());
    }
    peer_ip_from_framework(extensions)
}

#[cfg(feature = "axum")]
fn peer_ip_from_framework(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

#[cfg(not(feature = "axum"))]
fn peer_ip_from_framework(_: &Extensions) -> Option<IpAddr> {
    None
}
