//! [`CodeMap`]: how an existing API's contract spells the codes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalogue::check_name;
use super::{ApiError, ErrorCode};
use crate::ConfigError;

/// Renames codes and changes their statuses, categories and messages, for
/// an API whose clients already match on other codes. Applied by the
/// [`ErrorRenderer`](crate::render::ErrorRenderer) to every rejection it renders — the gate's, and
/// your handlers' when they render through it — so it is set in one place.
///
/// Keys are built-in codes, or codes the gate's rules declare (a route's,
/// the defaults' or a tier's `kind_code`, `scope_code`, `project_code`,
/// `origin_code`, `body_limit_code`, a quota's `code`, a shared quota's or a
/// key's quota override's `code`). A renamed built-in code stays that code
/// for [`ErrorCode::is`].
///
/// ```
/// use http::StatusCode;
/// use tollgate::error::{ApiError, CodeMap, ErrorCode};
/// use tollgate::render::ErrorRenderer;
///
/// let codes = CodeMap::new()
///     .rename("missing_api_key", "missing_bearer_token")?
///     .status("invalid_api_key", StatusCode::FORBIDDEN)?
///     .category("not_found", "not_found")?
///     .message("invalid_api_key", "Invalid API key.")?;
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
/// In a configuration file, a `[codes]` table; an entry's fields are
/// `code`, `status`, `category` and `message`, and any other is refused:
///
/// ```toml
/// [codes]
/// missing_api_key = "missing_bearer_token"              # a new name
/// invalid_api_key = { code = "INVALID_TOKEN", status = 403 }
/// rate_limited = { status = 503 }                       # the status only
/// not_found = { code = "NOT_FOUND", category = "not_found" }
/// expired_api_key = { message = "Invalid API key." }    # one fixed message
/// ```
///
/// `category` is the name error bodies show for this code's category
/// (`{category}` in a template, `category` in the envelope) in place of
/// the built-in one; `message` replaces every message the code is given,
/// whatever the cause.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeMap {
    entries: Arc<HashMap<String, Entry>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Entry {
    name: Option<String>,
    status: Option<StatusCode>,
    category: Option<Arc<str>>,
    message: Option<Arc<str>>,
}

/// The longest category name or message a `[codes]` entry may give.
const MAX_TEXT: usize = 1024;

fn check_text(code: &str, field: &str, text: &str) -> Result<(), ConfigError> {
    if text.trim().is_empty() || text.len() > MAX_TEXT || text.chars().any(char::is_control) {
        return Err(ConfigError::new(
            format!("codes.{code}.{field}"),
            format!("needs 1 to {MAX_TEXT} bytes of text without control characters"),
        ));
    }
    Ok(())
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

    /// Shows `code`'s category as `name` in error bodies.
    pub fn category(self, code: &str, name: impl AsRef<str>) -> Result<Self, ConfigError> {
        let name = name.as_ref();
        check_text(code, "category", name)?;
        Ok(self.entry(code, |entry| entry.category = Some(name.into())))
    }

    /// Answers `code` with `message`, whatever message the refusal had.
    pub fn message(self, code: &str, message: impl AsRef<str>) -> Result<Self, ConfigError> {
        let message = message.as_ref();
        check_text(code, "message", message)?;
        Ok(self.entry(code, |entry| entry.message = Some(message.into())))
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
                    "not a built-in code nor a code any rule declares (a route's, the \
                     defaults', a tier's, a shared quota's or a key's)",
                ));
            }
        }
        Ok(())
    }

    /// `code` as the contract spells it.
    pub fn apply_to(&self, code: &ErrorCode) -> Option<ErrorCode> {
        Self::spell(self.entries.get(code.identity())?, code)
    }

    /// `code` as `entry` spells it.
    fn spell(entry: &Entry, code: &ErrorCode) -> Option<ErrorCode> {
        let renamed = code.renamed(entry.name.as_deref(), entry.status).ok()?;
        Some(match &entry.category {
            Some(name) => renamed.with_category_name(Arc::clone(name)),
            None => renamed,
        })
    }

    /// `error` as the contract spells it.
    pub(crate) fn apply(&self, error: ApiError) -> ApiError {
        if self.entries.is_empty() {
            return error;
        }
        let Some(entry) = self.entries.get(error.code().identity()) else {
            return error;
        };
        let error = match &entry.message {
            Some(message) => error.with_message(Cow::Owned(String::from(&**message))),
            None => error,
        };
        match Self::spell(entry, error.code()) {
            Some(code) => error.with_code(code),
            None => error,
        }
    }
}

