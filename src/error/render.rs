//! Rendering: the one place an [`ApiError`] becomes an HTTP response.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::jsonrpc::{JsonRpcFields, JsonRpcId};
use super::template::TemplateFields;
use super::{ApiError, Category, CodeMap, JsonRpc, Template};
use crate::key::Principal;
use crate::route::Route;

/// What a renderer may know of the rejected request: its id, method and
/// route, who called (never the key itself), and which rule refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderContext<'a> {
    request_id: Option<&'a str>,
    route: Option<&'a str>,
    method: Option<&'a Method>,
    principal: Option<&'a Principal>,
    subject: Option<(&'a str, &'a str)>,
    rule: Option<&'a str>,
    jsonrpc_id: Option<&'a Value>,
}

impl<'a> RenderContext<'a> {
    /// A context with the given request id and route name.
    pub fn new(request_id: Option<&'a str>, route: Option<&'a str>) -> Self {
        Self {
            request_id,
            route,
            ..Self::default()
        }
    }

    /// With the request's method.
    #[must_use]
    pub fn with_method(mut self, method: &'a Method) -> Self {
        self.method = Some(method);
        self
    }

    /// With the authenticated caller.
    #[must_use]
    pub fn with_principal(mut self, principal: &'a Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// With the name of the rule that refused.
    #[must_use]
    pub fn with_rule(mut self, rule: &'a str) -> Self {
        self.rule = Some(rule);
        self
    }

    /// The request's method.
    pub fn method(&self) -> Option<&'a Method> {
        self.method
    }

    /// The caller, when a key was admitted before the refusal (an origin,
    /// scope, rate-limit or body refusal; not a key refusal).
    pub fn principal(&self) -> Option<&'a Principal> {
        self.principal
    }

    /// The caller's key id: the principal's, or that of a known key the key
    /// check refused (disabled, expired, of another kind).
    pub fn key_id(&self) -> Option<&'a str> {
        self.principal
            .map(Principal::key_id)
            .or(self.subject.map(|(key_id, _)| key_id))
    }

    /// The caller's project, likewise.
    pub fn project(&self) -> Option<&'a str> {
        self.principal
            .map(Principal::project)
            .or(self.subject.map(|(_, project)| project))
    }

    /// The JSON-RPC `id` read from the refused request's body, on a route
    /// whose shape reads it ([`JsonRpc`]).
    pub fn jsonrpc_id(&self) -> Option<&'a Value> {
        self.jsonrpc_id
    }

    /// The rule that refused: `key`, `origin`, `kind`, `scope`,
    /// `rate_limit`, `body_limit`, or a name your check gave.
    pub fn rule(&self) -> Option<&'a str> {
        self.rule
    }

    /// The request's id, echoed from its request-id header when present.
    pub fn request_id(&self) -> Option<&'a str> {
        self.request_id
    }

    /// The name of the matched route (its pattern), when a
    /// [`RouteLayer`](crate::route::RouteLayer) ran.
    pub fn route(&self) -> Option<&'a str> {
        self.route
    }
}

/// Turns an [`ApiError`] into a response: the one extension point for the
/// shape of error bodies.
///
/// Closures `Fn(&ApiError, &RenderContext) -> serde_json::Value` implement it:
/// the value becomes an `application/json` body with the error's status. For
/// full control (another content type, other headers) implement the trait.
///
/// ```
/// use serde_json::json;
/// use tollgate::error::{ApiError, ErrorRenderer, RenderContext};
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
    /// `id`); `None` (the default): none.
    fn body_read_limit(&self) -> Option<u64> {
        None
    }
}

