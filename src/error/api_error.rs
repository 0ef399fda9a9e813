//! [`ApiError`]: one rejection, before it is rendered.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use super::{Category, ErrorCode, Rule};

/// A rejection: a stable [`ErrorCode`], a message for humans, optional
/// machine-readable details and extra response headers (such as `Retry-After`).
///
/// Every layer rejects with an `ApiError`; the shared
/// [`ErrorRenderer`](crate::render::ErrorRenderer) turns it into the response, and
/// puts a copy in the response's extensions so outer layers (metrics,
/// logging) can read it.
///
/// The message is for humans and is never parsed by clients; it never
/// contains a raw API key, a digest, or an internal error text.
///
/// ```
/// use serde_json::json;
/// use tollgate::error::{ApiError, ErrorCode};
///
/// let error = ApiError::new(ErrorCode::RATE_LIMITED, "Slow down.")
///     .with_details(json!({ "retry_after": 3 }))
///     .with_header(http::header::RETRY_AFTER, http::HeaderValue::from_static("3"));
/// assert_eq!(error.code(), &ErrorCode::RATE_LIMITED);
/// assert_eq!(error.status(), http::StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(error.details().unwrap()["retry_after"], 3);
/// ```
#[derive(Clone, Debug)]
pub struct ApiError {
    // Boxed: results carrying an `ApiError` stay one pointer wide on the
    // success path.
    inner: Box<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    code: ErrorCode,
    message: Message,
    details: Details,
    headers: HeaderMap,
    subject: Option<Subject>,
    rule: Option<Rule>,
}

/// A rejection's details: none, a JSON value, or the typed details of a
/// common refusal, made into a value only when something asks for one (the
/// default envelope writes them as they are).
#[derive(Clone, Debug)]
enum Details {
    None,
    Value(Value),
    Typed(TypedDetails, std::sync::OnceLock<Value>),
}

/// The details of a refusal common enough to be written without building
/// a JSON value: what `to_value` gives, in its key order.
#[derive(Clone, Debug)]
pub(crate) enum TypedDetails {
    /// A bucket's refusal: `{"limit", "policy", "retry_after"}`.
    RateLimited {
        limit: Option<u64>,
        policy: Option<Arc<str>>,
        retry_after: u64,
    },
    /// A calendar window's refusal: `{"limit", "policy", "reason",
    /// "reset", "retry_after", "window"}` (`reset` a Unix time; `reason`
    /// only when there is one).
    Window {
        limit: Option<u64>,
        policy: Option<Arc<str>>,
        reason: Option<&'static str>,
        reset: u64,
        retry_after: u64,
        window: &'static str,
    },
    /// A body over its cap: `{"limit_bytes", "limit_of"}`.
    TooLarge {
        limit_bytes: u64,
        limit_of: &'static str,
    },
    /// A key without a route's scopes: `{"granted", "missing", "mode",
    /// "required"}`, the scopes shared with the rule and the key's record
    /// (no copy), the missing ones as a mask over `required`.
    Scope {
        required: Arc<[Box<str>]>,
        granted: Arc<[String]>,
        /// Bit `i`: `required[i]` is missing (at most 64 required).
        missing: u64,
        mode: &'static str,
    },
}

impl TypedDetails {
    fn to_value(&self) -> Value {
        match self {
            Self::RateLimited {
                limit,
                policy,
                retry_after,
            } => serde_json::json!({
                "retry_after": retry_after,
                "limit": limit,
                "policy": policy.as_deref(),
            }),
            Self::Window {
                limit,
                policy,
                reason,
                reset,
                retry_after,
                window,
            } => {
                let mut value = serde_json::json!({
                    "retry_after": retry_after,
                    "limit": limit,
                    "window": window,
                    "reset": reset,
                    "policy": policy.as_deref(),
                });
                if let Some(reason) = reason {
                    value["reason"] = Value::from(*reason);
                }
                value
            }
            Self::TooLarge {
                limit_bytes,
                limit_of,
            } => serde_json::json!({ "limit_bytes": limit_bytes, "limit_of": limit_of }),
            Self::Scope {
                required,
                granted,
                missing,
                mode,
            } => Self::scope_value(required, granted, Self::missing(required, *missing), mode),
        }
    }

