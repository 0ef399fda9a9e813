//! The gaps found reproducing five public APIs' error references (issue
//! 27, items 1–8 and 10): each as a start-up error, or as a response over a
//! socket from one gate built from TOML and one built with the builder,
//! held to the same answers.

use crate::common::fixture::*;
use crate::common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tollgate::clock::FakeClock;
use tollgate::error::CodeMap;
use tollgate::gate::{Gate, RoutePolicy, TierPolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyKind, KeyRecord, MintedKey};
use tollgate::rate_limit::Quota;
use tollgate::render::{ErrorRenderer, Template};

const GAPS_TOML: &str = r#"
[codes]
not_found = { code = "NOT_FOUND", category = "not_found" }
invalid_api_key = { message = "Invalid API key." }
DAILY_QUOTA_EXCEEDED = { status = 403 }
SDK_QUOTA = "sdk_quota_exceeded"

[errors]
template = { error = { code = "{code}", category = "{category}", message = "{message}", status = "{status}", reason = "{reason}", path = "{path}", detail = { capability = "{details.missing.0}", limit_of = "{details.limit_of}" } } }

[tiers]
secret_key = {}
public_key = { quotas = [{ rate = 1, per = "day", code = "DAILY_QUOTA_EXCEEDED" }] }
big = {}

[shared_quotas]
sdk = { rate = 1, per = "day", code = "SDK_QUOTA" }

[[routes]]
route = "POST /upload"
body_limit = 1024
tiers = { big = { body_limit = 2048 } }

[[routes]]
route = "GET /hidden"
scopes = ["admin"]
hidden = true

[[routes]]
route = "GET /stores/{store}/orders"
scopes = ["orders:read"]
project_param = "store"
scope_code = "INSUFFICIENT_PERMISSIONS"
project_code = "STORE_ACCESS_DENIED"

[[routes]]
route = "GET /daily"

[[routes]]
route = "GET /sdk"
quotas = ["sdk"]
"#;

fn template() -> Value {
    json!({ "error": {
        "code": "{code}", "category": "{category}", "message": "{message}",
        "status": "{status}", "reason": "{reason}", "path": "{path}",
        "detail": { "capability": "{details.missing.0}", "limit_of": "{details.limit_of}" }
    }})
}

/// Keys beyond the fixture's: one per tier, one with a body cap of its own.
struct TierKeys {
    labelled: MintedKey,
    public: MintedKey,
    big: MintedKey,
    roomy: MintedKey,
}

impl TierKeys {
    fn new() -> Self {
        let mint = || hasher().mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
        Self {
            labelled: mint(),
            public: mint(),
            big: mint(),
            roomy: mint(),
        }
    }

    fn toml(&self) -> String {
        let entry = |name: &str, key: &MintedKey, extra: &str| {
            format!(
                "[[keys]]\nname = \"{name}\"\nkey = \"{}\"\nproject = \"acme\"\n{extra}\n",
                key.key()
            )
        };
        [
            entry("labelled", &self.labelled, "tier = \"secret_key\""),
            entry("public", &self.public, "tier = \"public_key\""),
            entry("big", &self.big, "tier = \"big\""),
            entry("roomy", &self.roomy, "body_limit = 4096"),
        ]
        .concat()
    }

    fn add_to(&self, store: &InMemoryKeyStore) {
        let record = |id: &str| KeyRecord::new(id, "acme", KeyKind::Secret).with_env(KeyEnv::Test);
        let tiered = |id: &str, tier: &str| record(id).with_tier(tier).unwrap();
        store.insert(self.labelled.digest(), tiered("labelled", "secret_key"));
        store.insert(self.public.digest(), tiered("public", "public_key"));
        store.insert(self.big.digest(), tiered("big", "big"));
        store.insert(self.roomy.digest(), record("roomy").with_body_limit(4096));
    }
}

fn gaps_from_toml(keys: &TestKeys, tiers: &TierKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    from_toml(keys, &format!("{GAPS_TOML}\n{}", tiers.toml()), clock)
}

