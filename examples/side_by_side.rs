//! Stacks of the benches timed side by side: in one process, in turns of
//! a block of requests each, so that whatever else the machine does slows
//! every stack alike. On a shared machine two criterion benches run a few
//! seconds apart can differ by more than the difference they measure; the
//! ratio of two stacks timed in the same turn does not drift so.
//!
//! ```sh
//! cargo run --release --example side_by_side -- gate window
//! cargo run --release --example side_by_side -- bare gate peer_keyed_headers
//! cargo run --release --example side_by_side -- --rounds 400 bare public peer
//! ```
//!
//! Each round times a block of 2 000 requests through each named stack
//! (`--block N`), in an order that rotates every round; the first 10
//! rounds warm up. As in `benches/stack.rs`, the requests are made before
//! the clock starts and the responses dropped after it stops. Printed: each
//! stack's median nanoseconds per request over the rounds, then the median
//! over the rounds of each stack's time per request divided by the first
//! stack's and, with three or more, of each one's time added to the first
//! stack's divided by the last one's (`bare gate peer_keyed_headers`: what
//! the gate adds to the handler against what the keyed peer adds).
//!
//! Stacks (built by `benches/support/stacks.rs`, which the benches and
//! `examples/hot_path.rs` share): `bare`, `gate`, `window` (a daily window
//! stacked on the route's bucket), `credits`, `tiers`, `contract`, `public`
//! (the gate's public route), `peer`, `peer_headers` (the peer with
//! tower_governor's rate-limit headers), `peer_keyed`, `peer_keyed_headers`
//! (as in `benches/stack.rs`, `public` is weighed against `peer`).

use std::time::Instant;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};

#[macro_use]
#[path = "../benches/support/stacks.rs"]
mod stacks;

use stacks::{poll_once, track};

/// Times one block of requests through one stack: nanoseconds per request.
type Turn<'a> = Box<dyn FnMut() -> f64 + 'a>;