    /// A scope refusal's details as a value: the one writer of their shape
    /// as a value, for the typed details and for a rule whose required
    /// scopes are too many for the mask.
    pub(crate) fn scope_value<'a>(
        required: &[Box<str>],
        granted: &[String],
        missing: impl Iterator<Item = &'a str>,
        mode: &str,
    ) -> Value {
        serde_json::json!({
            "required": required,
            "granted": granted,
            "missing": missing.collect::<Vec<_>>(),
            "mode": mode,
        })
    }

    /// The required scopes the mask says are missing.
    fn missing(required: &[Box<str>], mask: u64) -> impl Iterator<Item = &str> {
        required
            .iter()
            .enumerate()
            .filter(move |(index, _)| mask & (1 << index) != 0)
            .map(|(_, scope)| &**scope)
    }

    /// Writes them as `serde_json` would write [`to_value`](Self::to_value).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>, write_str: impl Fn(&mut Vec<u8>, &str)) {
        // Limit and policy, which a bucket's and a window's refusals open with.
        let limit_and_policy = |out: &mut Vec<u8>,
                                limit: &Option<u64>,
                                policy: &Option<Arc<str>>| {
            out.extend_from_slice(b"{\"limit\":");
            match limit {
                Some(limit) => out.extend_from_slice(itoa::Buffer::new().format(*limit).as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"policy\":");
            match policy {
                Some(policy) => write_str(out, policy),
                None => out.extend_from_slice(b"null"),
            }
        };
        match self {
            Self::RateLimited {
                limit,
                policy,
                retry_after,
            } => {
                limit_and_policy(out, limit, policy);
                out.extend_from_slice(b",\"retry_after\":");
                out.extend_from_slice(itoa::Buffer::new().format(*retry_after).as_bytes());
                out.push(b'}');
            }
            Self::Window {
                limit,
                policy,
                reason,
                reset,
                retry_after,
                window,
            } => {
                // In the order of `serde_json`'s map: by key.
                limit_and_policy(out, limit, policy);
                if let Some(reason) = reason {
                    out.extend_from_slice(b",\"reason\":");
                    write_str(out, reason);
                }
                out.extend_from_slice(b",\"reset\":");
                out.extend_from_slice(itoa::Buffer::new().format(*reset).as_bytes());
                out.extend_from_slice(b",\"retry_after\":");
                out.extend_from_slice(itoa::Buffer::new().format(*retry_after).as_bytes());
                out.extend_from_slice(b",\"window\":");
                write_str(out, window);
                out.push(b'}');
            }
            Self::TooLarge {
                limit_bytes,
                limit_of,
            } => {
                out.extend_from_slice(b"{\"limit_bytes\":");
                out.extend_from_slice(itoa::Buffer::new().format(*limit_bytes).as_bytes());
                out.extend_from_slice(b",\"limit_of\":");
                write_str(out, limit_of);
                out.push(b'}');
            }
            Self::Scope {
                required,
                granted,
                missing,
                mode,
            } => {
                // In the order of `serde_json`'s map: by key.
                let list = |out: &mut Vec<u8>, items: &mut dyn Iterator<Item = &str>| {
                    out.push(b'[');
                    for (index, item) in items.enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        write_str(out, item);
                    }
                    out.push(b']');
                };
                out.extend_from_slice(b"{\"granted\":");
                list(out, &mut granted.iter().map(String::as_str));
                out.extend_from_slice(b",\"missing\":");
                list(out, &mut Self::missing(required, *missing));
                out.extend_from_slice(b",\"mode\":");
                write_str(out, mode);
                out.extend_from_slice(b",\"required\":");
                list(out, &mut required.iter().map(|scope| &**scope));
                out.push(b'}');
            }
        }
    }
}

/// A message of its own, or one made once and shared by every rejection
/// that says it (no allocation per rejection).
#[derive(Clone, Debug)]
enum Message {
    Own(Cow<'static, str>),
    Shared(Arc<str>),
}

/// Who the rejected request was from, when a layer knows: for logs only.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Subject {
    pub(crate) key_id: String,
    pub(crate) project: String,
}

