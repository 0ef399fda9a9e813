//! [`Template`]: an error body shaped by a JSON value with placeholders, so
//! that an existing API's envelope needs no code.

use std::collections::HashMap;

use bytes::Bytes;
use http::Response;
use http::header::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{RenderContext, RenderError, json_response_with};
use crate::ConfigError;
use crate::error::ApiError;

/// An error body made from a JSON template.
///
/// Every string of the template may hold placeholders:
///
/// | placeholder | value |
/// |---|---|
/// | `{code}` | the code (after the code map) |
/// | `{message}` | the human message |
/// | `{status}` | the HTTP status, a number |
/// | `{category}` | the category, renamed by `categories` |
/// | `{details}` | the details object |
/// | `{details.NAME}` | one member of the details; `{details.missing.0}` an array's element by index, `{details.a.b}` a nested member |
/// | `{request_id}` | the request id |
/// | `{key_id}`, `{project}`, `{kind}` | the caller, when known (never the key) |
/// | `{tier}` | the caller's tier ([`KeyRecord::with_tier`](crate::key::KeyRecord::with_tier)) |
/// | `{route}`, `{method}`, `{rule}` | the route's pattern, the method, the refusing rule |
/// | `{path}` | the request's path (never its query, which may hold a key) |
/// | `{reason}` | the status's reason phrase: `Unauthorized`, `Too Many Requests` |
///
/// A string that is one placeholder and nothing else takes the value's own
/// JSON type — `"{status}"` is a number, `"{details}"` an object — and a
/// member whose value is absent is left out (in an array, the element), as
/// is an object all of whose members were left out.
/// Placeholders inside longer strings are written as text, absent ones as
/// nothing. Braces that do not form a known placeholder are kept as they
/// are; `{name}` with an unknown name is refused when the template is made.
///
/// ```
/// use serde_json::json;
/// use tollgate::error::{ApiError, ErrorCode};
/// use tollgate::render::{ErrorRenderer, Template};
///
/// let template = Template::new(json!({
///     "error": { "type": "{category}", "code": "{code}", "message": "{message}",
///                "retry_in": "{details.retry_after}", "request_id": "{request_id}" }
/// }))?
/// .category("auth", "authentication_error");
/// let response = ErrorRenderer::new(template)
///     .respond(ApiError::from(ErrorCode::MISSING_API_KEY), &http::Request::new(()));
/// let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
/// assert_eq!(body, json!({ "error": { "type": "authentication_error",
///     "code": "missing_api_key", "message": "No API key was provided." } }));
/// # Ok::<(), tollgate::ConfigError>(())
/// ```
///
/// In a configuration file (`errors` at the top, or on one route):
///
/// ```toml
/// [errors]
/// template = { error = { type = "{category}", code = "{code}", message = "{message}" } }
/// categories = { auth = "authentication_error", rate_limit = "rate_limit_error" }
/// content_type = "application/json"   # the default
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: Value,
    compiled: Node,
    categories: HashMap<String, String>,
    content_type: HeaderValue,
}

/// A template compiled: what each string becomes.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Literal(Value),
    Whole(Field),
    Text(Vec<Piece>),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Field(Field),
}

#[derive(Clone, Debug, PartialEq)]
enum Field {
    Code,
    Message,
    Status,
    Category,
    Details,
    /// A member of the details, by its path: `retry_after`, `missing.0`
    /// (an array's element by its index), `a.b`.
    Detail(Box<[String]>),
    RequestId,
    KeyId,
    Project,
    Kind,
    Tier,
    Route,
    Method,
    Rule,
    Path,
    Reason,
}

