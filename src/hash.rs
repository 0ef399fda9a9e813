//! Keyed hashing for bucket identities.
//!
//! Rate-limit buckets are keyed by a 64-bit hash of (partition, route,
//! quota). The hash is SipHash keyed with a random per-process key, so
//! nobody outside the process can choose partitions that collide; two live
//! buckets share a key with probability about n²/2⁶⁵ (3·10⁻⁸ for a million
//! buckets). Hashes that depend only on configuration (routes, key records)
//! are computed once, at start-up.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::OnceLock;

fn keys() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

/// Namespaces of [`keyed`].
pub(crate) const ROUTE: u8 = 1;
pub(crate) const PROJECT: u8 = 2;
pub(crate) const KEY_ID: u8 = 3;
pub(crate) const IP: u8 = 4;
pub(crate) const CUSTOM: u8 = 5;
pub(crate) const GLOBAL: u8 = 6;
pub(crate) const SHARED_QUOTA: u8 = 7;

/// The keyed hash of `bytes`, in the namespace `domain` (so that, say, a
/// project and a key id with the same text never share a hash).
pub(crate) fn keyed(domain: u8, bytes: &[u8]) -> u64 {
    let mut hasher = keys().build_hasher();
    hasher.write_u8(domain);
    hasher.write(bytes);
    hasher.finish()
}

/// Combines already-keyed hashes into one, mixing every input bit into every
/// output bit (the SplitMix64 finaliser).
#[inline]
pub(crate) const fn combine(a: u64, b: u64, c: u64) -> u64 {
    let mut x = a ^ b.rotate_left(21) ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A hasher for keys that are already uniformly distributed hashes.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

pub(crate) type BuildPrehashed = BuildHasherDefault<Prehashed>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_text() {
        assert_ne!(keyed(1, b"acme"), keyed(2, b"acme"));
        assert_eq!(keyed(1, b"acme"), keyed(1, b"acme"));
    }

    #[test]
    fn combine_depends_on_every_input() {
        let base = combine(1, 2, 3);
        assert_ne!(base, combine(0, 2, 3));
        assert_ne!(base, combine(1, 0, 3));
        assert_ne!(base, combine(1, 2, 0));
    }
}
