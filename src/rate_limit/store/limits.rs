//! [`RouteLimits`]: a route's rate limit checked and ready, its quotas
//! ([`QuotaSpec`]), and what their headers say the same way every time.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use super::Bucket;
use crate::ConfigError;
use crate::clock::Nanos;
use crate::context::credits::Credits;
use crate::context::gcra::Gcra;
use crate::context::meter::Meter;
use crate::context::principal::Principal;
use crate::context::quota::Quota;
use crate::context::record::check_tier_name;
use crate::context::route::Route;
use crate::error::{Category, ErrorCode};
use crate::hash::combine;
use crate::rate_limit::limit::{MAX_STACK, MAX_STACKED_QUOTAS, RateLimit};

/// The policy name of the `index`th quota of `route`, named `name` or not:
/// what headers, errors and a key's quota overrides call it.
pub(crate) fn policy_label<'a>(
    name: Option<&'a str>,
    route: &'a str,
    index: usize,
) -> Cow<'a, str> {
    match (name, index) {
        (Some(name), _) => Cow::Borrowed(name),
        (None, 0) => Cow::Borrowed(route),
        (None, index) => Cow::Owned(format!("{route}#{}", index + 1)),
    }
}

/// Each of `quotas`' labels on `route`, as refusals' details name them.
fn names(quotas: &[QuotaSpec], route: &str) -> Box<[Arc<str>]> {
    quotas
        .iter()
        .enumerate()
        .map(|(index, quota)| name(quota, route, index))
        .collect()
}

/// The label of `quota`, the `index`th on `route`, as a refusal's details
/// name it.
fn name(quota: &QuotaSpec, route: &str, index: usize) -> Arc<str> {
    Arc::from(&*quota.label(route, index))
}

/// The bits of a bucket key that choose the in-memory store's shard (bits
/// 32–37: the map itself uses the low bits and the top seven). A route's own
/// quotas share them, so that a stack is decided under one shard's lock.
pub(crate) const SHARD_BITS: u64 = 0x3f << 32;

/// The bits a salt may change: above [`SHARD_BITS`] (so that a route's own
/// quotas share its shard) and so above every bit a shard's map places an
/// entry by (its low bits): the quotas of one stack start their probes in
/// the same group of the map, and their entries are neighbours, mostly in
/// one cache line. The top seven (the map's tag) differ, so a lookup still
/// tells them apart at once.
const SALT_BITS: u64 = !((1 << 38) - 1);

/// What a route's own quota's key is its first key XORed with, by its place
/// on the route and whether it is a window (made at compile time; 0 for
/// the first bucket, whose key is the route's own); see [`SALT_BITS`].
const OWN_SALTS: [[u64; 2]; MAX_STACK] = {
    let mut salts = [[0; 2]; MAX_STACK];
    let mut index = 0;
    while index < MAX_STACK {
        let mut window = 0;
        while window < 2 {
            if index > 0 || window > 0 {
                salts[index][window] =
                    combine(index as u64, window as u64, 0x5bd1_e995) & SALT_BITS;
            }
            window += 1;
        }
        index += 1;
    }
    salts
};

/// One quota of a route, ready to decide with.
#[derive(Clone, Debug)]
pub struct QuotaSpec {
    pub(crate) meter: Meter,
    name: Option<Box<str>>,
    code: ErrorCode,
    /// For a shared quota, the keyed hash of its name: its bucket is the
    /// partition's under that name, whichever route draws from it.
    shared: Option<u64>,
    /// For a key's credits, the key's id and its keyed hash: one balance
    /// per key, whatever the route and partition.
    owner: Option<(u64, Box<str>)>,
}

/// The policy name of a key's credits in headers and errors.
pub(crate) const CREDITS_POLICY: &str = "credits";

impl QuotaSpec {
    /// The name it was given, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The policy name on `route` as headers and errors show it: its own
    /// name, else the route's (`#2`, `#3`… for later quotas of a stack).
    pub fn label<'a>(&'a self, route: &'a str, index: usize) -> Cow<'a, str> {
        policy_label(self.name.as_deref(), route, index)
    }

    /// The code a refusal by this quota carries.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The bucket's capacity.
    pub fn burst(&self) -> u64 {
        self.meter.burst()
    }

    /// Whether its bucket is shared by every route listing it (see
    /// [`Quota::shared`](crate::rate_limit::Quota::shared)); its name then names the
    /// bucket.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// A key's credits as the last quota of its stacks.
    pub(crate) fn of_credits(credits: Credits, key_id_hash: u64, key_id: &str) -> Self {
        Self {
            meter: Meter::Credits(credits),
            name: Some(Box::from(CREDITS_POLICY)),
            code: ErrorCode::CREDITS_EXHAUSTED,
            shared: None,
            owner: Some((key_id_hash, Box::from(key_id))),
        }
    }

