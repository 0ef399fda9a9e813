//! [`CachedKeyStore`]: a bounded, time-limited cache in front of a slow store.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use quick_cache::sync::Cache;

use super::store::{KeyStore, LookupResult};
use crate::Answer;
use crate::clock::{Clock, Nanos};
use crate::context::digest::KeyDigest;
use crate::context::record::KeyRecord;

/// Caches a [`KeyStore`]'s answers: known keys (positive entries) and unknown
/// ones (negative entries), each for a time and each in its own bounded
/// cache, so a flood of unknown keys cannot evict the known ones.
///
/// Errors are never cached. A key revoked in the inner store is still
/// accepted until its entry expires (or [`invalidate`](Self::invalidate) is
/// called): choose the time to live with that in mind.
///
/// ```
/// use std::time::Duration;
/// use tollgate::key::{CachedKeyStore, InMemoryKeyStore};
///
/// let store = CachedKeyStore::builder(InMemoryKeyStore::new())
///     .capacity(100_000)
///     .ttl(Duration::from_secs(60))
///     .negative_capacity(10_000)
///     .negative_ttl(Duration::from_secs(5))
///     .build();
/// assert_eq!(store.len(), 0);
/// ```
pub struct CachedKeyStore<S> {
    inner: S,
    shared: Arc<Shared>,
}

struct Shared {
    known: Cache<KeyDigest, Entry<Arc<KeyRecord>>>,
    unknown: Cache<KeyDigest, Entry<()>>,
    ttl: Nanos,
    negative_ttl: Nanos,
    clock: Clock,
}

#[derive(Clone)]
struct Entry<T> {
    value: T,
    expires: Nanos,
}

impl<S: KeyStore> CachedKeyStore<S> {
    /// Caches `inner` with the defaults: 10 000 known keys for 60 s, 10 000
    /// unknown keys for 10 s.
    pub fn new(inner: S) -> Self {
        Self::builder(inner).build()
    }

    /// Starts configuring a cache in front of `inner`.
    pub fn builder(inner: S) -> CachedKeyStoreBuilder<S> {
        CachedKeyStoreBuilder {
            inner,
            capacity: 10_000,
            ttl: Duration::from_secs(60),
            negative_capacity: 10_000,
            negative_ttl: Duration::from_secs(10),
            clock: Clock::system(),
        }
    }

    /// Forgets what is cached for `digest` (for example after revoking it).
    pub fn invalidate(&self, digest: &KeyDigest) {
        self.shared.known.remove(digest);
        self.shared.unknown.remove(digest);
    }

    /// Number of cached known keys.
    pub fn len(&self) -> usize {
        self.shared.known.len()
    }

    /// Whether no known key is cached.
    pub fn is_empty(&self) -> bool {
        self.shared.known.is_empty()
    }

    /// Number of cached unknown keys.
    pub fn negative_len(&self) -> usize {
        self.shared.unknown.len()
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone> Clone for CachedKeyStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for CachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStore")
            .field("known", &self.shared.known.len())
            .field("unknown", &self.shared.unknown.len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`CachedKeyStore`].
#[derive(Debug)]
pub struct CachedKeyStoreBuilder<S> {
    inner: S,
    capacity: usize,
    ttl: Duration,
    negative_capacity: usize,
    negative_ttl: Duration,
    clock: Clock,
}

impl<S: KeyStore> CachedKeyStoreBuilder<S> {
    /// How many known keys are kept at most.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long a known key is trusted without asking the store again.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many unknown keys are remembered at most (0 turns negative
    /// caching off).
    #[must_use]
    pub fn negative_capacity(mut self, capacity: usize) -> Self {
        self.negative_capacity = capacity;
        self
    }

    /// How long an unknown key is remembered as unknown.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The clock entries expire by.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> CachedKeyStore<S> {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        CachedKeyStore {
            inner: self.inner,
            shared: Arc::new(Shared {
                known: Cache::new(self.capacity.max(1)),
                unknown: Cache::new(self.negative_capacity.max(1)),
                ttl: nanos(self.ttl),
                negative_ttl: if self.negative_capacity == 0 {
                    0
                } else {
                    nanos(self.negative_ttl)
                },
                clock: self.clock,
            }),
        }
    }
}

impl Shared {
    fn cached(&self, digest: &KeyDigest) -> Option<Option<Arc<KeyRecord>>> {
        let now = self.clock.now();
        if let Some(entry) = self.known.get(digest)
            && entry.expires > now
        {
            return Some(Some(entry.value));
        }
        match self.unknown.get(digest) {
            Some(entry) if entry.expires > now => Some(None),
            _ => None,
        }
    }

