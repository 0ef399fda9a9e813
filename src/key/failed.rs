//! The failed-key budget: per client address, how many unknown or
//! malformed keys it may present in a window before the key check refuses
//! it with `429` ahead of any lookup, for the rest of the window.
//!
//! Key checksums are public, so anyone can mint well-formed keys and try
//! them; this slows one address that does. An address is the client's IP
//! as the public routes read it (behind `trusted_proxies`, the right-most
//! untrusted `X-Forwarded-For` hop); IPv6 addresses count by their /64, the
//! block one host usually holds. Requests without a known peer address are
//! not counted.
//!
//! The state is one calendar window per address (the same meter as quota
//! windows), in a sharded map bounded by `max_addresses`; finished windows
//! are swept when the map is full, and past the bound new addresses are
//! not tracked. While no address has spent its budget in the current
//! window, a request costs one atomic load and no lookup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::Request;
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Nanos};
use crate::context::client_ip::{IpNet, client_ip};
use crate::context::window::{Calendar, UtcOffset, Window};
use crate::error::sentence::{Piece::Number, Piece::Text, sentence};
use crate::error::{ApiError, ErrorCode, TypedDetails};
use crate::render::number_value;

const SHARDS: usize = 16;

/// The budget's name as its refusals' details give it (`policy` and
/// `reason`).
const POLICY: &str = "failed_keys";

/// How many unknown or malformed keys one address may present per window
/// (a configuration file's `[failed_keys]` table):
///
/// ```toml
/// [failed_keys]
/// limit = 20          # per window and address; 0 turns the budget off
/// window = "minute"   # or "hour", "day"
/// max_addresses = 100000
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailedKeyBudget {
    /// Unknown or malformed keys an address may present per window
    /// (default 20; 0: no budget).
    pub limit: u64,
    /// The window (default a minute), aligned to the clock.
    pub window: Calendar,
    /// How many addresses are tracked at once (default 100 000).
    pub max_addresses: usize,
}

impl Default for FailedKeyBudget {
    fn default() -> Self {
        Self {
            limit: 20,
            window: Calendar::Minute,
            max_addresses: 100_000,
        }
    }
}

impl FailedKeyBudget {
    /// No budget: unknown keys are answered `401` however many an address
    /// tries.
    pub fn off() -> Self {
        Self {
            limit: 0,
            ..Self::default()
        }
    }

    /// Whether it counts anything.
    pub fn is_on(&self) -> bool {
        self.limit > 0
    }
}

/// The budget's live state, shared by the key check's clones.
#[derive(Clone)]
pub(crate) struct FailedKeys {
    shared: Arc<Shared>,
}

struct Shared {
    window: Window,
    limit: u64,
    max_addresses: usize,
    trusted: Box<[IpNet]>,
    clock: Clock,
    epoch: u64,
    /// Addresses by their window's state (std's keyed hasher: addresses
    /// are the client's to choose).
    shards: Box<[Mutex<HashMap<Address, u64>>]>,
    tracked: AtomicUsize,
    /// Until when (clock nanoseconds) some address may be over its budget:
    /// before it, a request's address is looked up; after it, none is over.
    any_over_until: AtomicU64,
    /// The policy a refusal's details name, made once.
    policy: Arc<str>,
}

/// The address a request counts against.
pub(crate) type Address = u128;

impl FailedKeys {
    /// The budget `options` describes, reading addresses behind `trusted`
    /// proxies; `None` when it is off.
    pub(crate) fn new(options: &FailedKeyBudget, trusted: &[IpNet], clock: Clock) -> Option<Self> {
        if !options.is_on() {
            return None;
        }
        let limit = options.limit.min(crate::context::window::MAX_WINDOW_LIMIT);
        Some(Self {
            shared: Arc::new(Shared {
                window: Window::new(options.window, UtcOffset::UTC, limit),
                limit,
                max_addresses: options.max_addresses.max(1),
                trusted: trusted.into(),
                epoch: clock.epoch(),
                clock,
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                tracked: AtomicUsize::new(0),
                any_over_until: AtomicU64::new(0),
                policy: Arc::from(POLICY),
            }),
        })
    }

    /// The address `request` counts against, if its peer is known.
    pub(crate) fn address<B>(&self, request: &Request<B>) -> Option<Address> {
        let ip = client_ip(request, &self.shared.trusted)?;
        Some(match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => u128::from(u32::from(v4)),
                // Its /64, marked apart from IPv4 space.
                None => (u128::from(v6) & !((1 << 64) - 1)) | 1,
            },
        })
    }

    /// Whether any address may have spent its budget in this window (one
    /// atomic load, and a clock reading only when one has).
    #[inline]
    pub(crate) fn anyone_over(&self) -> bool {
        let until = self.shared.any_over_until.load(Ordering::Acquire);
        until != 0 && self.shared.clock.now() < until
    }

    /// The refusal for `address` if it has spent its budget in this window.
    pub(crate) fn refusal(&self, address: Address) -> Option<ApiError> {
        let shared = &*self.shared;
        let now = shared.clock.now();
        let state = {
            let shard = shared
                .shard(address)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *shard.get(&address)?
        };
        let window = shared.window.state(state, now, shared.epoch);
        if window.remaining > 0 {
            return None;
        }
        let seconds = crate::clock::retry_after_seconds(window.reset_after);
        Some(
            ApiError::new(
                ErrorCode::RATE_LIMITED,
                sentence(&[
                    Text("Too many unknown or malformed API keys from this address. Retry after "),
                    Number(seconds),
                    Text(if seconds == 1 {
                        " second."
                    } else {
                        " seconds."
                    }),
                ]),
            )
            .with_typed_details(TypedDetails::Window {
                limit: Some(shared.limit),
                policy: Some(Arc::clone(&shared.policy)),
                reason: Some(POLICY),
                reset: shared.clock.unix_seconds() + seconds,
                retry_after: seconds,
                window: shared.window.calendar().as_str(),
            })
            .with_header(http::header::RETRY_AFTER, number_value(seconds)),
        )
    }

    /// Counts an unknown or malformed key presented from `address`.
    pub(crate) fn charge(&self, address: Address) {
        let shared = &*self.shared;
        let now = shared.clock.now();
        let full = || shared.tracked.load(Ordering::Relaxed) >= shared.max_addresses;
        let mut shard = shared
            .shard(address)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !shard.contains_key(&address) && full() {
            // Full: sweep the finished windows, then try again; past the
            // bound, a new address is not tracked.
            drop(shard);
            shared.sweep(now);
            shard = shared
                .shard(address)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !shard.contains_key(&address) && full() {
                return;
            }
        }
        let state = shard.entry(address).or_insert_with(|| {
            shared.tracked.fetch_add(1, Ordering::Relaxed);
            0
        });
        if let Ok(next) = shared.window.admit(*state, now, shared.epoch, 1) {
            *state = next;
        }
        let window = shared.window.state(*state, now, shared.epoch);
        if window.remaining == 0 {
            let until = now.saturating_add(window.reset_after);
            shared.any_over_until.fetch_max(until, Ordering::AcqRel);
        }
    }
}

impl Shared {
    fn shard(&self, address: Address) -> &Mutex<HashMap<Address, u64>> {
        let mixed = (address as u64) ^ ((address >> 64) as u64);
        &self.shards[(mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SHARDS]
    }

    /// Drops the addresses whose window has ended.
    fn sweep(&self, now: Nanos) {
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let before = map.len();
            map.retain(|_, state| {
                self.window.state(*state, now, self.epoch).remaining < self.limit
            });
            self.tracked
                .fetch_sub(before - map.len(), Ordering::Relaxed);
        }
    }
}
