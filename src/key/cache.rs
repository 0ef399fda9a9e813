//! [`CachedKeyStore`]: a bounded, time-limited cache in front of a slow store.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use quick_cache::sync::Cache;

use super::store::{KeyStore, LookupResult};
use crate::Answer;
use crate::clock::{Clock, Nanos};
use crate::context::digest::KeyDigest;
use crate::context::record::KeyRecord;
use crate::hash::BuildPrehashed;

/// Caches a [`KeyStore`]'s answers: known keys (positive entries) and unknown
/// ones (negative entries), each for a time and each in its own bounded
/// cache, so a flood of unknown keys cannot evict the known ones.
///
/// - **One lookup per key at a time.** Concurrent misses for the same digest
///   wait for one lookup of the inner store (run as a task of its own on the
///   Tokio runtime, so a caller that gives up cancels nothing for the
///   others; outside a Tokio runtime each miss looks up on its own).
/// - **Changes.** [`invalidate`](Self::invalidate) forgets one key and
///   [`clear`](Self::clear) every key, at once and for lookups already in
///   flight (what they bring back is answered but not remembered). Without
///   them, a key changed in the inner store is answered as it was until its
///   entry expires: choose the time to live with that in mind.
/// - **Errors** are never cached. With a [grace](CachedKeyStoreBuilder::grace)
///   period (off by default), a known key whose entry expired less than that
///   long ago is still answered from its entry while the inner store fails
///   (stale-if-error); a key forgotten by `invalidate` or `clear` never is.
/// - **Verified keys.** It gives a [generation](KeyStore::generation) that
///   changes with every `invalidate` and `clear` and at least every quarter
///   of the time to live, so that the key check may skip the digest of keys
///   it has seen: an entry is then trusted at most a quarter of the time to
///   live past its expiry.
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
    grace: Nanos,
    /// How often the generation moves on by itself.
    period: Nanos,
    clock: Clock,
    /// Counts `invalidate` and `clear` calls, each counted after its
    /// entries are gone and while `changing` is held.
    changes: AtomicU64,
    /// Held to change the entries against what lookups in flight bring
    /// back: a result is remembered only if its key was not changed since
    /// its lookup began. Holds the latest changes.
    changing: Mutex<Changes>,
    /// The lookups in flight, one per digest, that later misses wait for.
    flights: Mutex<HashMap<KeyDigest, Arc<Flight>, BuildPrehashed>>,
}

/// The latest changes, oldest first: the key each forgot, or `None` for all.
#[derive(Default)]
struct Changes {
    log: std::collections::VecDeque<Option<KeyDigest>>,
}

/// How many changes are kept to tell whether a key was among them; a
/// lookup that began before more changes than that is not remembered.
const CHANGES_KEPT: usize = 1024;

impl Changes {
    /// Whether `digest` changed (or everything did) in the last `since`
    /// changes.
    fn touched(&self, digest: &KeyDigest, since: u64) -> bool {
        let Ok(since) = usize::try_from(since) else {
            return true;
        };
        since > self.log.len()
            || self
                .log
                .iter()
                .rev()
                .take(since)
                .any(|changed| changed.as_ref().is_none_or(|changed| changed == digest))
    }
}

#[derive(Clone)]
struct Entry<T> {
    value: T,
    expires: Nanos,
}

/// What the cache says of a digest.
enum Cached {
    Hit(Option<Arc<KeyRecord>>),
    /// Not cached, or expired: perhaps with the expired record, still within
    /// its grace.
    Miss(Option<Arc<KeyRecord>>),
}