/// The member of `value` at `path`: an object's member by name, an array's
/// element by its index.
fn member<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, segment| match value {
        Value::Object(members) => members.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

impl Field {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "code" => Self::Code,
            "message" => Self::Message,
            "status" => Self::Status,
            "category" => Self::Category,
            "details" => Self::Details,
            "request_id" => Self::RequestId,
            "key_id" => Self::KeyId,
            "project" => Self::Project,
            "kind" => Self::Kind,
            "tier" => Self::Tier,
            "route" => Self::Route,
            "method" => Self::Method,
            "rule" => Self::Rule,
            "path" => Self::Path,
            "reason" => Self::Reason,
            _ => {
                let path = name.strip_prefix("details.")?;
                let segments: Box<[String]> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return None;
                }
                Self::Detail(segments)
            }
        })
    }
}

/// Whether `name` looks like a placeholder's name: lower-case letters,
/// digits, `_` and `.`.
fn is_placeholder_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// The pieces of `text`, or the unknown placeholder in it.
fn pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            break;
        };
        let name = &after[..close];
        if !is_placeholder_name(name) {
            literal.push_str(&rest[..=open]);
            rest = after;
            continue;
        }
        let field = Field::parse(name).ok_or_else(|| name.to_owned())?;
        literal.push_str(&rest[..open]);
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Field(field));
        rest = &after[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn compile(value: &Value) -> Result<Node, String> {
    Ok(match value {
        Value::String(text) => {
            let mut pieces = pieces(text)?;
            match pieces.as_slice() {
                [] | [Piece::Text(_)] => Node::Literal(value.clone()),
                [Piece::Field(_)] => match pieces.pop() {
                    Some(Piece::Field(field)) => Node::Whole(field),
                    _ => Node::Literal(value.clone()),
                },
                _ => Node::Text(pieces),
            }
        }
        Value::Object(members) => Node::Object(
            members
                .iter()
                .map(|(name, value)| Ok((name.clone(), compile(value)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Array(items) => Node::Array(items.iter().map(compile).collect::<Result<_, _>>()?),
        other => Node::Literal(other.clone()),
    })
}

impl Template {
    /// A template from a JSON value; an unknown placeholder is an error
    /// naming it.
    pub fn new(template: Value) -> Result<Self, ConfigError> {
        let compiled = compile(&template).map_err(|name| {
            ConfigError::new(
                "errors.template",
                format!(
                    "unknown placeholder `{{{name}}}`: use code, message, status, reason, \
                     category, details, details.NAME (details.NAME.0 for an element), \
                     request_id, key_id, project, kind, tier, route, method, path or rule"
                ),
            )
        })?;
        Ok(Self {
            source: template,
            compiled,
            categories: HashMap::new(),
            content_type: HeaderValue::from_static("application/json"),
        })
    }

    /// Shows `category` (`auth`, `rate_limit`, `validation`, `upstream`,
    /// `internal`) as `name` in `{category}`.
    #[must_use]
    pub fn category(mut self, category: &str, name: impl Into<String>) -> Self {
        self.categories.insert(category.to_owned(), name.into());
        self
    }

    /// Sends the body with this content type (default `application/json`).
    pub fn content_type(mut self, content_type: &str) -> Result<Self, ConfigError> {
        self.content_type = HeaderValue::from_str(content_type).map_err(|_| {
            ConfigError::new(
                "errors.content_type",
                format!("`{content_type}` is not a header value"),
            )
        })?;
        Ok(self)
    }

    fn value(&self, field: &Field, error: &ApiError, context: &RenderContext<'_>) -> Option<Value> {
        let text = |text: &str| Some(Value::String(text.to_owned()));
        match field {
            Field::Code => text(error.code().as_str()),
            Field::Message => text(error.message()),
            Field::Status => Some(Value::from(error.status().as_u16())),
            Field::Category => {
                // A code's own category name (`[codes]`) is shown as it is;
                // otherwise the category, renamed by `categories`.
                let category = error.category_name();
                if error.code().has_category_name() {
                    return text(category);
                }
                text(
                    self.categories
                        .get(category)
                        .map_or(category, String::as_str),
                )
            }
            Field::Details => error.details().cloned(),
            Field::Detail(path) => member(error.details()?, path).cloned(),
            Field::RequestId => text(context.request_id()?),
            Field::KeyId => text(context.key_id()?),
            Field::Project => text(context.project()?),
            Field::Kind => text(context.principal()?.kind().as_str()),
            Field::Tier => text(context.principal()?.tier()?),
            Field::Route => text(context.route()?),
            Field::Method => text(context.method()?.as_str()),
            Field::Rule => text(context.rule()?.as_str()),
            Field::Path => text(context.path()?),
            Field::Reason => text(error.status().canonical_reason()?),
        }
    }

    fn fill(&self, node: &Node, error: &ApiError, context: &RenderContext<'_>) -> Option<Value> {
        match node {
            Node::Literal(value) => Some(value.clone()),
            Node::Whole(field) => self.value(field, error, context),
            Node::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Field(field) => match self.value(field, error, context) {
                            Some(Value::String(text)) => out.push_str(&text),
                            Some(Value::Null) | None => {}
                            Some(other) => out.push_str(&other.to_string()),
                        },
                    }
                }
                Some(Value::String(out))
            }
            Node::Object(members) => {
                let filled = members
                    .iter()
                    .filter_map(|(name, node)| {
                        Some((name.clone(), self.fill(node, error, context)?))
                    })
                    .collect::<Map<_, _>>();
                // An object whose every member was absent is absent itself
                // (one written empty in the template is a literal and stays).
                (!filled.is_empty()).then_some(Value::Object(filled))
            }
            Node::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .filter_map(|node| self.fill(node, error, context))
                    .collect(),
            )),
        }
    }

    /// The body for `error`.
    pub fn body(&self, error: &ApiError, context: &RenderContext<'_>) -> Value {
        self.fill(&self.compiled, error, context)
            .unwrap_or(Value::Null)
    }
}

