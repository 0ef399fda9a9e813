//! The cost of authenticating a request by API key.
//!
//! `key/classify_valid_key` is the whole path through `KeyService`: find the
//! credential, parse it, verify its checksum, HMAC-SHA256 it, look it up in
//! an in-memory store of 10 000 keys, insert the `Principal`, call a trivial
//! inner service. The in-memory lookup answers at once, so the future is
//! polled once with a no-op waker: no runtime is measured. Keys are used in
//! a shuffled order. No clock is read (no key has an expiry).
//!
//! The other cases split that path into its steps.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tollgate::Answer;
use tollgate::key::format::KeyParser;
use tollgate::key::store::KeyStore;
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyLayer, KeyRecord};
use tower::{Layer, Service};

const KEYS: usize = 10_000;

/// A small deterministic shuffle (xorshift), so runs are comparable.
fn shuffled(mut items: Vec<String>) -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
    items
}

fn fixture() -> (KeyHasher, InMemoryKeyStore, Vec<String>) {
    let hasher = KeyHasher::with_pepper(b"bench pepper");
    let store = InMemoryKeyStore::new();
    let mut keys = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Live)).unwrap();
        store.insert(
            minted.digest(),
            KeyRecord::new(
                format!("key_{i}"),
                format!("project_{}", i % 1_000),
                KeyKind::Secret,
            ),
        );
        keys.push(minted.into_key());
    }
    (hasher, store, shuffled(keys))
}

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory lookup must be ready at once"),
    }
}

fn bench_key(c: &mut Criterion) {
    let (hasher, store, keys) = fixture();
    let mut group = c.benchmark_group("key");

    let layer = KeyLayer::new(store.clone()).hasher(hasher.clone());
    let mut service = layer.layer(tower::service_fn(|_request: Request<()>| {
        ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let mut next = 0;
    group.bench_function("classify_valid_key", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % KEYS;
                Request::post("/v1/track")
                    .header("authorization", format!("Bearer {}", keys[next]))
                    .body(())
                    .unwrap()
            },
            |request| {
                let response = poll_once(service.call(request)).unwrap();
                assert!(response.status().is_success());
                response
            },
            BatchSize::SmallInput,
        )
    });

    let parser = KeyParser::new();
    group.bench_function("parse_and_checksum", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(parser.parse(black_box(&keys[i])).is_ok())
        })
    });

    group.bench_function("hmac_sha256_digest", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(hasher.digest(black_box(&keys[i])))
        })
    });

    let digests: Vec<_> = keys.iter().map(|key| hasher.digest(key)).collect();
    group.bench_function("in_memory_lookup", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            match store.lookup(&digests[i]) {
                Answer::Ready(found) => black_box(found.unwrap()),
                Answer::Pending(_) => panic!("an in-memory lookup answers at once"),
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_key);
criterion_main!(benches);
