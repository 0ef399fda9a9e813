//! Partitions: which requests share a bucket, and the client's IP address.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

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
