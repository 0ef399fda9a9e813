//! Building a gate: from code, TOML and JSON, and every named mistake
//! giving an error that names the route and field.

use crate::common::*;
use http::StatusCode;
use tollgate::gate::{Gate, GateConfig, RoutePolicy};
use tollgate::key::{KeyHasher, KeyKind};
use tollgate::rate_limit::Quota;

fn builder() -> tollgate::gate::GateBuilder<
    tollgate::key::InMemoryKeyStore,
    tollgate::rate_limit::InMemoryRateStore,
> {
    Gate::builder(tollgate::key::InMemoryKeyStore::new())
        .route("GET /health", RoutePolicy::public())
}

#[test]
fn each_mistake_names_its_route_and_field() {
    let cases: Vec<(tollgate::gate::GateBuilder<_, _>, &str, &str)> = vec![
        (
            builder()
                .route("POST /v1/track", RoutePolicy::new())
                .route("POST  /v1/track", RoutePolicy::new()),
            "POST /v1/track",
            "route",
        ),
        (
            builder().route("FETCH /v1/track", RoutePolicy::new()),
            "FETCH /v1/track",
            "route",
        ),
        (
            builder().route("POST v1/track", RoutePolicy::new()),
            "POST v1/track",
            "route",
        ),
        (
            builder().route(
                "POST /v1/track",
                RoutePolicy::new().quota(Quota::per_second(0)),
            ),
            "POST /v1/track",
            "quotas",
        ),
        (
            builder().route(
                "POST /v1/track",
                RoutePolicy::new().quota(Quota::per_second(5).burst(0)),
            ),
            "POST /v1/track",
            "quotas",
        ),
        (
            builder().route(
                "POST /v1/track",
                RoutePolicy::new().quota(Quota::per_second(5)).cost(9),
            ),
            "POST /v1/track",
            "cost",
        ),
        (
            builder().route(
                "POST /v1/track",
                RoutePolicy::new().origins(["https://*.com"]),
            ),
            "POST /v1/track",
            "origins",
        ),
        (
            builder().route(
                "POST /v1/track",
                RoutePolicy::new().origins(["app.example.com"]),
            ),
            "POST /v1/track",
            "origins",
        ),
        (
            builder().route("GET /v1/stats", RoutePolicy::new().require_all(["Read"])),
            "GET /v1/stats",
            "scopes",
        ),
        (
            builder().route(
                "GET /v1/stats",
                RoutePolicy::new().require_any(["people.*"]),
            ),
            "GET /v1/stats",
            "scopes",
        ),
        (
            // Codes are printable ASCII without spaces.
            builder().route("POST /v1/forget", RoutePolicy::new().kind_code("Forget Me")),
            "POST /v1/forget",
            "kind_code",
        ),
        (
            builder().route("POST /v1/forget", RoutePolicy::new().kinds([])),
            "POST /v1/forget",
            "kinds",
        ),
        (
            builder().defaults(RoutePolicy::new().quota(Quota::per_minute(0))),
            "default",
            "quotas",
        ),
    ];
    for (builder, route, field) in cases {
        let error = builder.build().unwrap_err();
        assert_eq!(
            (error.route(), error.field()),
            (Some(route), field),
            "{error}"
        );
        assert!(error.to_string().contains(route), "{error}");
    }
    let error = "10.0.0.0/99"
        .parse::<tollgate::rate_limit::IpNet>()
        .unwrap_err();
    assert_eq!(error.field(), "trusted_proxies");
}

const TOML: &str = r#"
pepper = "config pepper"
errors = "json"

[defaults]
body_limit = 1024
quotas = [{ rate = 100, per = "minute" }]

[[keys]]
name = "browser"
key = "pk_test_5KKxTly3pxMVTmq2EZMT7IEnH759jAgC1269cG"
project = "demo"
origins = ["https://app.example.com"]

[[keys]]
name = "server"
digest = "DIGEST"
kind = "secret"
project = "demo"

[[routes]]
route = "GET /health"
public = true

[[routes]]
route = "POST /v1/track"
scopes = ["ingest"]
quotas = [{ rate = 1, per = "second", burst = 2, name = "burst" }, { rate = 100000, per = "day" }]
body_limit = 16
"#;

fn json() -> String {
    serde_json::json!({
        "pepper": "config pepper",
        "defaults": { "body_limit": 1024, "quotas": [{ "rate": 100, "per": "minute" }] },
        "keys": [
            { "name": "browser", "key": "pk_test_5KKxTly3pxMVTmq2EZMT7IEnH759jAgC1269cG", "project": "demo", "origins": ["https://app.example.com"] },
            { "name": "server", "digest": "DIGEST", "kind": "secret", "project": "demo" }
        ],
        "routes": [
            { "route": "GET /health", "public": true },
            { "route": "POST /v1/track", "scopes": ["ingest"], "body_limit": 16,
              "quotas": [{ "rate": 1, "per": "second", "burst": 2, "name": "burst" }, { "rate": 100000, "per": "day" }] }
        ]
    })
    .to_string()
}

const SERVER_KEY: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";

