//! Speaking an existing API's contract: credential sources, optional
//! authentication, key statuses, origin kinds — each through a real server
//! on 127.0.0.1 with a real client, built once from TOML and once with the
//! builder, and held to the same answers.

use crate::common::fixture::*;
use crate::common::*;
use http::{HeaderName, Request, StatusCode};
use serde_json::Value;
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, RoutePolicy};
use tollgate::key::{CredentialSource, InMemoryKeyStore, KeyEnv, KeyKind, KeyStatus, MintedKey};
use tollgate::origin::MissingOrigin;
use tollgate::rate_limit::Quota;

// ---------------------------------------------------------------------------
// 1. Credential sources

const SOURCES_TOML: &str = r#"
credential_header = "X-Auth-Token"
credentials = ["bearer"]
query_parameter = "key"

[[routes]]
route = "GET /bearer"

[[routes]]
route = "GET /header"
credentials = ["header"]

[[routes]]
route = "GET /beacon"
credentials = ["query"]
missing_origin = "allow"
"#;

fn sources_builder(keys: &TestKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(clock.clock())
        .credential_header(HeaderName::from_static("x-auth-token"))
        .credentials([CredentialSource::Bearer])
        .query_parameter("key")
        .route("GET /bearer", RoutePolicy::new())
        .route(
            "GET /header",
            RoutePolicy::new().credentials([CredentialSource::Header]),
        )
        .route(
            "GET /beacon",
            RoutePolicy::new()
                .credentials([CredentialSource::Query])
                .missing_origin(MissingOrigin::Allow),
        )
        .build()
        .unwrap()
}

async fn sources_hold(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys) {
    let client = Client(start(gate).await);
    let (auth, value) = bearer(&keys.secret);
    let sk = keys.secret.key();
    let token = HeaderName::from_static("x-auth-token");

    assert_eq!(
        caller(
            &client
                .send(client.get("/bearer").header(&auth, &value))
                .await
        ),
        "sk"
    );
    // A key in a place the route does not read is not seen.
    let elsewhere = client.send(client.get("/bearer").header(&token, sk)).await;
    expect(&elsewhere, 401, "missing_api_key");
    assert_eq!(
        elsewhere.body["error"]["message"],
        "No API key was provided. Send it as `Authorization: Bearer <key>`."
    );
    expect(
        &client
            .send(client.get("/bearer").header("x-api-key", sk))
            .await,
        401,
        "missing_api_key",
    );

    assert_eq!(
        caller(&client.send(client.get("/header").header(&token, sk)).await),
        "sk"
    );
    for (name, value) in [
        (auth.clone(), value.clone()),
        (HeaderName::from_static("x-api-key"), sk.to_owned()),
    ] {
        let answer = client.send(client.get("/header").header(name, value)).await;
        expect(&answer, 401, "missing_api_key");
        assert_eq!(
            answer.body["error"]["message"],
            "No API key was provided. Send it in the `x-auth-token` header."
        );
    }

    let pk = keys.publishable.key();
    assert_eq!(
        caller(&client.send(client.get(&format!("/beacon?key={pk}"))).await),
        "pk"
    );
    expect(
        &client
            .send(client.get("/beacon").header(&auth, format!("Bearer {pk}")))
            .await,
        401,
        "missing_api_key",
    );
    // Only publishable keys in the query, as before.
    expect(
        &client.send(client.get(&format!("/beacon?key={sk}"))).await,
        401,
        "malformed_api_key",
    );

    let mut names: Vec<String> = gate
        .request_header_names()
        .iter()
        .map(|name| name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["authorization", "x-auth-token", "x-request-id"]);
}

#[tokio::test]
async fn credential_sources_per_route() {
    let keys = TestKeys::new();
    let clock = FakeClock::new();
    sources_hold(&from_toml(&keys, SOURCES_TOML, &clock), &keys).await;
    sources_hold(&sources_builder(&keys, &clock), &keys).await;
}

