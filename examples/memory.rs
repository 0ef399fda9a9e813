//! Memory per live rate-limit bucket and per cached key, and eviction after
//! a flood.
//!
//! ```text
//! cargo run --release --example memory [-- PARTITIONS]
//! ```
//!
//! Creates one bucket for each of PARTITIONS one-off partitions (client IP
//! addresses; default 1 000 000) in an `InMemoryRateStore` on a fake clock,
//! reports the bytes allocated per live bucket (a counting global
//! allocator), then lets the buckets refill and shows the live count falling
//! back as ordinary traffic sweeps the map. Then fills a `CachedKeyStore`
//! with 100 000 known keys (and 100 000 unknown ones) and reports the bytes
//! per cached entry.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use tollgate::Answer;
use tollgate::clock::FakeClock;
use tollgate::key::store::KeyStore;
use tollgate::key::{CachedKeyStore, InMemoryKeyStore, KeyHasher, KeyKind, KeyRecord};
use tollgate::rate_limit::store::{Bucket, PartitionKey, RouteLimits};
use tollgate::rate_limit::{InMemoryRateStore, Quota, RateLimit};

/// Counts bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> isize {
    ALLOCATED.load(Ordering::Relaxed)
}

fn main() {
    let partitions: u32 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("PARTITIONS must be a whole number"))
        .unwrap_or(1_000_000);
    let fake = FakeClock::new();
    let store = InMemoryRateStore::with_clock(fake.clock()).max_buckets(partitions as usize + 1);
    let limits = RouteLimits::new(&RateLimit::new(Quota::per_second(50).burst(200))).unwrap();

    let before = allocated();
    for i in 0..partitions {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i));
        let decision = store.decide_now(
            &Bucket::new(PartitionKey::ip(Some(ip)), "POST /v1/track"),
            &limits,
        );
        assert!(decision.is_allowed());
    }
    let after = allocated();
    let live = store.len();
    println!("one-off partitions:        {partitions}");
    println!("live buckets after flood:  {live}");
    println!(
        "bytes allocated:           {} ({:.1} B per live bucket, map spare capacity included)",
        after - before,
        (after - before) as f64 / live as f64
    );

    // 20 ms later every bucket holds its 200 tokens again: nothing worth keeping.
    fake.advance(Duration::from_millis(20));
    let steady = PartitionKey::project("steady");
    let mut decisions = 0;
    for round in 1..=4 {
        for _ in 0..16 * 1024 {
            store.decide_now(&Bucket::new(steady.clone(), "POST /v1/track"), &limits);
            decisions += 1;
        }
        println!(
            "live buckets after {decisions:>6} ordinary decisions: {} (round {round})",
            store.len()
        );
    }
    println!("bytes the store still holds: {}", allocated() - before);
    drop(store);

    // Cached keys: 100 000 known keys behind the cache, then 100 000 unknown.
    const KEYS: usize = 100_000;
    let hasher = KeyHasher::new();
    let digests: Vec<_> = (0..2 * KEYS)
        .map(|i| hasher.digest(&format!("key-{i}")))
        .collect();
    let inner = InMemoryKeyStore::new();
    for (i, digest) in digests.iter().take(KEYS).enumerate() {
        inner.insert(
            *digest,
            KeyRecord::new(
                format!("key_{i}"),
                format!("project_{}", i % 1000),
                KeyKind::Secret,
            ),
        );
    }
    let cache = CachedKeyStore::builder(inner)
        .capacity(KEYS)
        .negative_capacity(KEYS)
        .clock(fake.clock())
        .build();
    let before = allocated();
    for digest in &digests[..KEYS] {
        let Answer::Ready(Ok(Some(_))) = cache.lookup(digest) else {
            panic!("known key")
        };
    }
    let known = allocated() - before;
    for digest in &digests[KEYS..] {
        let Answer::Ready(Ok(None)) = cache.lookup(digest) else {
            panic!("unknown key")
        };
    }
    let unknown = allocated() - before - known;
    println!();
    println!(
        "cached known keys:         {} ({:.1} B per entry; the records themselves are shared with the inner store)",
        cache.len(),
        known as f64 / cache.len() as f64
    );
    println!(
        "cached unknown keys:       {} ({:.1} B per entry)",
        cache.negative_len(),
        unknown as f64 / cache.negative_len().max(1) as f64
    );
}
