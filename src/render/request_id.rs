//! Request ids: read from the request's header (or the `RequestId` that
//! tower-http's `SetRequestIdLayer` left in its extensions), and, when the
//! gate is asked to, made at the edge for requests that come without one.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request};
use serde::{Deserialize, Serialize};

/// The longest request id echoed back; longer ones are ignored.
pub(crate) const MAX_REQUEST_ID_LEN: usize = 200;

/// How a configuration file sets request ids: `request_id = { header =
/// "x-request-id", generate = true }`.
///
/// With `generate`, a request that arrives without an id gets one at the
/// edge (a UUID v7: time-ordered, random in its low 74 bits): it is put in
/// the request's header for your service, in the response's header, and in
/// every error body; an id the request brought — in the header, or as the
/// `RequestId` tower-http's `SetRequestIdLayer` put in its extensions
/// (feature `tower-http`) — is kept and echoed in the response's header
/// likewise. Without `generate` (the default), ids are only read: echoed in
/// error bodies, never made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIdOptions {
    /// The header ids are read from and written to (default
    /// `x-request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Whether a request without an id gets one.
    #[serde(default)]
    pub generate: bool,
}

/// The id `headers` carry in `header`, if it is one to echo: text, 1 to
/// [`MAX_REQUEST_ID_LEN`] bytes.
pub(crate) fn read<'a>(headers: &'a HeaderMap, header: &HeaderName) -> Option<&'a str> {
    headers
        .get(header)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
}

/// The id of the request with `headers` and `extensions`: its header's, or
/// that of the `RequestId` tower-http's layer put in its extensions.
pub(crate) fn of<'a>(
    headers: &'a HeaderMap,
    extensions: &'a http::Extensions,
    header: &HeaderName,
) -> Option<&'a str> {
    read(headers, header).or_else(|| extension_text(extensions))
}

/// The id for `request`, which has none in `header`: the one tower-http's
/// layer put in its extensions, or a new one.
pub(crate) fn missing<B>(request: &Request<B>) -> HeaderValue {
    from_extensions(request).unwrap_or_else(generate)
}

/// A new id: a UUID v7 in its hyphenated text.
fn generate() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(id).expect("a UUID is a header value")
}

fn from_extensions<B>(request: &Request<B>) -> Option<HeaderValue> {
    extension_text(request.extensions()).and_then(|text| HeaderValue::from_str(text).ok())
}

#[cfg(feature = "tower-http")]
fn extension_text(extensions: &http::Extensions) -> Option<&str> {
    let id = extensions.get::<tower_http::request_id::RequestId>()?;
    id.header_value()
        .to_str()
        .ok()
        .filter(|text| !text.is_empty() && text.len() <= MAX_REQUEST_ID_LEN)
}

#[cfg(not(feature = "tower-http"))]
fn extension_text(_: &http::Extensions) -> Option<&str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_time_ordered_uuids() {
        let ids: Vec<String> = (0..100)
            .map(|_| missing(&Request::new(())).to_str().unwrap().to_owned())
            .collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "UUID v7 text sorts in the order made");
    }

    #[test]
    fn only_ids_of_a_sensible_length_are_read() {
        let header = HeaderName::from_static("x-request-id");
        let mut headers = HeaderMap::new();
        headers.insert(&header, HeaderValue::from_static("req-1"));
        assert_eq!(read(&headers, &header), Some("req-1"));
        headers.insert(
            &header,
            HeaderValue::from_str(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).unwrap(),
        );
        assert_eq!(read(&headers, &header), None);
        headers.insert(&header, HeaderValue::from_static(""));
        assert_eq!(read(&headers, &header), None);
    }
}
