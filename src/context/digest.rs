//! [`KeyDigest`]: what a key is stored and compared as.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::ConfigError;

/// The digest of an API key: what a [`KeyStore`](crate::key::store::KeyStore) is keyed by.
///
/// Compared in constant time. Its `Debug` never shows the bytes; use
/// [`to_hex`](KeyDigest::to_hex) deliberately to store it.
#[derive(Clone, Copy)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// Wraps 32 digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        out
    }

    /// Parses 64 hexadecimal characters.
    pub fn from_hex(hex: &str) -> Result<Self, ConfigError> {
        let error = || ConfigError::new("digest", "expected 64 hexadecimal characters");
        if hex.len() != 64 {
            return Err(error());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let high = char::from(pair[0]).to_digit(16).ok_or_else(error)?;
            let low = char::from(pair[1]).to_digit(16).ok_or_else(error)?;
            *byte = u8::try_from(high * 16 + low).map_err(|_| error())?;
        }
        Ok(Self(bytes))
    }
}

impl PartialEq for KeyDigest {
    /// Constant time: every byte is compared whatever the first difference.
    fn eq(&self, other: &Self) -> bool {
        // Eight bytes at a time, every word whatever the first difference.
        let difference = self
            .0
            .chunks_exact(8)
            .zip(other.0.chunks_exact(8))
            .fold(0u64, |acc, (a, b)| acc | (word(a) ^ word(b)));
        std::hint::black_box(difference) == 0
    }
}

impl Eq for KeyDigest {}

fn word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_ne_bytes(word)
}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A digest is already uniformly distributed: eight bytes are plenty.
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(head));
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}
