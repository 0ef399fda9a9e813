//! [`JsonRpc`]: JSON-RPC 2.0 error responses, for routes that speak it
//! (MCP servers among them).

use std::collections::HashMap;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{RenderContext, RenderError, json_response};
use crate::ConfigError;
use crate::error::ApiError;

/// The JSON-RPC error code of every refusal the code map does not name.
pub const JSONRPC_SERVER_ERROR: i64 = -32000;

/// JSON-RPC 2.0 error responses:
/// `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…,"data":{"code":"rate_limited",…}}}`.
///
/// - `id` is the refused request's own: on a route with this shape the gate
///   reads up to [`id_limit`](Self::id_limit) bytes of a refused request's
///   body (64 KiB by default, never past the route's body cap) to find it,
///   and answers `null` when it cannot (no body, not JSON, a batch, too
///   long, too slow).
/// - `error.code` is `-32000` unless [`code`](Self::code) maps the
///   tollgate code to another; `error.data` carries the tollgate code, the
///   HTTP status, the details and the request id.
/// - The HTTP status is the error's (so proxies and clients still see 401,
///   429 and `Retry-After`), or 200 for every refusal with
///   [`http_ok`](Self::http_ok).
///
/// In a configuration file, on a route (or for the whole gate):
///
/// ```toml
/// errors = "jsonrpc"
/// # or
/// errors = { jsonrpc = { http_status = "ok", codes = { rate_limited = -32029 }, id_limit = 65536 } }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct JsonRpc {
    http_ok: bool,
    codes: HashMap<String, i64>,
    id_limit: u64,
}

impl Default for JsonRpc {
    fn default() -> Self {
        Self {
            http_ok: false,
            codes: HashMap::new(),
            id_limit: 64 * 1024,
        }
    }
}

impl JsonRpc {
    /// Every refusal `-32000`, with its HTTP status, the id read from up to
    /// 64 KiB of the body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers every refusal with HTTP 200 (the error is in the body only).
    #[must_use]
    pub fn http_ok(mut self, ok: bool) -> Self {
        self.http_ok = ok;
        self
    }

    /// Answers the tollgate code `code` (as the code map spells it) with the
    /// JSON-RPC error code `number`.
    #[must_use]
    pub fn code(mut self, code: impl Into<String>, number: i64) -> Self {
        self.codes.insert(code.into(), number);
        self
    }

    /// Reads at most `bytes` of a refused request's body for its id (0: never).
    #[must_use]
    pub fn id_limit(mut self, bytes: u64) -> Self {
        self.id_limit = bytes;
        self
    }
}

impl RenderError for JsonRpc {
    fn render(&self, error: &ApiError, context: &RenderContext<'_>) -> Response<Bytes> {
        let code = error.code().as_str();
        let mut data = json!({ "code": code, "status": error.status().as_u16() });
        if let Some(details) = error.details() {
            data["details"] = details.clone();
        }
        if let Some(id) = context.request_id() {
            data["request_id"] = Value::from(id);
        }
        let body = json!({
            "jsonrpc": "2.0",
            "id": context.body().map_or(Value::Null, request_id),
            "error": {
                "code": self.codes.get(code).copied().unwrap_or(JSONRPC_SERVER_ERROR),
                "message": error.message(),
                "data": data,
            },
        });
        let status = if self.http_ok {
            StatusCode::OK
        } else {
            error.status()
        };
        json_response(status, "application/json", &body)
    }

    fn body_read_limit(&self) -> Option<u64> {
        (self.id_limit > 0).then_some(self.id_limit)
    }

    fn reads_route_or_caller(&self) -> bool {
        false
    }
}

/// The request's `id`, if `body` is one JSON-RPC request object whose id
/// is a string, a number or null.
fn request_id(body: &[u8]) -> Value {
    #[derive(Deserialize)]
    struct Only {
        #[serde(default)]
        id: Value,
    }
    match serde_json::from_slice::<Only>(body) {
        Ok(Only {
            id: id @ (Value::String(_) | Value::Number(_)),
        }) => id,
        _ => Value::Null,
    }
}

/// `jsonrpc` options as a configuration file writes them.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonRpcFields {
    /// `"error"` (default: the error's HTTP status) or `"ok"` (200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_status: Option<String>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    codes: HashMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_limit: Option<u64>,
}

impl TryFrom<JsonRpcFields> for JsonRpc {
    type Error = ConfigError;

    fn try_from(fields: JsonRpcFields) -> Result<Self, ConfigError> {
        let http_ok = match fields.http_status.as_deref() {
            None | Some("error") => false,
            Some("ok") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "errors.jsonrpc.http_status",
                    format!("`{other}`: use \"error\" (the error's status) or \"ok\" (200)"),
                ));
            }
        };
        let defaults = JsonRpc::default();
        Ok(JsonRpc {
            http_ok,
            codes: fields.codes,
            id_limit: fields.id_limit.unwrap_or(defaults.id_limit),
        })
    }
}

impl From<&JsonRpc> for JsonRpcFields {
    fn from(rpc: &JsonRpc) -> Self {
        Self {
            http_status: rpc.http_ok.then(|| "ok".to_owned()),
            codes: rpc.codes.clone(),
            id_limit: (rpc.id_limit != JsonRpc::default().id_limit).then_some(rpc.id_limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_id_of_one_request() {
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","id":7,"method":"x"}"#),
            json!(7)
        );
        assert_eq!(request_id(br#"{"id":"a-1","method":"x"}"#), json!("a-1"));
        for none in [
            &br#"{"jsonrpc":"2.0","method":"notify"}"#[..],
            br#"[{"id":1}]"#,
            br#"{"id":{"nested":1}}"#,
            br#"{"id":1"#,
            b"",
            b"\xff",
        ] {
            assert_eq!(request_id(none), Value::Null, "{none:?}");
        }
    }
}
