//! [`KeyLayer`]: the pipeline with the key check, and its setters.

use std::time::Duration;

use http::HeaderName;

use super::check::KeyCheck;
use super::credential::CredentialSource;
use super::digest::KeyHasher;
use super::format::KeyParser;
use super::options::KeyOptions;
use super::store::KeyStore;
use crate::ConfigError;
use crate::check::{CheckLayer, CheckService};
use crate::clock::Clock;

/// Authenticates requests by API key; see the [module docs](super). A
/// [`CheckLayer`] with the [`KeyCheck`].
///
/// Cheap to clone. Its setters are the [`GateBuilder`](crate::gate::GateBuilder)'s
/// of the same names ([`KeyOptions`] holds most of them):
///
/// ```
/// use std::time::Duration;
/// use tollgate::key::format::KeyParser;
/// use tollgate::key::{InMemoryKeyStore, KeyHasher, KeyLayer};
///
/// let layer = KeyLayer::new(InMemoryKeyStore::new())
///     .hasher(KeyHasher::with_pepper(b"pepper"))
///     .parser(KeyParser::new().require_checksum(false))
///     .query_parameter("api_key")
///     .strip_credential(true)
///     .lookup_timeout(Some(Duration::from_millis(500)));
/// # let _ = layer;
/// ```
pub type KeyLayer<St> = CheckLayer<KeyCheck<St>>;

/// The service made by [`KeyLayer`].
pub type KeyService<S, St> = CheckService<S, KeyCheck<St>>;

impl<St: KeyStore> CheckLayer<KeyCheck<St>> {
    /// Authenticates against `store`, with SHA-256 digests (no pepper), the
    /// default key format, headers only, a 2 s lookup timeout and the default
    /// renderer.
    pub fn new(store: St) -> Self {
        Self::from_check(KeyCheck::new(store))
    }

    fn with(self, change: impl FnOnce(&mut KeyCheck<St>)) -> Self {
        self.change(|shared| {
            change(&mut shared.checks);
            // What was verified under other settings is not verified now.
            shared.checks.forget_verified();
        })
    }

    fn with_options(self, change: impl FnOnce(&mut KeyOptions)) -> Self {
        self.with(|check| change(&mut check.options))
    }

    /// Digests keys with `hasher` (set the pepper here).
    #[must_use]
    pub fn hasher(self, hasher: KeyHasher) -> Self {
        self.with(|check| check.hasher = hasher)
    }

    /// Parses keys with `parser` (prefix table, checksum, lengths).
    #[must_use]
    pub fn parser(self, parser: KeyParser) -> Self {
        self.with(|check| check.parser = parser)
    }

    /// Also accepts a key in the query parameter `name`, for publishable keys
    /// only (beacons cannot set headers). A secret or restricted key there is
    /// refused as `malformed_api_key`: URLs end up in logs.
    #[must_use]
    pub fn query_parameter(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with_options(|o| o.query_parameter = Some(name))
    }

    /// Reads a bare key from `header` instead of `X-API-Key`.
    #[must_use]
    pub fn credential_header(self, header: HeaderName) -> Self {
        self.with_options(|o| o.credential_header = header)
    }

    /// Reads keys only from `sources`; a key sent elsewhere is not seen
    /// (`missing_api_key`). `query` needs a [`query_parameter`](Self::query_parameter)
    /// first: without one it is an error naming `credentials`.
    pub fn credentials(
        self,
        sources: impl IntoIterator<Item = CredentialSource>,
    ) -> Result<Self, ConfigError> {
        let listed: Vec<_> = sources.into_iter().collect();
        self.checks().options.check_sources(&listed)?;
        Ok(self.with(|check| {
            check.set_sources(listed.iter().copied().collect());
            check.options.credentials = Some(listed);
        }))
    }

    /// Removes the credential (headers and query parameter) before the
    /// request reaches the inner service.
    #[must_use]
    pub fn strip_credential(self, strip: bool) -> Self {
        self.with_options(|o| o.strip_credential = strip)
    }

    /// How long the store has to answer before the request fails with
    /// `upstream_failed`; `None` waits forever. Needs a Tokio runtime with
    /// its timer enabled when a lookup does not finish at once.
    #[must_use]
    pub fn lookup_timeout(self, timeout: Option<Duration>) -> Self {
        self.with_options(|o| o.lookup_timeout = timeout)
    }

    /// Answers revoked keys `401 revoked_api_key` instead of
    /// `invalid_api_key` (the default, which does not tell a revoked key
    /// from one that never existed).
    #[must_use]
    pub fn reveal_revoked(self, reveal: bool) -> Self {
        self.with_options(|o| o.reveal_revoked = reveal)
    }

    /// Remembers up to `capacity` verified keys (0: none); see
    /// [`KeyOptions::verified_keys`].
    #[must_use]
    pub fn verified_keys(self, capacity: usize) -> Self {
        self.with_options(|o| o.verified_keys = capacity)
    }

    /// Reads the time (for key expiry) from `clock`.
    #[must_use]
    pub fn clock(self, clock: Clock) -> Self {
        self.with(|check| check.clock = clock)
    }

    /// The store.
    pub fn store(&self) -> &St {
        self.checks().store()
    }
}
