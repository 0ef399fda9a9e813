//! The key format: `{kind}_{env}_{secret}`, its prefixes and its checksum,
//! and [`KeyParser`], which checks it without touching a store.

use std::fmt;

pub use super::checksum::checksum;
use super::checksum::{checksum_of_crc, crc_step};
use crate::ConfigError;
use crate::context::kind::{KeyEnv, KeyKind};

/// Why a string is not a well-formed key. Never carries the key itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Empty.
    Empty,
    /// Longer than the maximum length.
    TooLong,
    /// A character outside `[A-Za-z0-9_]`.
    BadCharacter,
    /// The prefix is not in the prefix table.
    UnknownPrefix,
    /// The secret part is missing, too short, or has an underscore.
    BadSecret,
    /// The checksum does not match.
    BadChecksum,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "the API key is empty",
            Self::TooLong => "the API key is too long",
            Self::BadCharacter => "the API key has a character outside [A-Za-z0-9_]",
            Self::UnknownPrefix => "the API key does not start with a known prefix",
            Self::BadSecret => "the API key's secret part is missing, too short or malformed",
            Self::BadChecksum => "the API key's checksum does not match (is it mistyped?)",
        })
    }
}

impl std::error::Error for ParseError {}

/// A well-formed key, borrowed from the request. Its `Debug` shows only the
/// prefix and environment.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    key: &'a str,
    kind: KeyKind,
    env: Option<KeyEnv>,
}

