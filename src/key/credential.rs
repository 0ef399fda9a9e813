//! Finding the credential in a request: `Authorization: Bearer`, a header
//! (`X-API-Key` by default), and optionally a query parameter; each route
//! may accept only some of them.

use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{HeaderMap, Uri};
use serde::{Deserialize, Serialize};

/// The default header carrying a bare key.
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A place a request may carry its key. In a configuration file:
/// `credentials = ["bearer", "header", "query"]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CredentialSource {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The credential header: `X-API-Key` unless renamed
    /// (`credential_header`).
    Header,
    /// The query parameter (`query_parameter`), for publishable keys only.
    Query,
}

impl CredentialSource {
    const fn bit(self) -> u8 {
        match self {
            Self::Bearer => 1,
            Self::Header => 2,
            Self::Query => 4,
        }
    }
}

/// A set of credential sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sources(u8);

impl Sources {
    /// Every source (the query only where a parameter is named).
    pub(crate) const ALL: Sources = Sources(0b111);

    pub(crate) fn contains(self, source: CredentialSource) -> bool {
        self.0 & source.bit() != 0
    }

    /// The set as bits (three).
    pub(crate) fn bits(self) -> u8 {
        self.0
    }
}

impl FromIterator<CredentialSource> for Sources {
    fn from_iter<I: IntoIterator<Item = CredentialSource>>(sources: I) -> Self {
        Sources(
            sources
                .into_iter()
                .fold(0, |bits, source| bits | source.bit()),
        )
    }
}

/// Where keys are read from, by name.
#[derive(Clone, Debug)]
pub(crate) struct Places<'a> {
    pub(crate) sources: Sources,
    pub(crate) header: &'a HeaderName,
    pub(crate) query_parameter: Option<&'a str>,
}

impl Places<'_> {
    /// How a client should send its key, for the `missing_api_key` message.
    pub(crate) fn describe(&self) -> String {
        let mut places = Vec::new();
        if self.sources.contains(CredentialSource::Bearer) {
            places.push("as `Authorization: Bearer <key>`".to_owned());
        }
        if self.sources.contains(CredentialSource::Header) {
            places.push(format!("in the `{}` header", self.header));
        }
        if let Some(name) = self.query_parameter
            && self.sources.contains(CredentialSource::Query)
        {
            places.push(format!(
                "in the `{name}` query parameter (publishable keys)"
            ));
        }
        match places.split_last() {
            None => "No API key was provided.".to_owned(),
            Some((last, [])) => format!("No API key was provided. Send it {last}."),
            Some((last, rest)) => {
                format!(
                    "No API key was provided. Send it {} or {last}.",
                    rest.join(", ")
                )
            }
        }
    }
}

/// The one credential a request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Credential<'a> {
    /// As presented: not yet known to be text (see [`Credential::text`]).
    /// A key verified before is recognised by these bytes alone.
    pub(crate) key: &'a [u8],
    /// Whether it came (also) in the query string, where only publishable
    /// keys are accepted.
    pub(crate) in_query: bool,
}

impl<'a> Credential<'a> {
    /// The key as text, or why it is malformed: what parsing it needs, and
    /// only a key not verified before is parsed.
    pub(crate) fn text(&self) -> Result<&'a str, &'static str> {
        std::str::from_utf8(self.key).map_err(|_| "a credential header is not plain ASCII text")
    }
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
/// Only the `places` are read: a key elsewhere is not seen.
pub(crate) fn extract<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
    places: &Places<'_>,
) -> Result<Credential<'a>, CredentialError> {
    let bearer = match places.sources.contains(CredentialSource::Bearer) {
        true => match single(headers, &AUTHORIZATION)? {
            Some(value) => Some(bearer_token(value)?),
            None => None,
        },
        false => None,
    };
    let header = match places.sources.contains(CredentialSource::Header) {
        true => match single(headers, places.header)? {
            Some(value) => Some(bare_key(value)?),
            None => None,
        },
        false => None,
    };
    let query = match places.query_parameter {
        Some(name) if places.sources.contains(CredentialSource::Query) => {
            query_value(uri, name)?.map(str::as_bytes)
        }
        _ => None,
    };
    let mut found: Option<&[u8]> = None;
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

/// The token after `Bearer`, as bytes. (Which characters a key may hold is
/// the parser's business: anything but letters, digits and `_` is refused
/// there.)
fn bearer_token(value: &HeaderValue) -> Result<&[u8], CredentialError> {
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
    Ok(token)
}

fn bare_key(value: &HeaderValue) -> Result<&[u8], CredentialError> {
    let key = trim(value.as_bytes());
    if key.is_empty() {
        return Err(CredentialError::Malformed("the credential header is empty"));
    }
    Ok(key)
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
        run_in(Sources::ALL, pairs, uri)
    }

    fn run_in(
        sources: Sources,
        pairs: &[(&str, &[u8])],
        uri: &str,
    ) -> Result<(String, bool), CredentialError> {
        let map = headers(pairs);
        let uri: Uri = uri.parse().unwrap();
        let places = Places {
            sources,
            header: &X_API_KEY,
            query_parameter: Some("api_key"),
        };
        let credential = extract(&map, &uri, &places)?;
        let key = credential.text().map_err(CredentialError::Malformed)?;
        Ok((key.to_owned(), credential.in_query))
    }

    #[test]
    fn reads_only_the_accepted_sources() {
        use CredentialSource::*;
        let bearer_only: Sources = [Bearer].into_iter().collect();
        assert_eq!(
            run_in(bearer_only, &[("x-api-key", b"k2")], "/?api_key=k3"),
            Err(CredentialError::Missing)
        );
        // Another credential elsewhere is not seen, so not a conflict.
        assert_eq!(
            run_in(
                bearer_only,
                &[("authorization", b"Bearer k1"), ("x-api-key", b"k2")],
                "/"
            ),
            Ok(("k1".into(), false))
        );
        let query_only: Sources = [Query].into_iter().collect();
        assert_eq!(
            run_in(
                query_only,
                &[("authorization", b"Bearer k1")],
                "/?api_key=k3"
            ),
            Ok(("k3".into(), true))
        );
        let places = Places {
            sources: [Bearer, Header].into_iter().collect(),
            header: &HeaderName::from_static("x-auth-token"),
            query_parameter: None,
        };
        assert_eq!(
            places.describe(),
            "No API key was provided. Send it as `Authorization: Bearer <key>` or in the `x-auth-token` header."
        );
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
