//! [`Routes`]: the table of route patterns, matched once per request.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use http::{Method, Request};

use super::path::{TrailingSlash, normalize, with_path};
use super::route::{Route, RouteId, TableId, make_route};
use crate::ConfigError;

/// The table of routes: `METHOD /path/{param}` patterns (method `*` for any),
/// matched with [`matchit`], each with a dense [`RouteId`].
///
/// Requests that match no pattern get the default route (id 0, name
/// `default`), which needs a key unless made public. Cheap to clone.
///
/// ```
/// use http::Method;
/// use tollgate::route::Routes;
///
/// let routes = Routes::builder()
///     .public("GET /health")
///     .route("GET /v1/items/{id}")
///     .route("* /v1/any")
///     .build()
///     .unwrap();
/// let route = routes.find(&Method::GET, "/v1/items/42");
/// assert_eq!(route.name(), "GET /v1/items/{id}");
/// assert!(routes.find(&Method::GET, "/health").is_public());
/// assert!(routes.find(&Method::DELETE, "/v1/any").id().index() > 0);
/// assert!(routes.find(&Method::GET, "/nowhere").is_default());
/// ```
#[derive(Clone)]
pub struct Routes {
    table: Arc<Table>,
}

struct Table {
    id: TableId,
    trailing_slash: TrailingSlash,
    routes: Vec<Route>,
    by_method: Vec<(Method, matchit::Router<RouteId>)>,
    any_method: matchit::Router<RouteId>,
}

impl Routes {
    /// Starts a table.
    pub fn builder() -> RoutesBuilder {
        RoutesBuilder::default()
    }

    /// The route `method` and `path` match, or the default route.
    ///
    /// A method-specific pattern wins over a `*` one; `HEAD` falls back to
    /// `GET` patterns.
    pub fn find(&self, method: &Method, path: &str) -> &Route {
        let table = &*self.table;
        let id = table
            .lookup(method, path)
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| table.lookup(&Method::GET, path))
                    .flatten()
            })
            .or_else(|| table.any_method.at(path).ok().map(|found| *found.value))
            .unwrap_or(RouteId::DEFAULT);
        &table.routes[id.index()]
    }

    /// The route with this name (its pattern, `METHOD /path`, or `default`);
    /// spacing between method and path does not matter.
    pub fn get(&self, name: &str) -> Option<&Route> {
        let mut words = name.split_whitespace();
        let (Some(method), path) = (words.next(), words.next()) else {
            return None;
        };
        if words.next().is_some() {
            return None;
        }
        self.table.routes.iter().find(|route| {
            let mut own = route.name().split_whitespace();
            own.next() == Some(method) && own.next() == path
        })
    }

    /// Matches `request` on its normalized path (see [`TrailingSlash`] and
    /// the [module docs](super)), hands the normalized path on in its URI
    /// when that differs, and inserts the matched [`Route`] into its
    /// extensions.
    pub fn tag<B>(&self, request: &mut Request<B>) {
        let path = normalize(request.uri().path(), self.table.trailing_slash);
        let route = self.find(request.method(), &path).clone();
        if let Cow::Owned(path) = &path
            && let Some(uri) = with_path(request.uri(), path)
        {
            *request.uri_mut() = uri;
        }
        request.extensions_mut().insert(route);
    }

    /// How trailing slashes are matched.
    pub fn trailing_slash(&self) -> TrailingSlash {
        self.table.trailing_slash
    }

    pub(crate) fn table_id(&self) -> TableId {
        self.table.id
    }

    /// The route with this id.
    pub fn by_id(&self, id: RouteId) -> Option<&Route> {
        self.table.routes.get(id.index())
    }

    /// The default route.
    pub fn default_route(&self) -> &Route {
        &self.table.routes[0]
    }

    /// All routes, the default first, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.table.routes.iter()
    }

    /// How many routes there are, the default included.
    pub fn len(&self) -> usize {
        self.table.routes.len()
    }

    /// Always false: there is at least the default route.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Table {
    fn lookup(&self, method: &Method, path: &str) -> Option<RouteId> {
        let (_, router) = self.by_method.iter().find(|(m, _)| m == method)?;
        router.at(path).ok().map(|found| *found.value)
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.table.routes.iter()).finish()
    }
}