impl<'a> ParsedKey<'a> {
    /// The whole key, as sent.
    pub fn as_str(&self) -> &'a str {
        self.key
    }

    /// The kind told by its prefix.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The environment segment, if the key has one.
    pub fn env(&self) -> Option<KeyEnv> {
        self.env
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("kind", &self.kind)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Length of the checksum suffix.
pub const CHECKSUM_LEN: usize = 6;
/// Length of the random part of a minted key.
pub const MINTED_SECRET_LEN: usize = 32;

const BAD: u8 = 0;
const UNDERSCORE: u8 = 2;

/// What each byte may be in a key: a letter or digit (1), `_`, or bad.
const CLASS: [u8; 256] = {
    let mut class = [BAD; 256];
    let mut byte = 0;
    while byte < 256 {
        if (byte as u8).is_ascii_alphanumeric() {
            class[byte] = 1;
        }
        byte += 1;
    }
    class[b'_' as usize] = UNDERSCORE;
    class
};

/// Parses and classifies keys: the prefix table, whether a checksum is
/// required, and length limits.
///
/// ```
/// use tollgate::key::KeyKind;
/// use tollgate::key::format::{KeyParser, ParseError};
///
/// let parser = KeyParser::new().with_prefix("phc", KeyKind::Publishable).unwrap().require_checksum(false);
/// let key = parser.parse("phc_test_abcdefghijklmnopqrstuv").unwrap();
/// assert_eq!(key.kind(), KeyKind::Publishable);
/// assert_eq!(parser.parse("xx_live_abcdefghijklmnopqrstuv").unwrap_err(), ParseError::UnknownPrefix);
/// ```
#[derive(Clone, Debug)]
pub struct KeyParser {
    prefixes: Vec<(Box<str>, KeyKind)>,
    require_checksum: bool,
    min_secret_len: usize,
    max_len: usize,
}

/// The longest key accepted by default, and at most.
pub const MAX_KEY_LEN: usize = 255;

impl KeyParser {
    /// The default table (`pk`, `sk`, `rk`), checksum required, secrets of at
    /// least 16 characters, keys of at most 255.
    pub fn new() -> Self {
        Self {
            prefixes: KeyKind::ALL
                .iter()
                .map(|kind| (Box::from(kind.default_prefix()), *kind))
                .collect(),
            require_checksum: true,
            min_secret_len: 16,
            max_len: MAX_KEY_LEN,
        }
    }

    /// Adds a prefix for `kind` (lower-case letters and digits, 1 to 16).
    pub fn with_prefix(mut self, prefix: &str, kind: KeyKind) -> Result<Self, ConfigError> {
        let valid = (1..=16).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(ConfigError::new(
                "prefix",
                format!("`{prefix}` is not a valid key prefix: use 1 to 16 characters of [a-z0-9]"),
            ));
        }
        if prefix == "live" || prefix == "test" {
            return Err(ConfigError::new(
                "prefix",
                format!("`{prefix}` is an environment, not a prefix"),
            ));
        }
        match self.prefixes.iter_mut().find(|(p, _)| &**p == prefix) {
            Some(entry) => entry.1 = kind,
            None => self.prefixes.push((prefix.into(), kind)),
        }
        Ok(self)
    }

    /// Removes every prefix, so only those added afterwards are accepted.
    #[must_use]
    pub fn without_prefixes(mut self) -> Self {
        self.prefixes.clear();
        self
    }

    /// Whether keys must carry a valid checksum (default: yes). Turn it off
    /// for keys issued before checksums.
    #[must_use]
    pub fn require_checksum(mut self, required: bool) -> Self {
        self.require_checksum = required;
        self
    }

    /// The shortest secret part accepted (default 16).
    #[must_use]
    pub fn min_secret_len(mut self, len: usize) -> Self {
        self.min_secret_len = len.max(1);
        self
    }

    /// The longest key accepted (default and at most 255).
    #[must_use]
    pub fn max_len(mut self, len: usize) -> Self {
        self.max_len = len.min(MAX_KEY_LEN);
        self
    }

    /// The first prefix registered for `kind`.
    pub fn prefix_for(&self, kind: KeyKind) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(_, k)| *k == kind)
            .map(|(prefix, _)| &**prefix)
    }

    /// The kind of key this prefix (the text before the first `_`) marks.
    pub fn kind_of_prefix(&self, prefix: &str) -> Option<KeyKind> {
        self.prefixes
            .iter()
            .find(|(p, _)| **p == *prefix)
            .map(|(_, kind)| *kind)
    }

    /// Parses and classifies `key`, checking length, characters, prefix,
    /// secret and (if required) checksum. Touches no store.
    pub fn parse<'a>(&self, key: &'a str) -> Result<ParsedKey<'a>, ParseError> {
        if key.is_empty() {
            return Err(ParseError::Empty);
        }
        if key.len() > self.max_len {
            return Err(ParseError::TooLong);
        }
        // One pass: every character checked, the first underscores noted,
        // and the bytes before the checksum folded into its CRC.
        let bytes = key.as_bytes();
        let body_end = if self.require_checksum {
            bytes.len().saturating_sub(CHECKSUM_LEN)
        } else {
            0
        };
        let mut crc = !0u32;
        let mut underscores = [0usize; 2];
        let mut count = 0usize;
        let mut bad = false;
        let mut note = |at: usize, byte: u8| {
            let class = CLASS[usize::from(byte)];
            bad |= class == BAD;
            if class == UNDERSCORE {
                if let Some(slot) = underscores.get_mut(count) {
                    *slot = at;
                }
                count += 1;
            }
        };
        let (body, tail) = bytes.split_at(body_end);
        for (at, &byte) in body.iter().enumerate() {
            crc = crc_step(crc, byte);
            note(at, byte);
        }
        for (at, &byte) in tail.iter().enumerate() {
            note(body_end + at, byte);
        }
        if bad {
            return Err(ParseError::BadCharacter);
        }
        if count == 0 {
            return Err(ParseError::UnknownPrefix);
        }
        let kind = self
            .kind_of_prefix(&key[..underscores[0]])
            .ok_or(ParseError::UnknownPrefix)?;
        let rest = &key[underscores[0] + 1..];
        // The environment, the secret, and how many underscores the secret
        // still holds (it may hold none).
        let (env, secret, in_secret) =
            match (count >= 2).then(|| &key[underscores[0] + 1..underscores[1]]) {
                Some("live") => (Some(KeyEnv::Live), &key[underscores[1] + 1..], count - 2),
                Some("test") => (Some(KeyEnv::Test), &key[underscores[1] + 1..], count - 2),
                _ => (None, rest, count - 1),
            };
        let min_secret = if self.require_checksum {
            self.min_secret_len.max(CHECKSUM_LEN + 1)
        } else {
            self.min_secret_len
        };
        if secret.len() < min_secret || in_secret > 0 {
            return Err(ParseError::BadSecret);
        }
        if self.require_checksum && checksum_of_crc(!crc) != bytes[body_end..] {
            return Err(ParseError::BadChecksum);
        }
        Ok(ParsedKey { key, kind, env })
    }
}