    /// The credits, for a key's credits.
    pub fn credits(&self) -> Option<&Credits> {
        self.meter.credits()
    }

    /// The id of the key whose credits these are.
    pub fn credits_of(&self) -> Option<&str> {
        self.owner.as_ref().map(|(_, key_id)| &**key_id)
    }

    /// The in-memory key of this quota's bucket in `bucket`, `index` being
    /// its place on the route.
    #[inline]
    pub(crate) fn bucket_key(&self, bucket: &Bucket<'_>, index: usize) -> u64 {
        self.key_in(bucket.partition().hash(), bucket.id(), index)
    }

    /// [`bucket_key`](Self::bucket_key) from the partition's hash and the
    /// route's first key (made once for a whole stack).
    #[inline]
    fn key_in(&self, partition: u64, base: u64, index: usize) -> u64 {
        if let Some((owner, _)) = &self.owner {
            return combine(*owner, 0x0c4e_d175, 0x2545_f491);
        }
        // A window's state means something else than a bucket's: a key's
        // override of one by the other counts apart.
        let window = usize::from(matches!(self.meter, Meter::Window(_)));
        match self.shared {
            Some(name) => {
                let key = combine(partition, name, 0x2545_f491);
                key ^ OWN_SALTS[0][window]
            }
            // In the shard of the route's first quota: the salts leave its
            // bits alone.
            None => base ^ OWN_SALTS[index.min(MAX_STACK - 1)][window],
        }
    }

    /// Nanoseconds one token takes to come back (for a calendar window,
    /// its nominal length divided by its limit).
    pub fn emission_nanos(&self) -> Nanos {
        match &self.meter {
            Meter::Bucket(gcra) => gcra.increment(1),
            Meter::Window(_) | Meter::Credits(_) => self.tolerance_nanos() / self.burst().max(1),
        }
    }

    /// Nanoseconds to refill the bucket from empty (`burst × emission`);
    /// for a calendar window, its nominal length (a month: 30 days).
    pub fn tolerance_nanos(&self) -> Nanos {
        match &self.meter {
            Meter::Bucket(gcra) => gcra.state(0, 0).window,
            Meter::Window(window) => window.calendar().nominal_seconds() * 1_000_000_000,
            Meter::Credits(credits) => credits
                .refill()
                .map_or(0, |every| every.nominal_seconds() * 1_000_000_000),
        }
    }

    /// The calendar window's period, for a quota counted in one.
    pub fn calendar(&self) -> Option<crate::rate_limit::Calendar> {
        self.meter.window().map(|window| window.calendar())
    }
}

/// The rate limit of a route, checked and ready: its quotas and its cost.
#[derive(Clone, Debug)]
pub struct RouteLimits {
    quotas: Box<[QuotaSpec]>,
    cost: u64,
    /// The route's name (its quotas' default labels).
    route: Box<str>,
    /// Other quotas for keys of these tiers, by tier name.
    tiers: Box<[(Box<str>, Arc<RouteLimits>)]>,
    /// The route shadows its rate limit: no headers are sent.
    pub(crate) shadowed: bool,
    /// The route settles its cost after the response.
    pub(crate) settle: Option<crate::rate_limit::charge::Settle>,
    /// What the headers of the route these limits were made for say the
    /// same way on every response, made once.
    cached: Option<CachedHeaders>,
}

/// The parts of a route's rate-limit headers that never change.
#[derive(Clone, Debug)]
struct CachedHeaders {
    /// The route's keyed hash.
    route_hash: u64,
    /// Its `RateLimit-Policy` value.
    policy: HeaderValue,
    /// Each quota's label, quoted and escaped as `RateLimit` shows it.
    labels: Box<[Box<str>]>,
    /// Each quota's label as a refusal's details name it, shared by them.
    names: Box<[Arc<str>]>,
}

impl RouteLimits {
    /// Checks `limit` and makes it ready, for no route in particular.
    pub fn new(limit: &RateLimit) -> Result<Self, ConfigError> {
        Self::compile(None, limit)
    }

    pub(crate) fn compile(route: Option<&Route>, limit: &RateLimit) -> Result<Self, ConfigError> {
        let name = route.map_or(Route::DEFAULT_NAME, Route::name);
        let in_route = |error: ConfigError| error.in_route(name);
        let mut compiled =
            Self::compile_quotas(route, limit.quotas(), limit.request_cost(), "quotas")
                .map_err(in_route)?;
        let mut tiers = Vec::with_capacity(limit.tiers().len());
        for (tier, quotas) in limit.tiers() {
            let field = format!("tiers.{tier}.quotas");
            if let Err(reason) = check_tier_name(tier) {
                return Err(in_route(ConfigError::new(format!("tiers.{tier}"), reason)));
            }
            let mut limits = Self::compile_quotas(route, quotas, limit.request_cost(), &field)
                .map_err(in_route)?;
            limits.shadowed = limit.shadowed;
            limits.settle = limit.settle.clone();
            tiers.push((Box::from(tier.as_str()), Arc::new(limits)));
        }
        compiled.tiers = tiers.into();
        compiled.shadowed = limit.shadowed;
        compiled.settle = limit.settle.clone();
        Ok(compiled)
    }

