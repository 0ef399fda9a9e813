//! [`CodeMap`]: how an existing API's contract spells the codes.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::catalogue::check_name;
use super::{ApiError, ErrorCode};
use crate::ConfigError;

/// Renames codes and changes their statuses, for an API whose clients
/// already match on other codes. Applied by the
/// [`ErrorRenderer`](crate::render::ErrorRenderer) to every rejection it renders — the gate's, and
/// your handlers' when they render through it — so it is set in one place.
///
/// Keys are built-in codes, or codes a route's rules declare (`kind_code`,
/// `scope_code`, `origin_code`, `body_limit_code`, a quota's `code`). A
/// renamed built-in code stays that code for [`ErrorCode::is`].
///
/// ```
/// use http::StatusCode;
/// use tollgate::error::{ApiError, CodeMap, ErrorCode};
/// use tollgate::render::ErrorRenderer;
///
/// let codes = CodeMap::new()
///     .rename("missing_api_key", "missing_bearer_token")?
///     .status("invalid_api_key", StatusCode::FORBIDDEN)?;
/// let renderer = ErrorRenderer::default().with_codes(codes);
/// let response = renderer.respond(
///     ApiError::from(ErrorCode::MISSING_API_KEY),
///     &http::Request::new(()),
/// );
/// let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
/// assert_eq!(body["error"]["code"], "missing_bearer_token");
/// # Ok::<(), tollgate::ConfigError>(())
/// ```
///
/// In a configuration file, a `[codes]` table:
///
/// ```toml
/// [codes]
/// missing_api_key = "missing_bearer_token"              # a new name
/// invalid_api_key = { code = "INVALID_TOKEN", status = 403 }
/// rate_limited = { status = 503 }                       # the status only
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeMap {
    entries: Arc<HashMap<String, Entry>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Entry {
    name: Option<String>,
    status: Option<StatusCode>,
}

impl CodeMap {
    /// No change to any code.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(mut self, code: &str, change: impl FnOnce(&mut Entry)) -> Self {
        change(
            Arc::make_mut(&mut self.entries)
                .entry(code.to_owned())
                .or_default(),
        );
        self
    }

    /// Answers `code` as `name` (1 to 64 printable ASCII characters, no
    /// spaces).
    pub fn rename(self, code: &str, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_name(&name)
            .map_err(|error| ConfigError::new(format!("codes.{code}"), error.reason()))?;
        Ok(self.entry(code, |entry| entry.name = Some(name)))
    }

    /// Answers `code` with `status` (a 4xx or 5xx).
    pub fn status(self, code: &str, status: StatusCode) -> Result<Self, ConfigError> {
        if !(status.is_client_error() || status.is_server_error()) {
            return Err(ConfigError::new(
                format!("codes.{code}"),
                format!("needs a 4xx or 5xx status, not {}", status.as_u16()),
            ));
        }
        Ok(self.entry(code, |entry| entry.status = Some(status)))
    }

    /// Whether nothing is changed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The codes this map changes.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Checks that every code it changes exists: a built-in one, or one of
    /// `declared` (the custom codes of the gate's rules).
    pub(crate) fn check_known<'a>(
        &self,
        declared: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), ConfigError> {
        for code in self.codes() {
            let known = ErrorCode::builtin(code).is_some()
                || declared.clone().into_iter().any(|name| name == code);
            if !known {
                return Err(ConfigError::new(
                    format!("codes.{code}"),
                    "not a built-in code nor a code a route's rule declares",
                ));
            }
        }
        Ok(())
    }

    /// `code` as the contract spells it.
    pub fn apply_to(&self, code: &ErrorCode) -> Option<ErrorCode> {
        let entry = self.entries.get(code.identity())?;
        code.renamed(entry.name.as_deref(), entry.status).ok()
    }

    /// `error` as the contract spells it.
    pub(crate) fn apply(&self, error: ApiError) -> ApiError {
        if self.entries.is_empty() {
            return error;
        }
        match self.apply_to(error.code()) {
            Some(code) => error.with_code(code),
            None => error,
        }
    }
}

/// One `[codes]` entry as a file writes it.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum EntryFields {
    Name(String),
    Full {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
}

impl Serialize for CodeMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        serializer.collect_map(entries.into_iter().map(|(code, entry)| {
            let fields = match (&entry.name, entry.status) {
                (Some(name), None) => EntryFields::Name(name.clone()),
                (name, status) => EntryFields::Full {
                    code: name.clone(),
                    status: status.map(|status| status.as_u16()),
                },
            };
            (code, fields)
        }))
    }
}

impl<'de> Deserialize<'de> for CodeMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = HashMap::<String, EntryFields>::deserialize(deserializer).map_err(|_| {
            D::Error::custom(
                "`codes`: each entry is `code = \"new_name\"` or `code = { code = \"new_name\", status = 403 }`",
            )
        })?;
        let mut map = CodeMap::new();
        for (code, fields) in fields {
            let (name, status) = match fields {
                EntryFields::Name(name) => (Some(name), None),
                EntryFields::Full { code, status } => (code, status),
            };
            if let Some(name) = name {
                map = map
                    .rename(&code, name)
                    .map_err(|error| D::Error::custom(error.to_string()))?;
            }
            if let Some(status) = status {
                let status = StatusCode::from_u16(status).map_err(|_| {
                    D::Error::custom(format!("`codes.{code}`: {status} is not an HTTP status"))
                })?;
                map = map
                    .status(&code, status)
                    .map_err(|error| D::Error::custom(error.to_string()))?;
            }
        }
        Ok(map)
    }
}
