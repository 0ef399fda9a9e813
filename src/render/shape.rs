//! [`RenderError`], the one extension point for the shape of error bodies,
//! and the two built-in JSON shapes: [`JsonEnvelope`] and [`ProblemJson`].

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::RenderContext;
use crate::error::{ApiError, Category};

/// Turns an [`ApiError`] into a response: the one extension point for the
/// shape of error bodies.
///
/// Closures `Fn(&ApiError, &RenderContext) -> serde_json::Value` implement it:
/// the value becomes an `application/json` body with the error's status. For
/// full control (another content type, other headers) implement the trait.
///
/// ```
/// use serde_json::json;
/// use tollgate::error::ApiError;
/// use tollgate::render::{ErrorRenderer, RenderContext};
///
/// // `{"error":"code","details":{…}}`
/// let renderer = ErrorRenderer::from_fn(|error: &ApiError, _: &RenderContext<'_>| {
///     json!({ "error": error.code().as_str(), "details": error.details() })
/// });
/// # let _ = renderer;
/// ```
pub trait RenderError: Send + Sync + 'static {
    /// The response for `error`. The renderer sets the status and content
    /// type; the error's own headers are added afterwards.
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes>;

    /// How many bytes of a refused request's body the gate reads before
    /// rendering, for a shape that echoes something of the body (JSON-RPC's
    /// `id`), then hands over as [`RenderContext::body`]; `None` (the
    /// default): none.
    fn body_read_limit(&self) -> Option<u64> {
        None
    }

    /// Whether rendering reads [`RenderContext::path`]. The gate keeps a
    /// request's path for a rejection rendered after the request was handed
    /// on (a handler's error, a body found too large while read) only for a
    /// shape that reads it; `false` (the default) for one that does not.
    fn reads_path(&self) -> bool {
        false
    }

    /// Whether rendering reads [`RenderContext::route`],
    /// [`RenderContext::principal`], [`RenderContext::key_id`] or
    /// [`RenderContext::project`]. For an error your service returns, the
    /// gate keeps the request's route and caller only when something will
    /// read them (this, a route with a shape of its own, a gRPC request, a
    /// log someone listens to); `true` (the default): they are kept. A
    /// shape that reads none of them says `false`, and admitted requests
    /// then skip two reference counts each.
    fn reads_route_or_caller(&self) -> bool {
        true
    }
}

impl<F> RenderError for F
where
    F: Fn(&ApiError, &RenderContext<'_>) -> Value + Send + Sync + 'static,
{
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes> {
        json_response(error.status(), APPLICATION_JSON, &self(error, context))
    }

    fn reads_path(&self) -> bool {
        true
    }
}

const APPLICATION_JSON: &str = "application/json";
const APPLICATION_PROBLEM_JSON: &str = "application/problem+json";

/// Serializes `body` into a JSON response with `status` and `content_type`.
pub fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    content_type: &'static str,
    body: &T,
) -> Response<Bytes> {
    json_response_with(status, HeaderValue::from_static(content_type), body)
}

/// [`json_response`] with a content type made at run time.
pub(crate) fn json_response_with<T: Serialize + ?Sized>(
    status: StatusCode,
    content_type: HeaderValue,
    body: &T,
) -> Response<Bytes> {
    // Serializing our own values cannot fail; if a user's `Serialize` does,
    // the client still gets a well-formed body with the right status.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// The default envelope:
/// `{"error":{"code","message","status","category","details","request_id"}}`,
/// `application/json`. `details` and `request_id` are left out when absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonEnvelope;

impl RenderError for JsonEnvelope {
    /// Written straight into one buffer of the right size (every refusal
    /// pays for this): the same bytes `serde_json` would write for the
    /// envelope, its strings escaped eight bytes at a step.
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes> {
        let (code, message, category) = (
            error.code().as_str(),
            error.message(),
            error.category_name(),
        );
        let request_id = context.request_id();
        let mut out = Vec::with_capacity(
            96 + code.len()
                + message.len()
                + category.len()
                + request_id.map_or(0, str::len)
                + if error.has_details() { 128 } else { 0 },
        );
        out.extend_from_slice(b"{\"error\":{\"code\":");
        write_json_str(&mut out, code);
        out.extend_from_slice(b",\"message\":");
        write_json_str(&mut out, message);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(error.status().as_u16())
                .as_bytes(),
        );
        out.extend_from_slice(b",\"category\":");
        write_json_str(&mut out, category);
        if let Some(typed) = error.typed_details() {
            out.extend_from_slice(b",\"details\":");
            typed.write_json(&mut out, write_json_str);
        } else if let Some(details) = error.details() {
            out.extend_from_slice(b",\"details\":");
            // Writing into a `Vec` cannot fail, nor can a `Value`.
            let _ = serde_json::to_writer(&mut out, details);
        }
        if let Some(request_id) = request_id {
            out.extend_from_slice(b",\"request_id\":");
            write_json_str(&mut out, request_id);
        }
        out.extend_from_slice(b"}}");
        let mut response = Response::new(Bytes::from(out));
        *response.status_mut() = error.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON));
        response
    }

    fn reads_route_or_caller(&self) -> bool {
        false
    }
}