fn gaps_builder(keys: &TestKeys, tiers: &TierKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    let store = keys.store();
    tiers.add_to(&store);
    let codes = CodeMap::new()
        .rename("not_found", "NOT_FOUND")
        .and_then(|codes| codes.category("not_found", "not_found"))
        .and_then(|codes| codes.message("invalid_api_key", "Invalid API key."))
        .and_then(|codes| codes.status("DAILY_QUOTA_EXCEEDED", StatusCode::FORBIDDEN))
        .and_then(|codes| codes.rename("SDK_QUOTA", "sdk_quota_exceeded"))
        .unwrap();
    Gate::builder(store)
        .hasher(hasher())
        .clock(clock.clock())
        .codes(codes)
        .renderer(ErrorRenderer::new(Template::new(template()).unwrap()))
        .tier("secret_key", TierPolicy::new())
        .tier(
            "public_key",
            TierPolicy::new().quota(Quota::per_day(1).code("DAILY_QUOTA_EXCEEDED")),
        )
        .tier("big", TierPolicy::new())
        .shared_quota(Quota::per_day(1).named("sdk").code("SDK_QUOTA"))
        .route(
            "POST /upload",
            RoutePolicy::new()
                .body_limit(1024)
                .tier("big", TierPolicy::new().body_limit(2048)),
        )
        .route(
            "GET /hidden",
            RoutePolicy::new().require_all(["admin"]).hidden(true),
        )
        .route(
            "GET /stores/{store}/orders",
            RoutePolicy::new()
                .require_all(["orders:read"])
                .project_param("store")
                .scope_code("INSUFFICIENT_PERMISSIONS")
                .project_code("STORE_ACCESS_DENIED"),
        )
        .route("GET /daily", RoutePolicy::new())
        .route("GET /sdk", RoutePolicy::new().quota(Quota::shared("sdk")))
        .build()
        .unwrap()
}

