//! The catalogue of error codes: the one place every code, its status and its
//! category are defined.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::ConfigError;

/// The broad family an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// The caller's credentials, origin or permissions.
    Auth,
    /// A rate limit.
    RateLimit,
    /// The request itself (for example its size).
    Validation,
    /// A dependency (key store, shared rate store) could not answer.
    Upstream,
    /// A bug in the server.
    Internal,
}

impl Category {
    /// The stable name used in error bodies: `auth`, `rate_limit`,
    /// `validation`, `upstream`, `internal`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::RateLimit => "rate_limit",
            Self::Validation => "validation",
            Self::Upstream => "upstream",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stable error code with its HTTP status and category.
///
/// The built-in codes are associated constants; a route may declare custom
/// codes for its own rules with [`ErrorCode::custom`]. A code, once
/// published, is never repurposed: clients match on it.
///
/// ```
/// use http::StatusCode;
/// use tollgate::error::{Category, ErrorCode};
///
/// assert_eq!(ErrorCode::RATE_LIMITED.as_str(), "rate_limited");
/// assert_eq!(ErrorCode::RATE_LIMITED.status(), StatusCode::TOO_MANY_REQUESTS);
///
/// let custom = ErrorCode::custom("forget_requires_secret_key", StatusCode::FORBIDDEN, Category::Auth).unwrap();
/// assert_eq!(custom.as_str(), "forget_requires_secret_key");
/// ```
#[derive(Clone)]
pub struct ErrorCode {
    name: Name,
    status: StatusCode,
    category: Category,
    /// The category as an API's contract names it for this code (a
    /// `[codes]` entry's `category`), shown in its place.
    category_name: Option<Arc<str>>,
}

#[derive(Clone)]
enum Name {
    Builtin(&'static str),
    Custom(Arc<str>),
    /// A built-in code under the name (and perhaps the status) an API's
    /// contract gives it: still that code for [`ErrorCode::is`].
    Renamed {
        builtin: &'static str,
        name: Arc<str>,
    },
}

/// Whether `name` may be a code: 1 to 64 printable ASCII characters, no
/// spaces (so `missing_bearer_token`, `INVALID_TOKEN`, `quota.daily` all may).
pub(crate) fn check_name(name: &str) -> Result<(), ConfigError> {
    if (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    Err(ConfigError::new(
        "code",
        format!(
            "`{name}` is not a valid error code: use 1 to 64 printable ASCII characters, no spaces"
        ),
    ))
}

/// The custom code `code` a rule's setting `field` declares (a route's
/// `origin_code`, say), with the status and category of that rule's
/// refusals; a bad code is an error naming `field`.
pub(crate) fn rule_code(
    field: &str,
    code: &str,
    status: StatusCode,
    category: Category,
) -> Result<ErrorCode, ConfigError> {
    ErrorCode::custom(code, status, category)
        .map_err(|error| ConfigError::new(field, error.reason()))
}

fn check_status(name: &str, status: StatusCode) -> Result<(), ConfigError> {
    if status.is_client_error() || status.is_server_error() {
        return Ok(());
    }
    Err(ConfigError::new(
        "status",
        format!("error code `{name}` needs a 4xx or 5xx status, not {status}"),
    ))
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $constant:ident = $name:literal, $status:ident, $category:ident, $message:literal; )*) => {
        impl ErrorCode {
            $(
                $(#[$doc])*
                pub const $constant: ErrorCode = ErrorCode {
                    name: Name::Builtin($name),
                    status: StatusCode::$status,
                    category: Category::$category,
                    category_name: None,
                };
            )*

            /// Every built-in code, in the order of the catalogue.
            pub const CATALOGUE: &'static [ErrorCode] = &[$(ErrorCode::$constant),*];

            /// The generic human message of a built-in code; custom codes have none.
            pub fn default_message(&self) -> Option<&'static str> {
                match &self.name {
                    $(Name::Builtin($name) => Some($message),)*
                    _ => None,
                }
            }
        }
    };
}

catalogue! {
    /// 401: no credential in any configured source.
    MISSING_API_KEY = "missing_api_key", UNAUTHORIZED, Auth,
        "No API key was provided.";
    /// 401: a credential with a bad prefix, charset, length or checksum, or
    /// conflicting credentials.
    MALFORMED_API_KEY = "malformed_api_key", UNAUTHORIZED, Auth,
        "The API key is malformed.";
    /// 401: no such key, or a revoked one (never says which, unless the gate
    /// is set to reveal revocations).
    INVALID_API_KEY = "invalid_api_key", UNAUTHORIZED, Auth,
        "The API key is not valid.";
    /// 401: a revoked key, where the gate is set to say so
    /// (`reveal_revoked`); otherwise a revoked key is `invalid_api_key`.
    REVOKED_API_KEY = "revoked_api_key", UNAUTHORIZED, Auth,
        "The API key has been revoked.";
    /// 401: the key's expiry has passed.
    EXPIRED_API_KEY = "expired_api_key", UNAUTHORIZED, Auth,
        "The API key has expired.";
    /// 401: the stored kind of the key differs from its prefix.
    KEY_KIND_MISMATCH = "key_kind_mismatch", UNAUTHORIZED, Auth,
        "The API key's prefix does not match its kind.";
    /// 403: the key exists but is disabled.
    KEY_DISABLED = "key_disabled", FORBIDDEN, Auth,
        "The API key is disabled.";
    /// 403: a browser key used from an origin outside its allow-list, or with no origin.
    ORIGIN_NOT_ALLOWED = "origin_not_allowed", FORBIDDEN, Auth,
        "This API key may not be used from this origin.";
    /// 403: the key lacks a scope the route requires.
    INSUFFICIENT_SCOPE = "insufficient_scope", FORBIDDEN, Auth,
        "The API key lacks a scope this route requires.";
    /// 403: the route does not accept this kind of key.
    KEY_KIND_NOT_ALLOWED = "key_kind_not_allowed", FORBIDDEN, Auth,
        "This route does not accept this kind of API key.";
    /// 404: a route hidden from keys that may not call it.
    NOT_FOUND = "not_found", NOT_FOUND, Auth,
        "Not found.";
    /// 429: the rate-limit bucket for this caller and route is empty.
    RATE_LIMITED = "rate_limited", TOO_MANY_REQUESTS, RateLimit,
        "Rate limit exceeded.";
    /// 429: the key's credits are spent until the next refill (or a top-up).
    CREDITS_EXHAUSTED = "credits_exhausted", TOO_MANY_REQUESTS, RateLimit,
        "The API key's credits are spent.";
    /// 413: the request body is over the route's cap.
    PAYLOAD_TOO_LARGE = "payload_too_large", PAYLOAD_TOO_LARGE, Validation,
        "The request body is too large.";
    /// 502: a key store or a shared rate store could not answer.
    UPSTREAM_FAILED = "upstream_failed", BAD_GATEWAY, Upstream,
        "A service this request depends on did not answer. Try again later.";
    /// 500: a bug; the message never carries details.
    INTERNAL_ERROR = "internal_error", INTERNAL_SERVER_ERROR, Internal,
        "Internal server error.";
}

impl ErrorCode {
    /// `upstream_failed` with `503 Service Unavailable`: a store turned the
    /// lookup away at once ([`StoreError::busy`](crate::error::StoreError::busy))
    /// rather than failing at it. The same code for clients and for
    /// [`ErrorCode::is`]; a `[codes]` entry for `upstream_failed` spells both.
    pub(crate) const UPSTREAM_BUSY: ErrorCode = ErrorCode {
        name: Name::Builtin("upstream_failed"),
        status: StatusCode::SERVICE_UNAVAILABLE,
        category: Category::Upstream,
        category_name: None,
    };

