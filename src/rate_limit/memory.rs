//! [`InMemoryRateStore`]: buckets in a sharded map, one atomic word each.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::future::Ready;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::limit::MAX_STACK;
use super::store::{Bucket, Decision, RateStore, RouteLimits, SHARD_BITS, Settlement};
use crate::Answer;
use crate::clock::{Clock, Nanos};
use crate::context::gcra::QuotaState;
use crate::context::meter::Meter;
use crate::error::StoreError;
use crate::hash::BuildPrehashed;

const SHARDS: usize = 64;

/// After this many decisions on one thread, that thread sweeps one shard.
const SWEEP_EVERY: u32 = 1024;

/// At the cap, the whole map is swept at most this often (100 ms).
const FULL_SWEEP_INTERVAL: Nanos = 100_000_000;

/// The default cap on live buckets.
pub const DEFAULT_MAX_BUCKETS: usize = 1_000_000;

type Shard = RwLock<HashMap<u64, AtomicU64, BuildPrehashed>>;

/// Buckets in memory: a map sharded 64 ways from a bucket's key to one
/// `AtomicU64`, its GCRA state, updated with a compare-exchange loop. A
/// decision on an existing bucket takes one shard's read lock and never
/// waits for another decision.
///
/// **Eviction.** A bucket that is full again holds nothing worth keeping, so
/// full buckets are removed: every 1 024 decisions a thread sweeps the next
/// shard (amortised on the request path; no background thread or runtime).
/// A flood of one-off partitions therefore cannot grow memory without bound.
///
/// **Cap.** At most `max_buckets` live buckets (default 1 000 000). When a
/// new bucket is needed and the cap is reached, its shard is swept, then (at
/// most every 100 ms) every shard; if that frees nothing, the request is
/// refused with `rate_limited`
/// (`details.reason = "capacity"`, `Retry-After: 1`). Existing buckets keep
/// working, so clients already known are not affected by a flood of new ones.
///
/// **Memory.** About 16 bytes per bucket plus the map's spare capacity
/// (measured in `examples/memory.rs`).
///
/// Cheap to clone; clones share the buckets.
#[derive(Clone)]
pub struct InMemoryRateStore {
    shared: Arc<Shared>,
}

struct Shared {
    shards: Box<[Shard]>,
    live: AtomicUsize,
    max_buckets: usize,
    cursor: AtomicUsize,
    last_full_sweep: AtomicU64,
    clock: Clock,
    /// The clock's epoch (Unix nanoseconds at its 0), for calendar windows.
    epoch: u64,
}

thread_local! {
    static DECISIONS: Cell<u32> = const { Cell::new(0) };
}

impl InMemoryRateStore {
    /// A store with the system clock and the default cap.
    pub fn new() -> Self {
        Self::with_clock(Clock::system())
    }