/// A turn of `block` requests made by `make` (the `index`th key each)
/// through `service`, each answered with `200` (or `$status`).
macro_rules! turn {
    ($service:expr, $make:expr, $block:expr, $keys:expr) => {
        turn!($service, $make, $block, $keys, StatusCode::OK)
    };
    ($service:expr, $make:expr, $block:expr, $keys:expr, $status:expr) => {{
        let service = $service;
        let keys = &$keys;
        let block: usize = $block;
        let mut next = 0usize;
        Box::new(move || {
            let requests: Vec<Request<Full<Bytes>>> = (0..block)
                .map(|_| {
                    next = (next + 1) % keys.len();
                    $make(&keys[next])
                })
                .collect();
            let mut responses = Vec::with_capacity(block);
            let start = Instant::now();
            for request in requests {
                responses.push(poll_once(service.clone().oneshot(request)));
            }
            let elapsed = start.elapsed();
            for response in responses {
                assert_eq!(response.unwrap().status(), $status);
            }
            elapsed.as_nanos() as f64 / block as f64
        }) as Turn<'_>
    }};
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn main() {
    let mut names = Vec::new();
    let (mut rounds, mut block) = (200usize, 2_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| {
            args.next()
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{flag} takes a number"))
        };
        match arg.as_str() {
            "--rounds" => rounds = number("--rounds"),
            "--block" => block = number("--block"),
            _ => names.push(arg),
        }
    }
    if names.len() < 2 || rounds == 0 || block == 0 {
        eprintln!("usage: side_by_side [--rounds N] [--block N] STACK STACK [STACK...]");
        std::process::exit(2);
    }
    let f = stacks::fixture();
    let health = |_: &String| stacks::health();
    // The refusals of `benches/stack.rs`'s `rejection` group, with its key.
    let first = f.keys[0].clone();
    let with_first = |method: &str, path: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {first}"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let unknown = tollgate::key::KeyHasher::new()
        .mint(
            tollgate::key::KeyKind::Secret,
            Some(tollgate::key::KeyEnv::Live),
        )
        .unwrap()
        .into_key();
    let unknown = &unknown;
    let gated = f.gate.layer().layer(stacks::handler());
    // The tight route's one token, and the spent route's one request of
    // the day, spent first.
    let _ = poll_once(gated.clone().oneshot(with_first("POST", "/v1/tight")));
    let _ = poll_once(gated.clone().oneshot(with_first("POST", "/v1/spent")));
    let mut turns: Vec<Turn<'_>> = names
        .iter()
        .map(|name| match name.as_str() {
            "bare" => turn!(stacks::handler::<Full<Bytes>>(), track, block, f.keys),
            "gate" => turn!(
                f.gate.layer().layer(stacks::handler()),
                track,
                block,
                f.keys
            ),
            "window" => turn!(
                f.windowed.layer().layer(stacks::handler()),
                track,
                block,
                f.keys
            ),
            "credits" => turn!(
                f.credited.layer().layer(stacks::handler()),
                track,
                block,
                f.keys
            ),
            "tiers" => turn!(
                f.tiered.layer().layer(stacks::handler()),
                track,
                block,
                f.keys
            ),
            "contract" => turn!(
                f.contract.layer().layer(stacks::handler()),
                track,
                block,
                f.keys
            ),
            "public" => turn!(
                f.gate.layer().layer(stacks::handler()),
                health,
                block,
                f.keys
            ),
            "reject_missing" => turn!(
                gated.clone(),
                |_: &String| Request::post("/v1/track").body(Full::default()).unwrap(),
                block,
                f.keys,
                StatusCode::UNAUTHORIZED
            ),
            "reject_unknown" => turn!(
                gated.clone(),
                |_: &String| track(unknown),
                block,
                f.keys,
                StatusCode::UNAUTHORIZED
            ),
            "reject_scope" => turn!(
                gated.clone(),
                |_: &String| with_first("GET", "/v1/admin"),
                block,
                f.keys,
                StatusCode::FORBIDDEN
            ),
            "reject_429" => turn!(
                gated.clone(),
                |_: &String| with_first("POST", "/v1/tight"),
                block,
                f.keys,
                StatusCode::TOO_MANY_REQUESTS
            ),
            "reject_window" => turn!(
                gated.clone(),
                |_: &String| with_first("POST", "/v1/spent"),
                block,
                f.keys,
                StatusCode::TOO_MANY_REQUESTS
            ),
            "reject_413" => turn!(
                gated.clone(),
                |_: &String| {
                    let mut request = with_first("POST", "/v1/track");
                    request.headers_mut().insert(
                        http::header::CONTENT_LENGTH,
                        http::HeaderValue::from_static("100000"),
                    );
                    request
                },
                block,
                f.keys,
                StatusCode::PAYLOAD_TOO_LARGE
            ),
            "peer" => turn!(peer_stack!(), track, block, f.keys),
            "peer_headers" => turn!(peer_stack!(use_headers), track, block, f.keys),
            "peer_keyed" => turn!(peer_stack_keyed!(f.digests), track, block, f.keys),
            "peer_keyed_headers" => turn!(
                peer_stack_keyed!(f.digests, use_headers),
                track,
                block,
                f.keys
            ),
            other => {
                eprintln!("side_by_side: no stack `{other}`");
                std::process::exit(2);
            }
        })
        .collect();
    const WARM_UP: usize = 10;
    let mut times = vec![Vec::with_capacity(rounds); names.len()];
    for round in 0..WARM_UP + rounds {
        for turn in 0..turns.len() {
            let index = (turn + round) % turns.len();
            let nanos = turns[index]();
            if round >= WARM_UP {
                times[index].push(nanos);
            }
        }
    }
    println!("{rounds} rounds of {block} requests each");
    for (name, times) in names.iter().zip(&times) {
        println!("{name:>20}  {:8.1} ns per request (median)", median(times));
    }
    let ratio = |of: &dyn Fn(usize) -> f64| median(&(0..rounds).map(of).collect::<Vec<_>>());
    for index in 1..names.len() {
        let ratio = ratio(&|round| times[index][round] / times[0][round]);
        println!("{:>20} / {}: {ratio:.3}", names[index], names[0]);
    }
    if names.len() >= 3 {
        let last = names.len() - 1;
        for index in 1..last {
            let ratio = ratio(&|round| {
                (times[index][round] - times[0][round]) / (times[last][round] - times[0][round])
            });
            let (first, this, last) = (&names[0], &names[index], &names[last]);
            println!("({this} - {first}) / ({last} - {first}): {ratio:.3}");
        }
    }
}
