//! Costs decided by the response: a batch handler charging per item (into
//! debt on the last token), `2xx`-only counting refunding a `500`, and
//! `401`-only counting per address on a public route. From configuration
//! files and the builder, over real sockets, on a fake clock.

use std::convert::Infallible;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tollgate::body_limit::LimitedBody;
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, RoutePolicy};
use tollgate::key::InMemoryKeyStore;
use tollgate::rate_limit::{Cost, Counted, IpNet, Quota};
use tower::ServiceBuilder;

const SERVER_KEY: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";
const CONFIG: &str = r#"
pepper = "demo pepper: in production, use pepper_env and a secret manager"
trusted_proxies = ["127.0.0.1"]

[[keys]]
name = "server"
key = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad"
project = "demo"

# A batch costs what the handler says it accepted.
[[routes]]
route = "POST /v1/batch"
quotas = [{ rate = 1, per = "minute", burst = 100 }]
cost_from_response = true

# Only what the handler accepted counts.
[[routes]]
route = "POST /v1/track"
quotas = [{ rate = 1, per = "minute", burst = 3 }]
count = "2xx"

# Only failed logins count, per address (a public route).
[[routes]]
route = "POST /v1/login"
public = true
quotas = [{ rate = 1, per = "minute", burst = 3 }]
count = ["401"]
"#;

/// The app: `x-events: N` → 202 costing N; `x-status: S` → status S.
async fn serve_gate(gate: &Gate<InMemoryKeyStore>) -> std::net::SocketAddr {
    let service = ServiceBuilder::new().layer(gate.layer()).service_fn(
        |request: Request<LimitedBody<hyper::body::Incoming>>| async move {
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok())
            };
            let mut response = Response::new(Full::new(Bytes::new()));
            if let Some(events) = header("x-events") {
                *response.status_mut() = StatusCode::ACCEPTED;
                response.extensions_mut().insert(Cost(events));
            }
            if let Some(status) = header("x-status") {
                *response.status_mut() = StatusCode::from_u16(status as u16).unwrap();
            }
            Ok::<_, Infallible>(response)
        },
    );
    serve(service).await
}

fn call(address: std::net::SocketAddr, path: &str, header: (&str, String)) -> TestRequest {
    empty(
        Request::post(format!("http://{address}{path}"))
            .header("authorization", format!("Bearer {SERVER_KEY}"))
            .header(header.0, header.1),
    )
}

fn remaining(answer: &Answer) -> u64 {
    answer.remaining()
}

fn gate_from_config(fake: &FakeClock) -> Gate<InMemoryKeyStore> {
    GateConfig::from_toml(CONFIG)
        .unwrap()
        .builder()
        .unwrap()
        .clock(fake.clock())
        .build()
        .unwrap()
}

