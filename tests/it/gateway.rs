//! The demo gateway's router on 127.0.0.1:0, walked through every row of the
//! error catalogue with a real HTTP client.

#[path = "../../examples/gateway/app.rs"]
#[allow(dead_code, unreachable_pub)]
mod app;

use std::convert::Infallible;

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tollgate::error::ErrorCode;
use tollgate::gate::GateConfig;
use tollgate::key::{KeyHasher, KeyKind, KeyRecord};
use tower::util::BoxCloneService;

const BROWSER: &str = "pk_test_5KKxTly3pxMVTmq2EZMT7IEnH759jAgC1269cG";
const SERVER: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";
const READER: &str = "rk_test_ezbaRNtzoDWDwnCYuIR9Qk215rLXeDxz490h8M";
const REVOKED: &str = "sk_test_1CvGWbhqctkcFqLZwhmhoI8Wgi4okFtm4P9VIq";
const EXPIRED: &str = "sk_test_F37s7nQvVCTAKrk3wuVKAnKIJ5mu1VoU2rlHlu";
const OTHER: &str = "sk_test_qpLeBOjEgCI5CCdTtUEbbw7VWLxfGZBB0jVwJV";

fn config() -> GateConfig {
    GateConfig::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gateway.toml"
    ))
    .unwrap()
}

async fn start() -> (
    std::net::SocketAddr,
    tollgate::gate::Gate<tollgate::key::InMemoryKeyStore>,
) {
    let gate = config().build().unwrap();
    let app = app::app(&gate, app::handlers(gate.renderer().clone()));
    (serve(app).await, gate)
}

/// A client on the gateway that keeps everything it was answered.
struct Client(std::net::SocketAddr, std::sync::Mutex<String>);

impl Client {
    fn new(address: std::net::SocketAddr) -> Self {
        Self(address, Default::default())
    }

    /// Every status line, header and body answered so far.
    fn seen(&self) -> String {
        self.1.lock().unwrap().clone()
    }

    fn request(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.0))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        origin: Option<&str>,
    ) -> Answer {
        let mut builder = self.request(method, path);
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        let answer = fetch(builder.body(Full::default()).unwrap()).await;
        let mut seen = self.1.lock().unwrap();
        seen.push_str(&format!("{} {:?} ", answer.status, answer.headers));
        seen.push_str(&String::from_utf8_lossy(&answer.raw));
        drop(seen);
        answer
    }
}

fn expect(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{code}: {}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    let catalogued = ErrorCode::CATALOGUE.iter().find(|c| c.as_str() == code);
    if let Some(catalogued) = catalogued {
        assert_eq!(answer.body["error"]["status"], catalogued.status().as_u16());
        assert_eq!(
            answer.body["error"]["category"],
            catalogued.category().as_str()
        );
    }
    assert_eq!(answer.headers["content-type"], "application/json");
}

