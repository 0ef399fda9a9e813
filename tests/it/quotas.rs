//! Quotas in calendar windows: whole again at each boundary of an hour, a
//! day or a month (in UTC or at an offset), stacked with buckets, with
//! `Retry-After`, `X-RateLimit-Reset` and the draft's headers pointing at
//! the boundary; on a fake clock that stands at 23:59:59.

use std::time::{Duration, UNIX_EPOCH};

use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, RoutePolicy};

use tollgate::rate_limit::{Calendar, InMemoryRateStore, Quota, RateLimitHeaders, UtcOffset};
use tower::Layer;

/// 2026-01-01T00:00:00Z.
const NEW_YEAR: u64 = 1_767_225_600;
const DAY: u64 = 86_400;

fn clock_at(unix: u64) -> FakeClock {
    FakeClock::starting_at(UNIX_EPOCH + Duration::from_secs(unix))
}

/// The demo's server key and pepper, a burst of 100 a second stacked on 30
/// a day (UTC).
const DAILY: &str = r#"
pepper = "demo pepper: in production, use pepper_env and a secret manager"
rate_limit_headers = "both"

[[keys]]
name = "server"
key = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad"
project = "demo"

[[routes]]
route = "POST /v1/track"
quotas = [{ rate = 100, per = "second", burst = 100 }, { limit = 30, window = "day", name = "daily" }]
"#;
const SERVER_KEY: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";

fn track(address: std::net::SocketAddr) -> TestRequest {
    empty(
        Request::post(format!("http://{address}/v1/track"))
            .header("authorization", format!("Bearer {SERVER_KEY}")),
    )
}

/// How many of `n` requests are admitted, all refusals being a window's.
async fn admitted(address: std::net::SocketAddr, n: usize) -> usize {
    let mut count = 0;
    for _ in 0..n {
        let answer = fetch(track(address)).await;
        match answer.status {
            StatusCode::OK => count += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(answer.code(), "rate_limited"),
            other => panic!("{other}: {:?}", answer.body),
        }
    }
    count
}

/// Exhausted at 00:05 UTC, a daily window refuses until 23:59:59 and
/// admits its whole budget at 00:00:00; every refusal's `Retry-After`,
/// `X-RateLimit-Reset`, `RateLimit` and details point at midnight. From a
/// configuration file, over a socket.
#[tokio::test]
async fn a_daily_window_refuses_until_midnight_then_admits_its_whole_budget() {
    let fake = clock_at(NEW_YEAR + 300);
    let gate = GateConfig::from_toml(DAILY)
        .unwrap()
        .builder()
        .unwrap()
        .clock(fake.clock())
        .build()
        .unwrap();
    let address = serve_behind(&gate).await;

    let first = fetch(track(address)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(
        first.header("ratelimit").contains("\"daily\";r=29;t=0"),
        "{:?}",
        first.headers
    );
    assert_eq!(
        first.header("x-ratelimit-reset"),
        (NEW_YEAR + DAY).to_string()
    );
    assert!(
        first
            .header("ratelimit-policy")
            .contains("\"daily\";q=30;w=86400"),
        "{:?}",
        first.headers
    );
    assert_eq!(admitted(address, 29).await, 29);

    let midnight = NEW_YEAR + DAY;
    for (now, retry) in [(NEW_YEAR + 300, DAY - 300), (midnight - 1, 1)] {
        let advance = now - fake.clock().unix_seconds();
        fake.advance(Duration::from_secs(advance));
        let refused = fetch(track(address)).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.header("retry-after"), retry.to_string());
        assert_eq!(refused.header("x-ratelimit-reset"), midnight.to_string());
        assert_eq!(refused.header("x-ratelimit-remaining"), "0");
        assert!(
            refused
                .header("ratelimit")
                .contains(&format!("\"daily\";r=0;t={retry}")),
            "{:?}",
            refused.headers
        );
        let details = &refused.body["error"]["details"];
        assert_eq!(details["window"], "day");
        assert_eq!(details["limit"], 30);
        assert_eq!(details["policy"], "daily");
        assert_eq!(details["reset"], midnight);
        assert_eq!(details["retry_after"], retry);
    }
    // 00:00:00: the whole budget at once (the bucket beside it holds 100).
    fake.advance(Duration::from_secs(1));
    assert_eq!(admitted(address, 31).await, 30);
    // 60 in 24 hours and 5 minutes, not the 60 a bucket of 30 a day would
    // have let through by 00:53 already.
}