/// Builds [`Routes`]; see there.
#[derive(Debug, Default)]
pub struct RoutesBuilder {
    declared: Vec<(String, bool)>,
    default_public: bool,
    trailing_slash: TrailingSlash,
}

impl RoutesBuilder {
    /// Declares a route that needs an API key.
    #[must_use]
    pub fn route(mut self, pattern: impl Into<String>) -> Self {
        self.declared.push((pattern.into(), false));
        self
    }

    /// Declares a public route: no API key needed.
    #[must_use]
    pub fn public(mut self, pattern: impl Into<String>) -> Self {
        self.declared.push((pattern.into(), true));
        self
    }

    /// Declares a route, public or not.
    #[must_use]
    pub fn declare(mut self, pattern: impl Into<String>, public: bool) -> Self {
        self.declared.push((pattern.into(), public));
        self
    }

    /// Makes unmatched requests public (by default they need a key).
    #[must_use]
    pub fn default_public(mut self, public: bool) -> Self {
        self.default_public = public;
        self
    }

    /// How a trailing slash is matched (default: trimmed, so `/v1/track/`
    /// is `/v1/track`).
    #[must_use]
    pub fn trailing_slash(mut self, trailing_slash: TrailingSlash) -> Self {
        self.trailing_slash = trailing_slash;
        self
    }

    /// Checks every pattern and builds the table.
    pub fn build(self) -> Result<Routes, ConfigError> {
        let mut declared: Vec<(String, bool)> =
            vec![(Route::DEFAULT_NAME.into(), self.default_public)];
        let mut by_method: Vec<(Method, matchit::Router<RouteId>)> = Vec::new();
        let mut any_method = matchit::Router::new();
        let mut seen = HashSet::new();
        for (pattern, public) in self.declared {
            let (method, path) = parse_pattern(&pattern)?;
            if self.trailing_slash == TrailingSlash::Trim && path.len() > 1 && path.ends_with('/') {
                return Err(ConfigError::new(
                    "route",
                    "the path ends with `/`, but trailing slashes are trimmed before matching: \
                     remove it, or keep trailing slashes (`trailing_slash = \"keep\"`)",
                )
                .in_route(pattern.as_str()));
            }
            let name = match &method {
                Some(method) => format!("{method} {path}"),
                None => format!("* {path}"),
            };
            if !seen.insert(name.clone()) {
                return Err(ConfigError::new("route", "declared twice").in_route(name));
            }
            let id = RouteId(u32::try_from(declared.len()).map_err(|_| {
                ConfigError::new("route", "too many routes").in_route(name.clone())
            })?);
            let router = match method {
                None => &mut any_method,
                Some(method) => {
                    let index = match by_method.iter().position(|(m, _)| *m == method) {
                        Some(index) => index,
                        None => {
                            by_method.push((method, matchit::Router::new()));
                            by_method.len() - 1
                        }
                    };
                    &mut by_method[index].1
                }
            };
            router.insert(path, id).map_err(|error| {
                ConfigError::new("route", format!("the path cannot be routed: {error}"))
                    .in_route(name.clone())
            })?;
            declared.push((name, public));
        }
        let table = TableId::of(declared.iter().map(|(name, _)| name.as_str()));
        let routes = declared
            .into_iter()
            .enumerate()
            .map(|(id, (name, public))| make_route(table, RouteId(id as u32), name.into(), public))
            .collect();
        Ok(Routes {
            table: Arc::new(Table {
                id: table,
                trailing_slash: self.trailing_slash,
                routes,
                by_method,
                any_method,
            }),
        })
    }
}

/// The most `{parameters}` one route's path may have.
pub const MAX_PARAMETERS: usize = 16;

