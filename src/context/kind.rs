//! [`KeyKind`], [`KeyKinds`] and [`KeyEnv`]: what a key is, told by its
//! prefix and environment segment.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a key may be used for, told by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyKind {
    /// `pk_`: publishable, safe to embed in browsers and apps.
    Publishable,
    /// `sk_`: secret, server-side only.
    Secret,
    /// `rk_`: restricted, read-only by default.
    Restricted,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 3] = [KeyKind::Publishable, KeyKind::Secret, KeyKind::Restricted];

    /// The default prefix: `pk`, `sk` or `rk`.
    pub const fn default_prefix(self) -> &'static str {
        match self {
            Self::Publishable => "pk",
            Self::Secret => "sk",
            Self::Restricted => "rk",
        }
    }

    /// The kind's name: `publishable`, `secret` or `restricted`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Publishable => "publishable",
            Self::Secret => "secret",
            Self::Restricted => "restricted",
        }
    }

    /// The scopes a key of this kind has when its record names none:
    /// publishable `ingest`; secret `ingest`, `read`, `admin`; restricted `read`.
    pub const fn default_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Publishable => &["ingest"],
            Self::Secret => &["ingest", "read", "admin"],
            Self::Restricted => &["read"],
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of key kinds (for example the kinds a route accepts).
///
/// ```
/// use tollgate::key::{KeyKind, KeyKinds};
///
/// let kinds = KeyKinds::from_iter([KeyKind::Secret, KeyKind::Restricted]);
/// assert!(kinds.contains(KeyKind::Secret));
/// assert!(!kinds.contains(KeyKind::Publishable));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyKinds(u8);

impl KeyKinds {
    /// No kind.
    pub const NONE: KeyKinds = KeyKinds(0);
    /// Every kind.
    pub const ALL: KeyKinds = KeyKinds(0b111);

    const fn bit(kind: KeyKind) -> u8 {
        match kind {
            KeyKind::Publishable => 1,
            KeyKind::Secret => 2,
            KeyKind::Restricted => 4,
        }
    }

    /// Just `kind`.
    pub const fn only(kind: KeyKind) -> Self {
        Self(Self::bit(kind))
    }

    /// This set and `kind`.
    #[must_use]
    pub const fn with(self, kind: KeyKind) -> Self {
        Self(self.0 | Self::bit(kind))
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: KeyKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set.
    pub fn iter(self) -> impl Iterator<Item = KeyKind> {
        KeyKind::ALL
            .into_iter()
            .filter(move |kind| self.contains(*kind))
    }
}

impl FromIterator<KeyKind> for KeyKinds {
    fn from_iter<I: IntoIterator<Item = KeyKind>>(kinds: I) -> Self {
        kinds.into_iter().fold(Self::NONE, Self::with)
    }
}

impl From<KeyKind> for KeyKinds {
    fn from(kind: KeyKind) -> Self {
        Self::only(kind)
    }
}

impl fmt::Debug for KeyKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The environment segment of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyEnv {
    /// `live`: production.
    Live,
    /// `test`: test mode.
    Test,
}

impl KeyEnv {
    /// `live` or `test`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }
}

impl fmt::Display for KeyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