    fn compile_quotas(
        route: Option<&Route>,
        listed: &[Quota],
        cost: u64,
        field: &str,
    ) -> Result<Self, ConfigError> {
        let name = route.map_or(Route::DEFAULT_NAME, Route::name);
        let with_field = |error: ConfigError| ConfigError::new(field, error.reason());
        if listed.len() > MAX_STACKED_QUOTAS {
            return Err(ConfigError::new(
                field,
                format!("at most {MAX_STACKED_QUOTAS} quotas may be stacked"),
            ));
        }
        if cost == 0 {
            return Err(ConfigError::new("cost", "a request must cost at least 1"));
        }
        let mut quotas = Vec::with_capacity(listed.len());
        for quota in listed {
            let meter = quota.meter().map_err(with_field)?;
            if cost > meter.burst() {
                return Err(ConfigError::new(
                    "cost",
                    format!(
                        "a request costs {cost} but {quota:?} holds only {}: it could never be admitted",
                        meter.burst()
                    ),
                ));
            }
            let code = match quota.refusal_code() {
                Some(code) => {
                    ErrorCode::custom(code, StatusCode::TOO_MANY_REQUESTS, Category::RateLimit)
                        .map_err(|error| {
                            ConfigError::new(format!("{field}.code"), error.reason())
                        })?
                }
                None => ErrorCode::RATE_LIMITED,
            };
            let shared = quota.is_shared().then(|| {
                crate::hash::keyed(
                    crate::hash::SHARED_QUOTA,
                    quota.name().unwrap_or_default().as_bytes(),
                )
            });
            quotas.push(QuotaSpec {
                meter,
                name: quota.name().map(Box::from),
                code,
                shared,
                owner: None,
            });
        }
        let cached = route.and_then(|route| {
            Some(CachedHeaders {
                route_hash: route.hash(),
                policy: crate::rate_limit::headers::policy(&quotas, route.name())?,
                labels: crate::rate_limit::headers::labels(&quotas, route.name()),
                names: names(&quotas, route.name()),
            })
        });
        Ok(Self {
            quotas: quotas.into(),
            cost,
            route: name.into(),
            tiers: Box::new([]),
            shadowed: false,
            settle: None,
            cached,
        })
    }