/// A bucket stacked on a window: the bucket refuses bursts (its short
/// `Retry-After`), the window the day's total; a request either refuses
/// consumes from neither.
#[tokio::test]
async fn a_window_stacks_with_a_bucket() {
    let fake = clock_at(NEW_YEAR + 3_600);
    let keys = Keys::new();
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .clock(fake.clock())
        .rate_limit_headers(RateLimitHeaders::Both)
        .route(
            "POST /v1/track",
            RoutePolicy::new().quotas([
                Quota::per_second(1).burst(2),
                Quota::per_calendar(3, Calendar::Day),
            ]),
        )
        .build()
        .unwrap();
    let service = gate.layer().layer(Handler::default().gated());
    let request = || {
        empty(
            Request::post("/v1/track")
                .header("authorization", format!("Bearer {}", keys.secret.key())),
        )
    };
    let statuses = |n| {
        let service = service.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(send(service.clone(), request()).await);
            }
            out
        }
    };
    let burst = statuses(3).await;
    assert_eq!(
        burst.iter().map(|a| a.status.as_u16()).collect::<Vec<_>>(),
        [200, 200, 429]
    );
    assert_eq!(burst[2].header("retry-after"), "1", "the bucket's refusal");
    assert!(burst[2].body["error"]["details"].get("window").is_none());
    fake.advance(Duration::from_secs(1));
    assert_eq!(statuses(1).await[0].status, StatusCode::OK);
    fake.advance(Duration::from_secs(5));
    let spent = &statuses(1).await[0];
    assert_eq!(spent.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        spent.header("retry-after"),
        (DAY - 3_600 - 6).to_string(),
        "the window's refusal"
    );
    assert_eq!(spent.body["error"]["details"]["window"], "day");
    // The bucket refilled meanwhile and was not spent by the refusal: at
    // midnight both admit again.
    fake.advance(Duration::from_secs(DAY - 3_600 - 6));
    assert_eq!(
        statuses(3)
            .await
            .iter()
            .map(|a| a.status.as_u16())
            .collect::<Vec<_>>(),
        [200, 200, 429]
    );
}

/// A monthly window across the end of January and of February (28 days in
/// 2026), and an hourly one.
#[tokio::test]
async fn monthly_and_hourly_windows_end_on_their_boundaries() {
    let fake = clock_at(NEW_YEAR + 30 * DAY + DAY - 60); // 2026-01-31T23:59:00Z
    let keys = Keys::new();
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .clock(fake.clock())
        .route(
            "POST /v1/track",
            RoutePolicy::new().quota(Quota::per_calendar(2, Calendar::Month)),
        )
        .route(
            "POST /v1/batch",
            RoutePolicy::new().quota(Quota::per_calendar(1, Calendar::Hour)),
        )
        .build()
        .unwrap();
    let service = gate.layer().layer(Handler::default().gated());
    let call = |path: &'static str| {
        let service = service.clone();
        let key = keys.secret.key().to_owned();
        async move {
            send(
                service,
                empty(Request::post(path).header("authorization", format!("Bearer {key}"))),
            )
            .await
        }
    };
    assert_eq!(call("/v1/track").await.status, StatusCode::OK);
    assert_eq!(call("/v1/track").await.status, StatusCode::OK);
    let refused = call("/v1/track").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("retry-after"), "60");
    assert_eq!(refused.body["error"]["details"]["window"], "month");
    // 2026-02-01T00:00:00Z: February's two.
    fake.advance(Duration::from_secs(60));
    assert_eq!(call("/v1/track").await.status, StatusCode::OK);
    assert_eq!(call("/v1/track").await.status, StatusCode::OK);
    let refused = call("/v1/track").await;
    assert_eq!(refused.header("retry-after"), (28 * DAY).to_string());
    fake.advance(Duration::from_secs(28 * DAY - 1));
    assert_eq!(
        call("/v1/track").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    fake.advance(Duration::from_secs(1));
    assert_eq!(call("/v1/track").await.status, StatusCode::OK, "March");

    // The hour: 00:00 of March 1st plus 20 minutes, refused for 40.
    fake.advance(Duration::from_secs(1_200));
    assert_eq!(call("/v1/batch").await.status, StatusCode::OK);
    let refused = call("/v1/batch").await;
    assert_eq!(refused.header("retry-after"), "2400");
    assert_eq!(refused.body["error"]["details"]["window"], "hour");
}