    fn remember(&self, digest: KeyDigest, result: &LookupResult) {
        let now = self.clock.now();
        match result {
            Ok(Some(record)) => {
                self.unknown.remove(&digest);
                self.known.insert(
                    digest,
                    Entry {
                        value: Arc::clone(record),
                        expires: now.saturating_add(self.ttl),
                    },
                );
            }
            Ok(None) if self.negative_ttl > 0 => {
                self.known.remove(&digest);
                self.unknown.insert(
                    digest,
                    Entry {
                        value: (),
                        expires: now.saturating_add(self.negative_ttl),
                    },
                );
            }
            Ok(None) | Err(_) => {}
        }
    }
}

impl<S: KeyStore> KeyStore for CachedKeyStore<S> {
    type Lookup = CachedLookup<S::Lookup>;

    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
        if let Some(record) = self.shared.cached(digest) {
            return Answer::Ready(Ok(record));
        }
        match self.inner.lookup(digest) {
            Answer::Ready(result) => {
                self.shared.remember(*digest, &result);
                Answer::Ready(result)
            }
            Answer::Pending(future) => Answer::Pending(CachedLookup {
                future,
                shared: Arc::clone(&self.shared),
                digest: *digest,
            }),
        }
    }
}

pin_project! {
    /// A [`CachedKeyStore`]'s lookup that had to ask the inner store: its
    /// answer is remembered when it comes.
    pub struct CachedLookup<F> {
        #[pin]
        future: F,
        shared: Arc<Shared>,
        digest: KeyDigest,
    }
}

impl<F> Future for CachedLookup<F>
where
    F: Future<Output = LookupResult>,
{
    type Output = LookupResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.future.poll(cx));
        this.shared.remember(*this.digest, &result);
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for CachedLookup<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CachedLookup")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::error::StoreError;
    use crate::key::{KeyHasher, KeyKind};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store that counts its lookups, knows one digest, and can be told to fail.
    #[derive(Clone)]
    struct Counting {
        known: KeyDigest,
        calls: Arc<AtomicUsize>,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    impl KeyStore for Counting {
        type Lookup = std::future::Ready<LookupResult>;
        fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Answer::Ready(Err(StoreError::new("down")));
            }
            let record = (*digest == self.known)
                .then(|| Arc::new(KeyRecord::new("k", "p", KeyKind::Secret)));
            Answer::Ready(Ok(record))
        }
    }

    fn setup() -> (CachedKeyStore<Counting>, Counting, FakeClock) {
        let fake = FakeClock::new();
        let inner = Counting {
            known: KeyHasher::new().digest("known"),
            calls: Arc::default(),
            failing: Arc::default(),
        };
        let cached = CachedKeyStore::builder(inner.clone())
            .capacity(10)
            .ttl(Duration::from_secs(60))
            .negative_capacity(10)
            .negative_ttl(Duration::from_secs(5))
            .clock(fake.clock())
            .build();
        (cached, inner, fake)
    }

    async fn lookup(store: &CachedKeyStore<Counting>, key: &str) -> LookupResult {
        match store.lookup(&KeyHasher::new().digest(key)) {
            Answer::Ready(result) => result,
            Answer::Pending(future) => future.await,
        }
    }

    #[tokio::test]
    async fn known_keys_are_cached_until_their_ttl() {
        let (store, inner, fake) = setup();
        assert!(lookup(&store, "known").await.unwrap().is_some());
        assert!(lookup(&store, "known").await.unwrap().is_some());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        fake.advance(Duration::from_secs(60));
        assert!(lookup(&store, "known").await.unwrap().is_some());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn unknown_keys_are_cached_for_the_negative_ttl() {
        let (store, inner, fake) = setup();
        assert!(lookup(&store, "nope").await.unwrap().is_none());
        assert!(lookup(&store, "nope").await.unwrap().is_none());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        assert_eq!(store.negative_len(), 1);
        fake.advance(Duration::from_secs(5));
        assert!(lookup(&store, "nope").await.unwrap().is_none());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let (store, inner, _) = setup();
        inner.failing.store(true, Ordering::SeqCst);
        assert!(lookup(&store, "known").await.is_err());
        inner.failing.store(false, Ordering::SeqCst);
        assert!(lookup(&store, "known").await.unwrap().is_some());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn size_is_bounded_and_unknown_keys_cannot_evict_known_ones() {
        let (store, inner, _) = setup();
        lookup(&store, "known").await.unwrap();
        for i in 0..1_000 {
            lookup(&store, &format!("unknown-{i}")).await.unwrap();
        }
        assert!(store.negative_len() <= 10, "{}", store.negative_len());
        assert_eq!(store.len(), 1);
        let calls = inner.calls.load(Ordering::SeqCst);
        lookup(&store, "known").await.unwrap();
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            calls,
            "known key still cached"
        );
    }

    #[tokio::test]
    async fn invalidate_forgets() {
        let (store, inner, _) = setup();
        lookup(&store, "known").await.unwrap();
        store.invalidate(&KeyHasher::new().digest("known"));
        lookup(&store, "known").await.unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }
}
