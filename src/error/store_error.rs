//! [`StoreError`]: a store could not answer.

use std::fmt;
use std::sync::Arc;

/// A store (of keys, or of shared rate-limit state) could not answer. The
/// text goes to logs, never to clients, who see `upstream_failed`.
///
/// A store that turns a lookup away at once, because too many are already
/// waiting on its backend, says so with [`StoreError::busy`]: the client
/// then sees `upstream_failed` with `503 Service Unavailable` and
/// `Retry-After: 1` instead of `502`. Cloning shares the source.
#[derive(Clone, Debug)]
pub struct StoreError {
    source: Arc<dyn std::error::Error + Send + Sync>,
    busy: bool,
}

impl StoreError {
    /// Wraps the store's own error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: Arc::from(source.into()),
            busy: false,
        }
    }

    /// The store refused to start the lookup (its backend has as many in
    /// flight as it allows), so that callers shed load instead of queueing.
    pub fn busy(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            busy: true,
            ..Self::new(source)
        }
    }

    /// Whether the lookup was refused at once ([`StoreError::busy`]).
    pub fn is_busy(&self) -> bool {
        self.busy
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store error: {}", self.source)?;
        // The causes too: a driver's "db error" says nothing on its own.
        let mut cause = self.source.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