/// A day at `+02:00` ends at 22:00 UTC; a configuration file says so with
/// `utc_offset`, and the problem+json refusal is the draft's quota-exceeded
/// problem naming the window and its reset.
#[tokio::test]
async fn an_offset_moves_the_boundary_and_problem_json_says_when() {
    let june_first = NEW_YEAR + 151 * DAY; // 2026-06-01T00:00:00Z
    let fake = clock_at(june_first + 21 * 3_600 + 59 * 60); // 21:59 UTC
    let config = DAILY
        .replace(
            "{ limit = 30, window = \"day\", name = \"daily\" }",
            "{ limit = 1, window = \"day\", utc_offset = \"+02:00\", name = \"daily\" }",
        )
        .replace(
            "rate_limit_headers = \"both\"",
            "rate_limit_headers = \"both\"\nerrors = \"problem\"",
        );
    let gate = GateConfig::from_toml(&config)
        .unwrap()
        .builder()
        .unwrap()
        .clock(fake.clock())
        .build()
        .unwrap();
    let address = serve_behind(&gate).await;
    assert_eq!(fetch(track(address)).await.status, StatusCode::OK);
    let refused = fetch(track(address)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("content-type"), "application/problem+json");
    assert_eq!(refused.header("retry-after"), "60");
    let boundary = june_first + 22 * 3_600;
    assert_eq!(refused.header("x-ratelimit-reset"), boundary.to_string());
    assert_eq!(
        refused.body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(refused.body["violated-policies"][0], "daily");
    assert_eq!(refused.body["details"]["window"], "day");
    assert_eq!(refused.body["details"]["reset"], boundary);
    fake.advance(Duration::from_secs(60));
    assert_eq!(
        fetch(track(address)).await.status,
        StatusCode::OK,
        "a new day in UTC+02:00 at 22:00 UTC"
    );
}

/// Windows written back out read the same; mistakes are named at start-up.
#[test]
fn windows_from_files_and_their_mistakes() {
    let quota: Quota = toml::from_str::<toml::Value>(
        "q = { limit = 10000, window = \"month\", utc_offset = \"-05:00\" }",
    )
    .unwrap()["q"]
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(quota.calendar(), Some(Calendar::Month));
    assert_eq!(quota.offset(), "-05:00".parse::<UtcOffset>().ok());
    let written = toml::to_string(&quota).unwrap();
    assert!(written.contains("window = \"month\""), "{written}");
    assert!(written.contains("utc_offset = \"-05:00\""), "{written}");

    for (quotas, says) in [
        ("[{ limit = 30, window = \"week\" }]", "week"),
        (
            "[{ limit = 30, window = \"day\", burst = 5 }]",
            "belong to buckets",
        ),
        ("[{ window = \"day\" }]", "`limit` is required"),
        (
            "[{ limit = 30, window = \"day\", utc_offset = \"CET\" }]",
            "not a UTC offset",
        ),
        (
            "[{ limit = 0, window = \"day\" }]",
            "the limit must be between 1",
        ),
        ("[{ limit = 30, per = \"day\" }]", "`{ rate, per, burst }`"),
    ] {
        let text = format!("[[routes]]\nroute = \"POST /v1/track\"\nquotas = {quotas}\n");
        let error = match GateConfig::from_toml(&text) {
            Err(error) => error.to_string(),
            Ok(config) => match config.build() {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{quotas} was accepted"),
            },
        };
        assert!(error.contains(says), "{quotas}: {error}");
    }
}

/// The in-memory store evicts a finished window like a full bucket, and
/// keeps a live one.
#[test]
fn finished_windows_are_evicted_live_ones_kept() {
    use tollgate::rate_limit::store::{Bucket, PartitionKey, RouteLimits};
    let fake = clock_at(NEW_YEAR + 23 * 3_600);
    let store = InMemoryRateStore::with_clock(fake.clock());
    let limits = RouteLimits::new(&tollgate::rate_limit::RateLimit::new(Quota::per_calendar(
        5,
        Calendar::Day,
    )))
    .unwrap();
    let bucket = Bucket::new(PartitionKey::project("acme"), "POST /v1/track");
    assert!(store.decide_now(&bucket, &limits).is_allowed());
    assert_eq!(store.evict_full(), 0, "the window is live until midnight");
    assert_eq!(store.len(), 1);
    fake.advance(Duration::from_secs(3_600 + 1));
    assert_eq!(store.evict_full(), 1);
    assert!(store.is_empty());
}

/// The README's excerpt of windows is a configuration the gate builds.
#[test]
fn the_readmes_window_excerpt_builds() {
    let readme = include_str!("../../README.md");
    let section = readme.split("## Quotas and credits").nth(1).unwrap();
    let excerpt = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let config = GateConfig::from_toml(excerpt).unwrap();
    assert!(config.build().is_ok());
}

/// A window's refusal and the failed-key budget's in the other formats: a
/// JSON-RPC error object carrying the details, and a gRPC status
/// (RESOURCE_EXHAUSTED) naming the code.
#[tokio::test]
async fn the_new_refusals_in_json_rpc_and_grpc() {
    use tollgate::key::FailedKeyBudget;
    use tollgate::render::{ErrorFormat, JsonRpc};
    let fake = clock_at(NEW_YEAR + 3_600);
    let keys = Keys::new();
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .clock(fake.clock())
        .failed_keys(FailedKeyBudget {
            limit: 1,
            ..FailedKeyBudget::default()
        })
        .route(
            "POST /mcp",
            RoutePolicy::new()
                .errors(ErrorFormat::JsonRpc(Box::new(JsonRpc::new())))
                .quota(Quota::per_calendar(1, Calendar::Day)),
        )
        .route(
            "POST /pkg.Service/Call",
            RoutePolicy::new().quota(Quota::per_calendar(1, Calendar::Hour)),
        )
        .build()
        .unwrap();
    let service = gate.layer().layer(Handler::default().gated());
    let key = keys.secret.key().to_owned();
    let rpc = || {
        Request::post("/mcp")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
            )))
            .unwrap()
    };
    assert_eq!(send(service.clone(), rpc()).await.status, StatusCode::OK);
    let refused = send(service.clone(), rpc()).await;
    assert_eq!(refused.body["id"], 3);
    let data = &refused.body["error"]["data"];
    assert_eq!(data["code"], "rate_limited", "{:?}", refused.body);
    assert_eq!(data["details"]["window"], "day");
    assert_eq!(data["details"]["reset"], NEW_YEAR + DAY);

    let grpc = |key: &str| {
        empty(
            Request::post("/pkg.Service/Call")
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/grpc"),
        )
    };
    assert_eq!(
        send(service.clone(), grpc(&key)).await.status,
        StatusCode::OK
    );
    let refused = send(service.clone(), grpc(&key)).await;
    assert_eq!(refused.headers["grpc-status"], "8");
    assert!(
        refused.header("grpc-message").starts_with("rate_limited"),
        "{:?}",
        refused.headers
    );

    // The failed-key budget's refusal, from an address (a peer on the
    // request, as an accept loop inserts it).
    let from_peer = |key: String| {
        let mut request = grpc(&key);
        request
            .extensions_mut()
            .insert(std::net::SocketAddr::from(([203, 0, 113, 4], 5000)));
        request
    };
    let unknown = || {
        keys.hasher
            .mint(
                tollgate::key::KeyKind::Secret,
                Some(tollgate::key::KeyEnv::Test),
            )
            .unwrap()
            .key()
            .to_owned()
    };
    assert_eq!(
        send(service.clone(), from_peer(unknown())).await.headers["grpc-status"],
        "16"
    );
    let refused = send(service.clone(), from_peer(unknown())).await;
    assert_eq!(refused.headers["grpc-status"], "8");
    assert!(
        refused
            .header("grpc-message")
            .contains("unknown or malformed"),
        "{:?}",
        refused.headers
    );
}
