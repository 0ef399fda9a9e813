//! [`KeyCheck`]: finds the credential, parses and digests it, looks it up,
//! and inserts the [`Principal`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue, Method, Request};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::credential::{self, Credential, CredentialError, CredentialSource, Places, Sources};
use super::digest::KeyHasher;
use super::failed::FailedKeys;
use super::format::KeyParser;
use super::options::KeyOptions;
use super::policy::Access;
use super::store::{KeyStore, LookupResult};
use super::verified::VerifiedKeys;
use crate::Answer;
use crate::check::{Check, ResponseHeaders, Step, Wait};
use crate::clock::Clock;
use crate::context;
use crate::context::digest::KeyDigest;
use crate::context::kind::KeyKind;
use crate::context::per_route::PerRoute;
use crate::context::principal::Principal;
use crate::context::record::{KeyRecord, KeyStatus};
use crate::context::shadow::Anonymous;
use crate::error::{ApiError, ErrorCode, Rule};

/// The key check: finds the credential, parses and digests it, looks it up,
/// and inserts the [`Principal`]; see the [module docs](super).
pub struct KeyCheck<St> {
    store: Arc<St>,
    pub(crate) options: KeyOptions,
    pub(crate) parser: KeyParser,
    pub(crate) hasher: KeyHasher,
    pub(crate) clock: Clock,
    access: PerRoute<Access>,
    /// The keys verified so far, if the options and the store allow.
    verified: Option<VerifiedKeys>,
    /// The failed-key budget per client address, unless it is off.
    failed: Option<FailedKeys>,
    /// The `missing_api_key` message for each set of credential sources,
    /// made on first use (every such refusal says the same).
    missing: [OnceLock<Arc<str>>; 8],
}

impl<St> KeyCheck<St> {
    /// The headers a credential may be read from, on any route.
    pub(crate) fn credential_headers(&self) -> Vec<HeaderName> {
        let every = std::iter::once(self.access.default_value())
            .chain(self.access.iter().map(|(_, access)| access));
        let (mut bearer, mut header) = (false, false);
        for access in every {
            bearer |= access.sources.contains(CredentialSource::Bearer);
            header |= access.sources.contains(CredentialSource::Header);
        }
        let mut names = Vec::new();
        if bearer {
            names.push(AUTHORIZATION);
        }
        if header {
            names.push(self.options.credential_header.clone());
        }
        names
    }

    /// Reads client addresses for the failed-key budget behind `trusted`
    /// proxies (the rate limits' `trusted_proxies`).
    pub(crate) fn with_trusted_proxies(
        mut self,
        trusted: &[crate::context::client_ip::IpNet],
    ) -> Self {
        self.failed = FailedKeys::new(&self.options.failed_keys, trusted, self.clock.clone());
        self
    }

    /// Counts `error` against the request's address if it answers an
    /// unknown or malformed key (not a known key refused for its status).
    fn count_failure<B>(&self, request: &Request<B>, error: &ApiError) {
        let Some(failed) = &self.failed else {
            return;
        };
        let code = error.code();
        let unknown = (*code == ErrorCode::INVALID_API_KEY
            || *code == ErrorCode::MALFORMED_API_KEY)
            && error.subject_ids().is_none();
        if unknown && let Some(address) = failed.address(request) {
            failed.charge(address);
        }
    }

    /// Takes keys on each route as `access` says.
    pub(crate) fn with_access(mut self, access: PerRoute<Access>) -> Self {
        self.access = access;
        self
    }

    /// Takes keys on every route from `sources` (checked against the
    /// options: `query` needs a parameter).
    pub(crate) fn set_sources(&mut self, sources: Sources) {
        self.access = PerRoute::uniform(Access {
            sources,
            anonymous: false,
        });
    }
}

impl<St: KeyStore> KeyCheck<St> {
    /// Authenticates against `store`, with SHA-256 digests (no pepper), the
    /// default key format, headers only and a 2 s lookup timeout.
    pub fn new(store: St) -> Self {
        Self::with_parts(
            Arc::new(store),
            KeyOptions::default(),
            KeyParser::new(),
            KeyHasher::new(),
            Clock::system(),
        )
    }

    pub(crate) fn with_parts(
        store: Arc<St>,
        options: KeyOptions,
        parser: KeyParser,
        hasher: KeyHasher,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            verified: VerifiedKeys::new(options.verified_keys),
            failed: FailedKeys::new(&options.failed_keys, &[], clock.clone()),
            options,
            parser,
            hasher,
            clock,
            access: PerRoute::uniform(Access::default()),
            missing: Default::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<St> Clone for KeyCheck<St> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            options: self.options.clone(),
            parser: self.parser.clone(),
            hasher: self.hasher.clone(),
            clock: self.clock.clone(),
            access: self.access.clone(),
            verified: self.verified.clone(),
            failed: self.failed.clone(),
            // Made again from the clone's own options.
            missing: Default::default(),
        }
    }
}

