//! [`Principal`]: who is calling, as the key layer established it.

use std::fmt;
use std::sync::Arc;

use super::parse::{KeyEnv, KeyKind};
use super::store::KeyRecord;
use crate::origin::OriginPattern;

/// The authenticated caller: the key's id, project, kind, environment, scopes
/// and allowed origins. [`KeyLayer`](super::KeyLayer) inserts it into the
/// request's extensions; later layers and handlers read it.
///
/// Cheap to clone (one reference count). Its `Debug` shows the key id,
/// never the key.
///
/// ```
/// use std::sync::Arc;
/// use tollgate::key::{KeyKind, KeyRecord, Principal};
///
/// let principal = Principal::new(Arc::new(KeyRecord::new("key_1", "acme", KeyKind::Secret)));
/// assert_eq!(principal.project(), "acme");
/// assert_eq!(principal.scopes(), ["ingest", "read", "admin"]);
/// assert!(format!("{principal:?}").contains("key_1"));
/// ```
#[derive(Clone)]
pub struct Principal {
    record: Arc<KeyRecord>,
}

impl Principal {
    /// The principal of a stored key record.
    pub fn new(record: Arc<KeyRecord>) -> Self {
        Self { record }
    }

    /// The key's id (safe to log).
    pub fn key_id(&self) -> &str {
        self.record.key_id()
    }

    /// The project the key belongs to.
    pub fn project(&self) -> &str {
        self.record.project()
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.record.kind()
    }

    /// The key's environment, if recorded.
    pub fn env(&self) -> Option<KeyEnv> {
        self.record.env()
    }

    /// The key's tier, if it has one.
    pub fn tier(&self) -> Option<&str> {
        self.record.tier()
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &[String] {
        self.record.scopes()
    }

    /// The origins a browser may use this key from.
    pub fn origins(&self) -> &[OriginPattern] {
        self.record.origins()
    }

    /// The whole stored record.
    pub fn record(&self) -> &Arc<KeyRecord> {
        &self.record
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("key_id", &self.key_id())
            .field("project", &self.project())
            .field("kind", &self.kind())
            .field("env", &self.env())
            .field("tier", &self.tier())
            .field("scopes", &self.scopes())
            .finish()
    }
}

/// With the `axum` feature, `Principal` is an extractor. Without a principal
/// (no gate in front, or a public route) it answers the standard
/// `missing_api_key`; use `Option<Principal>` on public routes.
#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Principal {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(principal.clone()),
            None => {
                let error = crate::error::ApiError::from(crate::error::ErrorCode::MISSING_API_KEY);
                let mut response =
                    crate::error::ErrorRenderer::default().respond_parts(error, parts);
                // Behind a gate, the gate renders it again in its shape.
                response
                    .extensions_mut()
                    .insert(crate::error::RenderedByDefault);
                Err(response.map(axum::body::Body::from))
            }
        }
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}
