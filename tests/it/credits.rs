//! Credits: remaining uses on a key, spent by each route's cost on every
//! route, refused with `credits_exhausted` at zero, refilled on a calendar
//! boundary, topped up at run time. From files and from the builder, over
//! sockets, on a fake clock.

use std::time::{Duration, UNIX_EPOCH};

use crate::common::*;
use http::{Request, StatusCode};
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, RoutePolicy};
use tollgate::key::{KeyConfig, KeyKind, KeyRecord};
use tollgate::rate_limit::{Calendar, Credits, Quota, RateLimitHeaders};
use tower::Layer;

/// 2026-01-01T00:00:00Z.
const NEW_YEAR: u64 = 1_767_225_600;
const DAY: u64 = 86_400;

fn clock_at(unix: u64) -> FakeClock {
    FakeClock::starting_at(UNIX_EPOCH + Duration::from_secs(unix))
}

const SERVER_KEY: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";

/// Two keys of one project: `server` with 3 credits, `other` without.
/// `/v1/batch` costs 2 (and has no rate limit of its own), `/v1/track` 1
/// with a bucket of 100.
const CONFIG: &str = r#"
pepper = "demo pepper: in production, use pepper_env and a secret manager"
rate_limit_headers = "both"

[[keys]]
name = "server"
key = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad"
project = "demo"
credits = { remaining = 3 }

[[keys]]
name = "other"
key = "OTHER_KEY"
project = "demo"

[[routes]]
route = "POST /v1/batch"
cost = 2

[[routes]]
route = "POST /v1/track"
quotas = [{ rate = 1, per = "minute", burst = 100 }]
"#;

fn post(address: std::net::SocketAddr, path: &str, key: &str) -> TestRequest {
    empty(
        Request::post(format!("http://{address}{path}"))
            .header("authorization", format!("Bearer {key}")),
    )
}

/// [`CONFIG`] with a freshly minted key for `other`, and that key.
fn config() -> (String, String) {
    let other = tollgate::key::KeyHasher::with_pepper(b"any")
        .mint(KeyKind::Secret, Some(tollgate::key::KeyEnv::Test))
        .unwrap()
        .key()
        .to_owned();
    (CONFIG.replace("OTHER_KEY", &other), other)
}

/// The record a configuration gives `server` (what an admin call takes).
fn server_record(credits: Credits) -> KeyRecord {
    KeyRecord::new("server", "demo", KeyKind::Secret)
        .with_credits(credits)
        .unwrap()
}

/// 3 credits on a route costing 2: one admitted, the next refused with
/// `credits_exhausted` (no refill: no `Retry-After`), a route costing 1
/// still admitted once; the other key of the project is not touched; a
/// top-up at run time admits again. From the file, over a socket.
#[tokio::test]
async fn three_credits_on_a_route_costing_two_then_a_top_up() {
    let (config, other_key) = config();
    let gate = GateConfig::from_toml(&config)
        .unwrap()
        .builder()
        .unwrap()
        .build()
        .unwrap();
    let address = serve_behind(&gate).await;

    let first = fetch(post(address, "/v1/batch", SERVER_KEY)).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.header("ratelimit"), "\"credits\";r=1;t=0");
    assert_eq!(first.header("ratelimit-policy"), "\"credits\";q=3;w=0");

    let refused = fetch(post(address, "/v1/batch", SERVER_KEY)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "credits_exhausted");
    assert_eq!(refused.body["error"]["category"], "rate_limit");
    assert!(
        refused.headers.get("retry-after").is_none(),
        "no refill: no time would do"
    );
    let details = &refused.body["error"]["details"];
    assert_eq!(details["policy"], "credits");
    assert_eq!(details["credits"], 1);
    assert_eq!(details["cost"], 2);
    assert_eq!(details["limit"], 3);
    assert!(details["refill"].is_null() && details["reset"].is_null());

    // The other key of the project draws from no credits.
    for _ in 0..5 {
        assert_eq!(
            fetch(post(address, "/v1/batch", &other_key)).await.status,
            StatusCode::OK
        );
    }
    // The last credit on a route costing 1, stacked with its bucket.
    let track = fetch(post(address, "/v1/track", SERVER_KEY)).await;
    assert_eq!(track.status, StatusCode::OK);
    assert!(
        track.header("ratelimit").ends_with("\"credits\";r=0;t=0"),
        "{:?}",
        track.headers
    );
    let refused = fetch(post(address, "/v1/track", SERVER_KEY)).await;
    assert_eq!(refused.code(), "credits_exhausted");
    // Refused by the credits, the route's bucket gave nothing: 99 of 100
    // left after the one admitted.
    assert!(
        refused
            .header("ratelimit")
            .starts_with("\"POST /v1/track\";r=99;"),
        "{:?}",
        refused.headers
    );

    let record = server_record(Credits::new(3));
    assert_eq!(gate.credits_left(&record).await.unwrap(), Some(0));
    assert_eq!(gate.top_up_credits(&record, 4).await.unwrap(), 4);
    for _ in 0..2 {
        assert_eq!(
            fetch(post(address, "/v1/batch", SERVER_KEY)).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        fetch(post(address, "/v1/batch", SERVER_KEY)).await.code(),
        "credits_exhausted"
    );
    assert_eq!(gate.credits_left(&record).await.unwrap(), Some(0));
    let no_credits = KeyRecord::new("other", "demo", KeyKind::Secret);
    assert_eq!(gate.credits_left(&no_credits).await.unwrap(), None);
    assert!(gate.top_up_credits(&no_credits, 1).await.is_err());
}