    /// A store reading time from `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            shared: Arc::new(Shared {
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                live: AtomicUsize::new(0),
                max_buckets: DEFAULT_MAX_BUCKETS,
                cursor: AtomicUsize::new(0),
                last_full_sweep: AtomicU64::new(0),
                epoch: clock.epoch(),
                clock,
            }),
        }
    }

    /// Sets the cap on live buckets (at least 1).
    #[must_use]
    pub fn max_buckets(self, max: usize) -> Self {
        let shared = Shared {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            live: AtomicUsize::new(0),
            max_buckets: max.max(1),
            cursor: AtomicUsize::new(0),
            last_full_sweep: AtomicU64::new(0),
            clock: self.shared.clock.clone(),
            epoch: self.shared.epoch,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// How many buckets are live.
    pub fn len(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }

    /// Whether no bucket is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every full bucket now (the store also does this by itself,
    /// a shard at a time); returns how many were removed.
    pub fn evict_full(&self) -> usize {
        let now = self.shared.clock.now();
        (0..SHARDS).map(|index| self.shared.sweep(index, now)).sum()
    }

    /// The clock the store decides by.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Decides at once; see [`RateStore::decide`].
    pub fn decide_now(&self, bucket: &Bucket<'_>, limits: &RouteLimits) -> Decision {
        if let [single] = limits.quotas() {
            let key = (single.bucket_key(bucket, 0), single.meter);
            return self.decide_keyed(&[key], limits.cost());
        }
        // A route's stack: its keys made once, its meters where they are.
        let stack = Own {
            keys: limits.keys(bucket),
            quotas: limits.quotas(),
        };
        self.decide_stack(&stack, limits.cost())
    }

    /// Moves the bucket `key` to at least what a shared store reports the
    /// fleet has spent ([`Mode::Approximate`](super::redis::Mode::Approximate)):
    /// for a bucket, its TAT `spent` nanoseconds ahead of now; for a
    /// calendar window, `spent` requests in the current window.
    #[cfg(feature = "redis")]
    pub(crate) fn owe(&self, key: u64, meter: &Meter, spent: u64) {
        let shared = &*self.shared;
        let now = shared.clock.now();
        let state = meter.holding(spent, now, shared.epoch);
        let _ = shared.with_bucket(key, now, |tat| match meter {
            // A key's credits can also go up (a top-up): the fleet's word.
            Meter::Credits(_) => tat.store(state, Ordering::Release),
            Meter::Bucket(_) | Meter::Window(_) => {
                tat.fetch_max(state, Ordering::AcqRel);
            }
        });
    }

    /// Takes `tokens` more from each of the buckets `keys` (into debt if
    /// need be), or gives `-tokens` back: a settlement after the response.
    pub(crate) fn adjust_keyed(&self, keys: &[(u64, Meter)], tokens: i64) {
        if tokens == 0 {
            return;
        }
        let shared = &*self.shared;
        let now = shared.clock.now();
        for (key, meter) in keys {
            let _ = shared.with_bucket(*key, now, |state| {
                adjust(state, meter, now, shared.epoch, tokens);
            });
        }
    }

    /// Decides a request costing `cost` from the buckets `keys` (each its
    /// key and quota, as [`RouteLimits`] gives them): what
    /// [`decide_now`](Self::decide_now) does, and a store deciding here in
    /// another's place.
    #[inline]
    pub(crate) fn decide_keyed(&self, keys: &[(u64, Meter)], cost: u64) -> Decision {
        self.decide_stack(keys, cost)
    }

    #[inline]
    fn decide_stack<S: Stack + ?Sized>(&self, stack: &S, cost: u64) -> Decision {
        let shared = &*self.shared;
        let now = shared.clock.now();
        let decision = match stack.len() {
            0 => Decision::allowed(&[]),
            1 => shared.take(stack.key(0), stack.meter(0), now, cost),
            _ => shared.take_all(stack, now, cost),
        };
        shared.tick(now);
        decision
    }
}

impl Shared {
    #[inline]
    fn shard(&self, key: u64) -> &Shard {
        &self.shards[shard_index(key)]
    }

    /// Takes `cost` tokens from one bucket, or refuses without writing.
    #[inline]
    fn take(&self, key: u64, meter: &Meter, now: Nanos, cost: u64) -> Decision {
        let epoch = self.epoch;
        let outcome = self.with_bucket(key, now, |tat| cas_admit(tat, meter, now, epoch, cost));
        match outcome {
            None => Decision::over_capacity(1_000_000_000),
            Some(Ok((_, state))) => Decision::allowed(&[state]),
            Some(Err((wait, tat))) => Decision::denied(wait, 0, &[meter.state(tat, now, epoch)]),
        }
    }

    /// Takes `cost` tokens from every bucket of a stack (each its key and
    /// its quota), or from none.
    fn take_all<S: Stack + ?Sized>(&self, quotas: &S, now: Nanos, cost: u64) -> Decision {
        if let Some(decision) = self.take_all_in_one_shard(quotas, now, cost) {
            return decision;
        }
        let epoch = self.epoch;
        let mut states = [QuotaState::default(); MAX_STACK];
        let count = quotas.len();
        // First a look without writing: a request one quota refuses must
        // consume from none.
        let mut refusal: Option<(Nanos, usize)> = None;
        for (index, state) in states[..count].iter_mut().enumerate() {
            let (key, meter) = (quotas.key(index), quotas.meter(index));
            let tat = self.peek(key);
            *state = meter.state(tat, now, epoch);
            if let (Err(wait), None) = (meter.admit(tat, now, epoch, cost), refusal) {
                refusal = Some((wait, index));
            }
        }
        if let Some((wait, index)) = refusal {
            return Decision::denied(wait, index, &states[..count]);
        }
        // Then take from each; if another request emptied one meanwhile,
        // give back what was taken.
        for index in 0..count {
            let (key, meter) = (quotas.key(index), quotas.meter(index));
            match self.with_bucket(key, now, |tat| cas_admit(tat, meter, now, epoch, cost)) {
                Some(Ok((_, state))) => states[index] = state,
                refused => {
                    for undo in 0..index {
                        self.with_bucket(quotas.key(undo), now, |tat| {
                            give_back(tat, quotas.meter(undo), now, epoch, cost);
                        });
                    }
                    return match refused {
                        Some(Err((wait, tat))) => {
                            states[index] = meter.state(tat, now, epoch);
                            Decision::denied(wait, index, &states[..count])
                        }
                        _ => Decision::over_capacity(1_000_000_000),
                    };
                }
            }
        }
        Decision::allowed(&states[..count])
    }

    /// [`take_all`](Self::take_all) for a stack whose buckets all exist in
    /// one shard (a route's own quotas are placed so): one lock, one lookup
    /// each. `None` when they do not, for the general way.
    #[inline]
    fn take_all_in_one_shard<S: Stack + ?Sized>(
        &self,
        quotas: &S,
        now: Nanos,
        cost: u64,
    ) -> Option<Decision> {
        let count = quotas.len();
        let index = shard_index(quotas.key(0));
        if (1..count).any(|at| shard_index(quotas.key(at)) != index) {
            return None;
        }
        let epoch = self.epoch;
        let map = self.shards[index]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        // Filled with every bucket's cell below (or none is used).
        static UNUSED: AtomicU64 = AtomicU64::new(0);
        let mut cells: [&AtomicU64; MAX_STACK] = [&UNUSED; MAX_STACK];
        for (at, cell) in cells[..count].iter_mut().enumerate() {
            *cell = map.get(&quotas.key(at))?;
        }
        let cells = &cells[..count];
        // A look first: a request one quota refuses consumes from none.
        // What each would become is kept, so that taking is one exchange
        // each unless another request moved the bucket meanwhile.
        let mut seen = [0; MAX_STACK];
        let mut next = [0; MAX_STACK];
        let mut states = [QuotaState::default(); MAX_STACK];
        for (index, cell) in cells.iter().enumerate() {
            let meter = quotas.meter(index);
            let tat = cell.load(Ordering::Acquire);
            seen[index] = tat;
            match meter.admit_state(tat, now, epoch, cost) {
                Ok((after, state)) => (next[index], states[index]) = (after, state),
                Err(wait) => {
                    let mut states = [QuotaState::default(); MAX_STACK];
                    for (at, (slot, cell)) in states.iter_mut().zip(cells).enumerate() {
                        *slot = quotas
                            .meter(at)
                            .state(cell.load(Ordering::Acquire), now, epoch);
                    }
                    states[index] = meter.state(tat, now, epoch);
                    return Some(Decision::denied(wait, index, &states[..count]));
                }
            }
        }
        for (index, cell) in cells.iter().enumerate() {
            let meter = quotas.meter(index);
            let taken = match cell.compare_exchange(
                seen[index],
                next[index],
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => Ok((next[index], states[index])),
                Err(_) => cas_admit(cell, meter, now, epoch, cost),
            };
            match taken {
                Ok((_, state)) => states[index] = state,
                Err((wait, tat)) => {
                    // Emptied by another request meanwhile: give back.
                    for (at, undo) in cells[..index].iter().enumerate() {
                        give_back(undo, quotas.meter(at), now, epoch, cost);
                    }
                    states[index] = meter.state(tat, now, epoch);
                    return Some(Decision::denied(wait, index, &states[..count]));
                }
            }
        }
        Some(Decision::allowed_from(states, count))
    }

    fn peek(&self, key: u64) -> Nanos {
        let map = self
            .shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&key).map_or(0, |tat| tat.load(Ordering::Acquire))
    }

    /// Runs `act` on the bucket `key`, creating it (full) if needed; `None`
    /// when it would have to be created and the cap is reached.
    fn with_bucket<R>(&self, key: u64, now: Nanos, act: impl FnOnce(&AtomicU64) -> R) -> Option<R> {
        let shard = self.shard(key);
        {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(tat) = map.get(&key) {
                return Some(act(tat));
            }
        }
        if self.live.load(Ordering::Relaxed) >= self.max_buckets && !self.make_room(shard, now) {
            return None;
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        let tat = map.entry(key).or_insert_with(|| {
            let _live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
            #[cfg(feature = "metrics")]
            crate::metrics::buckets(_live);
            AtomicU64::new(0)
        });
        Some(act(tat))
    }

    /// At the cap: sweeps the shard a new bucket would go to, then — at most
    /// every `FULL_SWEEP_INTERVAL`, so that a flood cannot make every request
    /// scan the whole map — every shard. Whether there is room now.
    fn make_room(&self, shard: &Shard, now: Nanos) -> bool {
        self.sweep_shard(shard, now);
        if self.live.load(Ordering::Relaxed) < self.max_buckets {
            return true;
        }
        let last = self.last_full_sweep.load(Ordering::Relaxed);
        let due = last == 0 || now >= last.saturating_add(FULL_SWEEP_INTERVAL);
        if due
            && self
                .last_full_sweep
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            for index in 0..SHARDS {
                self.sweep(index, now);
            }
        }
        self.live.load(Ordering::Relaxed) < self.max_buckets
    }

    /// Counts a decision; every `SWEEP_EVERY` on this thread, sweeps a shard.
    #[inline]
    fn tick(&self, now: Nanos) {
        let due = DECISIONS.with(|count| {
            let next = count.get() + 1;
            count.set(if next >= SWEEP_EVERY { 0 } else { next });
            next >= SWEEP_EVERY
        });
        if due {
            let index = self.cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
            self.sweep(index, now);
        }
    }

    fn sweep(&self, index: usize, now: Nanos) -> usize {
        self.sweep_shard(&self.shards[index], now)
    }

    /// Removes the shard's full buckets (those whose TAT is not after `now`).
    fn sweep_shard(&self, shard: &Shard, now: Nanos) -> usize {
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, tat| tat.load(Ordering::Acquire) > now);
        let after = map.len();
        let removed = before - after;
        if map.capacity() > 64 && after < map.capacity() / 4 {
            map.shrink_to(after * 2);
        }
        let _live = self.live.fetch_sub(removed, Ordering::Relaxed) - removed;
        #[cfg(feature = "metrics")]
        if removed > 0 {
            crate::metrics::buckets(_live);
        }
        removed
    }
}

