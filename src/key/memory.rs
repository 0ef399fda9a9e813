//! [`InMemoryKeyStore`]: key records in a concurrent map, changed at run time.

use std::fmt;
use std::future::Ready;
use std::sync::Arc;

use dashmap::DashMap;

use super::digest::KeyDigest;
use super::store::{KeyStore, LookupResult};
use crate::Answer;
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
#[derive(Clone, Default)]
pub struct InMemoryKeyStore {
    // Digests are uniformly distributed and the store holds only the
    // operator's keys, so they are their own hash.
    records: Arc<DashMap<KeyDigest, Arc<KeyRecord>, hash::BuildPrehashed>>,
}

impl InMemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the record for `digest`.
    pub fn insert(&self, digest: KeyDigest, record: KeyRecord) {
        self.records.insert(digest, Arc::new(record));
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
        match self.records.get_mut(digest) {
            Some(mut entry) => {
                let changed = change(entry.as_ref().clone());
                *entry = Arc::new(changed);
                true
            }
            None => false,
        }
    }

    /// Forgets the key; returns its record if it was known.
    pub fn remove(&self, digest: &KeyDigest) -> Option<Arc<KeyRecord>> {
        self.records.remove(digest).map(|(_, record)| record)
    }

    /// The record for `digest`, if any.
    pub fn get(&self, digest: &KeyDigest) -> Option<Arc<KeyRecord>> {
        self.records.get(digest).map(|entry| Arc::clone(&entry))
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl KeyStore for InMemoryKeyStore {
    type Lookup = Ready<LookupResult>;

    #[inline]
    fn lookup(&self, digest: &KeyDigest) -> Answer<LookupResult, Self::Lookup> {
        Answer::Ready(Ok(self.get(digest)))
    }
}

impl fmt::Debug for InMemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryKeyStore")
            .field("keys", &self.records.len())
            .finish()
    }
}
