//! The failed-key budget: one address trying many well-formed unknown keys
//! is refused `429` before any lookup for the rest of the window, while
//! other addresses (and known keys elsewhere) are untouched; addresses are
//! read behind trusted proxies; IPv6 counts by /64; off by configuration.
//! Over real sockets, on a fake clock.

use std::convert::Infallible;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tollgate::body_limit::LimitedBody;
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, RoutePolicy};
use tollgate::key::{FailedKeyBudget, InMemoryKeyStore, KeyEnv, KeyKind, KeyRecord, KeyStatus};
use tollgate::rate_limit::IpNet;
use tower::ServiceBuilder;

async fn serve_gate(gate: &Gate<InMemoryKeyStore>) -> std::net::SocketAddr {
    let service = ServiceBuilder::new().layer(gate.layer()).service_fn(
        |_: Request<LimitedBody<hyper::body::Incoming>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    );
    serve(service).await
}

/// `POST /v1/track` with `key`, from `client` behind the loopback proxy.
fn from(address: std::net::SocketAddr, client: &str, key: &str) -> TestRequest {
    empty(
        Request::post(format!("http://{address}/v1/track"))
            .header("authorization", format!("Bearer {key}"))
            .header("x-forwarded-for", client),
    )
}

/// A gate trusting the loopback proxy, with `budget`, on `fake`'s clock
/// (at the start of a minute: 2026-01-01T00:00:00Z).
fn gate(keys: &Keys, budget: FailedKeyBudget, fake: &FakeClock) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .clock(fake.clock())
        .trusted_proxies([IpNet::parse("127.0.0.1").unwrap()])
        .failed_keys(budget)
        .route("POST /v1/track", RoutePolicy::new())
        .build()
        .unwrap()
}

fn unknown(keys: &Keys) -> String {
    keys.hasher
        .mint(KeyKind::Secret, Some(KeyEnv::Test))
        .unwrap()
        .key()
        .to_owned()
}

