//! Paths as the handler will see them: the gate matches (and hands on) a
//! normalized path, so no spelling of a path reaches a route's handler under
//! another route's policy.

use std::borrow::Cow;

use http::Uri;
use http::uri::PathAndQuery;

/// What a trailing slash means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrailingSlash {
    /// `/v1/track/` is `/v1/track` (the default, as tower-http's
    /// `NormalizePathLayer` and most frameworks see it).
    #[default]
    Trim,
    /// `/v1/track/` and `/v1/track` are different paths (for apps whose
    /// router keeps them apart). Route patterns may then end with `/`.
    Keep,
}

/// `path` normalized: slashes merged, `.` and `..` segments resolved (never
/// above the root), percent-encoded unreserved characters decoded (and the
/// hex digits of the remaining escapes upper-cased), and a trailing slash
/// trimmed or kept. Borrowed when nothing changes.
pub(crate) fn normalize(path: &str, trailing: TrailingSlash) -> Cow<'_, str> {
    if is_normal(path, trailing) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    // A path ending in `/`, `/.` or `/..` names a directory.
    let mut directory = false;
    for segment in decoded.split('/') {
        directory = false;
        match segment {
            "" => directory = true,
            "." => directory = true,
            ".." => {
                segments.pop();
                directory = true;
            }
            segment => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (directory && trailing == TrailingSlash::Keep) {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Whether `path` is already normal (the common case, checked without
/// allocating).
fn is_normal(path: &str, trailing: TrailingSlash) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    // One pass: no escape, and no empty, `.` or `..` segment (but a last
    // empty one: the root, or a kept trailing slash).
    let mut start = 1;
    for at in 1..=bytes.len() {
        let end = at == bytes.len();
        if !end {
            match bytes[at] {
                b'%' => return false,
                b'/' => {}
                _ => continue,
            }
        }
        let normal = match &bytes[start..at] {
            b"" => end && (bytes.len() == 1 || trailing == TrailingSlash::Keep),
            b"." | b".." => false,
            _ => true,
        };
        if !normal {
            return false;
        }
        start = at + 1;
    }
    true
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|digit| digit as u8)
}

/// Decodes `%XX` escapes of unreserved characters; upper-cases the others.
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut at = 0;
    while at < bytes.len() {
        let escape = (bytes[at] == b'%')
            .then(|| Some((hex(*bytes.get(at + 1)?)?, hex(*bytes.get(at + 2)?)?)))
            .flatten();
        match escape {
            Some((high, low)) => {
                let byte = high * 16 + low;
                if is_unreserved(byte) {
                    out.push(char::from(byte));
                } else {
                    out.push('%');
                    out.push(char::from(bytes[at + 1].to_ascii_uppercase()));
                    out.push(char::from(bytes[at + 2].to_ascii_uppercase()));
                }
                at += 3;
            }
            None => {
                // Not an escape: copy up to the next `%`.
                let end = path[at + 1..].find('%').map_or(path.len(), |i| at + 1 + i);
                out.push_str(&path[at..end]);
                at = end;
            }
        }
    }
    Cow::Owned(out)
}

/// `uri` with its path replaced by `path` (the query kept).
pub(crate) fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => PathAndQuery::try_from(format!("{path}?{query}")).ok()?,
        None => PathAndQuery::try_from(path).ok()?,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trim(path: &str) -> String {
        normalize(path, TrailingSlash::Trim).into_owned()
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for path in ["/", "/v1/track", "/v1/items/42", "/a.b/c~d"] {
            assert!(
                matches!(normalize(path, TrailingSlash::Trim), Cow::Borrowed(_)),
                "{path}"
            );
        }
        assert!(matches!(
            normalize("/v1/track/", TrailingSlash::Keep),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn every_spelling_of_a_path_is_one_path() {
        for path in [
            "/v1//track",
            "//v1/track",
            "/v1/track/",
            "/v1/track//",
            "/v1/./track",
            "/v1/x/../track",
            "/../v1/track",
            "/v1/%74rack",
            "/v1/%74%72%61%63%6B",
            "/%2E/v1/track",
            "/v1/x/%2e%2E/track",
        ] {
            assert_eq!(trim(path), "/v1/track", "{path}");
        }
        assert_eq!(trim("/v1/.."), "/");
        assert_eq!(trim("//"), "/");
    }

    #[test]
    fn reserved_escapes_stay_escaped() {
        assert_eq!(trim("/v1/a%2fb"), "/v1/a%2Fb");
        assert_eq!(trim("/v1/a%2ab"), "/v1/a%2Ab");
        assert_eq!(trim("/v1/100%"), "/v1/100%");
        assert_eq!(trim("/v1/%zz"), "/v1/%zz");
    }

    #[test]
    fn a_kept_trailing_slash_stays() {
        let keep = |path| normalize(path, TrailingSlash::Keep).into_owned();
        assert_eq!(keep("/v1//track/"), "/v1/track/");
        assert_eq!(keep("/v1/track/."), "/v1/track/");
        assert_eq!(keep("/v1/track"), "/v1/track");
    }

    #[test]
    fn the_query_survives_a_new_path() {
        let uri: Uri = "http://h/v1//track?a=1&b=/x".parse().unwrap();
        assert_eq!(
            with_path(&uri, "/v1/track").unwrap(),
            "http://h/v1/track?a=1&b=/x"
        );
    }
}
