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

pub(crate) fn grpc_response(error: &ApiError) -> Response<Bytes> {
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