#[tokio::test]
async fn every_row_of_the_error_table() {
    // The server runs on this thread, so its logs are captured too.
    let (logs, _guard) = Logs::capture();
    let (address, gate) = start().await;
    let client = Client::new(address);

    // Allowed calls, for contrast.
    let ok = client.call("POST", "/v1/track", Some(SERVER), None).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);
    assert_eq!(
        ok.body["caller"],
        serde_json::json!({ "project": "demo", "key_id": "server", "kind": "secret" })
    );
    assert_eq!(
        client
            .call(
                "POST",
                "/v1/track",
                Some(BROWSER),
                Some("https://shop.example.org")
            )
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        client.call("GET", "/health", None, None).await.status,
        StatusCode::OK
    );

    expect(
        &client.call("POST", "/v1/track", None, None).await,
        401,
        "missing_api_key",
    );
    expect(
        &client
            .call(
                "POST",
                "/v1/track",
                Some("sk_test_not_a_real_key_at_all"),
                None,
            )
            .await,
        401,
        "malformed_api_key",
    );
    let unknown = KeyHasher::new().mint(KeyKind::Secret, None).unwrap();
    expect(
        &client
            .call("POST", "/v1/track", Some(unknown.key()), None)
            .await,
        401,
        "invalid_api_key",
    );
    expect(
        &client.call("POST", "/v1/track", Some(REVOKED), None).await,
        401,
        "invalid_api_key",
    );
    expect(
        &client.call("POST", "/v1/track", Some(EXPIRED), None).await,
        401,
        "expired_api_key",
    );

    // A record stored with another kind than its key's prefix says.
    let hasher = config().hasher().unwrap();
    let mismatched = hasher.mint(KeyKind::Secret, None).unwrap();
    gate.key_store().insert(
        mismatched.digest(),
        KeyRecord::new("mismatched", "demo", KeyKind::Restricted),
    );
    expect(
        &client
            .call("GET", "/v1/stats", Some(mismatched.key()), None)
            .await,
        401,
        "key_kind_mismatch",
    );

    let refused = client
        .call(
            "POST",
            "/v1/track",
            Some(BROWSER),
            Some("https://evil.example.com"),
        )
        .await;
    expect(&refused, 403, "origin_not_allowed");
    assert_eq!(
        refused.body["error"]["details"]["origin"],
        "https://evil.example.com"
    );
    assert_eq!(
        refused.headers["access-control-allow-origin"], "https://evil.example.com",
        "browser code can read the error"
    );
    expect(
        &client.call("POST", "/v1/track", Some(BROWSER), None).await,
        403,
        "origin_not_allowed",
    );

    let scope = client.call("POST", "/v1/track", Some(READER), None).await;
    expect(&scope, 403, "insufficient_scope");
    assert_eq!(
        scope.body["error"]["details"]["required"],
        serde_json::json!(["ingest"])
    );

    expect(
        &client.call("GET", "/v1/export", Some(READER), None).await,
        403,
        "key_kind_not_allowed",
    );
    expect(
        &client.call("POST", "/v1/forget", Some(READER), None).await,
        403,
        "forget_requires_secret_key",
    );
    assert_eq!(
        client
            .call("POST", "/v1/forget", Some(OTHER), None)
            .await
            .status,
        StatusCode::ACCEPTED
    );

    expect(
        &client.call("GET", "/v1/admin", Some(READER), None).await,
        404,
        "not_found",
    );
    assert_eq!(
        client
            .call("GET", "/v1/admin", Some(SERVER), None)
            .await
            .status,
        StatusCode::OK
    );

    // GET /v1/stats: 20 a minute, per project. The project `other` is not affected.
    let mut statuses = Vec::new();
    for _ in 0..21 {
        statuses.push(
            client
                .call("GET", "/v1/stats", Some(SERVER), None)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        20,
        "{statuses:?}"
    );
    let limited = client.call("GET", "/v1/stats", Some(SERVER), None).await;
    expect(&limited, 429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(limited.body["error"]["details"]["policy"], "GET /v1/stats");
    assert_eq!(
        client
            .call("GET", "/v1/stats", Some(OTHER), None)
            .await
            .status,
        StatusCode::OK
    );

    let big = client
        .request("POST", "/v1/track")
        .header("x-api-key", SERVER)
        .body(Full::new(Bytes::from(vec![b'x'; 9000])))
        .unwrap();
    let too_large = fetch(big).await;
    expect(&too_large, 413, "payload_too_large");
    assert_eq!(too_large.body["error"]["details"]["limit_bytes"], 8192);
    let chunked = client
        .request("POST", "/v1/track")
        .header("x-api-key", SERVER)
        .body(Chunks::new(9, 1000))
        .unwrap();
    let client_chunked =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Chunks>();
    let response = client_chunked.request(chunked).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Across the whole table: no key, digest or pepper in any answer, log
    // line, or `Debug` of the config and the gate.
    let text = logs.text();
    assert!(text.contains("request rejected"), "{text}");
    let config = config();
    let everything = format!("{} {text} {config:?} {gate:?}", client.seen());
    let hasher = config.hasher().unwrap();
    let pepper = config.pepper.as_deref().unwrap();
    assert!(!everything.contains(pepper), "pepper leaked");
    for key in [BROWSER, SERVER, READER, REVOKED, EXPIRED, OTHER] {
        assert!(!everything.contains(&key[8..]), "key leaked: {key}");
        let digest = hasher.digest(key).to_hex();
        assert!(
            !everything.contains(&digest[..16]),
            "digest of {key} leaked"
        );
    }
}

/// A store that cannot answer.
#[derive(Clone)]
struct DownStore;

impl tollgate::key::store::KeyStore for DownStore {
    type Lookup = std::future::Ready<tollgate::key::store::LookupResult>;
    fn lookup(
        &self,
        _: &tollgate::key::KeyDigest,
    ) -> tollgate::Answer<tollgate::key::store::LookupResult, Self::Lookup> {
        tollgate::Answer::Ready(Err(tollgate::error::StoreError::new(
            "the key database is down",
        )))
    }
}

#[tokio::test]
async fn upstream_failed_when_the_key_store_is_down() {
    let gate = config()
        .builder()
        .unwrap()
        .key_store(DownStore)
        .build()
        .unwrap();
    let address = serve(app::app(&gate, app::handlers(gate.renderer().clone()))).await;
    let answer = Client::new(address)
        .call("POST", "/v1/track", Some(SERVER), None)
        .await;
    expect(&answer, 502, "upstream_failed");
    assert!(!answer.body.to_string().contains("database"));
}

#[tokio::test]
async fn internal_error_when_a_handler_panics() {
    let gate = config().build().unwrap();
    let panicking: app::Handlers =
        BoxCloneService::new(tower::service_fn(|_: app::GatedRequest| async {
            if true {
                panic!("a bug with a secret detail");
            }
            Ok::<Response<Full<Bytes>>, Infallible>(Response::new(Full::default()))
        }));
    let address = serve(app::app(&gate, panicking)).await;
    let answer = Client::new(address)
        .call("GET", "/v1/stats", Some(SERVER), None)
        .await;
    expect(&answer, 500, "internal_error");
    assert!(!answer.body.to_string().contains("secret detail"));
    assert!(answer.body["error"].get("details").is_none());
}

#[tokio::test]
async fn the_config_names_the_issue_keys_and_routes() {
    let config = config();
    let names: Vec<&str> = config.keys.iter().map(|key| key.name.as_str()).collect();
    assert_eq!(
        names,
        ["browser", "server", "reader", "revoked", "expired", "other"]
    );
    let gate = config.build().unwrap();
    for route in [
        "GET /health",
        "POST /v1/track",
        "POST /v1/batch",
        "GET /v1/stats",
        "POST /v1/forget",
    ] {
        assert!(gate.routes().get(route).is_some(), "{route}");
    }
}

/// The comma-separated names of a CORS header, lower-cased and sorted.
fn names(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.to_str().unwrap().split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn cors_is_derived_from_the_gate_settings() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gateway.toml"
    ))
    .unwrap();
    let cases: [(&str, &[&str]); 4] = [
        ("draft", &["ratelimit", "ratelimit-policy", "retry-after"]),
        (
            "legacy",
            &[
                "retry-after",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
            ],
        ),
        (
            "both",
            &[
                "ratelimit",
                "ratelimit-policy",
                "retry-after",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
            ],
        ),
        ("none", &["retry-after"]),
    ];
    for (mode, exposed) in cases {
        let text = text.replace(
            "rate_limit_headers = \"draft\"",
            &format!("rate_limit_headers = \"{mode}\"\nrequest_id_header = \"x-correlation-id\""),
        );
        // A stopped clock: the 21st request on the burst-20 route is refused.
        let clock = tollgate::clock::FakeClock::new();
        let gate = GateConfig::from_toml(&text)
            .unwrap()
            .builder()
            .unwrap()
            .clock(clock.clock())
            .build()
            .unwrap();
        let address = serve(app::app(&gate, app::handlers(gate.renderer().clone()))).await;
        let client = Client::new(address);

        // The preflight a browser sends before a JSON POST with a key, a
        // request id and the tracing SDKs' headers.
        let wanted = "authorization,content-type,traceparent,tracestate,baggage,sentry-trace,x-correlation-id,x-api-key";
        let preflight = fetch(
            client
                .request("OPTIONS", "/v1/track")
                .header("origin", "http://localhost:3000")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", wanted)
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(preflight.status, 200, "{mode}");
        assert_eq!(preflight.headers["access-control-max-age"], "600", "{mode}");
        let allowed = names(&preflight.headers, "access-control-allow-headers");
        for name in wanted.split(',') {
            assert!(
                allowed.contains(&name.to_string()),
                "{mode}: {name} in {allowed:?}"
            );
        }

        // Admitted and refused, the response exposes exactly what the mode sends.
        let mut sent = std::collections::BTreeSet::new();
        let mut statuses = Vec::new();
        for _ in 0..21 {
            let answer = fetch(
                client
                    .request("POST", "/v1/batch")
                    .header("origin", "http://localhost:3000")
                    .header("authorization", format!("Bearer {SERVER}"))
                    .body(Full::from("[]"))
                    .unwrap(),
            )
            .await;
            assert_eq!(
                names(&answer.headers, "access-control-expose-headers"),
                exposed,
                "{mode}"
            );
            statuses.push(answer.status.as_u16());
            for name in answer.headers.keys() {
                if name.as_str().contains("ratelimit") || name == "retry-after" {
                    sent.insert(name.as_str().to_string());
                }
            }
        }
        assert_eq!(statuses[19..], [202, 429], "{mode}");
        assert_eq!(
            sent.into_iter().collect::<Vec<_>>(),
            exposed,
            "{mode}: sent"
        );
    }
}
