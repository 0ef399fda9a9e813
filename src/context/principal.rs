//! [`Principal`]: who is calling, as the key layer established it.

use std::fmt;
use std::sync::Arc;

use super::kind::{KeyEnv, KeyKind};
use super::origin::OriginPattern;
use super::record::KeyRecord;

/// The authenticated caller: the key's id, project, kind, environment, scopes
/// and allowed origins. [`KeyLayer`](crate::key::KeyLayer) inserts it into the
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
