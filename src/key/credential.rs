//! Finding the credential in a request: `Authorization: Bearer`, `X-API-Key`,
//! and optionally a query parameter.

use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{HeaderMap, Uri};

/// The header carrying a bare key.
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The headers a credential is read from.
pub(crate) static HEADERS: [HeaderName; 2] = [AUTHORIZATION, X_API_KEY];

/// The one credential a request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Credential<'a> {
    pub(crate) key: &'a str,
    /// Whether it came (also) in the query string, where only publishable
    /// keys are accepted.
    pub(crate) in_query: bool,
}

/// Why no single credential could be taken from a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CredentialError {
    Missing,
    Malformed(&'static str),
}

/// Takes the credential out of `headers` and `uri`.
///
/// Repeated headers or parameters, and different credentials in different
/// places, are malformed: the request is ambiguous, so it is refused.
pub(crate) fn extract<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
    query_parameter: Option<&str>,
) -> Result<Credential<'a>, CredentialError> {
    let bearer = match single(headers, &AUTHORIZATION)? {
        Some(value) => Some(bearer_token(value)?),
        None => None,
    };
    let header = match single(headers, &X_API_KEY)? {
        Some(value) => Some(bare_key(value)?),
        None => None,
    };
    let query = match query_parameter {
        Some(name) => query_value(uri, name)?,
        None => None,
    };
    let mut found: Option<&str> = None;
    for candidate in [bearer, header, query].into_iter().flatten() {
        match found {
            Some(key) if key != candidate => {
                return Err(CredentialError::Malformed(
                    "the request carries two different credentials",
                ));
            }
            _ => found = Some(candidate),
        }
    }
    let key = found.ok_or(CredentialError::Missing)?;
    Ok(Credential {
        key,
        in_query: query.is_some(),
    })
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, CredentialError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(CredentialError::Malformed(
            "the request repeats a credential header",
        ));
    }
    Ok(first)
}

/// `bytes` as text. (Which characters a key may hold is the parser's
/// business: anything but letters, digits and `_` is refused there.)
fn text(bytes: &[u8]) -> Result<&str, CredentialError> {
    std::str::from_utf8(bytes)
        .map_err(|_| CredentialError::Malformed("a credential header is not plain ASCII text"))
}

fn is_space(byte: &u8) -> bool {
    matches!(byte, b' ' | b'\t')
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

fn bearer_token(value: &HeaderValue) -> Result<&str, CredentialError> {
    let value = trim(value.as_bytes());
    let (scheme, token) = value.split_at(value.iter().position(is_space).unwrap_or(value.len()));
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(CredentialError::Malformed(
            "the Authorization header must use the Bearer scheme",
        ));
    }
    let token = trim(token);
    if token.is_empty() {
        return Err(CredentialError::Malformed(
            "the Authorization header has no key after Bearer",
        ));
    }
    text(token)
}

fn bare_key(value: &HeaderValue) -> Result<&str, CredentialError> {
    let key = trim(value.as_bytes());
    if key.is_empty() {
        return Err(CredentialError::Malformed("the X-API-Key header is empty"));
    }
    text(key)
}

fn query_value<'a>(uri: &'a Uri, name: &str) -> Result<Option<&'a str>, CredentialError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name {
            continue;
        }
        if found.is_some() {
            return Err(CredentialError::Malformed(
                "the query string repeats the key parameter",
            ));
        }
        if value.is_empty() {
            return Err(CredentialError::Malformed("the key parameter is empty"));
        }
        found = Some(value);
    }
    Ok(found)
}

/// `uri` without the parameter `name` in its query string.
pub(crate) fn without_query_parameter(uri: &Uri, name: &str) -> Option<Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(key, _)| key) != name)
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    fn run(pairs: &[(&str, &[u8])], uri: &str) -> Result<(String, bool), CredentialError> {
        let map = headers(pairs);
        let uri: Uri = uri.parse().unwrap();
        extract(&map, &uri, Some("api_key")).map(|c| (c.key.to_owned(), c.in_query))
    }

    #[test]
    fn finds_each_source() {
        assert_eq!(
            run(&[("authorization", b"Bearer k1")], "/"),
            Ok(("k1".into(), false))
        );
        assert_eq!(
            run(&[("authorization", b"bEaReR   k1 ")], "/"),
            Ok(("k1".into(), false))
        );
        assert_eq!(
            run(&[("authorization", b"Bearer\tk1")], "/"),
            Ok(("k1".into(), false))
        );
        assert_eq!(run(&[("x-api-key", b"k2")], "/"), Ok(("k2".into(), false)));
        assert_eq!(run(&[], "/t?a=1&api_key=k3"), Ok(("k3".into(), true)));
        assert_eq!(
            run(
                &[("authorization", b"Bearer k1"), ("x-api-key", b"k1")],
                "/"
            ),
            Ok(("k1".into(), false))
        );
    }

    #[test]
    fn refuses_ambiguous_or_broken_credentials() {
        let malformed = |pairs: &[(&str, &[u8])], uri: &str| {
            assert!(
                matches!(run(pairs, uri), Err(CredentialError::Malformed(_))),
                "{pairs:?} {uri}"
            );
        };
        malformed(&[("authorization", b"Basic dXNlcjpwYXNz")], "/");
        malformed(&[("authorization", b"Bearer")], "/");
        malformed(&[("authorization", b"Bearer   ")], "/");
        malformed(
            &[
                ("authorization", b"Bearer a"),
                ("authorization", b"Bearer a"),
            ],
            "/",
        );
        malformed(&[("authorization", b"Bearer a"), ("x-api-key", b"b")], "/");
        malformed(&[("x-api-key", b"\xff\xfe")], "/");
        malformed(&[("x-api-key", b"")], "/");
        malformed(&[], "/?api_key=a&api_key=a");
        malformed(&[], "/?api_key=");
        malformed(&[("x-api-key", b"a")], "/?api_key=b");
        assert_eq!(run(&[], "/?other=1"), Err(CredentialError::Missing));
    }

    #[test]
    fn strips_the_parameter() {
        let uri: Uri = "/t?a=1&api_key=k&b=2".parse().unwrap();
        assert_eq!(
            without_query_parameter(&uri, "api_key").unwrap(),
            "/t?a=1&b=2"
        );
        let uri: Uri = "/t?api_key=k".parse().unwrap();
        assert_eq!(without_query_parameter(&uri, "api_key").unwrap(), "/t");
    }
}
