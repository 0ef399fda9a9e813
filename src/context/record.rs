//! [`KeyRecord`]: what a store knows of one key, and its [`KeyStatus`].

use std::any::Any;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::SystemTime;

use super::credits::Credits;
use super::digest::KeyDigest;
use super::kind::{KeyEnv, KeyKind};
use super::meter::Meter;
use super::origin::OriginPattern;
use super::quota::Quota;
use crate::ConfigError;
use crate::hash;

/// What the store knows of one key. Never holds the key itself.
///
/// ```
/// use tollgate::key::{KeyKind, KeyRecord};
///
/// let record = KeyRecord::new("key_1", "acme", KeyKind::Restricted);
/// assert_eq!(record.scopes(), ["read"]); // the kind's default scopes
/// let record = record.with_scopes(["people.*"]);
/// assert_eq!(record.scopes(), ["people.*"]);
/// ```
#[derive(Clone, Debug)]
// Laid out for the cache. Right after the reference counts of the
// record's `Arc` (which every admitted request's principal takes), its first
// 44 bytes hold all that an admitted request reads of a key with no extras:
// the project's hash a rate limit partitions by, scopes, project, kind,
// status and which extras it has. So, wherever the allocator puts it, a
// request for such a key touches at most two cache lines of the record,
// where the fields it read spread over three or four before. The extras
// (expiry, tier, the key's own quotas, credits and cap) follow, read only
// when `extras` says they are there; then the digest a store compares (read
// only when a key is looked up, not when it was verified before), and last
// what only logs, origins and config read. (Measured: each line a cache
// miss of its own among 10 000 keys; with the project at the end, the scope
// check's read of it alone was 7 % of a gated request's time in `perf`.)
#[repr(C)]
pub struct KeyRecord {
    // Keyed hashes of the project and key id, for rate-limit partitions:
    // computed once here instead of on every request.
    project_hash: u64,
    /// Shared with every record of the kind's defaults.
    scopes: Arc<[String]>,
    project: Box<str>,
    kind: KeyKind,
    status: KeyStatus,
    env: Option<KeyEnv>,
    /// Which of the fields below are set ([`Extras`]).
    extras: u8,
    key_id_hash: u64,
    expires_at: Option<SystemTime>,
    tier: Option<Arc<str>>,
    /// Quotas this key draws by instead of the route's, by policy label.
    quotas: Box<[(Box<str>, Meter)]>,
    /// Its credits, counted in the rate store.
    credits: Option<Credits>,
    body_limit: Option<u64>,
    /// The digest a store holds the record under, once stored (all zeros
    /// before): stores compare it when they look a key up (a key verified
    /// before is not looked up, so it sits after what every request reads).
    digest: KeyDigest,
    /// What the rate-limit check composed of a route's limits and these
    /// credits, made once per route.
    memo: Memo,
    origins: Vec<OriginPattern>,
    key_id: String,
}

/// The bits of [`KeyRecord`]'s `extras`: which of its rarer fields are set.
struct Extras;

impl Extras {
    const EXPIRY: u8 = 1;
    const TIER: u8 = 2;
    const QUOTAS: u8 = 4;
    const CREDITS: u8 = 8;
    const BODY_LIMIT: u8 = 16;
}

/// Two records are equal when they say the same of their keys, wherever
/// they are stored.
impl PartialEq for KeyRecord {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
            && self.project == other.project
            && self.kind == other.kind
            && self.env == other.env
            && self.scopes == other.scopes
            && self.origins == other.origins
            && self.status == other.status
            && self.expires_at == other.expires_at
            && self.tier == other.tier
            && self.body_limit == other.body_limit
            && self.quotas == other.quotas
            && self.credits == other.credits
    }
}

impl Eq for KeyRecord {}

/// Values made of a record and something else, remembered by the identity
/// of that something (held, so that its address is not reused while
/// remembered). At most [`Memo::MAX`] of them: the oldest goes first (a
/// reload makes new route limits, and the record may outlive them). Typed
/// by `Any`, since what is remembered lives on a higher floor. A clone of
/// the record starts empty.
#[derive(Default)]
pub(crate) struct Memo(RwLock<Vec<MemoEntry>>);