impl RenderError for Template {
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes> {
        json_response_with(
            error.status(),
            self.content_type.clone(),
            &self.body(error, context),
        )
    }

    fn reads_path(&self) -> bool {
        self.compiled.reads(&Field::Path)
    }

    fn reads_route_or_caller(&self) -> bool {
        [
            Field::Route,
            Field::KeyId,
            Field::Project,
            Field::Kind,
            Field::Tier,
        ]
        .iter()
        .any(|field| self.compiled.reads(field))
    }
}

impl Node {
    /// Whether `field` is somewhere in this node.
    fn reads(&self, field: &Field) -> bool {
        match self {
            Self::Literal(_) => false,
            Self::Whole(own) => own == field,
            Self::Text(pieces) => pieces
                .iter()
                .any(|piece| matches!(piece, Piece::Field(own) if own == field)),
            Self::Object(members) => members.iter().any(|(_, node)| node.reads(field)),
            Self::Array(items) => items.iter().any(|node| node.reads(field)),
        }
    }
}

/// A template as a configuration file writes it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateFields {
    template: Value,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    categories: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
}

const CATEGORIES: [&str; 5] = ["auth", "rate_limit", "validation", "upstream", "internal"];

impl TryFrom<TemplateFields> for Template {
    type Error = ConfigError;

    fn try_from(fields: TemplateFields) -> Result<Self, ConfigError> {
        let mut template = Template::new(fields.template)?;
        for (category, name) in fields.categories {
            if !CATEGORIES.contains(&category.as_str()) {
                return Err(ConfigError::new(
                    "errors.categories",
                    format!(
                        "`{category}` is not a category: use {}",
                        CATEGORIES.join(", ")
                    ),
                ));
            }
            template = template.category(&category, name);
        }
        if let Some(content_type) = fields.content_type {
            template = template.content_type(&content_type)?;
        }
        Ok(template)
    }
}

impl From<&Template> for TemplateFields {
    fn from(template: &Template) -> Self {
        Self {
            template: template.source.clone(),
            categories: template.categories.clone(),
            content_type: (template.content_type != "application/json").then(|| {
                template
                    .content_type
                    .to_str()
                    .unwrap_or_default()
                    .to_owned()
            }),
        }
    }
}
