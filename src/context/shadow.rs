//! Shadow mode: checks that decide and record, but do not refuse.
//!
//! A route may shadow some of its checks (or all of them): a rejection by
//! a shadowed check is recorded — [`Shadowed`] in the request's extensions,
//! the decision hook and metrics with outcome `shadow` and the code that
//! would have been answered, a `debug` log with the `tracing` feature — and
//! the request goes on to the next check and to your service.
//!
//! - A shadowed **key** check lets the request through without a
//!   [`Principal`](crate::key::Principal): the checks after it see it as
//!   anonymous (rate-limited by client address).
//! - A shadowed **rate limit** takes nothing from the bucket when it would
//!   refuse (a refusal never does), and sends no rate-limit headers at all
//!   on that route, admitted or not: clients must not start slowing down
//!   because of a limit that is only being tried.
//! - **Body caps** cannot be shadowed: they protect the server's memory,
//!   and a body over the cap is never read.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConfigError;
use crate::error::{ApiError, Rule};

/// Which of a route's checks are shadowed: in a configuration file,
/// `shadow = true` (every check of the route) or a list of check kinds,
/// `shadow = ["rate_limit", "scope"]`: `key`, `origin`, `kind`, `scope`,
/// `rate_limit`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Shadow(u8);

const KEY: u8 = 1;
const ORIGIN: u8 = 2;
const KIND: u8 = 4;
const SCOPE: u8 = 8;
const RATE_LIMIT: u8 = 16;
/// Every check, your own included.
const ALL: u8 = 0x80;

/// The checks that can be shadowed, by rule.
const RULES: [(Rule, u8); 5] = [
    (Rule::Key, KEY),
    (Rule::Origin, ORIGIN),
    (Rule::Kind, KIND),
    (Rule::Scope, SCOPE),
    (Rule::RateLimit, RATE_LIMIT),
];

impl Shadow {
    /// Nothing shadowed: every check enforced.
    pub const NONE: Shadow = Shadow(0);
    /// Every check of the route shadowed (the body cap excepted).
    pub const ALL: Shadow = Shadow(ALL);

    /// The checks named (`key`, `origin`, `kind`, `scope`, `rate_limit`); an
    /// unknown name is an error naming it.
    pub fn checks<I, S>(names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut mask = 0;
        for name in names {
            let name = name.as_ref();
            let Some((_, bit)) = RULES.iter().find(|(known, _)| known.as_str() == name) else {
                let why = if name == "body_limit" {
                    format!(
                        "`{name}` cannot be shadowed: a body cap protects the server's memory, so it is always enforced"
                    )
                } else {
                    format!(
                        "`{name}` is not a check: use `key`, `origin`, `kind`, `scope`, `rate_limit`, or `shadow = true` for the whole route"
                    )
                };
                return Err(ConfigError::new("shadow", why));
            };
            mask |= bit;
        }
        Ok(Self(mask))
    }

    /// Whether nothing is shadowed.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// Whether a rejection by the rule `rule` (see [`ApiError::rule`]) is
    /// shadowed.
    pub fn covers(self, rule: Option<Rule>) -> bool {
        if self.0 & ALL != 0 {
            return rule != Some(Rule::BodyLimit);
        }
        let Some(rule) = rule else {
            return false;
        };
        RULES
            .iter()
            .any(|(known, bit)| *known == rule && self.0 & bit != 0)
    }

    fn names(self) -> impl Iterator<Item = &'static str> {
        RULES
            .iter()
            .filter(move |(_, bit)| self.0 & bit != 0)
            .map(|(rule, _)| rule.as_str())
    }
}

impl fmt::Debug for Shadow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 & ALL != 0 {
            return f.write_str("Shadow::ALL");
        }
        f.debug_set().entries(self.names()).finish()
    }
}

/// Reads `true`, `false` or a list of check kinds.
impl<'de> Deserialize<'de> for Shadow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Shadow;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`true`, `false`, or a list of checks such as [\"rate_limit\"]")
            }

            fn visit_bool<E: serde::de::Error>(self, all: bool) -> Result<Shadow, E> {
                Ok(if all { Shadow::ALL } else { Shadow::NONE })
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shadow, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Shadow::checks(&names).map_err(|error| serde::de::Error::custom(error.reason()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Shadow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 & ALL != 0 || self.0 == 0 {
            return serializer.serialize_bool(self.0 != 0);
        }
        serializer.collect_seq(self.names())
    }
}

/// In the extensions of a request that passed a route with optional
/// authentication without a credential: the checks after the key check
/// treat it as a public request (see [`caller`](super::caller)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

/// What the route check puts in the extensions of a request on a route
/// that shadows something.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteShadow(pub(crate) Shadow);

/// The rejection a shadowed check would have answered (the first, when
/// several would have), in the extensions of the request that went on to
/// your service. The decision hook sees it too
/// ([`GateEvent::shadowed`](crate::gate::GateEvent::shadowed)).
#[derive(Clone, Debug)]
pub struct Shadowed(pub ApiError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_cover() {
        let shadow = Shadow::checks(["rate_limit", "scope"]).unwrap();
        assert!(shadow.covers(Some(Rule::RateLimit)));
        assert!(shadow.covers(Some(Rule::Scope)));
        assert!(!shadow.covers(Some(Rule::Key)));
        assert!(!shadow.covers(None));
        assert!(Shadow::ALL.covers(Some(Rule::Custom("geo"))));
        assert!(!Shadow::ALL.covers(Some(Rule::BodyLimit)));
        let error = Shadow::checks(["body_limit"]).unwrap_err();
        assert!(error.reason().contains("always enforced"), "{error}");
        assert!(Shadow::checks(["rate_limits"]).is_err());
    }
}
