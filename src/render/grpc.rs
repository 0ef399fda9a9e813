//! gRPC statuses: a rejection of a gRPC request as a trailers-only response.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::error::ApiError;

pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
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

/// What a gRPC refusal says beside its status: the request's id and route,
/// and the domain of its `ErrorInfo`.
#[cfg_attr(not(feature = "grpc-details"), allow(dead_code))]
pub(crate) struct GrpcContext<'a> {
    pub(crate) request_id: Option<&'a str>,
    pub(crate) route: Option<&'a str>,
    pub(crate) domain: &'a str,
}

pub(crate) fn grpc_response(error: &ApiError, context: &GrpcContext<'_>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    #[cfg(feature = "grpc-details")]
    details::add(error, context, response.headers_mut());
    #[cfg(not(feature = "grpc-details"))]
    let _ = context;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        HeaderName::from_static("grpc-status"),
        super::number_value(u64::from(grpc_status(error.status()))),
    );
    if let Some(value) = grpc_message(error.code().as_str(), error.message()) {
        headers.insert(HeaderName::from_static("grpc-message"), value);
    }
    response
}

/// `grpc-status-details-bin`: the refusal in Google's rich error model.
#[cfg(feature = "grpc-details")]
mod details {
    use std::collections::HashMap;
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue};
    use tonic_types::{ErrorDetails, StatusExt};

    use super::{GrpcContext, grpc_status};
    use crate::error::{ApiError, Category};

    const DETAILS: &str = "grpc-status-details-bin";

    /// Adds the `google.rpc.Status` of `error`: `ErrorInfo` (reason: the
    /// code; metadata: route, policy, rule), `RetryInfo` and `QuotaFailure`
    /// on rate-limit refusals, `RequestInfo` with the request id.
    pub(super) fn add(error: &ApiError, context: &GrpcContext<'_>, headers: &mut HeaderMap) {
        let detail = |name: &str| error.details().and_then(|details| details.get(name));
        let policy = detail("policy").and_then(|policy| policy.as_str());
        let mut metadata = HashMap::new();
        if let Some(route) = context.route {
            metadata.insert("route".to_owned(), route.to_owned());
        }
        if let Some(policy) = policy {
            metadata.insert("policy".to_owned(), policy.to_owned());
        }
        if let Some(rule) = error.rule() {
            metadata.insert("rule".to_owned(), rule.as_str().to_owned());
        }
        let mut details = ErrorDetails::new();
        details.set_error_info(error.code().as_str(), context.domain, metadata);
        if error.category() == Category::RateLimit {
            let retry = detail("retry_after").and_then(serde_json::Value::as_u64);
            details.set_retry_info(retry.map(Duration::from_secs));
            details.add_quota_failure_violation(
                policy.or(context.route).unwrap_or("default"),
                error.message(),
            );
        }
        if let Some(id) = context.request_id {
            details.set_request_info(id, "");
        }
        let code = tonic::Code::from(i32::from(grpc_status(error.status())));
        let status = tonic::Status::with_error_details(code, error.message(), details);
        // The encoded `google.rpc.Status` in base64 without padding, as
        // tonic writes binary headers; written here rather than through
        // `Status::add_header`, which also percent-encodes the message (the
        // refusal writes its own `grpc-message`) into scratch headers.
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.details());
        if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(encoded)) {
            headers.insert(DETAILS, value);
        }
    }
}

/// `code: message` as a `grpc-message`, percent-encoded as the gRPC spec
/// asks (every byte outside printable ASCII, and `%` itself), measured
/// first and written once into a buffer of exactly its size.
fn grpc_message(code: &str, message: &str) -> Option<HeaderValue> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let escaped = |byte: u8| !(0x20..=0x7e).contains(&byte) || byte == b'%';
    let bytes = || {
        [code.as_bytes(), b": ", message.as_bytes()]
            .into_iter()
            .flatten()
            .copied()
    };
    let length = bytes().map(|byte| if escaped(byte) { 3 } else { 1 }).sum();
    let mut out = Vec::with_capacity(length);
    for byte in bytes() {
        if escaped(byte) {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0f)],
            ]);
        } else {
            out.push(byte);
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(
            grpc_message("team_quota_spent", "a b%c\né~").unwrap(),
            "team_quota_spent: a b%25c%0A%C3%A9~"
        );
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