impl ApiError {
    /// A rejection with `code` and a `message` made once and shared.
    pub(crate) fn shared(code: ErrorCode, message: Arc<str>) -> Self {
        Self::new(code, "").with_shared_message(message)
    }

    fn with_shared_message(mut self, message: Arc<str>) -> Self {
        self.inner.message = Message::Shared(message);
        self
    }

    /// A rejection with `code` and a human `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Box::new(Inner {
                code,
                message: Message::Own(message.into()),
                details: Details::None,
                headers: HeaderMap::new(),
                subject: None,
                rule: None,
            }),
        }
    }

    /// Adds machine-readable details (a JSON object by convention).
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.inner.details = Details::Value(details);
        self
    }

    /// Adds a header to the rejection response.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.append(name, value);
        self
    }

    /// Names the rule that refused: the gate's checks name theirs; a check
    /// of yours may name its own ([`Rule::Custom`]). Renderers, shadow mode
    /// and the decision hook see it.
    #[must_use]
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.inner.rule = Some(rule);
        self
    }

    /// The rule that refused, if one was named.
    pub fn rule(&self) -> Option<Rule> {
        self.inner.rule
    }

    /// The key id and project of the refused key, when the key check knew
    /// them but did not admit the key (disabled, expired, wrong kind).
    pub(crate) fn subject_ids(&self) -> Option<(&str, &str)> {
        self.inner
            .subject
            .as_ref()
            .map(|subject| (subject.key_id.as_str(), subject.project.as_str()))
    }

    /// The same rejection under another code (a contract's spelling).
    pub(crate) fn with_message(mut self, message: Cow<'static, str>) -> Self {
        self.inner.message = Message::Own(message);
        self
    }

    pub(crate) fn with_code(mut self, code: ErrorCode) -> Self {
        self.inner.code = code;
        self
    }

    pub(crate) fn with_subject(mut self, key_id: &str, project: &str) -> Self {
        self.inner.subject = Some(Subject {
            key_id: key_id.to_owned(),
            project: project.to_owned(),
        });
        self
    }

    #[cfg(feature = "tracing")]
    pub(crate) fn subject(&self) -> Option<&Subject> {
        self.inner.subject.as_ref()
    }

    /// The stable code.
    pub fn code(&self) -> &ErrorCode {
        &self.inner.code
    }

    /// The HTTP status (the code's).
    pub fn status(&self) -> StatusCode {
        self.inner.code.status()
    }

    /// The category (the code's).
    pub fn category(&self) -> Category {
        self.inner.code.category()
    }

    /// The category as error bodies show it (see
    /// [`ErrorCode::category_name`]).
    pub fn category_name(&self) -> &str {
        self.inner.code.category_name()
    }

    /// The human message.
    pub fn message(&self) -> &str {
        match &self.inner.message {
            Message::Own(message) => message,
            Message::Shared(message) => message,
        }
    }

    /// Typed details, written as they are by the default envelope.
    #[must_use]
    pub(crate) fn with_typed_details(mut self, details: TypedDetails) -> Self {
        self.inner.details = Details::Typed(details, std::sync::OnceLock::new());
        self
    }

    /// Whether it has details (without making typed ones into a value).
    pub(crate) fn has_details(&self) -> bool {
        !matches!(self.inner.details, Details::None)
    }

    /// The typed details, if the details are typed.
    pub(crate) fn typed_details(&self) -> Option<&TypedDetails> {
        match &self.inner.details {
            Details::Typed(typed, _) => Some(typed),
            Details::None | Details::Value(_) => None,
        }
    }

    /// The machine-readable details, if any.
    pub fn details(&self) -> Option<&Value> {
        match &self.inner.details {
            Details::None => None,
            Details::Value(value) => Some(value),
            Details::Typed(typed, value) => Some(value.get_or_init(|| typed.to_value())),
        }
    }

    /// Extra headers for the rejection response.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }
}

impl From<ErrorCode> for ApiError {
    /// A rejection with the code's generic message.
    fn from(code: ErrorCode) -> Self {
        let message = code
            .default_message()
            .unwrap_or("The request was rejected.");
        Self::new(code, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.code, self.message())
    }
}

impl std::error::Error for ApiError {}
