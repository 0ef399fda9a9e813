//! Origin patterns, parsed at start-up, and request origins, parsed per
//! request without allocating.

use std::fmt;

mod request;

pub(crate) use request::RequestOrigin;
use request::{default_port, parse_port, split_port, split_scheme, valid_host};

use crate::ConfigError;

/// One entry of an origin allow-list.
///
/// - an exact origin: `https://app.example.com` (the default port may be
///   written or not: `https://app.example.com:443` is the same origin);
/// - a subdomain wildcard: `https://*.example.com` — one or more labels in
///   front of `example.com`, never `example.com` itself, `evil-example.com`
///   or `example.com.evil.net`;
/// - any port: `http://localhost:*`;
/// - `null`, which only matches the literal `Origin: null` (sandboxed
///   frames, `file:` pages) and only when listed.
///
/// Scheme and host are compared case-insensitively.
///
/// ```
/// use tollgate::origin::OriginPattern;
///
/// let pattern: OriginPattern = "https://*.example.com".parse().unwrap();
/// assert!(pattern.matches("https://app.example.com"));
/// assert!(pattern.matches("https://a.b.example.com:443"));
/// assert!(!pattern.matches("https://example.com"));
/// assert!(!pattern.matches("https://evil-example.com"));
/// assert!("https://example.com/path".parse::<OriginPattern>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OriginPattern {
    kind: PatternKind,
    text: Box<str>,
}

#[derive(Clone, PartialEq, Eq)]
enum PatternKind {
    Null,
    Origin {
        scheme: Box<str>,
        host: HostPattern,
        port: PortPattern,
    },
}

#[derive(Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(Box<str>),
    /// `*.` followed by this domain.
    Subdomains(Box<str>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// The explicit port, or the scheme's default; `None` for a scheme with
    /// no default and no port written.
    Exact(Option<u16>),
}

impl OriginPattern {
    /// Parses a pattern; the error names it and says what is wrong.
    pub fn parse(pattern: &str) -> Result<Self, ConfigError> {
        let fail = |reason: &str| {
            ConfigError::new(
                "origins",
                format!("`{pattern}` is not a valid origin pattern: {reason}"),
            )
        };
        let text = pattern.trim();
        if text.eq_ignore_ascii_case("null") {
            return Ok(Self {
                kind: PatternKind::Null,
                text: "null".into(),
            });
        }
        if text == "*" {
            return Err(fail("`*` would allow every site; list the origins instead"));
        }
        let lower = text.to_ascii_lowercase();
        let (scheme, authority) =
            split_scheme(&lower).ok_or_else(|| fail("expected `scheme://host[:port]`"))?;
        if authority.contains(['/', '?', '#', '@']) {
            return Err(fail("an origin has no path, query, fragment or user"));
        }
        let (host, port) = split_port(authority).ok_or_else(|| fail("bad port"))?;
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(digits) => {
                PortPattern::Exact(Some(parse_port(digits).ok_or_else(|| fail("bad port"))?))
            }
            None => PortPattern::Exact(default_port(scheme)),
        };
        let host = if let Some(domain) = host.strip_prefix("*.") {
            if !valid_host(domain) || domain.contains(['[', ']']) {
                return Err(fail("the domain after `*.` is not a valid host name"));
            }
            if !domain.contains('.') {
                return Err(fail("a wildcard needs at least two labels after `*.`"));
            }
            HostPattern::Subdomains(domain.into())
        } else if host.contains('*') {
            return Err(fail(
                "`*` is only allowed as the first label (`*.example.com`) or as the port",
            ));
        } else if valid_host(host) {
            HostPattern::Exact(host.into())
        } else {
            return Err(fail("the host is not a valid host name"));
        };
        Ok(Self {
            kind: PatternKind::Origin {
                scheme: scheme.into(),
                host,
                port,
            },
            text: lower.into(),
        })
    }

    /// Whether the origin `origin` (an `Origin` header's value) matches.
    pub fn matches(&self, origin: &str) -> bool {
        RequestOrigin::parse(origin).is_some_and(|origin| self.matches_origin(&origin))
    }

    pub(crate) fn matches_origin(&self, origin: &RequestOrigin<'_>) -> bool {
        match (&self.kind, origin) {
            (PatternKind::Null, RequestOrigin::Null) => true,
            (PatternKind::Null, _) | (_, RequestOrigin::Null) => false,
            (
                PatternKind::Origin { scheme, host, port },
                RequestOrigin::Tuple {
                    scheme: their_scheme,
                    host: their_host,
                    port: their_port,
                },
            ) => {
                scheme.eq_ignore_ascii_case(their_scheme)
                    && match port {
                        PortPattern::Any => true,
                        PortPattern::Exact(port) => port == their_port,
                    }
                    && match host {
                        HostPattern::Exact(host) => host.eq_ignore_ascii_case(their_host),
                        HostPattern::Subdomains(domain) => is_subdomain(their_host, domain),
                    }
            }
        }
    }

    /// The pattern as written (lower-cased).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::str::FromStr for OriginPattern {
    type Err = ConfigError;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        Self::parse(pattern)
    }
}

