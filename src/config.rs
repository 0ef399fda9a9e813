//! Configuration errors, shared by every builder in the crate.

use std::fmt;

/// A configuration mistake found at start-up.
///
/// It names the field at fault and, when the setting belongs to a route, the
/// route's pattern, so a bad config file points at the line to fix.
///
/// ```
/// use tollgate::route::Routes;
///
/// let error = Routes::builder().route("FETCH /v1").build().unwrap_err();
/// assert_eq!(error.field(), "route");
/// assert!(error.to_string().contains("FETCH /v1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    route: Option<String>,
    field: String,
    reason: String,
}

impl ConfigError {
    /// A mistake in `field`, explained by `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            route: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Attributes the mistake to the route with pattern `route`.
    #[must_use]
    pub fn in_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// The route pattern the mistake belongs to, if any.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// The name of the field at fault.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Some(route) => write!(f, "route `{route}`: `{}`: {}", self.field, self.reason),
            None => write!(f, "`{}`: {}", self.field, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}
