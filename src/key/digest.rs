//! Digests: keys are stored and compared only as HMAC-SHA256 digests.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::checksum::{base62_char, checksum};
use super::format::{CHECKSUM_LEN, MINTED_SECRET_LEN};
use crate::context::digest::KeyDigest;
use crate::context::kind::{KeyEnv, KeyKind};

/// Computes key digests: HMAC-SHA256 keyed by a server-side pepper, or plain
/// SHA-256 when no pepper is set. Mints new keys.
///
/// With a pepper, a leaked store cannot be checked against guessed keys
/// without the pepper too. Its `Debug` never shows the pepper.
///
/// ```
/// use tollgate::key::{KeyEnv, KeyHasher, KeyKind};
///
/// let hasher = KeyHasher::with_pepper(b"from-a-secret-manager");
/// let minted = hasher.mint(KeyKind::Publishable, Some(KeyEnv::Live)).unwrap();
/// assert!(minted.key().starts_with("pk_live_"));
/// assert_eq!(hasher.digest(minted.key()), minted.digest());
/// assert_ne!(tollgate::key::KeyHasher::new().digest(minted.key()), minted.digest());
/// ```
#[derive(Clone, Default)]
pub struct KeyHasher {
    keyed: Option<Hmac<Sha256>>,
}

impl KeyHasher {
    /// Plain SHA-256 digests (no pepper).
    pub fn new() -> Self {
        Self::default()
    }

    /// HMAC-SHA256 digests keyed by `pepper`.
    pub fn with_pepper(pepper: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let keyed = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(pepper).ok();
        Self { keyed }
    }

    /// Whether a pepper is set.
    pub fn has_pepper(&self) -> bool {
        self.keyed.is_some()
    }

    /// The digest of `key`.
    pub fn digest(&self, key: &str) -> KeyDigest {
        let bytes: [u8; 32] = match &self.keyed {
            // The pepper's inner and outer pads were hashed once, at set-up;
            // cloning that state is all each request pays.
            Some(keyed) => {
                let mut mac = keyed.clone();
                mac.update(key.as_bytes());
                mac.finalize().into_bytes().into()
            }
            None => Sha256::digest(key.as_bytes()).into(),
        };
        KeyDigest::from_bytes(bytes)
    }

    /// Mints a key of `kind` with the kind's default prefix: 32 random base62
    /// characters and the checksum, e.g. `sk_live_…`. Returns it with its digest.
    pub fn mint(&self, kind: KeyKind, env: Option<KeyEnv>) -> Result<MintedKey, MintError> {
        self.mint_with_prefix(kind.default_prefix(), env)
    }

    /// Mints a key with a custom `prefix` (see [`KeyParser::with_prefix`](super::format::KeyParser::with_prefix)).
    pub fn mint_with_prefix(
        &self,
        prefix: &str,
        env: Option<KeyEnv>,
    ) -> Result<MintedKey, MintError> {
        let mut key = String::with_capacity(prefix.len() + 6 + MINTED_SECRET_LEN + CHECKSUM_LEN);
        key.push_str(prefix);
        key.push('_');
        if let Some(env) = env {
            key.push_str(env.as_str());
            key.push('_');
        }
        let mut filled = 0;
        let mut random = [0u8; 64];
        while filled < MINTED_SECRET_LEN {
            getrandom::fill(&mut random).map_err(|_| MintError(()))?;
            for &byte in &random {
                if filled == MINTED_SECRET_LEN {
                    break;
                }
                if let Some(c) = base62_char(byte) {
                    key.push(char::from(c));
                    filled += 1;
                }
            }
        }
        let sum = checksum(&key);
        key.push_str(&sum);
        let digest = self.digest(&key);
        Ok(MintedKey { key, digest })
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field(
                "pepper",
                &if self.has_pepper() {
                    "<redacted>"
                } else {
                    "<none>"
                },
            )
            .finish()
    }
}

/// A freshly minted key and its digest. Show the key to its owner once;
/// store only the digest. Its `Debug` shows only the prefix.
#[derive(Clone)]
pub struct MintedKey {
    key: String,
    digest: KeyDigest,
}

impl MintedKey {
    /// The key, to hand to its owner.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The digest, to store.
    pub fn digest(&self) -> KeyDigest {
        self.digest
    }

    /// The key, by value.
    pub fn into_key(self) -> String {
        self.key
    }
}

impl fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.key.split('_').next().unwrap_or("");
        write!(f, "MintedKey({prefix}_<redacted>)")
    }
}

/// The operating system's random source failed while minting.
#[derive(Debug)]
pub struct MintError(());

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the system's random number source failed")
    }
}

impl std::error::Error for MintError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::format::KeyParser;

    #[test]
    fn sha256_without_pepper_matches_the_standard_vector() {
        let digest = KeyHasher::new().digest("abc");
        assert_eq!(
            digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let digest = KeyHasher::with_pepper(b"Jefe").digest("what do ya want for nothing?");
        assert_eq!(
            digest.to_hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn digests_differing_in_any_byte_are_unequal() {
        let base = KeyDigest::from_bytes([7; 32]);
        assert_eq!(base, KeyDigest::from_bytes([7; 32]));
        for at in 0..32 {
            let mut bytes = [7; 32];
            bytes[at] ^= 0x80;
            assert_ne!(base, KeyDigest::from_bytes(bytes), "byte {at}");
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let digest = KeyHasher::new().digest("x");
        assert_eq!(KeyDigest::from_hex(&digest.to_hex()).unwrap(), digest);
        assert!(KeyDigest::from_hex("zz").is_err());
        assert!(KeyDigest::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn minted_keys_parse_and_differ() {
        let hasher = KeyHasher::with_pepper(b"pepper");
        let parser = KeyParser::new();
        let a = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
        let b = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key().len(), "sk_test_".len() + 32 + 6);
        let parsed = parser.parse(a.key()).unwrap();
        assert_eq!(
            (parsed.kind(), parsed.env()),
            (KeyKind::Secret, Some(KeyEnv::Test))
        );
        let no_env = hasher.mint(KeyKind::Restricted, None).unwrap();
        assert_eq!(parser.parse(no_env.key()).unwrap().env(), None);
    }

    #[test]
    fn debug_redacts_secrets() {
        let hasher = KeyHasher::with_pepper(b"pepper-value");
        let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Live)).unwrap();
        let shown = format!("{hasher:?} {minted:?} {:?}", minted.digest());
        assert!(!shown.contains("pepper-value"));
        assert!(!shown.contains(&minted.key()[3..]));
        assert!(!shown.contains(&minted.digest().to_hex()));
        assert!(shown.contains("MintedKey(sk_<redacted>)"));
    }
}