impl<S: KeyStore> CachedKeyStore<S> {
    /// Caches `inner` with the defaults: 10 000 known keys for 60 s, 10 000
    /// unknown keys for 10 s, no grace.
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
            grace: Duration::ZERO,
            clock: Clock::system(),
        }
    }

    /// Forgets what is cached for `digest` (for example after revoking it),
    /// for lookups in flight too.
    pub fn invalidate(&self, digest: &KeyDigest) {
        self.shared.change(Some(digest), |shared| {
            shared.known.remove(digest);
            shared.unknown.remove(digest);
        });
    }

    /// Forgets every cached key, for lookups in flight too (for example when
    /// changes may have been missed).
    pub fn clear(&self) {
        self.shared.change(None, |shared| {
            shared.known.clear();
            shared.unknown.clear();
        });
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
    grace: Duration,
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

    /// How long past its time a known key's entry may still answer while
    /// the inner store fails (default zero: never). A key forgotten by
    /// [`invalidate`](CachedKeyStore::invalidate) or
    /// [`clear`](CachedKeyStore::clear) is never answered so.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
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
        let ttl = nanos(self.ttl);
        CachedKeyStore {
            inner: self.inner,
            shared: Arc::new(Shared {
                known: Cache::new(self.capacity.max(1)),
                unknown: Cache::new(self.negative_capacity.max(1)),
                ttl,
                negative_ttl: if self.negative_capacity == 0 {
                    0
                } else {
                    nanos(self.negative_ttl)
                },
                grace: nanos(self.grace),
                period: (ttl / 4).max(1_000_000),
                clock: self.clock,
                changes: AtomicU64::new(0),
                changing: Mutex::default(),
                flights: Mutex::default(),
            }),
        }
    }
}

impl Shared {
    fn cached(&self, digest: &KeyDigest) -> Cached {
        let now = self.clock.now();
        let mut stale = None;
        if let Some(entry) = self.known.get(digest) {
            if entry.expires > now {
                return Cached::Hit(Some(entry.value));
            }
            if entry.expires.saturating_add(self.grace) > now {
                stale = Some(entry.value);
            }
        }
        match self.unknown.get(digest) {
            Some(entry) if entry.expires > now => Cached::Hit(None),
            _ => Cached::Miss(stale),
        }
    }

    /// Makes a change of the entries (forgetting `digest`, or all for
    /// `None`), counted once they are gone.
    fn change(&self, digest: Option<&KeyDigest>, change: impl FnOnce(&Self)) {
        let mut changing = self.changing();
        change(self);
        if changing.log.len() == CHANGES_KEPT {
            changing.log.pop_front();
        }
        changing.log.push_back(digest.copied());
        self.changes.fetch_add(1, Ordering::Release);
    }

    fn changing(&self) -> std::sync::MutexGuard<'_, Changes> {
        self.changing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `digest` changed since the change count was `began`.
    fn changed_since(&self, changes: &Changes, digest: &KeyDigest, began: u64) -> bool {
        let since = self.changes.load(Ordering::Acquire).wrapping_sub(began);
        since != 0 && changes.touched(digest, since)
    }

    /// Remembers what a lookup begun when `changes` was at `began` found,
    /// unless its key changed since.
    fn remember(&self, digest: KeyDigest, result: &LookupResult, began: u64) {
        let changing = self.changing();
        if self.changed_since(&changing, &digest, began) {
            return;
        }
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

    /// What a lookup of the inner store begun at change count `began`
    /// answers: remembered (unless its key changed since), and the stale
    /// record within its grace if the inner store failed.
    fn finish(
        &self,
        digest: KeyDigest,
        result: LookupResult,
        began: u64,
        stale: Option<Arc<KeyRecord>>,
    ) -> LookupResult {
        self.remember(digest, &result, began);
        Self::settle(result, stale)
    }

    /// The lookup's answer, or the stale record within its grace if the
    /// inner store failed.
    fn settle(result: LookupResult, stale: Option<Arc<KeyRecord>>) -> LookupResult {
        match (result, stale) {
            (Err(error), Some(record)) if !error.is_busy() => {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "tollgate",
                    error = %error,
                    key_id = record.key_id(),
                    "key store lookup failed: answering from the expired cache entry (grace)"
                );
                let _ = error;
                Ok(Some(record))
            }
            (result, _) => result,
        }
    }

