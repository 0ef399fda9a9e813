//! [`PerRoute`]: one setting per route, with a default.

use std::fmt;

use super::route::{Route, TableId};
use super::routes::Routes;
use crate::ConfigError;
use crate::error::{ApiError, ErrorCode};

/// A layer's setting for each route of a [`Routes`] table, and a default for
/// every other request (unlisted routes, unmatched requests, and requests
/// that reached the layer without a [`RouteLayer`](crate::route::RouteLayer)).
///
/// Settings are resolved to dense route ids at start-up, so reading one per
/// request is an index, not a string lookup. A single value converts into a
/// `PerRoute` that applies everywhere.
///
/// ```
/// use http::Method;
/// use tollgate::route::{PerRoute, Routes};
///
/// let routes = Routes::builder().route("POST /v1/track").route("POST /v1/batch").build().unwrap();
/// let caps = PerRoute::new(&routes, 1024_u64)
///     .route("POST /v1/batch", 512 * 1024)
///     .unwrap();
/// assert_eq!(caps.get(Some(routes.find(&Method::POST, "/v1/batch"))), Some(&(512 * 1024)));
/// assert_eq!(caps.get(Some(routes.find(&Method::POST, "/v1/track"))), Some(&1024));
/// assert_eq!(caps.get(None), Some(&1024));
///
/// // A route of another table gets no setting at all, not the default.
/// let other = Routes::builder().route("POST /v1/other").build().unwrap();
/// assert_eq!(caps.get(Some(other.find(&Method::POST, "/v1/other"))), None);
///
/// // An unknown route is a configuration error that names it.
/// let error = PerRoute::new(&routes, 0_u64).route("GET /v1/nope", 1).unwrap_err();
/// assert_eq!(error.route(), Some("GET /v1/nope"));
/// ```
#[derive(Clone)]
pub struct PerRoute<T> {
    default: T,
    table: Option<TableId>,
    by_route: Vec<Option<T>>,
    routes: Option<Routes>,
}

impl<T> PerRoute<T> {
    /// `value` for every request.
    pub fn uniform(value: T) -> Self {
        Self {
            default: value,
            table: None,
            by_route: Vec::new(),
            routes: None,
        }
    }

    /// `default` for every route of `routes` until [`route`](Self::route)
    /// sets another.
    pub fn new(routes: &Routes, default: T) -> Self {
        let mut by_route = Vec::with_capacity(routes.len());
        by_route.resize_with(routes.len(), || None);
        Self {
            default,
            table: Some(routes.table_id()),
            by_route,
            routes: Some(routes.clone()),
        }
    }

    /// Sets the value for the route named `name` (its pattern, or `default`
    /// for unmatched requests). An unknown name is an error.
    pub fn route(mut self, name: &str, value: T) -> Result<Self, ConfigError> {
        self.set(name, value)?;
        Ok(self)
    }

    /// Sets the value for the route named `name`, in place.
    pub fn set(&mut self, name: &str, value: T) -> Result<(), ConfigError> {
        let Some(routes) = &self.routes else {
            return Err(ConfigError::new(
                "route",
                "this setting applies to every route; build it with `PerRoute::new(&routes, …)` to set one per route",
            )
            .in_route(name));
        };
        let Some(route) = routes.get(name) else {
            return Err(ConfigError::new("route", "no such route is declared").in_route(name));
        };
        self.by_route[route.id().index()] = Some(value);
        Ok(())
    }

    /// The setting for `route`: its own, else the default (also for no
    /// route at all). `None` when `route` comes from another route table
    /// than the one these settings were built for: the default could be
    /// weaker than that route's own rules, so there is no answer.
    #[inline]
    pub fn get(&self, route: Option<&Route>) -> Option<&T> {
        let Some(route) = route else {
            return Some(&self.default);
        };
        match self.table {
            None => Some(&self.default),
            Some(table) if table == route.table() => Some(
                self.by_route
                    .get(route.id().index())
                    .and_then(Option::as_ref)
                    .unwrap_or(&self.default),
            ),
            Some(_) => None,
        }
    }