    /// The limits that apply to `principal` on this route: its tier's
    /// quotas if the route has some for its tier, else the route's, with
    /// any quota the key overrides (by label) replaced. Borrowed unless the
    /// key overrides one of them.
    #[inline]
    pub(crate) fn for_caller<'a>(
        self: &'a Arc<Self>,
        principal: Option<&Principal>,
    ) -> std::borrow::Cow<'a, Arc<Self>> {
        let Some(record) = principal.map(Principal::record) else {
            return std::borrow::Cow::Borrowed(self);
        };
        let tiered = match record.tier() {
            Some(tier) if !self.tiers.is_empty() => self
                .tiers
                .iter()
                .find(|(name, _)| **name == *tier)
                .map_or(self, |(_, limits)| limits),
            _ => self,
        };
        let overridden = tiered.overridden(record.quota_overrides());
        match (overridden, record.credits()) {
            (None, None) => std::borrow::Cow::Borrowed(tiered),
            // The route's limits with the key's credits: made once per
            // route and key, headers and all.
            (None, Some(credits)) => std::borrow::Cow::Owned(
                record
                    .memo()
                    .get_or_make(tiered, || tiered.with_credits(*credits, record)),
            ),
            (Some(overridden), None) => std::borrow::Cow::Owned(Arc::new(overridden)),
            (Some(overridden), Some(credits)) => {
                std::borrow::Cow::Owned(Arc::new(overridden.with_credits(*credits, record)))
            }
        }
    }

    /// These limits with each quota a key overrides (by label) drawn by the
    /// key's meter instead; `None` when it overrides none of them. Their
    /// headers are made per response.
    #[inline]
    fn overridden(&self, overrides: &[(Box<str>, Meter)]) -> Option<Self> {
        if overrides.is_empty() {
            return None;
        }
        let mut quotas: Option<Vec<QuotaSpec>> = None;
        for (index, spec) in self.quotas.iter().enumerate() {
            let label = spec.label(&self.route, index);
            if let Some((_, meter)) = overrides.iter().find(|(name, _)| **name == *label) {
                let quotas = quotas.get_or_insert_with(|| self.quotas.to_vec());
                quotas[index].meter = *meter;
            }
        }
        Some(Self {
            quotas: quotas?.into(),
            cost: self.cost,
            route: self.route.clone(),
            tiers: Box::new([]),
            shadowed: self.shadowed,
            settle: self.settle.clone(),
            cached: None,
        })
    }

    /// These limits with `record`'s `credits` as their last quota, their
    /// headers' fixed parts made for the same route.
    fn with_credits(&self, credits: Credits, record: &crate::context::record::KeyRecord) -> Self {
        let mut quotas = self.quotas.to_vec();
        quotas.push(QuotaSpec::of_credits(
            credits,
            record.key_id_hash(),
            record.key_id(),
        ));
        let cached = self.cached.as_ref().and_then(|cached| {
            Some(CachedHeaders {
                route_hash: cached.route_hash,
                policy: crate::rate_limit::headers::policy(&quotas, &self.route)?,
                labels: crate::rate_limit::headers::labels(&quotas, &self.route),
                names: names(&quotas, &self.route),
            })
        });
        Self {
            quotas: quotas.into(),
            cost: self.cost,
            route: self.route.clone(),
            tiers: Box::new([]),
            shadowed: self.shadowed,
            settle: self.settle.clone(),
            cached,
        }
    }

    /// A key's credits alone (what an admin call reads and tops up).
    pub(crate) fn credits_only(credits: Credits, key_id_hash: u64, key_id: &str) -> Self {
        Self {
            quotas: Box::new([QuotaSpec::of_credits(credits, key_id_hash, key_id)]),
            cost: 1,
            route: Box::from(CREDITS_POLICY),
            tiers: Box::new([]),
            shadowed: false,
            settle: None,
            cached: None,
        }
    }

    /// The tiers with quotas of their own on this route.
    pub fn tier_names(&self) -> impl Iterator<Item = &str> {
        self.tiers.iter().map(|(name, _)| &**name)
    }

    /// The quotas (none: unlimited).
    pub fn quotas(&self) -> &[QuotaSpec] {
        &self.quotas
    }

    /// Each quota's in-memory bucket key in `bucket`, in route order (the
    /// first `quotas().len()` entries).
    #[inline]
    pub(crate) fn keys(&self, bucket: &Bucket<'_>) -> [u64; MAX_STACK] {
        let mut keys = [0; MAX_STACK];
        let (partition, base) = (bucket.partition().hash(), bucket.id());
        for (index, (slot, quota)) in keys.iter_mut().zip(self.quotas.iter()).enumerate() {
            *slot = quota.key_in(partition, base, index);
        }
        keys
    }

    /// Each quota's in-memory bucket key in `bucket` with its meter, in
    /// route order: the first `count` entries of the array.
    #[inline]
    pub(crate) fn bucket_keys(&self, bucket: &Bucket<'_>) -> ([(u64, Meter); MAX_STACK], usize) {
        let mut keys = [(0, Meter::Bucket(Gcra::new(0, 0, 0))); MAX_STACK];
        for ((slot, key), quota) in keys
            .iter_mut()
            .zip(self.keys(bucket))
            .zip(self.quotas.iter())
        {
            *slot = (key, quota.meter);
        }
        (keys, self.quotas.len().min(MAX_STACK))
    }

    /// What one request costs.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// Whether the route has no limit (for any tier).
    pub fn is_unlimited(&self) -> bool {
        self.quotas.is_empty() && self.tiers.iter().all(|(_, tier)| tier.quotas.is_empty())
    }

    /// The `RateLimit-Policy` value and the quoted quota labels, if they
    /// were made for this route.
    pub(crate) fn cached_headers(&self, route_hash: u64) -> Option<(&HeaderValue, &[Box<str>])> {
        self.cached
            .as_ref()
            .filter(|cached| cached.route_hash == route_hash)
            .map(|cached| (&cached.policy, &*cached.labels))
    }

    /// The label of quota `index` on the route of `route_hash` (named
    /// `route`), as a refusal's details give it: shared when made for this
    /// route, else made now.
    pub(crate) fn label(&self, route_hash: u64, route: &str, index: usize) -> Option<Arc<str>> {
        let cached = self
            .cached
            .as_ref()
            .filter(|cached| cached.route_hash == route_hash)
            .and_then(|cached| cached.names.get(index));
        match cached {
            Some(name) => Some(Arc::clone(name)),
            None => self
                .quotas
                .get(index)
                .map(|quota| name(quota, route, index)),
        }
    }
}