#[tokio::test]
async fn an_address_guessing_keys_is_refused_before_any_lookup_for_the_rest_of_the_window() {
    let keys = Keys::new();
    let fake = FakeClock::new();
    fake.advance(Duration::from_secs(15));
    let gate = gate(&keys, FailedKeyBudget::default(), &fake);
    let address = serve_gate(&gate).await;
    let valid = keys.secret.key().to_owned();
    let attacker = "203.0.113.7";
    let user = "198.51.100.2";

    let mut statuses = Vec::new();
    for attempt in 0..100 {
        let answer = fetch(from(address, attacker, &unknown(&keys))).await;
        statuses.push((answer.status.as_u16(), answer.code().to_owned()));
        if attempt == 20 {
            assert_eq!(
                answer.headers["retry-after"], "45",
                "the rest of the minute"
            );
            let details = &answer.body["error"]["details"];
            assert_eq!(details["reason"], "failed_keys");
            assert_eq!(details["limit"], 20);
            assert_eq!(details["window"], "minute");
        }
        // The user at another address, with a valid key, throughout.
        let answer = fetch(from(address, user, &valid)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "attempt {attempt}: {:?}",
            answer.body
        );
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|(status, code)| *status == 401 && code == "invalid_api_key"),
        "{statuses:?}"
    );
    assert!(
        statuses[20..]
            .iter()
            .all(|(status, code)| *status == 429 && code == "rate_limited"),
        "{statuses:?}"
    );
    // Refused before the lookup: even a valid key from that address.
    let answer = fetch(from(address, attacker, &valid)).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // The next minute: the address is judged key by key again.
    fake.advance(Duration::from_secs(45));
    assert_eq!(
        fetch(from(address, attacker, &valid)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        fetch(from(address, attacker, &unknown(&keys))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Malformed keys count; missing keys and known keys refused for their
/// status (revoked) do not.
#[tokio::test]
async fn malformed_keys_count_known_and_missing_ones_do_not() {
    let keys = Keys::new();
    let revoked = keys
        .hasher
        .mint(KeyKind::Secret, Some(KeyEnv::Test))
        .unwrap();
    keys.store.insert(
        revoked.digest(),
        KeyRecord::new("key_revoked", "demo", KeyKind::Secret)
            .with_env(KeyEnv::Test)
            .with_status(KeyStatus::Revoked),
    );
    let fake = FakeClock::new();
    let budget = FailedKeyBudget {
        limit: 3,
        ..FailedKeyBudget::default()
    };
    let address = serve_gate(&gate(&keys, budget, &fake)).await;
    for _ in 0..10 {
        assert_eq!(
            fetch(from(address, "203.0.113.1", revoked.key()))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let missing = empty(
            Request::post(format!("http://{address}/v1/track"))
                .header("x-forwarded-for", "203.0.113.1"),
        );
        assert_eq!(fetch(missing).await.code(), "missing_api_key");
    }
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            fetch(from(address, "203.0.113.2", "sk_test_not-a-key"))
                .await
                .code()
                .to_owned(),
        );
    }
    assert_eq!(
        codes,
        [
            "malformed_api_key",
            "malformed_api_key",
            "malformed_api_key",
            "rate_limited"
        ]
    );
}

/// IPv6 addresses count by their /64; a budget of an hour from a
/// configuration file; `limit = 0` turns it off.
#[tokio::test]
async fn ipv6_by_64_configured_windows_and_the_off_switch() {
    let keys = Keys::new();
    let fake = FakeClock::new();
    fake.advance(Duration::from_secs(600));
    let hourly = FailedKeyBudget {
        limit: 2,
        window: tollgate::rate_limit::Calendar::Hour,
        ..FailedKeyBudget::default()
    };
    let address = serve_gate(&gate(&keys, hourly, &fake)).await;
    for client in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
        assert_eq!(
            fetch(from(address, client, &unknown(&keys))).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = fetch(from(address, "2001:db8:1:2::77", &unknown(&keys))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "same /64");
    assert_eq!(refused.headers["retry-after"], "3000");
    assert_eq!(
        fetch(from(address, "2001:db8:1:3::1", &unknown(&keys)))
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "another /64"
    );

    let config = GateConfig::from_toml(
        "trusted_proxies = [\"127.0.0.1\"]\n\n[failed_keys]\nlimit = 0\n\n[[routes]]\nroute = \"POST /v1/track\"\n",
    )
    .unwrap();
    assert!(!config.key.failed_keys.is_on());
    // No keys of its own: every minted key is unknown to it.
    let gate = config.builder().unwrap().build().unwrap();
    let address = serve_gate(&gate).await;
    for _ in 0..50 {
        assert_eq!(
            fetch(from(address, "203.0.113.9", &unknown(&keys)))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let config = GateConfig::from_toml("[failed_keys]\nlimit = 5\nwindow = \"hour\"\n").unwrap();
    assert_eq!(config.key.failed_keys.limit, 5);
    assert!(GateConfig::from_toml("[failed_keys]\nlimits = 5\n").is_err());
}

/// At most `max_addresses` are tracked; finished windows make room.
#[tokio::test]
async fn the_budgets_state_is_bounded() {
    let keys = Keys::new();
    let fake = FakeClock::new();
    let budget = FailedKeyBudget {
        limit: 1,
        max_addresses: 2,
        ..FailedKeyBudget::default()
    };
    let address = serve_gate(&gate(&keys, budget, &fake)).await;
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let _ = fetch(from(address, client, &unknown(&keys))).await;
    }
    let status = |client: &'static str| {
        let key = unknown(&keys);
        async move { fetch(from(address, client, &key)).await.status }
    };
    assert_eq!(status("203.0.113.1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status("203.0.113.2").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        status("203.0.113.3").await,
        StatusCode::UNAUTHORIZED,
        "not tracked: full"
    );
    // A minute on, the finished windows are swept to make room.
    fake.advance(Duration::from_secs(60));
    let _ = status("203.0.113.3").await;
    assert_eq!(status("203.0.113.3").await, StatusCode::TOO_MANY_REQUESTS);
}