    /// Declares a custom code for a route's own rule.
    ///
    /// The name must be 1 to 64 printable ASCII characters without spaces
    /// (upper case and punctuation included, as existing APIs use them) and
    /// not a built-in code; the status must be a 4xx or 5xx.
    pub fn custom(
        name: impl Into<String>,
        status: StatusCode,
        category: Category,
    ) -> Result<Self, ConfigError> {
        let name: String = name.into();
        check_name(&name)?;
        if Self::builtin(&name).is_some() {
            return Err(ConfigError::new(
                "code",
                format!("`{name}` is a built-in error code and cannot be redefined"),
            ));
        }
        check_status(&name, status)?;
        Ok(Self {
            name: Name::Custom(name.into()),
            status,
            category,
            category_name: None,
        })
    }

    /// The built-in code named `name`, if there is one.
    pub fn builtin(name: &str) -> Option<&'static ErrorCode> {
        Self::CATALOGUE.iter().find(|code| code.as_str() == name)
    }

    /// This code as an API's contract spells it: under `name` (checked like
    /// a custom code's) and with `status`. A renamed built-in code is still
    /// that code for [`is`](Self::is).
    pub fn renamed(
        &self,
        name: Option<&str>,
        status: Option<StatusCode>,
    ) -> Result<Self, ConfigError> {
        let status = status.unwrap_or(self.status);
        let shown = name.unwrap_or(self.as_str());
        check_name(shown)?;
        check_status(shown, status)?;
        let name = match (&self.name, name) {
            (_, None) => self.name.clone(),
            (Name::Builtin(builtin) | Name::Renamed { builtin, .. }, Some(name)) => Name::Renamed {
                builtin,
                name: name.into(),
            },
            (Name::Custom(_), Some(name)) => Name::Custom(name.into()),
        };
        Ok(Self {
            name,
            status,
            category: self.category,
            category_name: self.category_name.clone(),
        })
    }