async fn gaps_hold(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys, tiers: &TierKeys) {
    let client = Client(start(gate).await);
    let with_key = |builder: http::request::Builder, key: &MintedKey| {
        builder.header("authorization", format!("Bearer {}", key.key()))
    };
    let upload = |key: &MintedKey, bytes: usize| {
        with_key(Request::post(format!("http://{}/upload", client.0)), key)
            .body(http_body_util::Full::from(vec![b'x'; bytes]))
            .unwrap()
    };

    // 3. The 413 names whose limit applies: the route's, the tier's, the key's.
    let route = fetch(upload(&keys.secret, 1500)).await;
    assert_eq!(route.status, 413, "{:?}", route.body);
    assert_eq!(
        route.body["error"]["message"],
        "The request body is larger than this route's limit of 1024 bytes."
    );
    assert_eq!(route.body["error"]["detail"]["limit_of"], "route");
    let tier = fetch(upload(&tiers.big, 3000)).await;
    assert_eq!(tier.status, 413);
    assert_eq!(
        tier.body["error"]["message"],
        "The request body is larger than the limit of 2048 bytes this route gives the API key's tier."
    );
    assert_eq!(tier.body["error"]["detail"]["limit_of"], "tier");
    assert_eq!(fetch(upload(&tiers.big, 1500)).await.status, 200);
    let own = fetch(upload(&tiers.roomy, 5000)).await;
    assert_eq!(own.status, 413);
    assert_eq!(
        own.body["error"]["message"],
        "The request body is larger than this API key's limit of 4096 bytes."
    );
    assert_eq!(own.body["error"]["detail"]["limit_of"], "key");
    assert_eq!(fetch(upload(&tiers.roomy, 3000)).await.status, 200);

    // 6. A code's own category and one fixed message; 7. the path (never
    // the query) and the reason phrase; 10. `detail`, all of whose values
    // are absent, is left out.
    let hidden = client
        .send(with_key(
            client.get("/hidden?api_key=sk_secret_here"),
            &keys.restricted,
        ))
        .await;
    assert_eq!(
        hidden.body,
        json!({ "error": {
            "code": "NOT_FOUND", "category": "not_found", "message": "Not found.",
            "status": 404, "reason": "Not Found", "path": "/hidden"
        }}),
    );
    assert_eq!(hidden.status, 404);
    let unknown = hasher().mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
    let invalid = client.send(with_key(client.get("/daily"), &unknown)).await;
    assert_eq!(invalid.status, 401);
    assert_eq!(invalid.body["error"]["message"], "Invalid API key.");
    assert_eq!(invalid.body["error"]["reason"], "Unauthorized");
    assert_eq!(invalid.body["error"]["category"], "auth");
    assert!(
        invalid.body["error"].get("detail").is_none(),
        "{:?}",
        invalid.body
    );

    // 8. Another project's key and a missing scope, told apart by code;
    // 4. the one missing scope as a string.
    let other_project = client
        .send(with_key(client.get("/stores/globex/orders"), &keys.secret))
        .await;
    assert_eq!(other_project.status, 403);
    assert_eq!(other_project.body["error"]["code"], "STORE_ACCESS_DENIED");
    let no_scope = client
        .send(with_key(
            client.get("/stores/acme/orders"),
            &keys.restricted,
        ))
        .await;
    assert_eq!(no_scope.status, 403);
    assert_eq!(no_scope.body["error"]["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(
        no_scope.body["error"]["detail"]["capability"],
        "orders:read"
    );
    assert_eq!(no_scope.body["error"]["path"], "/stores/acme/orders");

    // 5. A tier that is only a label: its key is admitted, no quota applies.
    for _ in 0..3 {
        let labelled = client
            .send(with_key(client.get("/daily"), &tiers.labelled))
            .await;
        assert_eq!(labelled.status, 200, "{:?}", labelled.body);
    }
    // 2. Codes only a tier's quota and a shared quota declare, mapped.
    assert_eq!(
        client
            .send(with_key(client.get("/daily"), &tiers.public))
            .await
            .status,
        200
    );
    let daily = client
        .send(with_key(client.get("/daily"), &tiers.public))
        .await;
    assert_eq!(daily.status, 403, "{:?}", daily.body);
    assert_eq!(daily.body["error"]["code"], "DAILY_QUOTA_EXCEEDED");
    assert_eq!(daily.body["error"]["reason"], "Forbidden");
    assert_eq!(
        client
            .send(with_key(client.get("/sdk"), &keys.secret))
            .await
            .status,
        200
    );
    let sdk = client
        .send(with_key(client.get("/sdk"), &keys.secret))
        .await;
    assert_eq!(sdk.status, 429);
    assert_eq!(sdk.body["error"]["code"], "sdk_quota_exceeded");
    assert_eq!(sdk.body["error"]["reason"], "Too Many Requests");
}

#[tokio::test]
async fn the_five_apis_gaps_are_closed_from_toml_and_the_builder() {
    let keys = TestKeys::new();
    let tiers = TierKeys::new();
    gaps_hold(
        &gaps_from_toml(&keys, &tiers, &FakeClock::new()),
        &keys,
        &tiers,
    )
    .await;
    gaps_hold(
        &gaps_builder(&keys, &tiers, &FakeClock::new()),
        &keys,
        &tiers,
    )
    .await;
}

#[test]
fn the_gaps_mistakes_are_named_at_start_up() {
    let cases = [
        // 1. Unknown fields of a `[codes]` entry, and an entry saying nothing.
        (
            "[codes]\nnot_found = { code = \"NOT_FOUND\", categroy = \"x\" }",
            "codes.not_found.categroy",
            "unknown field",
        ),
        (
            "[codes]\nnot_found = {}",
            "codes.not_found",
            "a table of `code`",
        ),
        (
            "[codes]\nnot_found = { message = \"\" }",
            "codes.not_found.message",
            "text",
        ),
        (
            "[codes]\nnot_found = { category = 3 }",
            "codes.not_found.category",
            "needs a string",
        ),
        // 2. Still refused: a code nothing declares.
        (
            "[codes]\nNOPE = { status = 403 }",
            "codes.NOPE",
            "not a built-in code",
        ),
        // 4. An element placeholder is fine; an empty segment is not.
        (
            "[errors]\ntemplate = { capability = \"{details.missing..0}\" }",
            "errors.template",
            "unknown placeholder",
        ),
        // 5. With `[tiers]`, a misspelt tier on a route or a key.
        (
            "[tiers]\npro = {}\n[[routes]]\nroute = \"GET /a\"\ntiers = { por = { body_limit = 10 } }",
            "tiers.por",
            "not declared in `[tiers]`",
        ),
        (
            "[tiers]\npro = {}\n[[keys]]\nname = \"typo\"\ndigest = \"00000000000000000000000000000000000000000000000000000000000000aa\"\nkind = \"secret\"\nproject = \"acme\"\ntier = \"por\"",
            "keys.typo.tier",
            "declare it in `[tiers]`",
        ),
        // 8. A project code without the project parameter it is about.
        (
            "[[routes]]\nroute = \"GET /a\"\nproject_code = \"STORE_ACCESS_DENIED\"",
            "project_code",
            "project_param",
        ),
    ];
    refused_at_start_up(&cases);
}

#[test]
fn a_tier_without_tiers_is_still_refused() {
    // Without `[tiers]`, a key's tier must have settings somewhere (as
    // before); the message says how to declare a label.
    let error = start_up_error(
        "[[keys]]\nname = \"label\"\ndigest = \"00000000000000000000000000000000000000000000000000000000000000aa\"\nkind = \"secret\"\nproject = \"acme\"\ntier = \"secret_key\"",
    );
    assert!(error.contains("keys.label.tier"), "{error}");
    assert!(error.contains("`secret_key = {}`"), "{error}");
}

// ---------------------------------------------------------------------------
// Request ids made at the edge

const REQUEST_ID_TOML: &str = r#"
request_id = { header = "x-request-id", generate = true }

[[routes]]
route = "GET /open"
"#;

fn request_id_builder(keys: &TestKeys) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store())
        .hasher(hasher())
        .request_id_header(http::HeaderName::from_static("x-request-id"))
        .generate_request_ids(true)
        .route("GET /open", RoutePolicy::new())
        .build()
        .unwrap()
}

