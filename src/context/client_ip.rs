//! The client's address behind trusted proxies, and [`IpNet`], how they
//! are named.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::Request;
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// An IP network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or a
/// single address. In a configuration file, a string.
///
/// ```
/// use tollgate::rate_limit::IpNet;
///
/// let net: IpNet = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert_eq!(net.to_string(), "10.0.0.0/8");
/// assert_eq!(IpNet::parse("10.0.0.0/33").unwrap_err().field(), "trusted_proxies");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    address: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `address/prefix` or a single address.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let fail = || {
            ConfigError::new(
                "trusted_proxies",
                format!("`{text}` is not an IP address or CIDR network (such as 10.0.0.0/8)"),
            )
        };
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| fail())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(fail)?,
            None => max,
        };
        Ok(Self { address, prefix })
    }

    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = if self.address.is_ipv4() { 32 } else { 128 };
        if self.prefix == whole {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{}/{}", self.address, self.prefix)
        }
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(|error| serde::de::Error::custom(error.reason()))
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy —
/// the right-most address in `X-Forwarded-For` that is not a trusted proxy.
/// The left-most entry is never trusted: any client can write it.
///
/// The peer address is read from the request's extensions: a
/// [`SocketAddr`] (insert it in your accept loop; axum's `ConnectInfo` is
/// read too with the `axum` feature).
pub(crate) fn client_ip<B>(request: &Request<B>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = crate::context::peer_ip(request.extensions())?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for value in request.headers().get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return Some(client);
        };
        for hop in value.rsplit(',') {
            let Some(hop) = parse_hop(hop) else {
                // A hop we cannot read: stop at the last address we could.
                return Some(client);
            };
            client = hop;
            if !is_trusted(hop) {
                return Some(hop);
            }
        }
    }
    Some(client)
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: &[&str]) -> Request<()> {
        let mut builder = Request::get("/");
        for value in forwarded {
            builder = builder.header("x-forwarded-for", *value);
        }
        let mut request = builder.body(()).unwrap();
        request
            .extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
        request
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| IpNet::parse(net).unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        let r = request("203.0.113.9:5000", &["1.1.1.1"]);
        assert_eq!(
            client_ip(&r, &nets(&["10.0.0.0/8"])),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(client_ip(&r, &[]), Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn right_most_untrusted_hop_never_the_left_most() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.1"]);
        // The client forged "6.6.6.6"; the proxy appended the real address.
        let r = request("10.0.0.2:80", &["6.6.6.6, 198.51.100.7, 192.168.1.1"]);
        assert_eq!(
            client_ip(&r, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        // Across repeated headers, too.
        let r = request("10.0.0.2:80", &["6.6.6.6", "198.51.100.7", "10.1.1.1"]);
        assert_eq!(
            client_ip(&r, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        // No header: the proxy itself.
        let r = request("10.0.0.2:80", &[]);
        assert_eq!(client_ip(&r, &trusted), Some("10.0.0.2".parse().unwrap()));
        // Garbage: stop at the last readable hop.
        let r = request("10.0.0.2:80", &["198.51.100.7, garbage"]);
        assert_eq!(client_ip(&r, &trusted), Some("10.0.0.2".parse().unwrap()));
        // Ports and IPv6.
        let r = request("10.0.0.2:80", &["[2001:db8::1]:443"]);
        assert_eq!(
            client_ip(&r, &trusted),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn networks() {
        assert!(
            IpNet::parse("10.0.0.0/8")
                .unwrap()
                .contains("10.200.3.4".parse().unwrap())
        );
        assert!(
            !IpNet::parse("10.0.0.0/8")
                .unwrap()
                .contains("11.0.0.1".parse().unwrap())
        );
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            IpNet::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8:1::5".parse().unwrap())
        );
        assert!(
            IpNet::parse("127.0.0.1")
                .unwrap()
                .contains("::ffff:127.0.0.1".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129"] {
            assert_eq!(IpNet::parse(bad).unwrap_err().field(), "trusted_proxies");
        }
    }

    #[test]
    fn no_peer_address_is_none() {
        let r = Request::get("/").body(()).unwrap();
        assert_eq!(client_ip(&r, &[]), None);
    }
}
