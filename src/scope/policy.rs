//! [`ScopePolicy`]: a route's scope and kind settings, and the
//! [`ScopeRule`] they compile to.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::rule::ScopeRule;
use crate::ConfigError;
use crate::context::kind::{KeyKind, KeyKinds};
use crate::error::{Category, rule_code};

/// A route's scope and kind settings, as
/// [`RoutePolicy`](crate::gate::RoutePolicy) and a configuration file's
/// route entry carry them. Unset: the gate's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScopePolicy {
    /// `scopes`: a key must hold all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scopes: Option<Vec<String>>,
    /// `any_scopes`: a key must hold one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) any_scopes: Option<Vec<String>>,
    /// `kinds`: accepted key kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kinds: Option<Vec<KeyKind>>,
    /// `kind_code`: the code refusing other kinds (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind_code: Option<String>,
    /// `scope_code`: the code refusing keys without the scopes (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope_code: Option<String>,
    /// `project_code`: the code refusing keys of another project (403);
    /// unset: the scope code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project_code: Option<String>,
    /// `project_param`: a path parameter that must equal the caller's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project_param: Option<String>,
    /// `hidden`: 404 instead of 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hidden: Option<bool>,
}

impl ScopePolicy {
    /// Each setting this policy leaves unset, from `defaults`; the scopes
    /// as one setting: a route's `any_scopes` replaces the defaults'
    /// `scopes`.
    pub(crate) fn or(&self, defaults: &Self) -> Self {
        let own_scopes = self.scopes.is_some() || self.any_scopes.is_some();
        let scopes = if own_scopes { self } else { defaults };
        Self {
            scopes: scopes.scopes.clone(),
            any_scopes: scopes.any_scopes.clone(),
            kinds: self.kinds.clone().or_else(|| defaults.kinds.clone()),
            kind_code: self
                .kind_code
                .clone()
                .or_else(|| defaults.kind_code.clone()),
            scope_code: self
                .scope_code
                .clone()
                .or_else(|| defaults.scope_code.clone()),
            project_code: self
                .project_code
                .clone()
                .or_else(|| defaults.project_code.clone()),
            project_param: self
                .project_param
                .clone()
                .or_else(|| defaults.project_param.clone()),
            hidden: self.hidden.or(defaults.hidden),
        }
    }

    /// The rule of a route whose path pattern is `path` (none for unmatched
    /// requests); a mistake is an error naming its field.
    pub(crate) fn rule(&self, path: Option<&str>) -> Result<ScopeRule, ConfigError> {
        let mut rule = match (&self.scopes, &self.any_scopes) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "scopes",
                    "set `scopes` or `any_scopes`, not both",
                ));
            }
            (Some(all), None) => ScopeRule::all_of(all)?,
            (None, Some(any)) => ScopeRule::any_of(any)?,
            (None, None) => ScopeRule::new(),
        };
        if let Some(kinds) = &self.kinds {
            if kinds.is_empty() {
                return Err(ConfigError::new(
                    "kinds",
                    "a route must accept at least one kind of key",
                ));
            }
            rule = rule.kinds(kinds.iter().copied().collect::<KeyKinds>());
        }
        if let Some(code) = &self.kind_code {
            rule = rule.kind_code(rule_code(
                "kind_code",
                code,
                StatusCode::FORBIDDEN,
                Category::Auth,
            )?);
        }
        if let Some(code) = &self.scope_code {
            rule = rule.scope_code(rule_code(
                "scope_code",
                code,
                StatusCode::FORBIDDEN,
                Category::Auth,
            )?);
        }
        if rule.names_params() || self.project_param.is_some() {
            let Some(path) = path else {
                return Err(ConfigError::new(
                    if self.project_param.is_some() {
                        "project_param"
                    } else {
                        "scopes"
                    },
                    "only a route's own path has parameters: set this on routes, not on unmatched requests",
                ));
            };
            rule = rule.on_path(path)?;
            if let Some(name) = &self.project_param {
                rule = rule.project_param(name)?;
            }
        }
        if let Some(code) = &self.project_code {
            if self.project_param.is_none() {
                return Err(ConfigError::new(
                    "project_code",
                    "refuses keys of another project, which only `project_param` does: set both",
                ));
            }
            rule = rule.project_code(rule_code(
                "project_code",
                code,
                StatusCode::FORBIDDEN,
                Category::Auth,
            )?);
        }
        Ok(rule.hidden(self.hidden.unwrap_or(false)))
    }

    /// The custom codes it declares.
    pub(crate) fn codes(&self) -> impl Iterator<Item = &str> {
        [&self.kind_code, &self.scope_code, &self.project_code]
            .into_iter()
            .filter_map(|code| code.as_deref())
    }
}
