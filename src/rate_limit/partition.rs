//! Partitions: which requests share a bucket, and the client's IP address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Request, Uri};
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::context::principal::Principal;
use crate::hash;

/// What a user partition function sees of a request.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (the [`Principal`], the [`Route`](crate::route::Route)…).
    pub extensions: &'a Extensions,
}

type PartitionFn = dyn Fn(&RequestView<'_>) -> Option<String> + Send + Sync;

/// How requests are grouped into buckets (per route).
///
/// On a public route there is no key, so every partition but
/// [`Global`](Partition::Global) and [`Custom`](Partition::custom) falls back
/// to the client's IP address there.
///
/// In a configuration file: `partition = "project"` (or `key`, `ip`,
/// `global`); a function can only be set in code.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Partition {
    /// One bucket per project (the default): all of a project's keys share it.
    #[default]
    Project,
    /// One bucket per API key.
    #[serde(rename = "key")]
    KeyId,
    /// One bucket per client IP address; see
    /// [`RateLimitLayer::trusted_proxies`](super::RateLimitLayer::trusted_proxies).
    #[serde(rename = "ip")]
    ClientIp,
    /// One bucket for everyone.
    Global,
    /// One bucket per value of a function of the request; `None` puts the
    /// request in one shared bucket.
    #[serde(skip)]
    Custom(Arc<PartitionFn>),
}

impl PartialEq for Partition {
    /// Functions are equal when they are the same function.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Custom(a), Self::Custom(b)) => Arc::ptr_eq(a, b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Partition {
    /// A partition computed by `function`.
    pub fn custom(
        function: impl Fn(&RequestView<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self::Custom(Arc::new(function))
    }
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Project => "Project",
            Self::KeyId => "KeyId",
            Self::ClientIp => "ClientIp",
            Self::Global => "Global",
            Self::Custom(_) => "Custom(..)",
        })
    }
}

/// The partition of one request: what it is, and its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionKey<'a> {
    value: PartitionValue<'a>,
    hash: u64,
}

/// The value a request is partitioned by.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionValue<'a> {
    /// Everyone.
    Global,
    /// A project.
    Project(&'a str),
    /// An API key, by id.
    KeyId(&'a str),
    /// A client address (`None` when the server gave none).
    Ip(Option<IpAddr>),
    /// A user function's value (`None`: the shared bucket).
    Custom(Option<String>),
}

impl<'a> PartitionKey<'a> {
    /// The partition of everyone.
    pub fn global() -> Self {
        static GLOBAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        Self {
            value: PartitionValue::Global,
            hash: *GLOBAL.get_or_init(|| hash::keyed(hash::GLOBAL, b"")),
        }
    }

    /// The partition of a project.
    pub fn project(project: &'a str) -> Self {
        Self {
            value: PartitionValue::Project(project),
            hash: hash::keyed(hash::PROJECT, project.as_bytes()),
        }
    }

    /// The partition of an API key.
    pub fn key_id(key_id: &'a str) -> Self {
        Self {
            value: PartitionValue::KeyId(key_id),
            hash: hash::keyed(hash::KEY_ID, key_id.as_bytes()),
        }
    }

    /// The partition of a client address.
    pub fn ip(ip: Option<IpAddr>) -> Self {
        static UNKNOWN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let hash = match ip {
            Some(IpAddr::V4(v4)) => hash::keyed(hash::IP, &v4.octets()),
            Some(IpAddr::V6(v6)) => hash::keyed(hash::IP, &v6.octets()),
            None => *UNKNOWN.get_or_init(|| hash::keyed(hash::IP, b"")),
        };
        Self {
            value: PartitionValue::Ip(ip),
            hash,
        }
    }

    /// The partition of a user function's value.
    pub fn custom(value: Option<String>) -> Self {
        let hash = match &value {
            Some(value) => hash::keyed(hash::CUSTOM, value.as_bytes()),
            None => hash::keyed(hash::GLOBAL, b"custom"),
        };
        Self {
            value: PartitionValue::Custom(value),
            hash,
        }
    }

    /// The principal's project, hashed when its record was made.
    pub(crate) fn of_project(principal: &'a Principal) -> Self {
        Self {
            value: PartitionValue::Project(principal.project()),
            hash: principal.record().project_hash(),
        }
    }

    /// The principal's key, hashed when its record was made.
    pub(crate) fn of_key(principal: &'a Principal) -> Self {
        Self {
            value: PartitionValue::KeyId(principal.key_id()),
            hash: principal.record().key_id_hash(),
        }
    }

    /// What the partition is.
    pub fn value(&self) -> &PartitionValue<'a> {
        &self.value
    }

    /// Its keyed hash (process-local: never use it across processes).
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

impl fmt::Display for PartitionValue<'_> {
    /// A stable text form, for keys in shared stores: `global`,
    /// `project:acme`, `key:key_1`, `ip:203.0.113.9`, `custom:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str("global"),
            Self::Project(project) => write!(f, "project:{project}"),
            Self::KeyId(key_id) => write!(f, "key:{key_id}"),
            Self::Ip(Some(ip)) => write!(f, "ip:{ip}"),
            Self::Ip(None) => f.write_str("ip:unknown"),
            Self::Custom(Some(value)) => write!(f, "custom:{value}"),
            Self::Custom(None) => f.write_str("custom"),
        }
    }
}

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
