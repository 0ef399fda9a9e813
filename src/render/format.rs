//! [`ErrorFormat`]: the shape of error bodies, as a configuration file
//! names it.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::jsonrpc::JsonRpcFields;
use super::template::TemplateFields;
use super::{ErrorRenderer, JsonEnvelope, JsonRpc, ProblemJson, RenderError, Template};

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
        let mut renderer = ErrorRenderer::default();
        renderer.set_shape(self.shape());
        renderer
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