/// Answers the request id its request carried.
fn id_echo<B: Send + 'static>() -> impl tower::Service<
    Request<B>,
    Response = http::Response<http_body_util::Full<bytes::Bytes>>,
    Error = std::convert::Infallible,
    Future = impl Future<
        Output = Result<
            http::Response<http_body_util::Full<bytes::Bytes>>,
            std::convert::Infallible,
        >,
    > + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|request: Request<B>| {
        let seen = request
            .headers()
            .get("x-request-id")
            .map(|id| id.to_str().unwrap().to_owned());
        let body = json!({ "seen": seen }).to_string();
        std::future::ready(Ok(http::Response::new(http_body_util::Full::from(body))))
    })
}

/// Numbers the requests it sees, as tower-http's `SetRequestIdLayer` asks.
#[derive(Clone, Default)]
struct Counter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl tower_http::request_id::MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<tower_http::request_id::RequestId> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Some(
            http::HeaderValue::from_str(&format!("tower-{n}"))
                .unwrap()
                .into(),
        )
    }
}

async fn request_ids_hold(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys) {
    let client = Client(
        serve(
            tower::ServiceBuilder::new()
                .layer(gate.layer())
                .service(id_echo()),
        )
        .await,
    );
    let with_key = |builder: http::request::Builder| {
        builder.header("authorization", format!("Bearer {}", keys.secret.key()))
    };

    // Generated when absent: a UUID v7, the same in the response's header
    // and for the handler, and another for the next request.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let admitted = client.send(with_key(client.get("/open"))).await;
        assert_eq!(admitted.status, 200);
        let id = admitted.headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        assert_eq!(admitted.body["seen"], id.as_str());
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    // A refusal carries it in its header and its body.
    let refused = client.send(client.get("/open")).await;
    expect(&refused, 401, "missing_api_key");
    let id = refused.headers["x-request-id"].to_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(refused.body["error"]["request_id"], id);
    // Kept when sent.
    let sent = client
        .send(with_key(client.get("/open")).header("x-request-id", "req-42"))
        .await;
    assert_eq!(sent.headers["x-request-id"], "req-42");
    assert_eq!(sent.body["seen"], "req-42");
    let sent = client
        .send(client.get("/open").header("x-request-id", "req-43"))
        .await;
    assert_eq!(sent.headers["x-request-id"], "req-43");
    assert_eq!(sent.body["error"]["request_id"], "req-43");

    // Kept when tower-http's layer, outside the gate, set it (under a
    // header of its own).
    let tower = Client(
        serve(
            tower::ServiceBuilder::new()
                .layer(tower_http::request_id::SetRequestIdLayer::new(
                    http::HeaderName::from_static("x-trace-id"),
                    Counter::default(),
                ))
                .layer(gate.layer())
                .service(id_echo()),
        )
        .await,
    );
    let admitted = tower.send(with_key(tower.get("/open"))).await;
    assert_eq!(admitted.headers["x-request-id"], "tower-1");
    assert_eq!(admitted.body["seen"], "tower-1");
    let refused = tower.send(tower.get("/open")).await;
    assert_eq!(refused.headers["x-request-id"], "tower-2");
    assert_eq!(refused.body["error"]["request_id"], "tower-2");
}

#[tokio::test]
async fn request_ids_are_made_at_the_edge_from_toml_and_the_builder() {
    let keys = TestKeys::new();
    request_ids_hold(&from_toml(&keys, REQUEST_ID_TOML, &FakeClock::new()), &keys).await;
    request_ids_hold(&request_id_builder(&keys), &keys).await;
}

#[test]
fn request_id_mistakes_are_named_at_start_up() {
    refused_at_start_up(&[
        (
            "request_id_header = \"x-a\"\nrequest_id = { header = \"x-b\" }",
            "request_id_header",
            "not both",
        ),
        (
            "request_id = { header = \"bad header\" }",
            "request_id.header",
            "not a header name",
        ),
        (
            "request_id = { generate = 1 }",
            "request_id",
            "expected a boolean",
        ),
        ("request_id = { genrate = true }", "request_id", "genrate"),
    ]);
}

#[test]
fn a_panic_is_answered_in_the_gates_envelope() {
    let keys = TestKeys::new();
    let gate = from_toml(
        &keys,
        "[codes]\ninternal_error = \"INTERNAL\"\n[errors]\ntemplate = { failure = \"{code}\", message = \"{message}\" }",
        &FakeClock::new(),
    );
    let respond = gate.renderer().panic_response();
    let response = respond(Box::new(String::from("secret detail in a panic")));
    assert_eq!(response.status(), 500);
    let body: Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(
        body,
        json!({ "failure": "INTERNAL", "message": "Internal server error." })
    );
}