#[test]
fn credential_mistakes_are_named_at_start_up() {
    let cases = [
        (
            "[[routes]]\nroute = \"GET /a\"\ncredentials = []",
            "GET /a",
            "credentials",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\ncredentials = [\"query\"]",
            "GET /a",
            "query_parameter",
        ),
        (
            "credential_header = \"not a header\"",
            "credential_header",
            "header name",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\ncredentials = [\"cookie\"]",
            "credentials",
            "cookie",
        ),
    ];
    refused_at_start_up(&cases);
}

// ---------------------------------------------------------------------------
// 2. Optional authentication

const ANONYMOUS_TOML: &str = r#"
[[routes]]
route = "GET /feed"
anonymous = true
quotas = [{ rate = 1, per = "minute", burst = 2 }]

[[routes]]
route = "GET /admin-feed"
anonymous = true
scopes = ["admin"]
"#;

fn anonymous_builder(keys: &TestKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(clock.clock())
        .route(
            "GET /feed",
            RoutePolicy::new()
                .anonymous(true)
                .quota(Quota::per_minute(1).burst(2)),
        )
        .route(
            "GET /admin-feed",
            RoutePolicy::new().anonymous(true).require_all(["admin"]),
        )
        .build()
        .unwrap()
}

async fn anonymous_holds(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys) {
    let client = Client(start(gate).await);
    let (auth, value) = bearer(&keys.secret);

    // No key: passes with no principal, limited by client address.
    for _ in 0..2 {
        let answer = client.send(client.get("/feed")).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body["principal"], Value::Null);
    }
    expect(&client.send(client.get("/feed")).await, 429, "rate_limited");
    // A key draws from its project's bucket, not the address's.
    assert_eq!(
        caller(&client.send(client.get("/feed").header(&auth, &value)).await),
        "sk"
    );
    // A key that is presented is judged in full.
    let unknown = hasher().mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
    expect(
        &client
            .send(
                client
                    .get("/feed")
                    .header(&auth, format!("Bearer {}", unknown.key())),
            )
            .await,
        401,
        "invalid_api_key",
    );
    expect(
        &client
            .send(client.get("/feed").header(&auth, "Bearer sk_test_nope"))
            .await,
        401,
        "malformed_api_key",
    );
    expect(
        &client
            .send(
                client
                    .get("/feed")
                    .header(&auth, format!("Bearer {}", keys.revoked.key())),
            )
            .await,
        401,
        "invalid_api_key",
    );

    // Scopes bind keys, not anonymous callers.
    let answer = client.send(client.get("/admin-feed")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    expect(
        &client
            .send(
                client
                    .get("/admin-feed")
                    .header(&auth, format!("Bearer {}", keys.restricted.key())),
            )
            .await,
        403,
        "insufficient_scope",
    );
}

#[tokio::test]
async fn optional_authentication() {
    let keys = TestKeys::new();
    anonymous_holds(&from_toml(&keys, ANONYMOUS_TOML, &FakeClock::new()), &keys).await;
    anonymous_holds(&anonymous_builder(&keys, &FakeClock::new()), &keys).await;
}

// ---------------------------------------------------------------------------
// 3. Key statuses

async fn statuses_hold(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys, revoked_code: &str) {
    let client = Client(start(gate).await);
    let call = |key: &MintedKey| {
        client
            .get("/anything")
            .header("authorization", format!("Bearer {}", key.key()))
    };
    assert_eq!(caller(&client.send(call(&keys.secret)).await), "sk");
    expect(
        &client.send(call(&keys.disabled)).await,
        403,
        "key_disabled",
    );
    expect(&client.send(call(&keys.revoked)).await, 401, revoked_code);

    // Changed at run time in the store: the next request sees it.
    let store = gate.key_store();
    assert!(store.set_status(&keys.secret.digest(), KeyStatus::Disabled));
    expect(&client.send(call(&keys.secret)).await, 403, "key_disabled");
    assert!(store.set_status(&keys.disabled.digest(), KeyStatus::Active));
    assert_eq!(caller(&client.send(call(&keys.disabled)).await), "disabled");
    assert!(store.set_status(&keys.secret.digest(), KeyStatus::Active));
    assert_eq!(caller(&client.send(call(&keys.secret)).await), "sk");
    assert!(store.revoke(&keys.secret.digest()));
    expect(&client.send(call(&keys.secret)).await, 401, revoked_code);
}

#[tokio::test]
async fn key_statuses_have_their_own_answers() {
    let keys = TestKeys::new();
    let clock = FakeClock::new();
    // By default a revoked key looks like one that never existed.
    statuses_hold(&from_toml(&keys, "", &clock), &keys, "invalid_api_key").await;
    let built = Gate::builder(keys.store())
        .hasher(hasher())
        .build()
        .unwrap();
    statuses_hold(&built, &keys, "invalid_api_key").await;
    // Opted in: `revoked_api_key`.
    statuses_hold(
        &from_toml(&keys, "reveal_revoked = true", &clock),
        &keys,
        "revoked_api_key",
    )
    .await;
    let built = Gate::builder(keys.store())
        .hasher(hasher())
        .reveal_revoked(true)
        .build()
        .unwrap();
    statuses_hold(&built, &keys, "revoked_api_key").await;
}

// ---------------------------------------------------------------------------
// 10. origin_kinds in the config

async fn origin_kinds_hold(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys, secret_checked: bool) {
    let client = Client(start(gate).await);
    let from = |key: &MintedKey, origin: &str| {
        client
            .get("/anything")
            .header("authorization", format!("Bearer {}", key.key()))
            .header("origin", origin)
    };
    let answer = client
        .send(from(&keys.secret, "https://evil.example"))
        .await;
    if secret_checked {
        expect(&answer, 403, "origin_not_allowed");
    } else {
        assert_eq!(caller(&answer), "sk");
    }
    expect(
        &client
            .send(from(&keys.publishable, "https://evil.example"))
            .await,
        403,
        "origin_not_allowed",
    );
    assert_eq!(
        caller(
            &client
                .send(from(&keys.publishable, "https://app.acme.test"))
                .await
        ),
        "pk"
    );
}

#[tokio::test]
async fn origin_kinds_from_the_config() {
    let keys = TestKeys::new();
    let clock = FakeClock::new();
    origin_kinds_hold(&from_toml(&keys, "", &clock), &keys, false).await;
    origin_kinds_hold(
        &from_toml(
            &keys,
            "origin_kinds = [\"publishable\", \"secret\"]",
            &clock,
        ),
        &keys,
        true,
    )
    .await;
    let built = Gate::builder(keys.store())
        .hasher(hasher())
        .origin_kinds(
            [KeyKind::Publishable, KeyKind::Secret]
                .into_iter()
                .collect::<tollgate::key::KeyKinds>(),
        )
        .build()
        .unwrap();
    origin_kinds_hold(&built, &keys, true).await;
}

// ---------------------------------------------------------------------------
// 4. Codes in one place

const CODES_TOML: &str = r#"
[codes]
missing_api_key = "missing_bearer_token"
invalid_api_key = { code = "INVALID_TOKEN", status = 403 }
daily_quota_exceeded = { status = 403 }

[[routes]]
route = "POST /events"
scopes = ["ingest"]
scope_code = "events.scope_required"
body_limit = 16
body_limit_code = "event_too_large"
quotas = [
  { rate = 10, per = "second", burst = 3, name = "per_second", code = "too_many_per_second" },
  { rate = 4, per = "day", name = "daily", code = "daily_quota_exceeded" },
]

[[routes]]
route = "GET /browser"
origin_code = "origin_refused"
"#;

fn codes_builder(keys: &TestKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    let codes = tollgate::error::CodeMap::new()
        .rename("missing_api_key", "missing_bearer_token")
        .and_then(|codes| codes.rename("invalid_api_key", "INVALID_TOKEN"))
        .and_then(|codes| codes.status("invalid_api_key", StatusCode::FORBIDDEN))
        .and_then(|codes| codes.status("daily_quota_exceeded", StatusCode::FORBIDDEN))
        .unwrap();
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(clock.clock())
        .codes(codes)
        .route(
            "POST /events",
            RoutePolicy::new()
                .require_all(["ingest"])
                .scope_code("events.scope_required")
                .body_limit(16)
                .body_limit_code("event_too_large")
                .quotas([
                    Quota::per_second(10)
                        .burst(3)
                        .named("per_second")
                        .code("too_many_per_second"),
                    Quota::per_day(4)
                        .named("daily")
                        .code("daily_quota_exceeded"),
                ]),
        )
        .route(
            "GET /browser",
            RoutePolicy::new().origin_code("origin_refused"),
        )
        .build()
        .unwrap()
}

async fn codes_hold(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys, clock: &FakeClock) {
    let client = Client(start(gate).await);
    let post = |key: Option<&MintedKey>, body: &'static str| {
        let mut builder = Request::post(format!("http://{}/events", client.0));
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {}", key.key()));
        }
        builder.body(http_body_util::Full::from(body)).unwrap()
    };
    expect(&fetch(post(None, "{}")).await, 401, "missing_bearer_token");
    let unknown = hasher().mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
    expect(
        &fetch(post(Some(&unknown), "{}")).await,
        403,
        "INVALID_TOKEN",
    );
    let scope = fetch(post(Some(&keys.restricted), "{}")).await;
    expect(&scope, 403, "events.scope_required");
    assert_eq!(
        scope.body["error"]["details"]["required"],
        serde_json::json!(["ingest"])
    );
    let large = fetch(post(
        Some(&keys.secret),
        "this body is longer than sixteen bytes",
    ))
    .await;
    expect(&large, 413, "event_too_large");
    assert_eq!(large.headers["connection"], "close");

    // Each quota of the stack refuses with its own code. (The 413 above
    // took a token: the body cap comes after the rate limit.)
    for _ in 0..2 {
        assert_eq!(fetch(post(Some(&keys.secret), "{}")).await.status, 200);
    }
    let per_second = fetch(post(Some(&keys.secret), "{}")).await;
    expect(&per_second, 429, "too_many_per_second");
    assert_eq!(per_second.body["error"]["details"]["policy"], "per_second");
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(fetch(post(Some(&keys.secret), "{}")).await.status, 200);
    clock.advance(std::time::Duration::from_secs(1));
    let daily = fetch(post(Some(&keys.secret), "{}")).await;
    expect(&daily, 403, "daily_quota_exceeded");
    assert_eq!(daily.body["error"]["details"]["policy"], "daily");
    assert_eq!(daily.body["error"]["category"], "rate_limit");

    let origin = client
        .send(
            client
                .get("/browser")
                .header(
                    "authorization",
                    format!("Bearer {}", keys.publishable.key()),
                )
                .header("origin", "https://evil.example"),
        )
        .await;
    expect(&origin, 403, "origin_refused");
}