/// A batch of 37 costs 37: the response says so, the next request sees it.
/// A batch admitted on the bucket's last tokens whose response costs more
/// leaves it in debt: refused until the debt has refilled, and
/// `Retry-After` says how long.
#[tokio::test]
async fn a_batch_costs_what_its_response_says_and_may_leave_debt() {
    let fake = FakeClock::new();
    let address = serve_gate(&gate_from_config(&fake)).await;
    let batch = |events: u64| call(address, "/v1/batch", ("x-events", events.to_string()));

    let first = fetch(batch(37)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(remaining(&first), 99, "taken when admitted: 1");
    let second = fetch(batch(1)).await;
    assert_eq!(
        remaining(&second),
        62,
        "100 - 37 - 1: the batch was settled"
    );
    // 62 left; a batch of 70 is admitted (it takes 1 when admitted) and
    // leaves the bucket 8 tokens in debt.
    assert_eq!(fetch(batch(70)).await.status, StatusCode::ACCEPTED);
    let refused = fetch(batch(1)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.headers["retry-after"], "540",
        "9 minutes: 8 owed, 1 to take"
    );
    fake.advance(Duration::from_secs(539));
    assert_eq!(fetch(batch(1)).await.status, StatusCode::TOO_MANY_REQUESTS);
    fake.advance(Duration::from_secs(1));
    assert_eq!(fetch(batch(1)).await.status, StatusCode::ACCEPTED);
    // A response without a cost costs the route's cost: two minutes give
    // two tokens, the plain request takes one, a batch of 1 the other.
    fake.advance(Duration::from_secs(120));
    let plain = fetch(call(address, "/v1/batch", ("x-none", String::new()))).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(remaining(&plain), 1);
    assert_eq!(remaining(&fetch(batch(1)).await), 0);
    assert_eq!(fetch(batch(1)).await.status, StatusCode::TOO_MANY_REQUESTS);
}

/// `count = "2xx"`: a `500` is given back, a `200` is not.
#[tokio::test]
async fn counting_only_2xx_refunds_what_the_handler_refused() {
    let fake = FakeClock::new();
    let address = serve_gate(&gate_from_config(&fake)).await;
    let track = |status: u16| call(address, "/v1/track", ("x-status", status.to_string()));
    for _ in 0..10 {
        let failed = fetch(track(500)).await;
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(fetch(track(200)).await.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "three of the burst of 3 left"
    );
}

/// `count = ["401"]` on a public route (partitioned by address): three
/// failed logins spend an address's budget, successful ones do not, and
/// another address is untouched. Also from the builder.
#[tokio::test]
async fn counting_only_401_limits_failed_logins_per_address() {
    let fake = FakeClock::new();
    let from_config = gate_from_config(&fake);
    let keys = Keys::new();
    let from_builder = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .clock(fake.clock())
        .trusted_proxies([IpNet::parse("127.0.0.1").unwrap()])
        .route(
            "POST /v1/login",
            RoutePolicy::public()
                .quota(Quota::per_minute(1).burst(3))
                .count(Counted::of(["401"]).unwrap()),
        )
        .build()
        .unwrap();
    for gate in [from_config, from_builder] {
        let address = serve_gate(&gate).await;
        let login = |client: &str, status: u16| {
            empty(
                Request::post(format!("http://{address}/v1/login"))
                    .header("x-forwarded-for", client)
                    .header("x-status", status.to_string()),
            )
        };
        for _ in 0..5 {
            assert_eq!(
                fetch(login("203.0.113.5", 200)).await.status,
                StatusCode::OK
            );
        }
        for _ in 0..3 {
            assert_eq!(
                fetch(login("203.0.113.5", 401)).await.status,
                StatusCode::UNAUTHORIZED
            );
        }
        let refused = fetch(login("203.0.113.5", 200)).await;
        assert_eq!(
            refused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "even a right password"
        );
        assert_eq!(
            fetch(login("198.51.100.9", 401)).await.status,
            StatusCode::UNAUTHORIZED
        );
        fake.advance(Duration::from_secs(60));
        assert_eq!(
            fetch(login("203.0.113.5", 200)).await.status,
            StatusCode::OK
        );
        fake.advance(Duration::from_secs(180));
    }
}

/// Mistakes in the new settings are named at start-up.
#[test]
fn response_cost_mistakes_are_named() {
    for (setting, says) in [
        ("count = \"2x\"", "not a status"),
        ("count = []", "at least one status"),
        (
            "tiers = { pro = { count = \"2xx\" } }",
            "unknown field `count`",
        ),
    ] {
        let text = format!(
            "[[routes]]\nroute = \"POST /v1/track\"\nquotas = [{{ rate = 1, per = \"second\" }}]\n{setting}\n"
        );
        let error = match GateConfig::from_toml(&text) {
            Err(error) => error.to_string(),
            Ok(config) => match config.build() {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{setting} was accepted"),
            },
        };
        assert!(error.contains(says), "{setting}: {error}");
    }
}
