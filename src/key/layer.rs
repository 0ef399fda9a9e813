//! [`KeyLayer`] and its settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http::header::AUTHORIZATION;
use tower_layer::Layer;

use super::credential::{self, CredentialError, X_API_KEY};
use super::digest::{KeyDigest, KeyHasher};
use super::parse::{KeyKind, KeyParser};
use super::principal::Principal;
use super::service::KeyService;
use super::store::{KeyRecord, KeyStatus, KeyStore, LookupResult};
use crate::clock::Clock;
use crate::error::{ApiError, ErrorCode, ErrorRenderer};

/// Authenticates requests by API key; see the [module docs](super).
///
/// Cheap to clone. Settings are chained `with_*` calls:
///
/// ```
/// use std::time::Duration;
/// use tollgate::key::{InMemoryKeyStore, KeyHasher, KeyLayer, KeyParser};
///
/// let layer = KeyLayer::new(InMemoryKeyStore::new())
///     .with_hasher(KeyHasher::with_pepper(b"pepper"))
///     .with_parser(KeyParser::new().require_checksum(false))
///     .with_query_parameter("api_key")
///     .strip_credential(true)
///     .with_lookup_timeout(Some(Duration::from_millis(500)));
/// # let _ = layer;
/// ```
pub struct KeyLayer<St> {
    store: Arc<St>,
    options: Arc<KeyOptions>,
}

/// Everything but the store, shared by every clone of the service.
#[derive(Clone, Debug)]
pub(crate) struct KeyOptions {
    parser: KeyParser,
    hasher: KeyHasher,
    query_parameter: Option<Box<str>>,
    strip_credential: bool,
    pub(crate) lookup_timeout: Option<Duration>,
    pub(crate) renderer: ErrorRenderer,
    clock: Clock,
}

/// The default time a key store has to answer.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

impl<St: KeyStore> KeyLayer<St> {
    /// Authenticates against `store`, with SHA-256 digests (no pepper), the
    /// default key format, headers only, a 2 s lookup timeout and the default
    /// renderer.
    pub fn new(store: St) -> Self {
        Self {
            store: Arc::new(store),
            options: Arc::new(KeyOptions {
                parser: KeyParser::new(),
                hasher: KeyHasher::new(),
                query_parameter: None,
                strip_credential: false,
                lookup_timeout: Some(DEFAULT_LOOKUP_TIMEOUT),
                renderer: ErrorRenderer::default(),
                clock: Clock::system(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut KeyOptions)) -> Self {
        change(Arc::make_mut(&mut self.options));
        self
    }

    /// Digests keys with `hasher` (set the pepper here).
    #[must_use]
    pub fn with_hasher(self, hasher: KeyHasher) -> Self {
        self.with(|o| o.hasher = hasher)
    }

    /// Parses keys with `parser` (prefix table, checksum, lengths).
    #[must_use]
    pub fn with_parser(self, parser: KeyParser) -> Self {
        self.with(|o| o.parser = parser)
    }

    /// Also accepts a key in the query parameter `name`, for publishable keys
    /// only (beacons cannot set headers). A secret or restricted key there is
    /// refused as `malformed_api_key`: URLs end up in logs.
    #[must_use]
    pub fn with_query_parameter(self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        self.with(|o| o.query_parameter = Some(name.into()))
    }

    /// Removes the credential (headers and query parameter) before the
    /// request reaches the inner service.
    #[must_use]
    pub fn strip_credential(self, strip: bool) -> Self {
        self.with(|o| o.strip_credential = strip)
    }

    /// How long the store has to answer before the request fails with
    /// `upstream_failed`; `None` waits forever. Needs a Tokio runtime with
    /// its timer enabled when a lookup does not finish at once.
    #[must_use]
    pub fn with_lookup_timeout(self, timeout: Option<Duration>) -> Self {
        self.with(|o| o.lookup_timeout = timeout)
    }

    /// Renders rejections with `renderer`.
    #[must_use]
    pub fn with_renderer(self, renderer: ErrorRenderer) -> Self {
        self.with(|o| o.renderer = renderer)
    }

    /// Reads the time (for key expiry) from `clock`.
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        self.with(|o| o.clock = clock)
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<St> Clone for KeyLayer<St> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            options: Arc::clone(&self.options),
        }
    }
}

impl<St> fmt::Debug for KeyLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLayer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S, St> Layer<S> for KeyLayer<St> {
    type Service = KeyService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyService::from_parts(inner, Arc::clone(&self.store), Arc::clone(&self.options))
    }
}