impl<St> fmt::Debug for KeyCheck<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCheck")
            .field("options", &self.options)
            .field("parser", &self.parser)
            .field("hasher", &self.hasher)
            .finish_non_exhaustive()
    }
}

/// A CORS preflight carries no key: it passes untouched.
fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl<St: KeyStore> Check for KeyCheck<St> {
    type Pending = KeyLookup<St::Lookup>;

    fn check<B>(&self, request: &mut Request<B>, _: &mut ResponseHeaders) -> Step<Self::Pending> {
        match self.authenticate(request) {
            Answer::Ready(Err(error)) => {
                self.count_failure(request, &error);
                Answer::Ready(Err(error.with_rule(Rule::Key)))
            }
            step => step,
        }
    }
}

impl<St: KeyStore> Wait<KeyCheck<St>> for KeyLookup<St::Lookup> {
    fn poll_wait<B>(
        &mut self,
        check: &KeyCheck<St>,
        cx: &mut Context<'_>,
        request: &mut Request<B>,
        _: &mut ResponseHeaders,
    ) -> Poll<Result<(), ApiError>> {
        check.finish(self, cx, request).map_err(|error| {
            check.count_failure(request, &error);
            error.with_rule(Rule::Key)
        })
    }
}

impl<St: KeyStore> KeyCheck<St> {
    fn authenticate<B>(&self, request: &mut Request<B>) -> Step<KeyLookup<St::Lookup>> {
        if context::is_public(request) || is_preflight(request) {
            return Answer::Ready(Ok(()));
        }
        let access = match self.access.for_route(context::route(request)) {
            Ok(access) => *access,
            Err(error) => return Answer::Ready(Err(error)),
        };
        let places = self.places(access.sources);
        let credential = match credential::extract(request.headers(), request.uri(), &places) {
            Ok(credential) => credential,
            Err(CredentialError::Missing) if access.anonymous => {
                request.extensions_mut().insert(Anonymous);
                return Answer::Ready(Ok(()));
            }
            Err(CredentialError::Missing) => {
                let message = self.missing[usize::from(places.sources.bits()) % 8]
                    .get_or_init(|| Arc::from(places.describe()));
                return Answer::Ready(Err(ApiError::shared(
                    ErrorCode::MISSING_API_KEY,
                    Arc::clone(message),
                )));
            }
            Err(CredentialError::Malformed(reason)) => {
                return Answer::Ready(Err(malformed(reason)));
            }
        };
        // An address that presented too many unknown keys in this window is
        // refused before anything is looked up.
        if let Some(failed) = &self.failed
            && failed.anyone_over()
            && let Some(address) = failed.address(request)
            && let Some(refusal) = failed.refusal(address)
        {
            return Answer::Ready(Err(refusal));
        }
        // A key verified before, while the store is as it was then, is
        // what it was then: judged again (status, expiry, kind), but
        // neither parsed, digested nor looked up again.
        let remember = match (&self.verified, self.store.generation()) {
            (Some(verified), Some(generation)) => {
                let tag = verified.tag(credential.key);
                if let Some(record) = verified.get(tag, generation) {
                    // Remembered only if its prefix names its record's kind.
                    let kind = record.kind();
                    if credential.in_query && kind != KeyKind::Publishable {
                        return Answer::Ready(Err(query_refusal()));
                    }
                    return Answer::Ready(
                        self.admit(Ok(Some(record)), kind)
                            .map(|record| self.admitted(request, record)),
                    );
                }
                Some((verified, tag, generation))
            }
            _ => None,
        };
        let presented = match self.present(credential) {
            Ok(presented) => presented,
            Err(error) => return Answer::Ready(Err(error)),
        };
        match self.store.lookup(&presented.digest) {
            Answer::Ready(result) => {
                if let (Some((verified, tag, generation)), Ok(Some(record))) = (remember, &result) {
                    verified.insert(tag, record, presented.kind, generation);
                }
                Answer::Ready(
                    self.admit(result, presented.kind)
                        .map(|record| self.admitted(request, record)),
                )
            }
            Answer::Pending(lookup) => Answer::Pending(KeyLookup {
                waiting: Box::pin(Waiting {
                    lookup,
                    deadline: None,
                    kind: presented.kind,
                    started: std::time::Instant::now(),
                }),
            }),
        }
    }