impl<F> RenderError for F
where
    F: Fn(&ApiError, &RenderContext<'_>) -> Value + Send + Sync + 'static,
{
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes> {
        json_response(error.status(), APPLICATION_JSON, &self(error, context))
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

impl RenderError for JsonEnvelope {
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes> {
        let body = Envelope {
            error: EnvelopeError {
                code: error.code().as_str(),
                message: error.message(),
                status: error.status().as_u16(),
                category: error.category().as_str(),
                details: error.details(),
                request_id: context.request_id(),
            },
        };
        json_response(error.status(), APPLICATION_JSON, &body)
    }
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
}

/// The shape of error bodies, as a configuration file names it:
/// `errors = "json"` or `"problem"`, or a `[errors]` table with a
/// [`Template`]. A route may have its own (`errors` on the route).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum ErrorFormat {
    /// The JSON envelope ([`JsonEnvelope`]).
    #[default]
    Json,
    /// RFC 9457 problem details ([`ProblemJson`]).
    Problem,
    /// A body from a template ([`Template`]).
    Template(Box<Template>),
    /// JSON-RPC 2.0 errors ([`JsonRpc`]).
    JsonRpc(Box<JsonRpc>),
}

impl ErrorFormat {
    /// A renderer of this shape.
    pub fn renderer(&self) -> ErrorRenderer {
        ErrorRenderer {
            renderer: self.shape(),
            ..ErrorRenderer::default()
        }
    }

    /// The shape alone, for a route's own.
    pub(crate) fn shape(&self) -> Arc<dyn RenderError> {
        match self {
            Self::Json => Arc::new(JsonEnvelope),
            Self::Problem => Arc::new(ProblemJson::new()),
            Self::Template(template) => Arc::new((**template).clone()),
            Self::JsonRpc(rpc) => Arc::new((**rpc).clone()),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum FormatFields {
    Name(String),
    JsonRpc { jsonrpc: JsonRpcFields },
    Template(TemplateFields),
}

impl Serialize for ErrorFormat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Json => FormatFields::Name("json".into()),
            Self::Problem => FormatFields::Name("problem".into()),
            Self::Template(template) => FormatFields::Template(TemplateFields::from(&**template)),
            Self::JsonRpc(rpc) if **rpc == JsonRpc::default() => {
                FormatFields::Name("jsonrpc".into())
            }
            Self::JsonRpc(rpc) => FormatFields::JsonRpc {
                jsonrpc: JsonRpcFields::from(&**rpc),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for ErrorFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(deserializer)?;
        if let Value::String(name) = &value {
            return match name.as_str() {
                "json" => Ok(Self::Json),
                "problem" => Ok(Self::Problem),
                "jsonrpc" => Ok(Self::JsonRpc(Box::default())),
                other => Err(D::Error::custom(format!(
                    "`errors = \"{other}\"`: use \"json\", \"problem\", \"jsonrpc\" or a table with a `template`"
                ))),
            };
        }
        if let Some(options) = value.get("jsonrpc") {
            if value.as_object().is_some_and(|table| table.len() > 1) {
                return Err(D::Error::custom(
                    "`errors`: a `jsonrpc` table stands alone (no `template` beside it)",
                ));
            }
            let fields = JsonRpcFields::deserialize(options.clone()).map_err(|error| {
                D::Error::custom(format!(
                    "`errors.jsonrpc`: {error} (fields: http_status, codes, id_limit)"
                ))
            })?;
            return JsonRpc::try_from(fields)
                .map(|rpc| Self::JsonRpc(Box::new(rpc)))
                .map_err(|error| D::Error::custom(error.to_string()));
        }
        let fields = TemplateFields::deserialize(value).map_err(|error| {
            D::Error::custom(format!(
                "`errors`: {error} (a table with `template`, and optionally `categories` and `content_type`)"
            ))
        })?;
        Template::try_from(fields)
            .map(|template| Self::Template(Box::new(template)))
            .map_err(|error| D::Error::custom(error.to_string()))
    }
}

/// The renderer every layer shares: set once, cheap to clone.
///
/// It picks the response shape ([`JsonEnvelope`] by default), answers gRPC
/// requests (`content-type: application/grpc…`) with a trailers-only gRPC
/// status instead, echoes the request id, adds the error's headers, puts the
/// typed [`ApiError`] in the response's extensions, and emits one `tracing`
/// event per rejection (code, status, route, and key id and project when
/// known; never the key).
#[derive(Clone)]
pub struct ErrorRenderer {
    renderer: Arc<dyn RenderError>,
    /// Routes with a shape of their own, by route name.
    routes: Arc<HashMap<Box<str>, Arc<dyn RenderError>>>,
    request_id_header: HeaderName,
    grpc: bool,
    codes: CodeMap,
}

/// The longest request id echoed back; longer ones are ignored.
const MAX_REQUEST_ID_LEN: usize = 200;

impl ErrorRenderer {
    /// A renderer producing the shape of `renderer`.
    pub fn new(renderer: impl RenderError) -> Self {
        Self {
            renderer: Arc::new(renderer),
            routes: Arc::default(),
            request_id_header: HeaderName::from_static("x-request-id"),
            grpc: true,
            codes: CodeMap::new(),
        }
    }

    /// A renderer from a closure that returns the JSON body.
    pub fn from_fn<F>(render: F) -> Self
    where
        F: Fn(&ApiError, &RenderContext<'_>) -> Value + Send + Sync + 'static,
    {
        Self::new(render)
    }

    /// RFC 9457 `application/problem+json` responses.
    pub fn problem_json() -> Self {
        Self::new(ProblemJson::new())
    }

    /// Reads the request id from `header` instead of `x-request-id`.
    #[must_use]
    pub fn with_request_id_header(mut self, header: HeaderName) -> Self {
        self.request_id_header = header;
        self
    }

    /// Renames codes and changes their statuses as `codes` says, for every
    /// rejection rendered.
    #[must_use]
    pub fn with_codes(mut self, codes: CodeMap) -> Self {
        self.codes = codes;
        self
    }

    /// Renders the rejections of the route named `route` (its pattern) in
    /// another shape than the rest.
    #[must_use]
    pub fn with_route_shape(mut self, route: &str, shape: impl RenderError) -> Self {
        self.set_route_shape(route, Arc::new(shape));
        self
    }

    /// How many bytes of a refused `request`'s body its route's shape reads
    /// before rendering, if any.
    pub(crate) fn body_read_limit<B>(&self, request: &Request<B>) -> Option<u64> {
        if self.grpc && is_grpc(request.headers()) {
            return None;
        }
        let route = request.extensions().get::<Route>().map(Route::name);
        route
            .and_then(|route| self.routes.get(route))
            .unwrap_or(&self.renderer)
            .body_read_limit()
    }

    pub(crate) fn set_shape(&mut self, shape: Arc<dyn RenderError>) {
        self.renderer = shape;
    }

    pub(crate) fn set_route_shape(&mut self, route: &str, shape: Arc<dyn RenderError>) {
        Arc::make_mut(&mut self.routes).insert(route.into(), shape);
    }

    /// The code map.
    pub fn codes(&self) -> &CodeMap {
        &self.codes
    }

    /// The header the request id is read from.
    pub fn request_id_header(&self) -> &HeaderName {
        &self.request_id_header
    }

    /// Whether gRPC requests get gRPC status responses (on by default).
    #[must_use]
    pub fn with_grpc(mut self, enabled: bool) -> Self {
        self.grpc = enabled;
        self
    }

    /// The response rejecting `request` with `error`.
    pub fn respond<B>(&self, error: ApiError, request: &Request<B>) -> Response<Bytes> {
        self.respond_to(
            error,
            Some(request.method()),
            request.headers(),
            request.extensions(),
        )
    }

    /// The response rejecting the request whose head is `parts`.
    pub fn respond_parts(&self, error: ApiError, parts: &http::request::Parts) -> Response<Bytes> {
        self.respond_to(
            error,
            Some(&parts.method),
            &parts.headers,
            &parts.extensions,
        )
    }

    fn respond_to(
        &self,
        error: ApiError,
        method: Option<&Method>,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Response<Bytes> {
        let request_id = headers
            .get(&self.request_id_header)
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN);
        let route = extensions.get::<Route>().map(Route::name);
        let error = self.codes.apply(error);
        log_rejection(&error, extensions, route);

        let mut response = if self.grpc && is_grpc(headers) {
            grpc_response(&error)
        } else {
            let context = RenderContext {
                request_id,
                route,
                method,
                principal: extensions.get::<Principal>(),
                subject: error.subject_ids(),
                rule: error.rule(),
                jsonrpc_id: extensions.get::<JsonRpcId>().map(|id| &id.0),
            };
            let renderer = route
                .and_then(|route| self.routes.get(route))
                .unwrap_or(&self.renderer);
            renderer.render(&error, &context)
        };
        for (name, value) in error.headers() {
            response.headers_mut().append(name, value.clone());
        }
        response.extensions_mut().insert(error);
        response
    }
}

impl ErrorRenderer {
    /// The parts of `request` that rendering a rejection reads (its request
    /// id and content type, its route and principal), for a rejection decided
    /// after the request itself was handed on.
    pub(crate) fn snapshot<B>(&self, request: &Request<B>) -> Request<()> {
        let mut snapshot = Request::new(());
        *snapshot.method_mut() = request.method().clone();
        for name in [&self.request_id_header, &CONTENT_TYPE] {
            if let Some(value) = request.headers().get(name) {
                snapshot.headers_mut().insert(name.clone(), value.clone());
            }
        }
        let extensions = request.extensions();
        if let Some(route) = extensions.get::<Route>() {
            snapshot.extensions_mut().insert(route.clone());
        }
        if let Some(principal) = extensions.get::<crate::key::Principal>() {
            snapshot.extensions_mut().insert(principal.clone());
        }
        snapshot
    }
}

/// In the extensions of a response an `ApiError` was rendered into without
/// the gate's settings (axum's `IntoResponse`, the `Principal` extractor):
/// the gate renders it again, in its own shape, codes and request id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RenderedByDefault;

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ApiError {
    /// The default envelope, without request context. Behind a gate, the
    /// gate renders it again in its own shape, with its codes and the
    /// request's id, route and caller.
    fn into_response(self) -> axum::response::Response {
        let headers = HeaderMap::new();
        let mut response = ErrorRenderer::default()
            .respond_to(self, None, &headers, &http::Extensions::new())
            .map(axum::body::Body::from);
        response.extensions_mut().insert(RenderedByDefault);
        response
    }
}

impl Default for ErrorRenderer {
    fn default() -> Self {
        Self::new(JsonEnvelope)
    }
}

impl fmt::Debug for ErrorRenderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorRenderer")
            .field("request_id_header", &self.request_id_header)
            .field("grpc", &self.grpc)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tracing")]
fn log_rejection(error: &ApiError, extensions: &http::Extensions, route: Option<&str>) {
    let principal = extensions.get::<crate::key::Principal>();
    let (key_id, project) = match (error.subject(), principal) {
        (Some(subject), _) => (
            Some(subject.key_id.as_str()),
            Some(subject.project.as_str()),
        ),
        (None, Some(principal)) => (Some(principal.key_id()), Some(principal.project())),
        (None, None) => (None, None),
    };
    let code = error.code().as_str();
    let status = error.status().as_u16();
    if error.status().is_server_error() {
        tracing::warn!(target: "tollgate", code, status, route, key_id, project, "request rejected");
    } else {
        tracing::info!(target: "tollgate", code, status, route, key_id, project, "request rejected");
    }
}

#[cfg(not(feature = "tracing"))]
fn log_rejection(_: &ApiError, _: &http::Extensions, _: Option<&str>) {}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status code for an HTTP status.
///
/// 404 maps to `UNIMPLEMENTED` (12), what a gRPC server answers for a method it
/// does not have, so a hidden route looks absent to gRPC clients too.
pub fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 12,
        413 | 429 => 8,
        500 => 13,
        502..=504 => 14,
        _ => 2,
    }
}

fn grpc_response(error: &ApiError) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from(u16::from(grpc_status(error.status()))),
    );
    let message = percent_encode_grpc(&format!("{}: {}", error.code(), error.message()));
    if let Ok(value) = HeaderValue::from_str(&message) {
        headers.insert(HeaderName::from_static("grpc-message"), value);
    }
    response
}

/// Percent-encodes a `grpc-message` as the gRPC spec asks: every byte outside
/// printable ASCII, and `%` itself.
fn percent_encode_grpc(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode_grpc("a b%c\né"), "a b%25c%0A%C3%A9");
    }

    #[test]
    fn grpc_status_mapping_follows_the_design() {
        let cases = [
            (401, 16),
            (403, 7),
            (429, 8),
            (413, 8),
            (400, 3),
            (502, 14),
            (503, 14),
            (500, 13),
            (404, 12),
            (418, 2),
        ];
        for (http, grpc) in cases {
            assert_eq!(
                grpc_status(StatusCode::from_u16(http).unwrap()),
                grpc,
                "{http}"
            );
        }
    }
}
