//! [`KeyPolicy`]: how one route takes keys, and the [`Access`] it compiles to.

use serde::{Deserialize, Serialize};

use super::credential::{CredentialSource, Sources};
use super::options::KeyOptions;
use crate::ConfigError;

/// A route's key settings, as [`RoutePolicy`](crate::gate::RoutePolicy)
/// and a configuration file's route entry carry them. Unset: the gate's
/// defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyPolicy {
    /// `anonymous`: a request without a key passes with no principal; a
    /// key that is presented is judged in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) anonymous: Option<bool>,
    /// `credentials`: where this route reads keys (`bearer`, `header`,
    /// `query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) credentials: Option<Vec<CredentialSource>>,
}

impl KeyPolicy {
    /// Each setting this policy leaves unset, from `defaults`.
    pub(crate) fn or(&self, defaults: &Self) -> Self {
        Self {
            anonymous: self.anonymous.or(defaults.anonymous),
            credentials: self
                .credentials
                .clone()
                .or_else(|| defaults.credentials.clone()),
        }
    }

    /// How the route takes keys: its own sources, else the gate's
    /// (`options`), else all.
    pub(crate) fn access(&self, options: &KeyOptions) -> Result<Access, ConfigError> {
        if let Some(own) = &self.credentials {
            options.check_sources(own)?;
        }
        let listed = self
            .credentials
            .as_deref()
            .or(options.credentials.as_deref());
        Ok(Access {
            sources: listed.map_or(Sources::ALL, |listed| listed.iter().copied().collect()),
            anonymous: self.anonymous.unwrap_or(false),
        })
    }
}

/// How one route takes keys: from which places, and whether a request
/// without any may pass anonymously.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) sources: Sources,
    pub(crate) anonymous: bool,
}

impl Default for Access {
    fn default() -> Self {
        Self {
            sources: Sources::ALL,
            anonymous: false,
        }
    }
}