impl fmt::Debug for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OriginPattern({})", self.text)
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for OriginPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for OriginPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `host` is one or more labels followed by `.domain` (case-insensitive).
fn is_subdomain(host: &str, domain: &str) -> bool {
    let Some(split) = host.len().checked_sub(domain.len() + 1) else {
        return false;
    };
    // `split` > 0 keeps `domain` itself (and `.domain`) out.
    split > 0
        && host.as_bytes()[split] == b'.'
        && host.is_char_boundary(split + 1)
        && host[split + 1..].eq_ignore_ascii_case(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> OriginPattern {
        OriginPattern::parse(text).unwrap()
    }

    #[test]
    fn exact_origins_normalise_case_and_default_ports() {
        let p = pattern("https://App.Example.com");
        for ok in [
            "https://app.example.com",
            "https://APP.example.COM",
            "https://app.example.com:443",
            "HTTPS://app.example.com",
        ] {
            assert!(p.matches(ok), "{ok}");
        }
        for bad in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.co",
            "https://x.app.example.com",
            "null",
            "",
        ] {
            assert!(!p.matches(bad), "{bad}");
        }
        assert!(pattern("https://a.com:443").matches("https://a.com"));
        assert!(pattern("http://a.com:80").matches("http://a.com"));
        assert!(!pattern("http://a.com").matches("http://a.com:8080"));
    }

    #[test]
    fn wildcards_need_one_or_more_labels_and_nothing_else() {
        let p = pattern("https://*.example.com");
        for ok in [
            "https://app.example.com",
            "https://a.b.example.com",
            "https://APP.EXAMPLE.COM:443",
        ] {
            assert!(p.matches(ok), "{ok}");
        }
        for bad in [
            "https://example.com",
            "https://evil-example.com",
            "https://example.com.evil.net",
            "https://app.example.com.evil.net",
            "https://.example.com",
            "https://app.example.com:444",
            "http://app.example.com",
            "https://appexample.com",
            "https://app.example.co",
        ] {
            assert!(!p.matches(bad), "{bad}");
        }
    }

    #[test]
    fn any_port() {
        let p = pattern("http://localhost:*");
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "http://LOCALHOST:65535",
        ] {
            assert!(p.matches(ok), "{ok}");
        }
        for bad in [
            "https://localhost:3000",
            "http://localhost.evil.com:3000",
            "http://127.0.0.1:3000",
        ] {
            assert!(!p.matches(bad), "{bad}");
        }
    }

    #[test]
    fn null_only_when_listed() {
        assert!(pattern("null").matches("null"));
        assert!(!pattern("https://a.com").matches("null"));
        assert!(!pattern("null").matches("https://a.com"));
    }

    #[test]
    fn ip_hosts() {
        assert!(pattern("http://127.0.0.1:8080").matches("http://127.0.0.1:8080"));
        assert!(pattern("http://[::1]:*").matches("http://[::1]:3000"));
        assert!(!pattern("http://[::1]:*").matches("http://[::2]:3000"));
    }

    #[test]
    fn bad_patterns_are_refused_with_their_text() {
        for bad in [
            "*",
            "example.com",
            "https://",
            "https://example.com/",
            "https://example.com/path",
            "https://user@example.com",
            "https://*.com",
            "https://*example.com",
            "https://app.*.example.com",
            "https://*.*.example.com",
            "https://exa mple.com",
            "https://example.com:0",
            "https://example.com:70000",
            "https://example.com:",
            "https://[zz]",
            "1http://a.com",
        ] {
            let error = OriginPattern::parse(bad).unwrap_err();
            assert_eq!(error.field(), "origins");
            assert!(error.reason().contains(bad.trim()), "{bad}: {error}");
        }
    }
}
