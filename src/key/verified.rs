//! Keys already verified: found by a keyed hash of the key as presented, so
//! a key seen before costs neither the parse, the digest nor the store's
//! table.
//!
//! Only stores that say when they change take part
//! ([`KeyStore::generation`](super::store::KeyStore::generation)): an entry
//! remembers the store's generation when its lookup began and is used only
//! while the store is still at it, so a revoked, changed or removed key is
//! never answered from here. Only keys the store knew are remembered, so a
//! flood of guessed keys neither grows it nor evicts the keys in use.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::context::kind::KeyKind;
use crate::context::record::KeyRecord;
use crate::hash::BuildPrehashed;

/// How many sets the entries are spread over.
const SHARDS: usize = 16;

/// The default number of keys remembered.
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// A keyed 128-bit hash of a presented key (SipHash-2-4 under a random key
/// of this process): two different keys share one with probability 2⁻¹²⁸,
/// and nobody without the key can choose one that does. Two words, not a
/// `u128`, so that an entry is 24 bytes, not 32.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag([u64; 2]);

impl Hash for Tag {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly distributed: one word is its own hash.
        state.write_u64(self.0[0]);
    }
}

/// The keys a [`KeyCheck`](super::KeyCheck) has verified (shared by its
/// clones): each tag with the store's record for it.
#[derive(Clone)]
pub(crate) struct VerifiedKeys {
    inner: Arc<Inner>,
}

struct Inner {
    hasher: SipHasher24,
    per_shard: usize,
    shards: [RwLock<Shard>; SHARDS],
}

/// Keys verified while the store was at `generation`; emptied when a key
/// verified at a later one arrives.
#[derive(Default)]
struct Shard {
    generation: u64,
    keys: HashMap<Tag, Arc<KeyRecord>, BuildPrehashed>,
}

impl VerifiedKeys {
    /// Remembers up to about `capacity` keys; `None` for 0 (remember none).
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        let mut secret = [0u8; 16];
        // Without randomness, a fixed key would let keys be chosen to
        // collide: then remember nothing rather than risk it.
        getrandom::fill(&mut secret).ok()?;
        Some(Self {
            inner: Arc::new(Inner {
                hasher: SipHasher24::new_with_key(&secret),
                per_shard: capacity.div_ceil(SHARDS),
                shards: std::array::from_fn(|_| RwLock::default()),
            }),
        })
    }

    /// The tag of `key`.
    #[inline]
    pub(crate) fn tag(&self, key: &[u8]) -> Tag {
        let mut hasher = self.inner.hasher;
        hasher.write(key);
        let hash = hasher.finish128();
        Tag([hash.h1, hash.h2])
    }

    fn shard(&self, tag: Tag) -> &RwLock<Shard> {
        // Other bits than the sets' own hash uses.
        &self.inner.shards[(tag.0[1] as usize) % SHARDS]
    }

    /// The record of the key of `tag`, if verified while the store was at
    /// `generation`.
    #[inline]
    pub(crate) fn get(&self, tag: Tag, generation: u64) -> Option<Arc<KeyRecord>> {
        let shard = self
            .shard(tag)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.generation != generation {
            return None;
        }
        shard.keys.get(&tag).cloned()
    }

    /// Remembers `record` for the key of `tag`, found while the store was at
    /// `generation` (a key whose prefix names another kind than its record
    /// is not remembered: it is refused on every request anyway). Makes room
    /// by forgetting another key when full.
    pub(crate) fn insert(&self, tag: Tag, record: &Arc<KeyRecord>, kind: KeyKind, generation: u64) {
        if record.kind() != kind {
            return;
        }
        let mut shard = self
            .shard(tag)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.generation != generation {
            // Generations only grow: an older one's lookup is out of date.
            if generation < shard.generation {
                return;
            }
            shard.keys.clear();
            shard.generation = generation;
        }
        if shard.keys.len() >= self.inner.per_shard && !shard.keys.contains_key(&tag) {
            let any = shard.keys.keys().next().copied();
            if let Some(any) = any {
                shard.keys.remove(&any);
            }
        }
        shard.keys.insert(tag, Arc::clone(record));
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| {
                shard
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .keys
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Arc<KeyRecord> {
        Arc::new(KeyRecord::new("key_1", "acme", KeyKind::Secret))
    }

    #[test]
    fn an_entry_serves_only_its_generation() {
        let keys = VerifiedKeys::new(16).unwrap();
        let tag = keys.tag(b"sk_test_abc");
        keys.insert(tag, &record(), KeyKind::Secret, 7);
        assert!(keys.get(tag, 7).is_some());
        assert!(keys.get(tag, 8).is_none());
        assert!(keys.get(keys.tag(b"sk_test_abd"), 7).is_none());
        // A lookup begun before the store changed is not answered after.
        keys.insert(keys.tag(b"sk_test_new"), &record(), KeyKind::Secret, 9);
        keys.insert(keys.tag(b"sk_test_old"), &record(), KeyKind::Secret, 8);
        assert!(keys.get(keys.tag(b"sk_test_new"), 9).is_some());
        assert!(keys.get(keys.tag(b"sk_test_old"), 9).is_none());
        assert!(keys.get(tag, 9).is_none());
        // Nor is a key whose prefix names another kind than its record.
        keys.insert(keys.tag(b"pk_test_abc"), &record(), KeyKind::Publishable, 9);
        assert!(keys.get(keys.tag(b"pk_test_abc"), 9).is_none());
    }

    #[test]
    fn tags_are_keyed_per_cache() {
        let (a, b) = (VerifiedKeys::new(1).unwrap(), VerifiedKeys::new(1).unwrap());
        assert!(a.tag(b"sk_test_abc") == a.tag(b"sk_test_abc"));
        assert!(a.tag(b"sk_test_abc") != b.tag(b"sk_test_abc"));
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let keys = VerifiedKeys::new(32).unwrap();
        for i in 0..1_000 {
            keys.insert(
                keys.tag(format!("sk_test_{i}").as_bytes()),
                &record(),
                KeyKind::Secret,
                1,
            );
        }
        assert!(keys.len() <= 32, "{} entries", keys.len());
        assert!(keys.len() >= 16, "{} entries", keys.len());
        assert!(VerifiedKeys::new(0).is_none());
    }
}
