//! [`ConfigError`]: a configuration mistake, shared by every builder.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A configuration mistake found at start-up.
///
/// It names the field at fault and, when the setting belongs to a route, the
/// route's pattern, so a bad config file points at the line to fix. When
/// another error caused it (a file that cannot be read, TOML that does not
/// parse), that error is its [`source`](Error::source).
///
/// ```
/// use tollgate::route::Routes;
///
/// let error = Routes::builder().route("FETCH /v1").build().unwrap_err();
/// assert_eq!(error.field(), "route");
/// assert!(error.to_string().contains("FETCH /v1"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConfigError {
    route: Option<String>,
    field: String,
    reason: String,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl ConfigError {
    /// A mistake in `field`, explained by `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            route: None,
            field: field.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// Attributes the mistake to the route with pattern `route`.
    #[must_use]
    pub fn in_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Records the error that caused this one.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        self.source = Some(Arc::from(source.into()));
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

/// Two mistakes are the same when they name the same route, field and
/// reason (whatever caused them).
impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        self.route == other.route && self.field == other.field && self.reason == other.reason
    }
}

impl Eq for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Some(route) => write!(f, "route `{route}`: `{}`: {}", self.field, self.reason),
            None => write!(f, "`{}`: {}", self.field, self.reason),
        }
    }
}

impl Error for ConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}