    fn flights(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<KeyDigest, Arc<Flight>, BuildPrehashed>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: KeyStore> KeyStore for CachedKeyStore<S> {
    type Lookup = CachedLookup<S::Lookup>;

    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
        let stale = match self.shared.cached(digest) {
            Cached::Hit(record) => return Answer::Ready(Ok(record)),
            Cached::Miss(stale) => stale,
        };
        let began = self.shared.changes.load(Ordering::Acquire);
        let mut flights = self.shared.flights();
        match flights.get(digest) {
            Some(flight)
                if !self
                    .shared
                    .changed_since(&self.shared.changing(), digest, flight.began) =>
            {
                return Answer::Pending(CachedLookup::waiting(Arc::clone(flight)));
            }
            Some(_) => {}
            // A flight for this key may have landed between the look into
            // the cache above and this lock: it remembers its answer before
            // it leaves the list, so the cache has it now. (Without this
            // second look, a miss in that gap made a second lookup.)
            None => {
                if let Cached::Hit(record) = self.shared.cached(digest) {
                    return Answer::Ready(Ok(record));
                }
            }
        }
        match self.inner.lookup(digest) {
            Answer::Ready(result) => {
                drop(flights);
                Answer::Ready(self.shared.finish(*digest, result, began, stale))
            }
            Answer::Pending(future) => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    drop(flights);
                    return Answer::Pending(CachedLookup::driving(
                        future,
                        Arc::clone(&self.shared),
                        *digest,
                        began,
                        stale,
                    ));
                };
                let flight = Arc::new(Flight::new(began));
                flights.insert(*digest, Arc::clone(&flight));
                drop(flights);
                runtime.spawn(fly(
                    future,
                    Arc::clone(&self.shared),
                    *digest,
                    Arc::clone(&flight),
                    stale,
                ));
                Answer::Pending(CachedLookup::waiting(flight))
            }
        }
    }

    fn generation(&self) -> Option<u64> {
        // Each term only grows, and one of them grows with every change:
        // so does their sum.
        let shared = &*self.shared;
        let changes = shared.changes.load(Ordering::Acquire);
        let periods = shared.clock.now() / shared.period;
        let inner = self.inner.generation().unwrap_or(0);
        Some(changes.wrapping_add(periods).wrapping_add(inner))
    }
}

/// Runs one lookup of the inner store for every miss of `digest` waiting
/// on `flight`.
async fn fly<F: Future<Output = LookupResult>>(
    future: F,
    shared: Arc<Shared>,
    digest: KeyDigest,
    flight: Arc<Flight>,
    stale: Option<Arc<KeyRecord>>,
) {
    let landing = Landing {
        shared,
        digest,
        flight,
    };
    let result = future.await;
    let result = landing
        .shared
        .finish(digest, result, landing.flight.began, stale);
    landing.flight.land(result);
}

/// Takes a flight off the list once it is over, and lands it with an
/// error if it ended without an answer (its lookup panicked, or the
/// runtime stopped), so no miss waits for it in vain.
struct Landing {
    shared: Arc<Shared>,
    digest: KeyDigest,
    flight: Arc<Flight>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        self.flight.land_if_flying(|| {
            Err(crate::error::StoreError::new(
                "the key store's lookup ended without an answer",
            ))
        });
        let mut flights = self.shared.flights();
        if flights
            .get(&self.digest)
            .is_some_and(|current| Arc::ptr_eq(current, &self.flight))
        {
            flights.remove(&self.digest);
        }
    }
}

/// One lookup of the inner store, and the misses waiting for it.
struct Flight {
    /// The cache's change count when it began.
    began: u64,
    state: Mutex<State>,
}

enum State {
    Flying(Vec<Waker>),
    Landed(LookupResult),
}