impl Default for KeyParser {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_checksum(body: &str) -> String {
        format!("{body}{}", checksum(body))
    }

    #[test]
    fn classifies_kind_and_env() {
        let parser = KeyParser::new();
        for (body, kind, env) in [
            (
                "pk_live_abcdefghijklmnopqrstuvwxyz012345",
                KeyKind::Publishable,
                Some(KeyEnv::Live),
            ),
            (
                "sk_test_abcdefghijklmnopqrstuvwxyz012345",
                KeyKind::Secret,
                Some(KeyEnv::Test),
            ),
            (
                "rk_abcdefghijklmnopqrstuvwxyz012345",
                KeyKind::Restricted,
                None,
            ),
        ] {
            let key = with_checksum(body);
            let parsed = parser.parse(&key).unwrap();
            assert_eq!((parsed.kind(), parsed.env()), (kind, env), "{body}");
            assert_eq!(parsed.as_str(), key);
        }
    }

    #[test]
    fn rejects_malformed_keys() {
        let parser = KeyParser::new();
        let good = with_checksum("sk_live_abcdefghijklmnopqrstuvwxyz012345");
        let mut typo = good.clone().into_bytes();
        typo[10] = if typo[10] == b'x' { b'y' } else { b'x' };
        let typo = String::from_utf8(typo).unwrap();
        let cases = [
            (String::new(), ParseError::Empty),
            ("s".repeat(256), ParseError::TooLong),
            (format!("{good}-"), ParseError::BadCharacter),
            ("sk live".into(), ParseError::BadCharacter),
            ("skliveabc".into(), ParseError::UnknownPrefix),
            (
                with_checksum("xk_live_abcdefghijklmnopqrstuvwxyz012345"),
                ParseError::UnknownPrefix,
            ),
            ("sk_live_".into(), ParseError::BadSecret),
            (with_checksum("sk_live_abc"), ParseError::BadSecret),
            (
                with_checksum("sk_live_abcdefghij_klmnopqrstuvwxyz"),
                ParseError::BadSecret,
            ),
            (typo, ParseError::BadChecksum),
            (
                format!("{}000000", &good[..good.len() - 6]),
                ParseError::BadChecksum,
            ),
        ];
        for (key, expected) in cases {
            assert_eq!(parser.parse(&key).unwrap_err(), expected, "{key}");
        }
        assert!(parser.parse(&good).is_ok());
    }

    #[test]
    fn checksum_can_be_optional_and_prefixes_configured() {
        let parser = KeyParser::new().require_checksum(false);
        assert!(parser.parse("sk_live_legacykeywithoutchecksum").is_ok());
        let parser = KeyParser::new()
            .without_prefixes()
            .with_prefix("phx", KeyKind::Secret)
            .unwrap();
        assert_eq!(parser.prefix_for(KeyKind::Secret), Some("phx"));
        assert_eq!(parser.prefix_for(KeyKind::Publishable), None);
        let key = with_checksum("phx_abcdefghijklmnopqrstuvwxyz");
        assert_eq!(parser.parse(&key).unwrap().kind(), KeyKind::Secret);
        let sk = with_checksum("sk_live_abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(parser.parse(&sk).unwrap_err(), ParseError::UnknownPrefix);
        for bad in ["", "PK", "p_k", "live", "abcdefghijklmnopq"] {
            assert_eq!(
                KeyParser::new()
                    .with_prefix(bad, KeyKind::Secret)
                    .unwrap_err()
                    .field(),
                "prefix"
            );
        }
    }
}