/// Splits `METHOD /path` into an optional method (`None` for `*`) and a path.
fn parse_pattern(pattern: &str) -> Result<(Option<Method>, &str), ConfigError> {
    let error = |reason: &str| ConfigError::new("route", reason).in_route(pattern);
    let mut parts = pattern.split_whitespace();
    let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(error(
            "expected `METHOD /path`, for example `POST /v1/track`",
        ));
    };
    if !path.starts_with('/') {
        return Err(error("the path must start with `/`"));
    }
    // The router takes up to 26 parameters and panics past that; counting
    // every brace (an escaped `{{` counts twice) keeps well under it.
    if path.bytes().filter(|&b| b == b'{').count() > MAX_PARAMETERS {
        return Err(error(&format!(
            "a path may have at most {MAX_PARAMETERS} parameters"
        )));
    }
    if method == "*" {
        return Ok((None, path));
    }
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    if !KNOWN.contains(&method) {
        return Err(error(
            "unknown method: use an upper-case HTTP method or `*`",
        ));
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| error("unknown method"))?;
    Ok((Some(method), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes::builder()
            .public("GET /health")
            .route("POST /v1/track")
            .route("GET /v1/items/{id}")
            .route("* /v1/items/{id}")
            .route("GET /files/{*rest}")
            .build()
            .unwrap()
    }

    #[test]
    fn too_many_parameters_is_a_config_error_not_a_panic() {
        // Found by the `routes` fuzz target: the router panics past 26.
        let path: String = (0..30).map(|i| format!("/{{p{i}}}")).collect();
        let error = Routes::builder()
            .route(format!("GET {path}"))
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "route");
        assert!(error.reason().contains("at most 16"), "{error}");
        let path: String = (0..MAX_PARAMETERS).map(|i| format!("/{{p{i}}}")).collect();
        let routes = Routes::builder()
            .route(format!("GET {path}"))
            .build()
            .unwrap();
        let request: String = (0..MAX_PARAMETERS).map(|i| format!("/{i}")).collect();
        assert!(!routes.find(&Method::GET, &request).is_default());
    }

    #[test]
    fn ids_are_dense_in_declaration_order() {
        let routes = routes();
        let ids: Vec<usize> = routes.iter().map(|r| r.id().index()).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(routes.by_id(RouteId(2)).unwrap().name(), "POST /v1/track");
        assert_eq!(routes.get("GET /health").unwrap().id(), RouteId(1));
    }

    #[test]
    fn parameters_share_one_route() {
        let routes = routes();
        let a = routes.find(&Method::GET, "/v1/items/1");
        let b = routes.find(&Method::GET, "/v1/items/2");
        assert_eq!(a.id(), b.id());
        assert_eq!(a.name(), "GET /v1/items/{id}");
        assert_eq!(
            routes.find(&Method::GET, "/files/a/b/c").name(),
            "GET /files/{*rest}"
        );
    }

    #[test]
    fn method_specific_wins_then_any_then_default() {
        let routes = routes();
        assert_eq!(
            routes.find(&Method::PUT, "/v1/items/1").name(),
            "* /v1/items/{id}"
        );
        assert_eq!(routes.find(&Method::HEAD, "/health").name(), "GET /health");
        assert!(routes.find(&Method::GET, "/v1/track").is_default());
        assert!(!routes.find(&Method::GET, "/v1/track").is_public());
        assert!(routes.find(&Method::GET, "/health").is_public());
    }

    #[test]
    fn default_route_can_be_public() {
        let routes = Routes::builder().default_public(true).build().unwrap();
        assert!(routes.find(&Method::GET, "/x").is_public());
        assert_eq!(routes.len(), 1);
    }

    #[test]
    fn bad_patterns_are_named() {
        let cases = [
            ("POST", "expected"),
            ("post /v1", "unknown method"),
            ("GET v1", "start with"),
            ("GET /a /b", "expected"),
            ("GET /v1/{", "cannot be routed"),
        ];
        for (pattern, reason) in cases {
            let error = Routes::builder().route(pattern).build().unwrap_err();
            assert_eq!(error.route(), Some(pattern), "{pattern}");
            assert!(error.reason().contains(reason), "{pattern}: {error}");
        }
        let error = Routes::builder()
            .route("GET /a")
            .public("GET  /a")
            .build()
            .unwrap_err();
        assert_eq!(error.route(), Some("GET /a"));
        assert!(error.reason().contains("twice"));
    }
}