/// The fields a `[codes]` entry may have.
const ENTRY_FIELDS: [&str; 4] = ["code", "status", "category", "message"];

impl Serialize for CodeMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        serializer.collect_map(entries.into_iter().map(|(code, entry)| {
            let value = match entry {
                Entry {
                    name: Some(name),
                    status: None,
                    category: None,
                    message: None,
                } => Value::String(name.clone()),
                _ => {
                    let mut fields = Map::new();
                    if let Some(name) = &entry.name {
                        fields.insert("code".into(), Value::from(name.as_str()));
                    }
                    if let Some(status) = entry.status {
                        fields.insert("status".into(), Value::from(status.as_u16()));
                    }
                    if let Some(category) = &entry.category {
                        fields.insert("category".into(), Value::from(&**category));
                    }
                    if let Some(message) = &entry.message {
                        fields.insert("message".into(), Value::from(&**message));
                    }
                    Value::Object(fields)
                }
            };
            (code, value)
        }))
    }
}

impl<'de> Deserialize<'de> for CodeMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let entries = Map::<String, Value>::deserialize(deserializer)?;
        let mut codes: Vec<_> = entries.into_iter().collect();
        codes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut map = CodeMap::new();
        for (code, value) in codes {
            map = map
                .read_entry(&code, value)
                .map_err(|error| D::Error::custom(error.to_string()))?;
        }
        Ok(map)
    }
}

impl CodeMap {
    /// One `[codes]` entry: `"new_name"` or a table of [`ENTRY_FIELDS`].
    fn read_entry(self, code: &str, value: Value) -> Result<Self, ConfigError> {
        let shape = || {
            ConfigError::new(
                format!("codes.{code}"),
                "write `\"new_name\"` or a table of `code`, `status`, `category` and `message`",
            )
        };
        let fields = match value {
            Value::String(name) => return self.rename(code, name),
            Value::Object(fields) => fields,
            _ => return Err(shape()),
        };
        if fields.is_empty() {
            return Err(shape());
        }
        if let Some(unknown) = fields
            .keys()
            .find(|name| !ENTRY_FIELDS.contains(&name.as_str()))
        {
            return Err(ConfigError::new(
                format!("codes.{code}.{unknown}"),
                "unknown field: use `code`, `status`, `category` or `message`",
            ));
        }
        let text = |field: &str| -> Result<Option<String>, ConfigError> {
            match fields.get(field) {
                None => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(ConfigError::new(
                    format!("codes.{code}.{field}"),
                    "needs a string",
                )),
            }
        };
        let mut map = self;
        if let Some(name) = text("code")? {
            map = map.rename(code, name)?;
        }
        if let Some(status) = fields.get("status") {
            let status = status
                .as_u64()
                .and_then(|status| u16::try_from(status).ok())
                .and_then(|status| StatusCode::from_u16(status).ok())
                .ok_or_else(|| {
                    ConfigError::new(format!("codes.{code}.status"), "needs an HTTP status")
                })?;
            map = map.status(code, status)?;
        }
        if let Some(category) = text("category")? {
            map = map.category(code, category)?;
        }
        if let Some(message) = text("message")? {
            map = map.message(code, message)?;
        }
        Ok(map)
    }
}