/// The buckets of one decision: each one's key and meter, in route order.
trait Stack {
    fn len(&self) -> usize;
    fn key(&self, index: usize) -> u64;
    fn meter(&self, index: usize) -> &Meter;
}

/// Keys and meters as a shared store hands them over (its shares).
impl Stack for [(u64, Meter)] {
    #[inline]
    fn len(&self) -> usize {
        <[_]>::len(self)
    }
    #[inline]
    fn key(&self, index: usize) -> u64 {
        self[index].0
    }
    #[inline]
    fn meter(&self, index: usize) -> &Meter {
        &self[index].1
    }
}

/// A route's own stack: its keys, and its quotas' meters where they are.
struct Own<'a> {
    keys: [u64; MAX_STACK],
    quotas: &'a [super::store::QuotaSpec],
}

impl Stack for Own<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.quotas.len().min(MAX_STACK)
    }
    #[inline]
    fn key(&self, index: usize) -> u64 {
        self.keys[index]
    }
    #[inline]
    fn meter(&self, index: usize) -> &Meter {
        &self.quotas[index].meter
    }
}

/// The shard of a bucket key (its [`SHARD_BITS`]).
#[inline]
fn shard_index(key: u64) -> usize {
    ((key & SHARD_BITS) >> 32) as usize % SHARDS
}