/// Whether any of the eight bytes of `word` must be escaped in a JSON
/// string: a control character (below 0x20), `"` or `\`.
#[inline]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    // Bytes below 0x20 (bytes of 0x80 and above have their high bit set
    // and are masked out by `!word`).
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    control | zero_in(word ^ (ONES * u64::from(b'"'))) | zero_in(word ^ (ONES * u64::from(b'\\')))
        != 0
}

/// Whether `byte` must be escaped in a JSON string: a control character,
/// `"` or `\` (what [`needs_escape`] asks of eight at a time).
#[inline]
fn escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any byte of `bytes` must be escaped in a JSON string.
#[inline]
fn any_escape(bytes: &[u8]) -> bool {
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if bytes.len() < 8 {
        return bytes.iter().copied().any(escaped);
    }
    (0..bytes.len() / 8).any(|step| needs_escape(word(step * 8)))
        || needs_escape(word(bytes.len() - 8))
}

/// `text` as a JSON string, quoted and escaped exactly as `serde_json`
/// escapes it (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, else `\u00XX`
/// below 0x20).
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings need no escape: found so with whole words, the last one
    // overlapping the one before, then copied at once.
    if !any_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    let mut at = 0;
    loop {
        // Eight bytes a step while none of them needs escaping.
        while let Some(chunk) = bytes.get(at..at + 8) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            if needs_escape(u64::from_le_bytes(word)) {
                break;
            }
            at += 8;
        }
        // Then byte by byte to the next escape (or the end).
        let Some(offset) = bytes[at..].iter().copied().position(escaped) else {
            break;
        };
        at += offset;
        out.extend_from_slice(&bytes[start..at]);
        let byte = bytes[at];
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
        at += 1;
        start = at;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// RFC 9457 problem details, `application/problem+json`: `type`, `title`,
/// `status`, `detail`, and the extension members `code`, `details` and
/// `request_id`.
///
/// `type` is `about:blank` (and `title` the status's reason phrase) unless a
/// base URI is set, in which case `type` is the base followed by the code,
/// for example `https://docs.example.com/errors/payload_too_large`. A
/// request refused by a quota policy is the rate-limit headers draft's
/// problem type, [`QUOTA_EXCEEDED_TYPE`], with its extension member
/// `violated-policies` (the refusing policy's name, as in `RateLimit`).
#[derive(Clone, Debug, Default)]
pub struct ProblemJson {
    type_base: Option<String>,
}

impl ProblemJson {
    /// Problem details with `type: "about:blank"`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Problem details whose `type` is `base` followed by the error code.
    #[must_use]
    pub fn with_type_base(mut self, base: impl Into<String>) -> Self {
        self.type_base = Some(base.into());
        self
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(rename = "violated-policies", skip_serializing_if = "Option::is_none")]
    violated_policies: Option<[&'a str; 1]>,
}

/// The problem type of the rate-limit headers draft (11) for a request
/// over a quota policy; its extension member `violated-policies` names them.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";
const QUOTA_EXCEEDED_TITLE: &str =
    "Request cannot be satisfied as assigned quota has been exceeded";

impl RenderError for ProblemJson {
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes> {
        let code = error.code().as_str();
        // A refusal by a named quota policy is the draft's `quota-exceeded`.
        let violated = (error.category() == Category::RateLimit)
            .then(|| error.details()?.get("policy")?.as_str())
            .flatten();
        let kind = match (violated, &self.type_base) {
            (Some(_), _) => String::from(QUOTA_EXCEEDED_TYPE),
            (None, Some(base)) => format!("{base}{code}"),
            (None, None) => String::from("about:blank"),
        };
        let body = Problem {
            kind: &kind,
            violated_policies: violated.map(|policy| [policy]),
            title: match violated {
                Some(_) => QUOTA_EXCEEDED_TITLE,
                None => error.status().canonical_reason().unwrap_or("Error"),
            },
            status: error.status().as_u16(),
            detail: error.message(),
            code,
            details: error.details(),
            request_id: context.request_id(),
        };
        json_response(error.status(), APPLICATION_PROBLEM_JSON, &body)
    }