#[tokio::test]
async fn toml_and_json_describe_the_same_gate() {
    let digest = KeyHasher::with_pepper(b"config pepper")
        .digest(SERVER_KEY)
        .to_hex();
    let from_toml = GateConfig::from_toml(&TOML.replace("DIGEST", &digest)).unwrap();
    let from_json = GateConfig::from_json(&json().replace("DIGEST", &digest)).unwrap();
    assert_eq!(from_toml, from_json);

    for config in [from_toml, from_json] {
        let gate = config.build().unwrap();
        let service = tower::ServiceBuilder::new()
            .layer(gate.layer())
            .service(limited_handler());
        let track = |key: &str, origin: Option<&str>| {
            let mut builder = http::Request::post("/v1/track").header("x-api-key", key);
            if let Some(origin) = origin {
                builder = builder.header("origin", origin);
            }
            empty(builder)
        };
        let answer = send(service.clone(), track(SERVER_KEY, None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(
            answer.headers["ratelimit-policy"],
            r#""burst";q=2;w=2, "POST /v1/track#2";q=100000;w=86400"#
        );
        let answer = send(
            service.clone(),
            track(
                "pk_test_5KKxTly3pxMVTmq2EZMT7IEnH759jAgC1269cG",
                Some("https://app.example.com"),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            send(service.clone(), track(SERVER_KEY, None)).await.code(),
            "rate_limited"
        );
        let answer = send(service.clone(), empty(http::Request::get("/health"))).await;
        assert_eq!(answer.status, StatusCode::OK);
        // A fresh gate from the same config: the body cap (checked after the
        // rate limit, which the requests above used up).
        let service = tower::ServiceBuilder::new()
            .layer(config.build().unwrap().layer())
            .service(limited_handler());
        let oversized = http::Request::post("/v1/track")
            .header("x-api-key", SERVER_KEY)
            .header("content-length", "17")
            .body(http_body_util::Full::new(bytes::Bytes::from(vec![0; 17])))
            .unwrap();
        assert_eq!(send(service, oversized).await.code(), "payload_too_large");
    }
}

fn limited_handler() -> impl tower::Service<
    http::Request<tollgate::body_limit::LimitedBody<http_body_util::Full<bytes::Bytes>>>,
    Response = http::Response<http_body_util::Full<bytes::Bytes>>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(|_| async {
        Ok(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(b"{}"),
        )))
    })
}

#[test]
fn config_mistakes_are_named() {
    let cases = [
        ("pepper = 1", "config"),
        ("unknown_setting = true", "config"),
        ("[[routes]]\npublic = true", "routes[0].route"),
        (
            "[[keys]]\nname = \"a\"\nkey = \"sk_test_garbage\"\nproject = \"p\"",
            "keys.a.key",
        ),
        ("[[keys]]\nname = \"a\"\nproject = \"p\"", "keys.a.key"),
        (
            "[[keys]]\nname = \"a\"\ndigest = \"00\"\nkind = \"secret\"\nproject = \"p\"",
            "keys.a.digest",
        ),
        (
            "[[keys]]\nname = \"a\"\ndigest = \"0000000000000000000000000000000000000000000000000000000000000000\"\nproject = \"p\"",
            "keys.a.kind",
        ),
        (
            "[[keys]]\nname = \"a\"\nkey = \"sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad\"\nproject = \"p\"\nexpires_at = \"tomorrow\"",
            "keys.a.expires_at",
        ),
        (
            "[[keys]]\nname = \"a\"\nkey = \"sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad\"\nproject = \"p\"\norigins = [\"*\"]",
            "keys.a.origins",
        ),
        (
            "pepper_env = \"TOLLGATE_TEST_PEPPER_THAT_IS_NOT_SET\"",
            "pepper_env",
        ),
        ("request_id_header = \"bad header\"", "request_id_header"),
        (
            "[[routes]]\nroute = \"GET /x\"\nscopes = [\"a\"]\nany_scopes = [\"b\"]",
            "scopes",
        ),
    ];
    for (text, field) in cases {
        let error = GateConfig::from_toml(text)
            .and_then(|config| config.build().map(|_| ()))
            .unwrap_err();
        assert_eq!(error.field(), field, "{text}: {error}");
    }
    // A TOML syntax error says where.
    let error = GateConfig::from_toml("routes = [").unwrap_err();
    assert!(error.reason().contains("line 1"), "{error}");
    // Expiry dates in either form.
    let config = GateConfig::from_toml("[[keys]]\nname = \"a\"\nkey = \"sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad\"\nproject = \"p\"\nexpires_at = \"2001-09-09T01:46:40Z\"").unwrap();
    let store = config
        .key_store(&KeyHasher::new(), &tollgate::key::format::KeyParser::new())
        .unwrap();
    let record = store
        .get(&KeyHasher::new().digest("sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad"))
        .unwrap();
    assert_eq!(
        record.expires_at(),
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
    );
    assert_eq!(record.kind(), KeyKind::Secret);
}

#[test]
fn how_many_verified_keys_to_remember_is_a_setting() {
    let config = GateConfig::from_toml("verified_keys = 0\n").unwrap();
    assert_eq!(config.key.verified_keys, 0);
    assert_eq!(
        GateConfig::from_toml("").unwrap().key.verified_keys,
        65_536,
        "the documented default"
    );
    let error = GateConfig::from_toml("verified_keys = \"many\"\n").unwrap_err();
    assert!(error.to_string().contains("verified_keys"), "{error}");
}
