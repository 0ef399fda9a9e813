//! What the stores behind the layers (keys, shared rate limits) have in
//! common: an answer now or later, and an error.

use std::fmt;

/// A store's answer: at once, or through a future.
///
/// A store that can answer without waiting (in memory, or from a cache)
/// returns [`Answer::Ready`]: the layer then decides within `call`, with no
/// extra future state, no clone of the inner service and no allocation. A
/// store that must wait (a database, Redis) returns [`Answer::Pending`].
#[derive(Debug)]
pub enum Answer<T, F> {
    /// Decided now.
    Ready(T),
    /// To be decided by this future.
    Pending(F),
}

/// A store (of keys, or of shared rate-limit state) could not answer. The
/// text goes to logs, never to clients, who see `upstream_failed`.
#[derive(Debug)]
pub struct StoreError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Wraps the store's own error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store error: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