/// Takes `tokens` more from one bucket (or gives `-tokens` back).
#[inline]
fn adjust(state: &AtomicU64, meter: &Meter, now: Nanos, epoch: u64, tokens: i64) {
    let _ = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |value| {
        Some(meter.adjust(value, now, epoch, tokens))
    });
}

/// Gives back what admitting `cost` took (a stack another quota refused).
#[inline]
fn give_back(state: &AtomicU64, meter: &Meter, now: Nanos, epoch: u64, cost: u64) {
    adjust(
        state,
        meter,
        now,
        epoch,
        -i64::try_from(cost).unwrap_or(i64::MAX),
    );
}

/// The compare-exchange loop on one bucket: the new TAT and the quota's
/// state after it, or how long to wait and the TAT as it stands.
#[inline]
fn cas_admit(
    tat: &AtomicU64,
    meter: &Meter,
    now: Nanos,
    epoch: u64,
    cost: u64,
) -> Result<(Nanos, QuotaState), (Nanos, Nanos)> {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        match meter.admit_state(current, now, epoch, cost) {
            Ok((next, state)) => {
                match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return Ok((next, state)),
                    Err(actual) => current = actual,
                }
            }
            Err(wait) => return Err((wait, current)),
        }
    }
}

impl Default for InMemoryRateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRateStore")
            .field("live", &self.len())
            .field("max_buckets", &self.shared.max_buckets)
            .finish()
    }
}