    /// The setting for `route` as a check needs it: a route from another
    /// table is refused with `internal_error`, and an error is logged (a
    /// route layer and a check were built from different route tables).
    #[inline]
    pub fn for_route(&self, route: Option<&Route>) -> Result<&T, ApiError> {
        self.get(route).ok_or_else(|| {
            #[cfg(feature = "tracing")]
            tracing::error!(
                target: "tollgate",
                route = route.map(Route::name),
                "a request was tagged by a route table these settings were not built for: \
                 build every layer from the same `Routes` (refused with internal_error)"
            );
            ApiError::from(ErrorCode::INTERNAL_ERROR)
        })
    }

    /// The default setting.
    pub fn default_value(&self) -> &T {
        &self.default
    }

    /// Every explicitly set value, with its route name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().flat_map(move |routes| {
            routes
                .iter()
                .zip(&self.by_route)
                .filter_map(|(route, value)| value.as_ref().map(|value| (route.name(), value)))
        })
    }

    /// A setting for every route of the table (each made by `make` from the
    /// route and its value, explicit or default), and for requests without a
    /// route (`make(None, default)`).
    pub(crate) fn resolve<U, E>(
        &self,
        mut make: impl FnMut(Option<&Route>, &T) -> Result<U, E>,
    ) -> Result<PerRoute<U>, E> {
        let default = make(None, &self.default)?;
        let mut by_route = Vec::with_capacity(self.by_route.len());
        if let Some(routes) = &self.routes {
            for (route, value) in routes.iter().zip(&self.by_route) {
                by_route.push(Some(make(
                    Some(route),
                    value.as_ref().unwrap_or(&self.default),
                )?));
            }
        }
        Ok(PerRoute {
            default,
            table: self.table,
            by_route,
            routes: self.routes.clone(),
        })
    }

    /// Applies `change` to the default and to every set value.
    pub fn map<U>(self, mut change: impl FnMut(T) -> U) -> PerRoute<U> {
        PerRoute {
            default: change(self.default),
            table: self.table,
            by_route: self
                .by_route
                .into_iter()
                .map(|value| value.map(&mut change))
                .collect(),
            routes: self.routes,
        }
    }
}

impl<T> From<T> for PerRoute<T> {
    fn from(value: T) -> Self {
        Self::uniform(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for PerRoute<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"*", &self.default);
        for (name, value) in self.iter() {
            map.entry(&name, value);
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn routes_of_another_table_get_nothing() {
        let a = Routes::builder().route("GET /x").build().unwrap();
        let b = Routes::builder()
            .route("GET /y")
            .route("GET /x")
            .build()
            .unwrap();
        let settings = PerRoute::new(&a, 1).route("GET /x", 2).unwrap();
        assert_eq!(settings.get(Some(a.find(&Method::GET, "/x"))), Some(&2));
        assert_eq!(settings.get(Some(b.find(&Method::GET, "/x"))), None);
        let refused = settings.for_route(Some(b.find(&Method::GET, "/x")));
        assert_eq!(refused.unwrap_err().code(), &ErrorCode::INTERNAL_ERROR);
        // A table built again from the same declarations is the same table.
        let again = Routes::builder().route("GET /x").build().unwrap();
        assert_eq!(settings.get(Some(again.find(&Method::GET, "/x"))), Some(&2));
        // Uniform settings apply to every table.
        assert_eq!(
            PerRoute::uniform(7).get(Some(b.find(&Method::GET, "/x"))),
            Some(&7)
        );
    }

    #[test]
    fn uniform_settings_cannot_name_routes() {
        let error = PerRoute::uniform(1).route("GET /x", 2).unwrap_err();
        assert_eq!(error.route(), Some("GET /x"));
    }

    #[test]
    fn names_are_matched_regardless_of_spacing_and_default_is_settable() {
        let routes = Routes::builder().route("GET /x").build().unwrap();
        let settings = PerRoute::new(&routes, 1)
            .route("GET   /x", 2)
            .unwrap()
            .route("default", 3)
            .unwrap();
        assert_eq!(
            settings.get(Some(routes.find(&Method::GET, "/x"))),
            Some(&2)
        );
        assert_eq!(
            settings.get(Some(routes.find(&Method::GET, "/y"))),
            Some(&3)
        );
        assert_eq!(settings.get(None), Some(&1));
        let names: Vec<_> = settings
            .iter()
            .map(|(name, value)| (name.to_owned(), *value))
            .collect();
        assert_eq!(
            names,
            vec![("default".to_owned(), 3), ("GET /x".to_owned(), 2)]
        );
    }
}
