//! [`RequestOrigin`]: an origin as a request states it, and the syntax of
//! origins that patterns share.

/// An origin as a request states it, borrowed from the header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RequestOrigin<'a> {
    Null,
    Tuple {
        scheme: &'a str,
        host: &'a str,
        /// Explicit, or the scheme's default.
        port: Option<u16>,
    },
}

impl<'a> RequestOrigin<'a> {
    /// Parses a serialized origin (`scheme://host[:port]`, or `null`).
    pub(crate) fn parse(origin: &'a str) -> Option<Self> {
        if origin == "null" {
            return Some(Self::Null);
        }
        let (scheme, authority) = split_scheme(origin)?;
        if authority.contains(['/', '?', '#', '@', '*']) {
            return None;
        }
        let (host, port) = split_port(authority)?;
        let port = match port {
            Some(digits) => Some(parse_port(digits)?),
            None => default_port_ignore_case(scheme),
        };
        valid_host(host).then_some(Self::Tuple { scheme, host, port })
    }

    /// The origin of a `Referer` URL: its scheme, host and port.
    pub(crate) fn from_referer(referer: &'a str) -> Option<Self> {
        let (scheme, rest) = split_scheme_loose(referer)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let whole = &referer[..scheme.len() + 3 + end];
        Self::parse(whole)
    }
}

pub(super) fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && !authority.is_empty()).then_some((scheme, authority))
}

pub(super) fn split_scheme_loose(text: &str) -> Option<(&str, &str)> {
    let index = text.find("://")?;
    split_scheme(text).map(|(scheme, _)| (scheme, &text[index + 3..]))
}

/// Splits `host[:port]` (with `[v6]` hosts) into host and port text.
pub(super) fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

pub(super) fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|port| *port != 0)
}

pub(super) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

pub(super) fn default_port_ignore_case(scheme: &str) -> Option<u16> {
    if scheme.bytes().all(|b| b.is_ascii_lowercase()) {
        default_port(scheme)
    } else {
        default_port(&scheme.to_ascii_lowercase())
    }
}

/// A DNS name of non-empty labels of `[A-Za-z0-9-]`, an IPv4 address, or a
/// bracketed IPv6 address.
pub(super) fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_gives_its_origin() {
        assert_eq!(
            RequestOrigin::from_referer("https://app.example.com/page?q=1"),
            RequestOrigin::parse("https://app.example.com")
        );
        assert_eq!(
            RequestOrigin::from_referer("http://localhost:3000"),
            RequestOrigin::parse("http://localhost:3000")
        );
        assert_eq!(RequestOrigin::from_referer("https://u:p@evil.com/"), None);
        assert_eq!(RequestOrigin::from_referer("not a url"), None);
    }

    #[test]
    fn request_origins_never_panic_on_odd_input() {
        for odd in [
            "",
            "://",
            "https://é.com",
            "https://[",
            "https://a.com:é",
            "https://a:b:c",
            "h://a",
            "ftp://a.com",
        ] {
            let _ = RequestOrigin::parse(odd);
            let _ = RequestOrigin::from_referer(odd);
        }
    }
}