#[tokio::test]
async fn codes_are_renamed_and_every_rule_has_its_own() {
    let keys = TestKeys::new();
    let clock = FakeClock::new();
    codes_hold(&from_toml(&keys, CODES_TOML, &clock), &keys, &clock).await;
    let clock = FakeClock::new();
    codes_hold(&codes_builder(&keys, &clock), &keys, &clock).await;
}

#[test]
fn code_mistakes_are_named_at_start_up() {
    let cases = [
        ("[codes]\nnope = \"x\"", "codes.nope", "not a built-in code"),
        (
            "[codes]\nrate_limited = \"has space\"",
            "codes.rate_limited",
            "printable",
        ),
        (
            "[codes]\nrate_limited = { status = 200 }",
            "codes.rate_limited",
            "4xx or 5xx",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\nscope_code = \"has space\"",
            "GET /a",
            "scope_code",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\nbody_limit_code = \"payload_too_large\"",
            "body_limit_code",
            "built-in",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\nquotas = [{ rate = 1, per = \"second\", code = \"é\" }]",
            "GET /a",
            "quotas.code",
        ),
    ];
    refused_at_start_up(&cases);
}

// ---------------------------------------------------------------------------
// 5, 7, 8. Envelopes from a template, what the renderer sees, and handler
// errors in the same envelope

const ENVELOPE_TOML: &str = r#"
[codes]
not_found = "resource_missing"

[errors]
template = { error = { type = "{category}", code = "{code}", message = "{message}", status = "{status}", retry_after = "{details.retry_after}", details = "{details}", request_id = "{request_id}", key = "{key_id}", project = "{project}", kind = "{kind}", tier = "{tier}", rule = "{rule}", route = "{route}", method = "{method}", summary = "{status} {code} on {route}{tier}" } }
categories = { auth = "authentication_error", rate_limit = "rate_limit_error" }

[[routes]]
route = "GET /limited"
quotas = [{ rate = 1, per = "minute", burst = 1 }]

[[routes]]
route = "GET /problem"
errors = "problem"
scopes = ["admin"]

[[routes]]
route = "GET /orders/{id}"

[[routes]]
route = "GET /public-whoami"
public = true
"#;

fn envelope_builder(keys: &TestKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    let template = tollgate::render::Template::new(serde_json::json!({ "error": {
        "type": "{category}", "code": "{code}", "message": "{message}", "status": "{status}",
        "retry_after": "{details.retry_after}", "details": "{details}",
        "request_id": "{request_id}", "key": "{key_id}", "project": "{project}",
        "kind": "{kind}", "tier": "{tier}", "rule": "{rule}", "route": "{route}",
        "method": "{method}", "summary": "{status} {code} on {route}{tier}"
    }}))
    .unwrap()
    .category("auth", "authentication_error")
    .category("rate_limit", "rate_limit_error");
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(clock.clock())
        .renderer(tollgate::render::ErrorRenderer::new(template))
        .codes(
            tollgate::error::CodeMap::new()
                .rename("not_found", "resource_missing")
                .unwrap(),
        )
        .route(
            "GET /limited",
            RoutePolicy::new().quota(Quota::per_minute(1).burst(1)),
        )
        .route(
            "GET /problem",
            RoutePolicy::new()
                .errors(tollgate::render::ErrorFormat::Problem)
                .require_all(["admin"]),
        )
        .route("GET /orders/{id}", RoutePolicy::new())
        .route("GET /public-whoami", RoutePolicy::public())
        .build()
        .unwrap()
}

/// The demo's handlers as axum would have them: an order that is not
/// there is the handler's own `ApiError`; `/public-whoami` wants a
/// `Principal` a public route does not have.
async fn serve_router(gate: &Gate<InMemoryKeyStore>) -> std::net::SocketAddr {
    use axum::routing::get;
    use tollgate::error::{ApiError, ErrorCode};
    let router = axum::Router::new()
        .route("/limited", get(|| async { "ok" }))
        .route("/problem", get(|| async { "ok" }))
        .route(
            "/orders/{id}",
            get(|| async {
                Err::<(), _>(
                    ApiError::new(ErrorCode::NOT_FOUND, "No such order.")
                        .with_details(serde_json::json!({ "resource": "order" })),
                )
            }),
        )
        .route(
            "/public-whoami",
            get(|principal: tollgate::key::Principal| async move { principal.key_id().to_owned() }),
        )
        .layer(gate.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

async fn envelope_holds(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys) {
    let client = Client(serve_router(gate).await);
    let with_key = |path: &str, key: &MintedKey| {
        client
            .get(path)
            .header("authorization", format!("Bearer {}", key.key()))
            .header("x-request-id", "req-7")
    };

    // No key: absent values are left out, the rest keep their JSON types.
    let missing = client.send(client.get("/limited")).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.headers["content-type"], "application/json");
    assert_eq!(
        missing.body,
        serde_json::json!({ "error": {
            "type": "authentication_error", "code": "missing_api_key",
            "message": "No API key was provided. Send it as `Authorization: Bearer <key>` or in the `x-api-key` header.",
            "status": 401, "rule": "key", "route": "GET /limited", "method": "GET",
            "summary": "401 missing_api_key on GET /limited"
        }})
    );

    // Admitted, then refused by the quota: the caller and the details.
    assert_eq!(
        client.send(with_key("/limited", &keys.secret)).await.status,
        200
    );
    let limited = client.send(with_key("/limited", &keys.secret)).await;
    assert_eq!(limited.status, 429);
    let error = &limited.body["error"];
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(error["retry_after"], 60);
    assert_eq!(error["details"]["policy"], "GET /limited");
    assert_eq!(
        (&error["key"], &error["project"], &error["kind"]),
        (
            &Value::from("sk"),
            &Value::from("acme"),
            &Value::from("secret")
        )
    );
    assert_eq!(
        (&error["rule"], &error["request_id"]),
        (&Value::from("rate_limit"), &Value::from("req-7"))
    );
    assert!(error.get("tier").is_none(), "{error}");

    // A key the key check knows but refuses: its id, not a principal.
    let disabled = client.send(with_key("/limited", &keys.disabled)).await;
    assert_eq!(disabled.body["error"]["code"], "key_disabled");
    assert_eq!(disabled.body["error"]["key"], "disabled");
    assert!(disabled.body["error"].get("kind").is_none());

    // A route with its own envelope.
    let problem = client.send(with_key("/problem", &keys.restricted)).await;
    assert_eq!(problem.status, 403);
    assert_eq!(problem.headers["content-type"], "application/problem+json");
    assert_eq!(problem.body["code"], "insufficient_scope");
    assert_eq!(problem.body["request_id"], "req-7");

    // The handler's own error, and the extractor's rejection: the gate's
    // envelope, codes and request id.
    let order = client.send(with_key("/orders/42", &keys.secret)).await;
    assert_eq!(order.status, 404);
    assert_eq!(
        order.body,
        serde_json::json!({ "error": {
            "type": "authentication_error", "code": "resource_missing",
            "message": "No such order.", "status": 404,
            "details": { "resource": "order" }, "request_id": "req-7",
            "key": "sk", "project": "acme", "kind": "secret",
            "route": "GET /orders/{id}", "method": "GET",
            "summary": "404 resource_missing on GET /orders/{id}"
        }})
    );
    let whoami = client
        .send(client.get("/public-whoami").header("x-request-id", "req-8"))
        .await;
    assert_eq!(whoami.status, 401);
    assert_eq!(whoami.body["error"]["code"], "missing_api_key");
    assert_eq!(whoami.body["error"]["request_id"], "req-8");
    assert_eq!(whoami.body["error"]["route"], "GET /public-whoami");
}

#[tokio::test]
async fn envelopes_from_a_template_with_who_called() {
    let keys = TestKeys::new();
    let clock = FakeClock::new();
    envelope_holds(&from_toml(&keys, ENVELOPE_TOML, &clock), &keys).await;
    let clock = FakeClock::new();
    envelope_holds(&envelope_builder(&keys, &clock), &keys).await;
}

#[test]
fn template_mistakes_are_named_at_start_up() {
    let cases = [
        (
            "[errors]\ntemplate = { code = \"{cod}\" }",
            "errors.template",
            "{cod}",
        ),
        (
            "[errors]\ntemplate = { code = \"{code}\" }\ncategories = { nope = \"x\" }",
            "errors.categories",
            "nope",
        ),
        ("errors = \"xml\"", "errors", "xml"),
        (
            "[[routes]]\nroute = \"POST /mcp\"\nerrors = { jsonrpc = { http_status = \"maybe\" } }",
            "POST /mcp",
            "maybe",
        ),
        (
            "[[routes]]\nroute = \"POST /mcp\"\nerrors = { jsonrpc = { id_limt = 5 } }",
            "POST /mcp",
            "id_limt",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\nerrors = { template = { c = \"{x}\" } }",
            "GET /a",
            "{x}",
        ),
    ];
    refused_at_start_up(&cases);
}

// ---------------------------------------------------------------------------
// examples/contracts/: three differently shaped contracts

const SERVER_KEY: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";
const BROWSER_KEY: &str = "pk_test_5KKxTly3pxMVTmq2EZMT7IEnH759jAgC1269cG";
const READER_KEY: &str = "rk_test_ezbaRNtzoDWDwnCYuIR9Qk215rLXeDxz490h8M";
const REVOKED_KEY: &str = "sk_test_1CvGWbhqctkcFqLZwhmhoI8Wgi4okFtm4P9VIq";

async fn contract(name: &str, clock: &FakeClock) -> Client {
    let path = format!("{}/examples/contracts/{name}", env!("CARGO_MANIFEST_DIR"));
    let gate = GateConfig::from_path(&path)
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .builder()
        .unwrap()
        .clock(clock.clock())
        .build()
        .unwrap_or_else(|error| panic!("{path}: {error}"));
    Client(start(&gate).await)
}

fn with_bearer(builder: http::request::Builder, key: &str) -> http::request::Builder {
    builder.header("authorization", format!("Bearer {key}"))
}

#[tokio::test]
async fn contracts_in_examples_speak_their_style() {
    // Stripe-like error objects.
    let clock = FakeClock::new();
    let stripe = contract("stripe-like.toml", &clock).await;
    let missing = stripe.send(stripe.get("/v1/charges/ch_1")).await;
    assert_eq!(
        (missing.status.as_u16(), &missing.body),
        (
            401,
            &serde_json::json!({ "error": { "type": "invalid_request_error", "code": "api_key_required",
                "message": "No API key was provided. Send it as `Authorization: Bearer <key>`." } })
        )
    );
    let header_only = stripe
        .send(
            stripe
                .get("/v1/charges/ch_1")
                .header("x-api-key", SERVER_KEY),
        )
        .await;
    assert_eq!(header_only.body["error"]["code"], "api_key_required");
    let publishable = stripe
        .send(
            with_bearer(stripe.get("/v1/charges/ch_1"), BROWSER_KEY)
                .header("x-request-id", "req_1"),
        )
        .await;
    assert_eq!(publishable.status, 403);
    assert_eq!(publishable.body["error"]["code"], "secret_key_required");
    assert_eq!(publishable.body["error"]["request_id"], "req_1");
    let admitted = stripe
        .send(with_bearer(stripe.get("/v1/charges/ch_1"), SERVER_KEY))
        .await;
    assert_eq!(admitted.status, 200);
    assert_eq!(admitted.headers["x-ratelimit-limit"], "25");
    let large = fetch(
        with_bearer(
            Request::post(format!("http://{}/v1/charges", stripe.0)),
            SERVER_KEY,
        )
        .body(http_body_util::Full::from(vec![b'x'; 20_000]))
        .unwrap(),
    )
    .await;
    assert_eq!(large.status, 413);
    assert_eq!(large.body["error"]["code"], "request_too_large");
    assert_eq!(large.body["error"]["type"], "invalid_request_error");

    // Google's API error model, canonical upper-case codes.
    let google = contract("google-aip193.toml", &clock).await;
    let datasets = "/v1/projects/demo/datasets";
    let missing = google.send(google.get(datasets)).await;
    assert_eq!(
        missing.body,
        serde_json::json!({ "error": { "code": 401, "status": "UNAUTHENTICATED", "details": [],
            "message": "No API key was provided. Send it as `Authorization: Bearer <key>` or in the `x-goog-api-key` header." } })
    );
    let unknown = hasher().mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
    let invalid = google
        .send(google.get(datasets).header("x-goog-api-key", unknown.key()))
        .await;
    assert_eq!(
        (invalid.status.as_u16(), &invalid.body["error"]["status"]),
        (403, &Value::from("PERMISSION_DENIED"))
    );
    assert_eq!(invalid.body["error"]["code"], 403);
    let hidden = fetch(
        Request::post(format!("http://{}{datasets}", google.0))
            .header("x-goog-api-key", READER_KEY)
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (hidden.status.as_u16(), &hidden.body["error"]["status"]),
        (404, &Value::from("NOT_FOUND"))
    );
    for _ in 0..10 {
        let read = google
            .send(google.get(datasets).header("x-goog-api-key", READER_KEY))
            .await;
        assert_eq!(read.status, 200, "{:?}", read.body);
    }
    let exhausted = google
        .send(google.get(datasets).header("x-goog-api-key", READER_KEY))
        .await;
    assert_eq!(exhausted.status, 429);
    assert_eq!(exhausted.body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        exhausted.body["error"]["details"][0]["policy"],
        "reads-per-minute"
    );

    // GitHub-like message and link; anonymous and keyed budgets; a daily
    // quota with its own code and status.
    let github = contract("github-like.toml", &clock).await;
    assert_eq!(github.send(github.get("/meta")).await.status, 200);
    let repo = "/repos/octo/tollgate";
    for _ in 0..3 {
        assert_eq!(github.send(github.get(repo)).await.status, 200);
    }
    let anonymous = github.send(github.get(repo)).await;
    assert_eq!(
        (anonymous.status.as_u16(), &anonymous.body),
        (
            429,
            &serde_json::json!({
                "message": "Rate limit exceeded on route GET /repos/{owner}/{repo}. Retry after 1 second.",
                "documentation_url": "https://docs.example.com/rest#rate_limited",
                "errors": [{ "code": "rate_limited", "resource": "per-minute" }]
            })
        )
    );
    let revoked = github
        .send(with_bearer(github.get(repo), REVOKED_KEY))
        .await;
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.body["errors"][0]["code"], "revoked_api_key");
    for _ in 0..3 {
        assert_eq!(
            github
                .send(with_bearer(github.get(repo), SERVER_KEY))
                .await
                .status,
            200
        );
    }
    clock.advance(std::time::Duration::from_secs(60));
    for _ in 0..2 {
        assert_eq!(
            github
                .send(with_bearer(github.get(repo), SERVER_KEY))
                .await
                .status,
            200
        );
    }
    let daily = github.send(with_bearer(github.get(repo), SERVER_KEY)).await;
    assert_eq!(daily.status, 403);
    assert_eq!(
        daily.body["errors"],
        serde_json::json!([{ "code": "daily_limit_exceeded", "resource": "daily" }])
    );
}

// ---------------------------------------------------------------------------
// 6. JSON-RPC 2.0 routes

const JSONRPC_TOML: &str = r#"
[[routes]]
route = "POST /mcp"
errors = { jsonrpc = { codes = { rate_limited = -32029 } } }
quotas = [{ rate = 1, per = "minute", burst = 1 }]
body_limit = 1024

[[routes]]
route = "POST /mcp-ok"
errors = { jsonrpc = { http_status = "ok" } }
"#;

fn jsonrpc_builder(keys: &TestKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    use tollgate::render::{ErrorFormat, JsonRpc};
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(clock.clock())
        .route(
            "POST /mcp",
            RoutePolicy::new()
                .errors(ErrorFormat::JsonRpc(Box::new(
                    JsonRpc::new().code("rate_limited", -32029),
                )))
                .quota(Quota::per_minute(1).burst(1))
                .body_limit(1024),
        )
        .route(
            "POST /mcp-ok",
            RoutePolicy::new().errors(ErrorFormat::JsonRpc(Box::new(JsonRpc::new().http_ok(true)))),
        )
        .build()
        .unwrap()
}

async fn jsonrpc_holds(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys) {
    use std::time::Duration;
    let address = start(gate).await;
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#.as_bytes();
    let reply = |reply: &Reply| serde_json::from_str::<Value>(&reply.body).unwrap();

    // Headers first, the body 30 ms later, as many clients write: the id is
    // read from the body, and the connection carries the next request.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    post(&mut stream, "/mcp", None, call, Duration::from_millis(30)).await;
    let refused = read_reply(&mut stream).await.unwrap();
    assert_eq!(refused.status, 401);
    assert!(!refused.closes(), "{}", refused.head);
    assert_eq!(
        reply(&refused),
        serde_json::json!({ "jsonrpc": "2.0", "id": 7, "error": {
            "code": -32000,
            "message": "No API key was provided. Send it as `Authorization: Bearer <key>` or in the `x-api-key` header.",
            "data": { "code": "missing_api_key", "status": 401 } } })
    );
    let secret = keys.secret.key();
    post(&mut stream, "/mcp", Some(secret), call, Duration::ZERO).await;
    assert_eq!(read_reply(&mut stream).await.unwrap().status, 200);
    // (This test's handler never reads bodies, so hyper closes that one.)
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The tollgate code mapped to a JSON-RPC code; a string id echoed.
    post(
        &mut stream,
        "/mcp",
        Some(secret),
        br#"{"jsonrpc":"2.0","id":"call-2","method":"tools/call"}"#,
        Duration::from_millis(20),
    )
    .await;
    let limited = read_reply(&mut stream).await.unwrap();
    assert_eq!(limited.status, 429);
    assert!(
        limited
            .head
            .to_ascii_lowercase()
            .contains("retry-after: 60"),
        "{}",
        limited.head
    );
    let body = reply(&limited);
    assert_eq!(
        (&body["id"], &body["error"]["code"]),
        (&Value::from("call-2"), &Value::from(-32029))
    );
    assert_eq!(body["error"]["data"]["code"], "rate_limited");
    assert_eq!(body["error"]["data"]["details"]["retry_after"], 60);

    // No id to echo: a notification, a batch, not JSON.
    for body in [
        &br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#[..],
        br#"[{"jsonrpc":"2.0","id":1,"method":"a"}]"#,
        b"not json",
    ] {
        post(&mut stream, "/mcp", None, body, Duration::ZERO).await;
        let answer = read_reply(&mut stream).await.unwrap();
        assert_eq!(reply(&answer)["id"], Value::Null, "{}", answer.body);
    }
    // A body over the cap is not read: id null, and the connection closes.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    post(&mut stream, "/mcp", None, &[b' '; 2000], Duration::ZERO).await;
    let large = read_reply(&mut stream).await.unwrap();
    assert_eq!(large.status, 401);
    assert_eq!(reply(&large)["id"], Value::Null);
    assert!(large.closes(), "{}", large.head);

    // HTTP 200 for every refusal, when the route says so.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    post(&mut stream, "/mcp-ok", None, call, Duration::ZERO).await;
    let ok = read_reply(&mut stream).await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(reply(&ok)["id"], 7);
    assert_eq!(reply(&ok)["error"]["data"]["status"], 401);
}

#[tokio::test]
async fn jsonrpc_routes_echo_the_request_id() {
    let keys = TestKeys::new();
    jsonrpc_holds(&from_toml(&keys, JSONRPC_TOML, &FakeClock::new()), &keys).await;
    jsonrpc_holds(&jsonrpc_builder(&keys, &FakeClock::new()), &keys).await;
}

#[test]
fn gate_wide_and_key_mistakes_are_named_at_start_up() {
    let cases = [
        ("credentials = []", "credentials", "at least one"),
        (
            "credentials = [\"query\"]",
            "credentials",
            "query_parameter",
        ),
        (
            "origin_kinds = [\"secret\", \"bogus\"]",
            "origin_kinds",
            "bogus",
        ),
        (
            "[[keys]]\nname = \"odd\"\nkey = \"sk_test_x\"\nproject = \"p\"\nstatus = \"paused\"",
            "key `odd`: `status`",
            "disabled",
        ),
    ];
    refused_at_start_up(&cases);
    for (toml, ..) in cases {
        let error = start_up_error(toml);
        assert!(!error.contains("route `default`"), "{toml}: {error}");
    }
}

// ---------------------------------------------------------------------------
// 9. Rate-limit headers as draft 11 reads them

const DRAFT_TOML: &str = r#"
errors = "problem"

[[routes]]
route = "POST /ingest"
quotas = [
  { rate = 2, per = "second", burst = 2, name = "burst" },
  { rate = 60, per = "minute", burst = 10, name = "minute" },
]
"#;

fn draft_builder(keys: &TestKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(clock.clock())
        .renderer(tollgate::render::ErrorRenderer::problem_json())
        .route(
            "POST /ingest",
            RoutePolicy::new().quotas([
                Quota::per_second(2).burst(2).named("burst"),
                Quota::per_minute(60).burst(10).named("minute"),
            ]),
        )
        .build()
        .unwrap()
}

async fn draft_holds(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys) {
    let client = Client(start(gate).await);
    let ingest = || {
        empty(with_bearer(
            Request::post(format!("http://{}/ingest", client.0)),
            keys.secret.key(),
        ))
    };
    let first = fetch(ingest()).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.headers["ratelimit-policy"],
        r#""burst";q=2;w=1, "minute";q=10;w=10"#
    );
    // `t`: seconds until one more token — 1 for both, not the 10 s the
    // minute bucket takes to be full again.
    assert_eq!(
        first.headers["ratelimit"],
        r#""burst";r=1;t=1, "minute";r=9;t=1"#
    );
    assert_eq!(fetch(ingest()).await.status, 200);
    let refused = fetch(ingest()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(
        refused.headers["ratelimit"],
        r#""burst";r=0;t=1, "minute";r=8;t=1"#
    );
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert_eq!(
        refused.body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(
        refused.body["violated-policies"],
        serde_json::json!(["burst"])
    );
    assert_eq!(refused.body["code"], "rate_limited");
}

#[tokio::test]
async fn draft_11_headers_and_the_quota_exceeded_problem() {
    let keys = TestKeys::new();
    draft_holds(&from_toml(&keys, DRAFT_TOML, &FakeClock::new()), &keys).await;
    draft_holds(&draft_builder(&keys, &FakeClock::new()), &keys).await;
}