impl RateStore for InMemoryRateStore {
    type Future = Ready<Result<Decision, StoreError>>;

    #[inline]
    fn decide(
        &self,
        bucket: &Bucket<'_>,
        limits: &RouteLimits,
    ) -> Answer<Result<Decision, StoreError>, Self::Future> {
        Answer::Ready(Ok(self.decide_now(bucket, limits)))
    }

    fn settlement(&self, bucket: &Bucket<'_>, limits: &RouteLimits) -> Option<Settlement> {
        let (keys, count) = limits.bucket_keys(bucket);
        let store = self.clone();
        Some(Settlement::new(move |tokens| {
            store.adjust_keyed(&keys[..count], tokens);
        }))
    }

    fn adjust(
        &self,
        bucket: &Bucket<'_>,
        limits: &RouteLimits,
        tokens: i64,
    ) -> Answer<Result<Decision, StoreError>, Self::Future> {
        let (keys, count) = limits.bucket_keys(bucket);
        let keys = &keys[..count];
        self.adjust_keyed(keys, tokens);
        let shared = &*self.shared;
        let now = shared.clock.now();
        let mut states = [QuotaState::default(); MAX_STACK];
        for (state, (key, meter)) in states.iter_mut().zip(keys) {
            *state = meter.state(shared.peek(*key), now, shared.epoch);
        }
        Answer::Ready(Ok(Decision::allowed(&states[..count])))
    }
}