impl Flight {
    fn new(began: u64) -> Self {
        Self {
            began,
            state: Mutex::new(State::Flying(Vec::new())),
        }
    }

    fn land(&self, result: LookupResult) {
        self.land_if_flying(|| result);
    }

    fn land_if_flying(&self, result: impl FnOnce() -> LookupResult) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Flying(wakers) = &mut *state {
            let wakers = std::mem::take(wakers);
            *state = State::Landed(result());
            drop(state);
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<LookupResult> {
        match &mut *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Landed(result) => Poll::Ready(result.clone()),
            State::Flying(wakers) => {
                if !wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

pin_project! {
    /// A [`CachedKeyStore`]'s lookup that had to ask the inner store: its
    /// answer is remembered when it comes.
    pub struct CachedLookup<F> {
        #[pin]
        state: Lookup<F>,
    }
}

pin_project! {
    #[project = LookupProj]
    enum Lookup<F> {
        /// Waiting for the one lookup of this digest in flight.
        Waiting { flight: Arc<Flight> },
        /// Looking up itself (outside a Tokio runtime).
        Driving {
            #[pin]
            future: F,
            shared: Arc<Shared>,
            digest: KeyDigest,
            began: u64,
            stale: Option<Arc<KeyRecord>>,
        },
    }
}

impl<F> CachedLookup<F> {
    fn waiting(flight: Arc<Flight>) -> Self {
        Self {
            state: Lookup::Waiting { flight },
        }
    }

    fn driving(
        future: F,
        shared: Arc<Shared>,
        digest: KeyDigest,
        began: u64,
        stale: Option<Arc<KeyRecord>>,
    ) -> Self {
        Self {
            state: Lookup::Driving {
                future,
                shared,
                digest,
                began,
                stale,
            },
        }
    }
}

impl<F> Future for CachedLookup<F>
where
    F: Future<Output = LookupResult>,
{
    type Output = LookupResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            LookupProj::Waiting { flight } => flight.poll(cx),
            LookupProj::Driving {
                future,
                shared,
                digest,
                began,
                stale,
            } => {
                let result = std::task::ready!(future.poll(cx));
                Poll::Ready(shared.finish(*digest, result, *began, stale.take()))
            }
        }
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

    /// A store whose lookups wait until released, counting them.
    #[derive(Clone, Default)]
    struct Slow {
        calls: Arc<AtomicUsize>,
        release: Arc<tokio::sync::Notify>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        known: Arc<Mutex<Option<KeyDigest>>>,
    }

    impl KeyStore for Slow {
        type Lookup = Pin<Box<dyn Future<Output = LookupResult> + Send>>;
        fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let this = self.clone();
            let digest = *digest;
            Answer::Pending(Box::pin(async move {
                this.release.notified().await;
                if this.failing.load(Ordering::SeqCst) {
                    return Err(StoreError::new("down"));
                }
                let known = *this.known.lock().unwrap() == Some(digest);
                Ok(known.then(|| Arc::new(KeyRecord::new("k", "p", KeyKind::Secret))))
            }))
        }
    }

    fn slow() -> (CachedKeyStore<Slow>, Slow, FakeClock) {
        let fake = FakeClock::new();
        let inner = Slow::default();
        *inner.known.lock().unwrap() = Some(KeyHasher::new().digest("known"));
        let store = CachedKeyStore::builder(inner.clone())
            .ttl(Duration::from_secs(60))
            .grace(Duration::from_secs(30))
            .clock(fake.clock())
            .build();
        (store, inner, fake)
    }

    fn pending(
        store: &CachedKeyStore<Slow>,
        key: &str,
    ) -> CachedLookup<<Slow as KeyStore>::Lookup> {
        match store.lookup(&KeyHasher::new().digest(key)) {
            Answer::Pending(future) => future,
            Answer::Ready(_) => panic!("expected a lookup in flight"),
        }
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_lookup() {
        let (store, inner, _) = slow();
        let waiting: Vec<_> = (0..100)
            .map(|_| tokio::spawn(pending(&store, "known")))
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        inner.release.notify_waiters();
        for waiter in waiting {
            assert!(waiter.await.unwrap().unwrap().is_some());
        }
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        assert_eq!(store.len(), 1);
        assert!(matches!(
            store.lookup(&KeyHasher::new().digest("known")),
            Answer::Ready(Ok(Some(_)))
        ));
    }

    #[tokio::test]
    async fn a_change_during_a_lookup_is_not_undone_by_it() {
        let (store, inner, _) = slow();
        let before = pending(&store, "known");
        let generation = store.generation();
        // The key changes (a notification) while its lookup is in flight:
        // the old answer is given to whoever asked, but not remembered, and
        // a later miss does not wait for the old lookup.
        store.invalidate(&KeyHasher::new().digest("known"));
        assert_ne!(store.generation(), generation);
        let after = pending(&store, "known");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
        let answers = tokio::spawn(async move { (before.await, after.await) });
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        let (before, after) = answers.await.unwrap();
        assert!(before.unwrap().is_some() && after.unwrap().is_some());
        // The second lookup began after the change: it is remembered.
        assert_eq!(store.len(), 1);
        store.clear();
        assert_eq!(store.len(), 0);
    }

    #[tokio::test]
    async fn a_change_of_another_key_does_not_stop_remembering() {
        let (store, inner, _) = slow();
        let lookup = pending(&store, "known");
        store.invalidate(&KeyHasher::new().digest("another"));
        // A later miss still waits for the lookup in flight.
        let joined = pending(&store, "known");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        let answers = tokio::spawn(async move { (lookup.await, joined.await) });
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        let (first, second) = answers.await.unwrap();
        assert!(first.unwrap().is_some() && second.unwrap().is_some());
        assert_eq!(store.len(), 1, "remembered");
        // Everything forgotten (a clear) while a lookup is in flight: not
        // remembered.
        store.clear();
        let lookup = pending(&store, "known");
        store.clear();
        let answer = tokio::spawn(lookup);
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        assert!(answer.await.unwrap().unwrap().is_some());
        assert_eq!(store.len(), 0);
    }

    #[tokio::test]
    async fn expired_entries_answer_within_their_grace_while_the_store_fails() {
        let (store, inner, fake) = slow();
        let first = tokio::spawn(pending(&store, "known"));
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        assert!(first.await.unwrap().unwrap().is_some());
        inner.failing.store(true, Ordering::SeqCst);

        fake.advance(Duration::from_secs(60 + 29));
        let stale = tokio::spawn(pending(&store, "known"));
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        assert!(stale.await.unwrap().unwrap().is_some(), "within the grace");

        fake.advance(Duration::from_secs(1));
        let late = tokio::spawn(pending(&store, "known"));
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        assert!(late.await.unwrap().is_err(), "past the grace");
    }

    #[tokio::test]
    async fn a_forgotten_key_gets_no_grace() {
        let (store, inner, fake) = slow();
        let first = tokio::spawn(pending(&store, "known"));
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        first.await.unwrap().unwrap();
        inner.failing.store(true, Ordering::SeqCst);
        fake.advance(Duration::from_secs(61));
        store.invalidate(&KeyHasher::new().digest("known"));
        let after = tokio::spawn(pending(&store, "known"));
        tokio::task::yield_now().await;
        inner.release.notify_waiters();
        assert!(after.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn the_generation_moves_on_with_time() {
        let (store, _, fake) = slow();
        let generation = store.generation();
        fake.advance(Duration::from_secs(14));
        assert_eq!(store.generation(), generation);
        fake.advance(Duration::from_secs(1));
        assert_ne!(store.generation(), generation, "a quarter of the ttl");
    }
}