    fn finish<B>(
        &self,
        pending: &mut KeyLookup<St::Lookup>,
        cx: &mut Context<'_>,
        request: &mut Request<B>,
    ) -> Poll<Result<(), ApiError>> {
        let waiting = pending.waiting.as_mut().project();
        let verdict = match waiting.lookup.poll(cx) {
            Poll::Ready(result) => self.admit(result, *waiting.kind),
            Poll::Pending => {
                let Some(timeout) = self.options.lookup_timeout else {
                    return Poll::Pending;
                };
                let sleep = waiting
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(sleep.as_mut().poll(cx));
                #[cfg(feature = "metrics")]
                crate::metrics::store_failure("key");
                Err(self.timed_out())
            }
        };
        #[cfg(feature = "metrics")]
        crate::metrics::store_duration("key", waiting.started.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = waiting.started;
        Poll::Ready(verdict.map(|record| self.admitted(request, record)))
    }
}

/// A key lookup in progress, for stores that must wait (boxed: only slow
/// stores pay for it).
pub struct KeyLookup<L> {
    waiting: Pin<Box<Waiting<L>>>,
}

pin_project! {
    struct Waiting<L> {
        #[pin]
        lookup: L,
        deadline: Option<Pin<Box<Sleep>>>,
        kind: KeyKind,
        // When the lookup began (for the store-duration metric).
        started: std::time::Instant,
    }
}

impl<L> fmt::Debug for KeyLookup<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyLookup")
    }
}

/// What the checks before the store lookup found.
pub(crate) struct Presented {
    pub(crate) digest: KeyDigest,
    pub(crate) kind: KeyKind,
}

impl<St> KeyCheck<St> {
    /// Where keys are read on a route accepting `sources`.
    pub(crate) fn places(&self, sources: Sources) -> Places<'_> {
        Places {
            sources,
            header: &self.options.credential_header,
            query_parameter: self.options.query_parameter.as_deref(),
        }
    }

    /// Parses and digests `credential`: everything that needs no store.
    pub(crate) fn present(&self, credential: Credential<'_>) -> Result<Presented, ApiError> {
        let key = credential.text().map_err(malformed)?;
        let parsed = self.parser.parse(key).map_err(malformed)?;
        if credential.in_query && parsed.kind() != KeyKind::Publishable {
            return Err(query_refusal());
        }
        Ok(Presented {
            digest: self.hasher.digest(key),
            kind: parsed.kind(),
        })
    }

    /// Forgets every key verified (the settings they were verified under
    /// changed).
    pub(crate) fn forget_verified(&mut self) {
        self.verified = VerifiedKeys::new(self.options.verified_keys);
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
                #[cfg(feature = "metrics")]
                crate::metrics::store_failure("key");
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tollgate", error = %error, "key store lookup failed");
                if error.is_busy() {
                    return Err(ApiError::from(ErrorCode::UPSTREAM_BUSY)
                        .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1")));
                }
                return Err(ApiError::from(ErrorCode::UPSTREAM_FAILED));
            }
        };
        let rejection = if record.status() == KeyStatus::Revoked {
            Some(if self.options.reveal_revoked {
                ErrorCode::REVOKED_API_KEY
            } else {
                ErrorCode::INVALID_API_KEY
            })
        } else if record.status() == KeyStatus::Disabled {
            Some(ErrorCode::KEY_DISABLED)
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
        tracing::warn!(target: "tollgate", timeout = ?self.options.lookup_timeout, "key store lookup timed out");
        ApiError::from(ErrorCode::UPSTREAM_FAILED)
    }

    /// Hands the request on: the principal in, the credential out if asked.
    pub(crate) fn admitted<B>(&self, request: &mut Request<B>, record: Arc<KeyRecord>) {
        if self.options.strip_credential {
            request.headers_mut().remove(AUTHORIZATION);
            request
                .headers_mut()
                .remove(&self.options.credential_header);
            if let Some(name) = &self.options.query_parameter
                && let Some(uri) = credential::without_query_parameter(request.uri(), name)
            {
                *request.uri_mut() = uri;
            }
        }
        request.extensions_mut().insert(Principal::new(record));
    }
}

/// The refusal of a secret or restricted key sent in the query string.
fn query_refusal() -> ApiError {
    malformed("only publishable keys may be sent in the query string")
}

fn malformed(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::MALFORMED_API_KEY,
        format!("The API key is malformed: {reason}."),
    )
}