/// A daily refill: spent at 23:59, refused with `Retry-After: 60` and the
/// reset at midnight (headers, details); a top-up of 1 is spent; at
/// midnight the balance is whole again. A top-up left unspent is kept
/// across the next boundary. From the builder, over a socket.
#[tokio::test]
async fn a_daily_refill_comes_at_midnight_and_keeps_what_was_topped_up() {
    let fake = clock_at(NEW_YEAR + DAY - 60);
    let keys = Keys::new();
    let credits = Credits::refilled(2, Calendar::Day);
    let record = KeyRecord::new("key_daily", "demo", KeyKind::Secret)
        .with_credits(credits)
        .unwrap();
    let key = keys.add(KeyKind::Secret, record.clone());
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .clock(fake.clock())
        .rate_limit_headers(RateLimitHeaders::Both)
        .route(
            "POST /v1/track",
            RoutePolicy::new().quota(Quota::per_second(100)),
        )
        .build()
        .unwrap();
    let address = serve_behind(&gate).await;
    let track = || post(address, "/v1/track", key.key());
    for _ in 0..2 {
        assert_eq!(fetch(track()).await.status, StatusCode::OK);
    }
    let midnight = NEW_YEAR + DAY;
    let refused = fetch(track()).await;
    assert_eq!(refused.code(), "credits_exhausted");
    assert_eq!(refused.header("retry-after"), "60");
    assert_eq!(refused.header("x-ratelimit-reset"), midnight.to_string());
    assert_eq!(refused.header("x-ratelimit-remaining"), "0");
    let details = &refused.body["error"]["details"];
    assert_eq!(details["refill"], "day");
    assert_eq!(details["reset"], midnight);
    assert_eq!(details["retry_after"], 60);

    assert_eq!(gate.top_up_credits(&record, 1).await.unwrap(), 1);
    assert_eq!(fetch(track()).await.status, StatusCode::OK);
    assert_eq!(fetch(track()).await.code(), "credits_exhausted");

    fake.advance(Duration::from_secs(59));
    assert_eq!(fetch(track()).await.code(), "credits_exhausted");
    fake.advance(Duration::from_secs(1));
    for _ in 0..2 {
        assert_eq!(fetch(track()).await.status, StatusCode::OK);
    }
    assert_eq!(fetch(track()).await.code(), "credits_exhausted");

    // 5 topped up with none of the day's left: 5, kept past the next
    // midnight (which does not add its 2 on top).
    assert_eq!(gate.top_up_credits(&record, 5).await.unwrap(), 5);
    fake.advance(Duration::from_secs(DAY));
    assert_eq!(gate.credits_left(&record).await.unwrap(), Some(5));
    let mut admitted = 0;
    while fetch(track()).await.status == StatusCode::OK {
        admitted += 1;
    }
    assert_eq!(admitted, 5);
}