    /// This code with its category shown as `name` in error bodies (the
    /// typed [`category`](Self::category) stays).
    pub(crate) fn with_category_name(mut self, name: Arc<str>) -> Self {
        self.category_name = Some(name);
        self
    }

    /// The category as error bodies show it: the contract's name for this
    /// code's category, if a [`CodeMap`](super::CodeMap) gave one, else the
    /// [`category`](Self::category)'s.
    pub fn category_name(&self) -> &str {
        self.category_name
            .as_deref()
            .unwrap_or(self.category.as_str())
    }

    /// Whether a contract named this code's category.
    pub(crate) fn has_category_name(&self) -> bool {
        self.category_name.is_some()
    }

    /// Whether this is `other`, or `other` renamed: a rename keeps the
    /// code's identity.
    pub fn is(&self, other: &ErrorCode) -> bool {
        self.identity() == other.identity()
    }

    /// The name the code had before any rename.
    pub(crate) fn identity(&self) -> &str {
        match &self.name {
            Name::Builtin(name) | Name::Renamed { builtin: name, .. } => name,
            Name::Custom(name) => name,
        }
    }

    /// The code's stable string, as clients see it.
    pub fn as_str(&self) -> &str {
        match &self.name {
            Name::Builtin(name) => name,
            Name::Custom(name) | Name::Renamed { name, .. } => name,
        }
    }

    /// The HTTP status of responses with this code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The category of this code.
    pub fn category(&self) -> Category {
        self.category
    }

    /// Whether this is one of the built-in codes of the catalogue.
    pub fn is_builtin(&self) -> bool {
        matches!(self.name, Name::Builtin(_))
    }
}

impl PartialEq for ErrorCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
            && self.status == other.status
            && self.category == other.category
            && self.category_name == other.category_name
    }
}

