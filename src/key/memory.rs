//! [`InMemoryKeyStore`]: key records in a concurrent map, changed at run time.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::future::Ready;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockWriteGuard};

use super::store::{KeyStore, LookupResult};
use crate::Answer;
use crate::context::digest::KeyDigest;
use crate::context::record::{KeyRecord, KeyStatus};
use crate::hash;

/// An in-memory store: a concurrent map from digest to record, changed at
/// run time through any clone.
///
/// ```
/// use tollgate::key::{InMemoryKeyStore, KeyHasher, KeyKind, KeyRecord};
///
/// let store = InMemoryKeyStore::new();
/// let hasher = KeyHasher::new();
/// let minted = hasher.mint(KeyKind::Secret, None).unwrap();
/// store.insert(minted.digest(), KeyRecord::new("key_1", "acme", KeyKind::Secret));
/// assert_eq!(store.len(), 1);
/// assert!(store.revoke(&minted.digest()));
/// ```
#[derive(Clone)]
pub struct InMemoryKeyStore {
    // Sets of records, each behind its lock, chosen by the digest. Each
    // record knows the digest it is stored under, so a slot of a set is one
    // pointer and a lookup reads the record it compares: one memory access
    // finds both (among many keys, the slots stay in the cache). Digests
    // are uniformly distributed and the store holds only the operator's
    // keys, so they are their own hash.
    inner: Arc<Inner>,
}

struct Inner {
    shards: [Shard; SHARDS],
    /// Counts the changes, each counted while its set is still locked (see
    /// [`KeyStore::generation`]).
    generation: AtomicU64,
}

type Shard = RwLock<HashSet<Stored, hash::BuildPrehashed>>;

/// How many sets the records are spread over (readers never wait for one
/// another; a writer holds up only the readers of its set).
const SHARDS: usize = 16;

impl Default for InMemoryKeyStore {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: std::array::from_fn(|_| Shard::default()),
                generation: AtomicU64::new(0),
            }),
        }
    }
}

/// A record in the set, found by its digest.
#[derive(Clone)]
struct Stored(Arc<KeyRecord>);

impl Stored {
    fn digest(&self) -> &KeyDigest {
        self.0.stored_digest()
    }
}

impl Borrow<KeyDigest> for Stored {
    fn borrow(&self) -> &KeyDigest {
        self.digest()
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Self) -> bool {
        self.digest() == other.digest()
    }
}

impl Eq for Stored {}

impl Hash for Stored {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest().hash(state);
    }
}

impl InMemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set holding `digest` (chosen by other bits than the sets' own
    /// hash uses).
    fn shard(&self, digest: &KeyDigest) -> &Shard {
        &self.inner.shards[usize::from(digest.as_bytes()[31]) % SHARDS]
    }

    /// The set holding `digest`, locked for a change: the change is counted
    /// when the guard is dropped, before the set is unlocked.
    fn change(&self, digest: &KeyDigest) -> Changing<'_> {
        Changing {
            set: self
                .shard(digest)
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            generation: &self.inner.generation,
        }
    }

    /// Adds or replaces the record for `digest`.
    pub fn insert(&self, digest: KeyDigest, record: KeyRecord) {
        let stored = Stored(Arc::new(record.stored_under(digest)));
        self.change(&digest).set.replace(stored);
    }

    /// Marks the key revoked; returns whether it was known.
    pub fn revoke(&self, digest: &KeyDigest) -> bool {
        self.set_status(digest, KeyStatus::Revoked)
    }

    /// Sets the key's status (revoked, disabled, active again), taking
    /// effect on the next request; returns whether it was known.
    pub fn set_status(&self, digest: &KeyDigest, status: KeyStatus) -> bool {
        self.update(digest, |record| record.with_status(status))
    }

    /// Changes the key's record with `change` (a tier, a body cap, a quota
    /// override, scopes…), taking effect on the next request; returns
    /// whether it was known. Buckets are not reset.
    ///
    /// ```
    /// use tollgate::key::{InMemoryKeyStore, KeyHasher, KeyKind, KeyRecord};
    ///
    /// let store = InMemoryKeyStore::new();
    /// let digest = KeyHasher::new().digest("sk_test_example");
    /// store.insert(digest, KeyRecord::new("key_1", "acme", KeyKind::Secret));
    /// assert!(store.update(&digest, |record| record.with_body_limit(1 << 20)));
    /// assert_eq!(store.get(&digest).unwrap().body_limit(), Some(1 << 20));
    /// ```
    pub fn update(&self, digest: &KeyDigest, change: impl FnOnce(KeyRecord) -> KeyRecord) -> bool {
        // The set stays locked while the record is changed, so that two
        // changes of one key never lose one another, and readers see the
        // old record or the new one, never none.
        let mut changing = self.change(digest);
        let Some(Stored(old)) = changing.set.get(digest) else {
            return false;
        };
        let changed = change(KeyRecord::clone(old)).stored_under(*digest);
        changing.set.replace(Stored(Arc::new(changed)));
        true
    }

    /// Forgets the key; returns its record if it was known.
    pub fn remove(&self, digest: &KeyDigest) -> Option<Arc<KeyRecord>> {
        self.change(digest)
            .set
            .take(digest)
            .map(|Stored(record)| record)
    }

    /// The record for `digest`, if any.
    #[inline]
    pub fn get(&self, digest: &KeyDigest) -> Option<Arc<KeyRecord>> {
        self.shard(digest)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .map(|Stored(record)| Arc::clone(record))
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KeyStore for InMemoryKeyStore {
    type Lookup = Ready<LookupResult>;

    #[inline]
    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
        Answer::Ready(Ok(self.get(digest)))
    }

    #[inline]
    fn generation(&self) -> Option<u64> {
        Some(self.inner.generation.load(Ordering::Acquire))
    }
}

/// A set locked for a change, which is counted when this is dropped.
struct Changing<'a> {
    set: RwLockWriteGuard<'a, HashSet<Stored, hash::BuildPrehashed>>,
    generation: &'a AtomicU64,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        // Counted while the set is still locked (the guard is dropped
        // after this): whoever reads the new count then finds the change.
        self.generation.fetch_add(1, Ordering::Release);
    }
}

impl fmt::Debug for InMemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryKeyStore")
            .field("keys", &self.len())
            .finish()
    }
}