/// What the checks before the store lookup found.
pub(crate) struct Presented {
    pub(crate) digest: KeyDigest,
    pub(crate) kind: KeyKind,
}

impl KeyOptions {
    /// Finds, parses and digests the credential: everything that needs no store.
    pub(crate) fn present<B>(&self, request: &Request<B>) -> Result<Presented, ApiError> {
        let credential = credential::extract(
            request.headers(),
            request.uri(),
            self.query_parameter.as_deref(),
        )
        .map_err(|error| match error {
            CredentialError::Missing => ApiError::new(
                ErrorCode::MISSING_API_KEY,
                "No API key was provided. Send it as `Authorization: Bearer <key>` or in the `X-API-Key` header.",
            ),
            CredentialError::Malformed(reason) => malformed(reason),
        })?;
        let parsed = self.parser.parse(credential.key).map_err(malformed)?;
        if credential.in_query && parsed.kind() != KeyKind::Publishable {
            return Err(malformed(
                "only publishable keys may be sent in the query string",
            ));
        }
        Ok(Presented {
            digest: self.hasher.digest(credential.key),
            kind: parsed.kind(),
        })
    }

    /// Judges the store's answer for a key presented as `kind`.
    pub(crate) fn admit(
        &self,
        result: LookupResult,
        kind: KeyKind,
    ) -> Result<Arc<KeyRecord>, ApiError> {
        let record = match result {
            Ok(Some(record)) => record,
            Ok(None) => return Err(ApiError::from(ErrorCode::INVALID_API_KEY)),
            Err(error) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", error = %error, "key store lookup failed");
                let _ = error;
                return Err(ApiError::from(ErrorCode::UPSTREAM_FAILED));
            }
        };
        let rejection = if record.status() == KeyStatus::Revoked {
            Some(ErrorCode::INVALID_API_KEY)
        } else if record
            .expires_at()
            .is_some_and(|expiry| expiry <= self.clock.unix_now())
        {
            Some(ErrorCode::EXPIRED_API_KEY)
        } else if record.kind() != kind {
            Some(ErrorCode::KEY_KIND_MISMATCH)
        } else {
            None
        };
        match rejection {
            Some(code) => Err(ApiError::from(code).with_subject(record.key_id(), record.project())),
            None => Ok(record),
        }
    }

    /// The rejection when the store did not answer in time.
    pub(crate) fn timed_out(&self) -> ApiError {
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "tollgate", timeout = ?self.lookup_timeout, "key store lookup timed out");
        ApiError::from(ErrorCode::UPSTREAM_FAILED)
    }

    /// Hands the request on: the principal in, the credential out if asked.
    pub(crate) fn admitted<B>(&self, request: &mut Request<B>, record: Arc<KeyRecord>) {
        if self.strip_credential {
            request.headers_mut().remove(AUTHORIZATION);
            request.headers_mut().remove(&X_API_KEY);
            if let Some(name) = &self.query_parameter {
                if let Some(uri) = credential::without_query_parameter(request.uri(), name) {
                    *request.uri_mut() = uri;
                }
            }
        }
        request.extensions_mut().insert(Principal::new(record));
    }
}

fn malformed(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::MALFORMED_API_KEY,
        format!("The API key is malformed: {reason}."),
    )
}