    fn reads_route_or_caller(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> = [
            "",
            "plain",
            "exactly8",
            "quote \" and back\\slash",
            "tab\tnew\nline\rcr\u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "é, 日本語, emoji 🎉 and \"quotes\" after eight bytes",
            "\"\"\"\"\"\"\"\"\"",
        ]
        .iter()
        .map(|text| (*text).to_owned())
        .collect();
        // Every byte below 0x80 at every place of a string of two words
        // and one byte (the last word overlapping the one before), and of a
        // string shorter than a word.
        for byte in 0u8..0x80 {
            for at in 0..=16 {
                let mut text = "abcdefghijklmnop".to_owned();
                text.insert(at, char::from(byte));
                samples.push(text);
            }
            for at in 0..=3 {
                let mut text = "abc".to_owned();
                text.insert(at, char::from(byte));
                samples.push(text);
            }
        }
        for text in samples {
            let mut ours = Vec::new();
            write_json_str(&mut ours, &text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[derive(Serialize)]
    struct Envelope<'a> {
        error: EnvelopeError<'a>,
    }

    #[derive(Serialize)]
    struct EnvelopeError<'a> {
        code: &'a str,
        message: &'a str,
        status: u16,
        category: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        details: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    }

    /// A scope refusal's typed details: `missing` a mask over `required`.
    fn scope(required: &[&str], granted: &[&str], missing: u64) -> ApiError {
        ApiError::new(ErrorCode::INSUFFICIENT_SCOPE, "Scopes.").with_typed_details(
            crate::error::TypedDetails::Scope {
                required: required.iter().map(|scope| Box::from(*scope)).collect(),
                granted: granted.iter().map(|scope| scope.to_string()).collect(),
                missing,
                mode: "all",
            },
        )
    }

    #[test]
    fn the_envelope_is_what_serde_json_writes() {
        let typed = |limit, policy: Option<&str>| {
            ApiError::new(ErrorCode::RATE_LIMITED, "Slow down.").with_typed_details(
                crate::error::TypedDetails::RateLimited {
                    limit,
                    policy: policy.map(std::sync::Arc::from),
                    retry_after: 86_400,
                },
            )
        };
        let errors = [
            ApiError::from(ErrorCode::MISSING_API_KEY),
            ApiError::new(ErrorCode::RATE_LIMITED, "Slow \"down\"\n")
                .with_details(serde_json::json!({ "retry_after": 3, "policy": "POST /v1/track" })),
            typed(Some(200), Some("POST /v1/\"track\"")),
            typed(None, None),
            ApiError::new(ErrorCode::RATE_LIMITED, "Spent.").with_typed_details(
                crate::error::TypedDetails::Window {
                    limit: Some(10_000),
                    policy: Some(std::sync::Arc::from("daily")),
                    reason: None,
                    reset: 1_767_225_600,
                    retry_after: 86_400,
                    window: "day",
                },
            ),
            ApiError::new(ErrorCode::RATE_LIMITED, "Spent.").with_typed_details(
                crate::error::TypedDetails::Window {
                    limit: None,
                    policy: Some(std::sync::Arc::from("failed_keys")),
                    reason: Some("failed_keys"),
                    reset: 0,
                    retry_after: 1,
                    window: "minute",
                },
            ),
            ApiError::new(ErrorCode::PAYLOAD_TOO_LARGE, "Too large.").with_typed_details(
                crate::error::TypedDetails::TooLarge {
                    limit_bytes: 8192,
                    limit_of: "route",
                },
            ),
            scope(
                &["events.write", "people.read", "stats.read"],
                &["people.*", "a\"b é"],
                0b101,
            ),
            scope(&["events.write"], &[], 0b1),
            scope(&[], &["read"], 0),
        ];
        for error in &errors {
            for request_id in [None, Some("req-1\"2")] {
                let context = RenderContext {
                    request_id,
                    ..RenderContext::default()
                };
                let response = JsonEnvelope.render(error, &context);
                let expected = serde_json::to_vec(&Envelope {
                    error: EnvelopeError {
                        code: error.code().as_str(),
                        message: error.message(),
                        status: error.status().as_u16(),
                        category: error.category_name(),
                        details: error.details(),
                        request_id,
                    },
                })
                .unwrap();
                assert_eq!(response.body().as_ref(), expected.as_slice());
                assert_eq!(response.status(), error.status());
                assert_eq!(response.headers()[CONTENT_TYPE], APPLICATION_JSON);
            }
        }
    }
}