/// What a value was made of (held), and the value.
type MemoEntry = (Arc<dyn Any + Send + Sync>, Arc<dyn Any + Send + Sync>);

impl Memo {
    const MAX: usize = 16;

    /// The value made of `from`, made now by `make` if it is not yet.
    pub(crate) fn get_or_make<T, U>(&self, from: &Arc<T>, make: impl FnOnce() -> U) -> Arc<U>
    where
        T: Any + Send + Sync,
        U: Any + Send + Sync,
    {
        let address = Arc::as_ptr(from).cast::<()>();
        let found = |entries: &[MemoEntry]| {
            entries
                .iter()
                .find(|(of, _)| Arc::as_ptr(of).cast::<()>() == address)
                .and_then(|(_, made)| Arc::clone(made).downcast::<U>().ok())
        };
        if let Some(made) = found(&self.0.read().unwrap_or_else(PoisonError::into_inner)) {
            return made;
        }
        let made = Arc::new(make());
        let mut entries = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(earlier) = found(&entries) {
            return earlier;
        }
        if entries.len() >= Self::MAX {
            entries.remove(0);
        }
        entries.push((
            Arc::clone(from) as Arc<dyn Any + Send + Sync>,
            Arc::clone(&made) as Arc<dyn Any + Send + Sync>,
        ));
        made
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// Whether `name` can name a tier: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub(crate) fn check_tier_name(name: &str) -> Result<(), String> {
    let fine = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name a tier: use 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`"
        ))
    }
}

/// Whether a key may still be used.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyStatus {
    /// Usable.
    #[default]
    Active,
    /// Revoked for good: answered exactly like an unknown key
    /// (`invalid_api_key`), or `revoked_api_key` where the gate is set to
    /// say so ([`GateBuilder::reveal_revoked`](crate::gate::GateBuilder::reveal_revoked)).
    Revoked,
    /// Switched off for now (a suspended account, a paused integration):
    /// `403 key_disabled`. Set it back to `Active` to switch it on.
    Disabled,
}

impl KeyRecord {
    /// An active key of `kind`, with the kind's default scopes, no
    /// environment, no origins and no expiry.
    pub fn new(key_id: impl Into<String>, project: impl Into<String>, kind: KeyKind) -> Self {
        let key_id: String = key_id.into();
        let project: Box<str> = project.into().into_boxed_str();
        Self {
            digest: KeyDigest::from_bytes([0; 32]),
            key_id_hash: hash::keyed(hash::KEY_ID, key_id.as_bytes()),
            project_hash: hash::keyed(hash::PROJECT, project.as_bytes()),
            key_id,
            project,
            kind,
            env: None,
            scopes: default_scopes(kind),
            origins: Vec::new(),
            status: KeyStatus::Active,
            extras: 0,
            expires_at: None,
            tier: None,
            body_limit: None,
            quotas: Box::new([]),
            credits: None,
            memo: Memo::default(),
        }
    }

    /// Puts the key in tier `tier`: on routes with quotas for that tier
    /// ([`RoutePolicy::tier`](crate::gate::RoutePolicy::tier)) it draws by
    /// them, and the tier's body cap applies. A bad name is an error.
    pub fn with_tier(mut self, tier: impl AsRef<str>) -> Result<Self, ConfigError> {
        let tier = tier.as_ref();
        check_tier_name(tier).map_err(|reason| ConfigError::new("tier", reason))?;
        self.tier = Some(Arc::from(tier));
        self.extras |= Extras::TIER;
        Ok(self)
    }

    /// Caps this key's request bodies at `bytes` on every route, in place of
    /// the route's (and its tier's) cap.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: u64) -> Self {
        self.body_limit = Some(bytes);
        self.extras |= Extras::BODY_LIMIT;
        self
    }

    /// Has this key draw by `quota` wherever a route's quota is labelled
    /// `label` (the quota's name, or else the route's pattern, as the
    /// `RateLimit-Policy` header shows it), in place of that quota. The
    /// bucket stays the same one, so a key's override with the `project`
    /// partition applies to the project's shared bucket while this key
    /// calls. A bad quota is an error.
    ///
    /// ```
    /// use tollgate::key::{KeyKind, KeyRecord};
    /// use tollgate::rate_limit::Quota;
    ///
    /// let record = KeyRecord::new("key_1", "acme", KeyKind::Secret)
    ///     .with_quota("sdk", Quota::per_minute(6000))
    ///     .unwrap();
    /// assert_eq!(record.quota_labels().collect::<Vec<_>>(), ["sdk"]);
    /// assert!(KeyRecord::new("k", "p", KeyKind::Secret).with_quota("sdk", Quota::per_minute(0)).is_err());
    /// ```
    pub fn with_quota(mut self, label: impl AsRef<str>, quota: Quota) -> Result<Self, ConfigError> {
        let label = label.as_ref();
        let field = || format!("quotas.{label}");
        if label.is_empty() {
            return Err(ConfigError::new("quotas", "a quota override needs a label"));
        }
        if quota.is_shared_reference() {
            return Err(ConfigError::new(
                field(),
                "an override gives the quota itself (`{ rate, per, burst }`), not a name",
            ));
        }
        let meter = quota
            .meter()
            .map_err(|error| ConfigError::new(field(), error.reason()))?;
        let mut quotas: Vec<_> = std::mem::take(&mut self.quotas).into_vec();
        quotas.retain(|(existing, _)| **existing != *label);
        quotas.push((Box::from(label), meter));
        self.quotas = quotas.into();
        self.extras |= Extras::QUOTAS;
        Ok(self)
    }

    /// Gives the key `credits`: each request on a rate-limited route (or
    /// any route the rate-limit check sees) spends the route's cost, and at
    /// zero the key is refused with `429 credits_exhausted` until the
    /// refill. Numbers beyond [`MAX_CREDITS`](crate::rate_limit::MAX_CREDITS)
    /// are an error.
    ///
    /// ```
    /// use tollgate::key::{KeyKind, KeyRecord};
    /// use tollgate::rate_limit::{Calendar, Credits};
    ///
    /// let record = KeyRecord::new("key_1", "acme", KeyKind::Secret)
    ///     .with_credits(Credits::refilled(1_000, Calendar::Month))
    ///     .unwrap();
    /// assert_eq!(record.credits().map(|c| c.allowance()), Some(1_000));
    /// ```
    pub fn with_credits(mut self, credits: Credits) -> Result<Self, ConfigError> {
        credits.check()?;
        self.credits = Some(credits);
        self.extras |= Extras::CREDITS;
        Ok(self)
    }

    /// Whether the record has the extra fields of `bit`: read first, so
    /// that a key without them never touches their cache line.
    #[inline]
    fn has(&self, bit: u8) -> bool {
        self.extras & bit != 0
    }

    /// The key's credits, if it has some.
    pub fn credits(&self) -> Option<&Credits> {
        if !self.has(Extras::CREDITS) {
            return None;
        }
        self.credits.as_ref()
    }

    /// What a higher floor composed of this record and something of its
    /// own (a route's limits with the key's credits), remembered.
    pub(crate) fn memo(&self) -> &Memo {
        &self.memo
    }

    /// Sets the environment.
    #[must_use]
    pub fn with_env(mut self, env: KeyEnv) -> Self {
        self.env = Some(env);
        self
    }

    /// Sets the granted scopes; an empty list means the kind's defaults.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.scopes = if scopes.is_empty() {
            default_scopes(self.kind)
        } else {
            scopes.into()
        };
        self
    }

    /// Sets the origins a browser may use this key from (patterns as in
    /// [`OriginPattern`]); a bad pattern is an error naming it.
    pub fn with_origins<I, S>(mut self, origins: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.origins = origins
            .into_iter()
            .map(|origin| OriginPattern::parse(origin.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: KeyStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the moment the key stops working.
    #[must_use]
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self.extras |= Extras::EXPIRY;
        self
    }

    /// The key's id: safe to log and show, unlike the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The project the key belongs to.
    pub fn project(&self) -> &str {
        &self.project
    }

    pub(crate) fn key_id_hash(&self) -> u64 {
        self.key_id_hash
    }

    pub(crate) fn project_hash(&self) -> u64 {
        self.project_hash
    }

    /// The stored kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The stored environment.
    pub fn env(&self) -> Option<KeyEnv> {
        self.env
    }

    /// The granted scopes (the kind's defaults when none were set).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The scopes as shared (a refusal's details hold them without a copy).
    pub(crate) fn shared_scopes(&self) -> &Arc<[String]> {
        &self.scopes
    }

    /// The allowed browser origins (patterns), possibly none.
    pub fn origins(&self) -> &[OriginPattern] {
        &self.origins
    }

    /// The status.
    pub fn status(&self) -> KeyStatus {
        self.status
    }

    /// When the key stops working, if ever.
    pub fn expires_at(&self) -> Option<SystemTime> {
        if !self.has(Extras::EXPIRY) {
            return None;
        }
        self.expires_at
    }

    /// Its tier, if any.
    pub fn tier(&self) -> Option<&str> {
        if !self.has(Extras::TIER) {
            return None;
        }
        self.tier.as_deref()
    }

    /// Its own body cap, if any.
    pub fn body_limit(&self) -> Option<u64> {
        if !self.has(Extras::BODY_LIMIT) {
            return None;
        }
        self.body_limit
    }

    /// The labels of the quotas it overrides.
    pub fn quota_labels(&self) -> impl Iterator<Item = &str> {
        self.quota_overrides().iter().map(|(label, _)| &**label)
    }

    pub(crate) fn quota_overrides(&self) -> &[(Box<str>, Meter)] {
        if !self.has(Extras::QUOTAS) {
            return &[];
        }
        &self.quotas
    }

    /// The digest it is stored under (all zeros until stored).
    pub(crate) fn stored_digest(&self) -> &KeyDigest {
        &self.digest
    }

    /// The record as stored under `digest`.
    pub(crate) fn stored_under(mut self, digest: KeyDigest) -> Self {
        self.digest = digest;
        self
    }
}

/// The kind's default scopes, one list shared by every record that has
/// them (so a lookup among many keys finds them already in the cache).
fn default_scopes(kind: KeyKind) -> Arc<[String]> {
    static DEFAULTS: LazyLock<[Arc<[String]>; 3]> = LazyLock::new(|| {
        KeyKind::ALL.map(|kind| {
            kind.default_scopes()
                .iter()
                .map(|scope| (*scope).to_owned())
                .collect()
        })
    });
    let index = KeyKind::ALL
        .iter()
        .position(|known| *known == kind)
        .unwrap_or(0);
    Arc::clone(&DEFAULTS[index])
}

#[cfg(test)]
mod memo_tests {
    use super::*;

    #[test]
    fn a_memo_makes_once_per_source_and_holds_at_most_its_max() {
        let memo = Memo::default();
        let source = Arc::new(7_u32);
        let mut made = 0;
        let first = memo.get_or_make(&source, || {
            made += 1;
            "seven".to_owned()
        });
        let again = memo.get_or_make(&source, || {
            made += 1;
            "other".to_owned()
        });
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(made, 1);
        // Sources are told apart by identity, not value.
        let twin = Arc::new(7_u32);
        assert_eq!(*memo.get_or_make(&twin, || "twin".to_owned()), "twin");
        let sources: Vec<Arc<u32>> = (0..40).map(Arc::new).collect();
        for source in &sources {
            memo.get_or_make(source, String::new);
        }
        assert_eq!(memo.0.read().unwrap().len(), Memo::MAX);
        // The oldest went first: the first source is made again.
        assert_eq!(*memo.get_or_make(&source, || "anew".to_owned()), "anew");
    }
}
#[cfg(test)]
mod layout_tests {
    use super::KeyRecord;
    use std::mem::{offset_of, size_of};

    #[test]
    fn what_every_request_reads_fits_beside_the_arcs_counts_in_one_line() {
        // The `Arc`'s two counts take 16 bytes: 48 are left of a line.
        for end in [
            offset_of!(KeyRecord, project_hash) + size_of::<u64>(),
            offset_of!(KeyRecord, scopes) + 16,
            offset_of!(KeyRecord, project) + 16,
            offset_of!(KeyRecord, kind) + 1,
            offset_of!(KeyRecord, status) + 1,
            offset_of!(KeyRecord, env) + 1,
            offset_of!(KeyRecord, extras) + 1,
        ] {
            assert!(end <= 48, "a hot field ends at byte {end}");
        }
        assert!(size_of::<KeyRecord>() <= 256);
    }
}