impl Eq for ErrorCode {}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorCode")
            .field("code", &self.as_str())
            .field("status", &self.status.as_u16())
            .field("category", &self.category)
            .field("category_name", &self.category_name)
            .finish()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_matches_the_design_table() {
        let table: Vec<(&str, u16, &str)> = ErrorCode::CATALOGUE
            .iter()
            .map(|c| (c.as_str(), c.status().as_u16(), c.category().as_str()))
            .collect();
        assert_eq!(
            table,
            vec![
                ("missing_api_key", 401, "auth"),
                ("malformed_api_key", 401, "auth"),
                ("invalid_api_key", 401, "auth"),
                ("revoked_api_key", 401, "auth"),
                ("expired_api_key", 401, "auth"),
                ("key_kind_mismatch", 401, "auth"),
                ("key_disabled", 403, "auth"),
                ("origin_not_allowed", 403, "auth"),
                ("insufficient_scope", 403, "auth"),
                ("key_kind_not_allowed", 403, "auth"),
                ("not_found", 404, "auth"),
                ("rate_limited", 429, "rate_limit"),
                ("credits_exhausted", 429, "rate_limit"),
                ("payload_too_large", 413, "validation"),
                ("upstream_failed", 502, "upstream"),
                ("internal_error", 500, "internal"),
            ]
        );
    }

    #[test]
    fn codes_are_unique_and_have_messages() {
        let names: HashSet<&str> = ErrorCode::CATALOGUE.iter().map(ErrorCode::as_str).collect();
        assert_eq!(names.len(), ErrorCode::CATALOGUE.len());
        assert!(
            ErrorCode::CATALOGUE
                .iter()
                .all(|c| c.default_message().is_some())
        );
    }

    #[test]
    fn custom_codes_are_validated() {
        let ok = ErrorCode::custom(
            "forget_requires_secret_key",
            StatusCode::FORBIDDEN,
            Category::Auth,
        )
        .unwrap();
        assert!(!ok.is_builtin());
        assert_eq!(ok.default_message(), None);
        for fine in [
            "UPPER_CASE",
            "with-dash",
            "9starts_with_digit",
            "quota.daily",
        ] {
            ErrorCode::custom(fine, StatusCode::FORBIDDEN, Category::Auth).unwrap();
        }
        for bad in ["", "with space", "tab\there", "é", &"x".repeat(65)] {
            let err = ErrorCode::custom(bad, StatusCode::FORBIDDEN, Category::Auth).unwrap_err();
            assert_eq!(err.field(), "code", "{bad}");
        }
        let err =
            ErrorCode::custom("rate_limited", StatusCode::FORBIDDEN, Category::Auth).unwrap_err();
        assert!(err.reason().contains("built-in"));
        let err = ErrorCode::custom("fine", StatusCode::OK, Category::Auth).unwrap_err();
        assert_eq!(err.field(), "status");
    }

    #[test]
    fn a_renamed_code_keeps_its_identity() {
        let renamed = ErrorCode::MISSING_API_KEY
            .renamed(Some("missing_bearer_token"), Some(StatusCode::FORBIDDEN))
            .unwrap();
        assert_eq!(renamed.as_str(), "missing_bearer_token");
        assert_eq!(renamed.status(), StatusCode::FORBIDDEN);
        assert_eq!(renamed.category(), Category::Auth);
        assert!(renamed.is(&ErrorCode::MISSING_API_KEY));
        assert!(!renamed.is_builtin());
        assert!(renamed != ErrorCode::MISSING_API_KEY);
        let status_only = ErrorCode::RATE_LIMITED
            .renamed(None, Some(StatusCode::SERVICE_UNAVAILABLE))
            .unwrap();
        assert_eq!(status_only.as_str(), "rate_limited");
        assert!(
            ErrorCode::RATE_LIMITED
                .renamed(Some("bad name"), None)
                .is_err()
        );
        assert!(
            ErrorCode::RATE_LIMITED
                .renamed(None, Some(StatusCode::OK))
                .is_err()
        );
    }
}