/// The refusal in problem+json is the draft's quota-exceeded problem
/// naming the credits; in gRPC, RESOURCE_EXHAUSTED naming the code; and a
/// code map renames it.
#[tokio::test]
async fn the_credits_refusal_in_other_formats_and_renamed() {
    let config = config().0.replace(
        "rate_limit_headers = \"both\"",
        "rate_limit_headers = \"both\"\nerrors = \"problem\"\n\n[codes]\ncredits_exhausted = { code = \"out_of_credits\", status = 402 }",
    );
    let gate = GateConfig::from_toml(&config)
        .unwrap()
        .builder()
        .unwrap()
        .build()
        .unwrap();
    let address = serve_behind(&gate).await;
    assert_eq!(
        fetch(post(address, "/v1/batch", SERVER_KEY)).await.status,
        StatusCode::OK
    );
    let refused = fetch(post(address, "/v1/batch", SERVER_KEY)).await;
    assert_eq!(
        refused.status,
        StatusCode::PAYMENT_REQUIRED,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.header("content-type"), "application/problem+json");
    assert_eq!(refused.body["code"], "out_of_credits");
    assert_eq!(
        refused.body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(refused.body["violated-policies"][0], "credits");
    assert_eq!(refused.body["details"]["credits"], 1);

    let keys = Keys::new();
    let record = KeyRecord::new("key_grpc", "demo", KeyKind::Secret)
        .with_credits(Credits::new(1))
        .unwrap();
    let key = keys.add(KeyKind::Secret, record);
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route("POST /pkg.Service/Call", RoutePolicy::new())
        .build()
        .unwrap();
    let service = gate.layer().layer(Handler::default().gated());
    let grpc = || {
        empty(
            Request::post("/pkg.Service/Call")
                .header("authorization", format!("Bearer {}", key.key()))
                .header("content-type", "application/grpc"),
        )
    };
    assert_eq!(send(service.clone(), grpc()).await.status, StatusCode::OK);
    let refused = send(service.clone(), grpc()).await;
    assert_eq!(refused.headers["grpc-status"], "8");
    assert!(
        refused
            .header("grpc-message")
            .starts_with("credits_exhausted"),
        "{:?}",
        refused.headers
    );
}

/// Credits in files: written back out the same; mistakes named with the
/// key and field at start-up.
#[test]
fn credits_from_files_and_their_mistakes() {
    let key: KeyConfig = toml::from_str(
        "name = \"k\"\nproject = \"p\"\nkey = \"sk_test_x\"\ncredits = { refill = { amount = 10000, interval = \"month\", utc_offset = \"-05:00\" } }",
    )
    .unwrap();
    let credits = key.credits.unwrap();
    assert_eq!(credits.allowance(), 10_000);
    assert_eq!(credits.refill(), Some(Calendar::Month));
    let back: KeyConfig = toml::from_str(&toml::to_string(&key).unwrap()).unwrap();
    assert_eq!(back.credits, Some(credits));
    for (bad, says) in [
        (
            "credits = { remaining = 3, refill = { amount = 3, interval = \"day\" } }",
            "not both",
        ),
        (
            "credits = { refill = { amount = 0, interval = \"day\" } }",
            "at least 1",
        ),
        ("credits = { remaining = 99999999999 }", "at most"),
        ("credits = {}", "need `remaining"),
    ] {
        let config = config().0.replace("credits = { remaining = 3 }", bad);
        let error = GateConfig::from_toml(&config)
            .and_then(|config| config.builder().map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(error.contains(says), "{bad}: {error}");
        assert!(error.contains("credits"), "{bad}: {error}");
    }
}

/// The README's excerpt of credits is a configuration the gate builds, and
/// its keys carry what it says.
#[test]
fn the_readmes_credits_excerpt_builds() {
    let readme = include_str!("../../README.md");
    let section = readme.split("**Credits.**").nth(1).unwrap();
    let excerpt = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let digests = ["11", "22"].map(|byte| byte.repeat(32));
    let mut text = format!("pepper = \"a pepper\"\n{excerpt}");
    for digest in &digests {
        text = text.replacen("<64 hex>", digest, 1);
    }
    let config = GateConfig::from_toml(&text).unwrap();
    assert_eq!(config.keys[0].credits, Some(Credits::new(1000)));
    assert_eq!(
        config.keys[1].credits,
        Some(Credits::refilled(10_000, Calendar::Month))
    );
    assert!(config.build().is_ok());
}

/// The in-memory key store sets and reads a key's credits: raised in its
/// record at run time (the store's `update`), the key has the difference
/// more at once (the verified-key cache hears of the change); taken away,
/// the key is no longer counted.
#[tokio::test]
async fn the_in_memory_store_sets_and_reads_credits() {
    let keys = Keys::new();
    let record = KeyRecord::new("key_mem", "demo", KeyKind::Secret)
        .with_credits(Credits::new(1))
        .unwrap();
    let key = keys.add(KeyKind::Secret, record);
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route("POST /v1/track", RoutePolicy::new())
        .build()
        .unwrap();
    let address = serve_behind(&gate).await;
    let track = || post(address, "/v1/track", key.key());
    assert_eq!(fetch(track()).await.status, StatusCode::OK);
    assert_eq!(fetch(track()).await.code(), "credits_exhausted");
    let digest = key.digest();
    assert!(keys.store.update(&digest, |record| {
        record.with_credits(Credits::new(4)).unwrap()
    }));
    let stored = keys.store.get(&digest).unwrap();
    assert_eq!(stored.credits(), Some(&Credits::new(4)));
    assert_eq!(gate.credits_left(&stored).await.unwrap(), Some(3));
    for _ in 0..3 {
        assert_eq!(fetch(track()).await.status, StatusCode::OK);
    }
    assert_eq!(fetch(track()).await.code(), "credits_exhausted");
    // A record without credits: the key is not counted any more.
    assert!(keys.store.update(&digest, |_| KeyRecord::new(
        "key_mem",
        "demo",
        KeyKind::Secret
    )));
    for _ in 0..3 {
        assert_eq!(fetch(track()).await.status, StatusCode::OK);
    }
}
