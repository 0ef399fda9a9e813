//! Limits and scopes per caller: resource-scoped keys (a scope that names a
//! path parameter, a parameter tied to the caller's project, hidden routes
//! that do not leak what exists), tiers, per-key quotas and body caps, and
//! a budget shared by several routes. Through a real server on 127.0.0.1,
//! from TOML and from the builder.

use crate::common::fixture::*;
use std::sync::Arc;
use std::time::Duration;
use tollgate::clock::FakeClock;

use tollgate::gate::{Gate, GateConfig, RoutePolicy, TierPolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyKind, KeyRecord, MintedKey};
use tollgate::rate_limit::Quota;

/// Two keys: one for the store `shop-1` (its project), one that may read
/// every store.
struct StoreKeys {
    owner: MintedKey,
    auditor: MintedKey,
}

impl StoreKeys {
    fn new() -> Self {
        let mint = || hasher().mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
        Self {
            owner: mint(),
            auditor: mint(),
        }
    }

    fn toml(&self) -> String {
        format!(
            r#"
[[keys]]
name = "owner"
key = "{}"
project = "shop-1"
scopes = ["stores.shop-1.read", "stores.shop-1.write"]

[[keys]]
name = "auditor"
key = "{}"
project = "audit"
scopes = ["stores.*"]
"#,
            self.owner.key(),
            self.auditor.key()
        )
    }

    fn store(&self) -> InMemoryKeyStore {
        let store = InMemoryKeyStore::new();
        store.insert(
            self.owner.digest(),
            KeyRecord::new("owner", "shop-1", KeyKind::Secret)
                .with_scopes(["stores.shop-1.read", "stores.shop-1.write"]),
        );
        store.insert(
            self.auditor.digest(),
            KeyRecord::new("auditor", "audit", KeyKind::Secret).with_scopes(["stores.*"]),
        );
        store
    }
}

const RESOURCE_TOML: &str = r#"
[[routes]]
route = "GET /stores/{store_id}/orders"
scopes = ["stores.{store_id}.read"]

[[routes]]
route = "POST /stores/{store_id}/orders"
scopes = ["stores.{store_id}.write"]
hidden = true

[[routes]]
route = "GET /projects/{project}/usage"
project_param = "project"
"#;

fn from_config(keys: &StoreKeys) -> Gate<InMemoryKeyStore> {
    let text = format!("pepper = \"{PEPPER}\"\n{RESOURCE_TOML}\n{}", keys.toml());
    GateConfig::from_toml(&text).unwrap().build().unwrap()
}

fn from_builder(keys: &StoreKeys) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(FakeClock::new().clock())
        .route(
            "GET /stores/{store_id}/orders",
            RoutePolicy::new().require_all(["stores.{store_id}.read"]),
        )
        .route(
            "POST /stores/{store_id}/orders",
            RoutePolicy::new()
                .require_all(["stores.{store_id}.write"])
                .hidden(true),
        )
        .route(
            "GET /projects/{project}/usage",
            RoutePolicy::new().project_param("project"),
        )
        .build()
        .unwrap()
}

async fn resources_hold(gate: &Gate<InMemoryKeyStore>, keys: &StoreKeys) {
    let client = Client(start(gate).await);
    let call = |method: &str, path: &str, key: &MintedKey| {
        http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", client.0))
            .header("authorization", format!("Bearer {}", key.key()))
    };

    // The owner reads and writes its own store only.
    assert_eq!(
        caller(
            &client
                .send(call("GET", "/stores/shop-1/orders", &keys.owner))
                .await
        ),
        "owner"
    );
    let other = client
        .send(call("GET", "/stores/shop-2/orders", &keys.owner))
        .await;
    expect(&other, 403, "insufficient_scope");
    assert_eq!(
        other.body["error"]["details"]["required"],
        serde_json::json!(["stores.shop-2.read"])
    );
    assert_eq!(
        caller(
            &client
                .send(call("POST", "/stores/shop-1/orders", &keys.owner))
                .await
        ),
        "owner"
    );
    // Hidden: another store's write route does not admit it exists.
    expect(
        &client
            .send(call("POST", "/stores/shop-2/orders", &keys.owner))
            .await,
        404,
        "not_found",
    );
    // A parameter that would change the scope's shape is refused, never
    // filled in: `shop-1.read` must not become `stores.shop-1.read.read`.
    for sneaky in [
        "/stores/shop-1.read/orders",
        "/stores/*/orders",
        "/stores/shop-1%2Eread/orders",
    ] {
        let answer = client.send(call("GET", sneaky, &keys.owner)).await;
        expect(&answer, 403, "insufficient_scope");
    }
    // A wildcard grant covers every store.
    assert_eq!(
        caller(
            &client
                .send(call("GET", "/stores/shop-2/orders", &keys.auditor))
                .await
        ),
        "auditor"
    );

    // The parameter tied to the caller's project.
    assert_eq!(
        caller(
            &client
                .send(call("GET", "/projects/shop-1/usage", &keys.owner))
                .await
        ),
        "owner"
    );
    let foreign = client
        .send(call("GET", "/projects/audit/usage", &keys.owner))
        .await;
    expect(&foreign, 403, "insufficient_scope");
    assert_eq!(foreign.body["error"]["details"]["reason"], "project");
}

#[tokio::test]
async fn resource_scoped_keys() {
    let keys = StoreKeys::new();
    resources_hold(&from_config(&keys), &keys).await;
    resources_hold(&from_builder(&keys), &keys).await;
}

#[test]
fn resource_mistakes_are_named_at_start_up() {
    refused_at_start_up(&[
        (
            "[[routes]]\nroute = \"GET /stores/{store_id}\"\nscopes = [\"stores.{shop}.read\"]",
            "GET /stores/{store_id}",
            "{shop}",
        ),
        (
            "[[routes]]\nroute = \"GET /stores/{store_id}\"\nproject_param = \"store\"",
            "project_param",
            "`store` is not a parameter",
        ),
        (
            "[defaults]\nscopes = [\"stores.{store_id}.read\"]",
            "default",
            "only a route's own path",
        ),
    ]);
}

// ---------------------------------------------------------------------------
// Tiers, per-key limits and shared budgets.

/// Keys on different projects (so that each has buckets of its own): one
/// per tier, one with overrides of its own, one with none.
struct TierKeys {
    plain: MintedKey,
    free: MintedKey,
    pro: MintedKey,
    custom: MintedKey,
}

impl TierKeys {
    fn new() -> Self {
        let mint = || hasher().mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
        Self {
            plain: mint(),
            free: mint(),
            pro: mint(),
            custom: mint(),
        }
    }

    fn toml(&self) -> String {
        format!(
            r#"
[[keys]]
name = "plain"
key = "{}"
project = "p-plain"

[[keys]]
name = "free"
key = "{}"
project = "p-free"
tier = "free"

[[keys]]
name = "pro"
key = "{}"
project = "p-pro"
tier = "pro"

[[keys]]
name = "custom"
key = "{}"
project = "p-custom"
tier = "free"
body_limit = 8192
quotas = {{ "POST /v1/track" = {{ rate = 7, per = "minute" }}, sdk = {{ rate = 6, per = "minute" }} }}
"#,
            self.plain.key(),
            self.free.key(),
            self.pro.key(),
            self.custom.key()
        )
    }

    fn store(&self) -> InMemoryKeyStore {
        let store = InMemoryKeyStore::new();
        let record = |id: &str| KeyRecord::new(id, format!("p-{id}"), KeyKind::Secret);
        store.insert(self.plain.digest(), record("plain"));
        store.insert(
            self.free.digest(),
            record("free").with_tier("free").unwrap(),
        );
        store.insert(self.pro.digest(), record("pro").with_tier("pro").unwrap());
        store.insert(
            self.custom.digest(),
            record("custom")
                .with_tier("free")
                .unwrap()
                .with_body_limit(8192)
                .with_quota("POST /v1/track", Quota::per_minute(7))
                .unwrap()
                .with_quota("sdk", Quota::per_minute(6))
                .unwrap(),
        );
        store
    }
}

/// Per route: `track` has its own quota and cap and other ones for `pro`;
/// `upload` takes its cap from the defaults, where `free` has a smaller
/// one; `flags` and `events` share the `sdk` budget, `events` stacking its
/// own quota on it and keeping its own cap.
const TIERS_TOML: &str = r#"
[shared_quotas]
sdk = { rate = 4, per = "minute" }

[defaults]
body_limit = 1024
tiers = { free = { body_limit = 256 } }

[[routes]]
route = "POST /v1/track"
quotas = [{ rate = 2, per = "minute" }]
body_limit = 1024
tiers = { pro = { quotas = [{ rate = 5, per = "minute" }], body_limit = 2048 } }

[[routes]]
route = "POST /v1/upload"
tiers = { pro = { body_limit = 4096 } }

[[routes]]
route = "GET /v1/flags"
quotas = ["sdk"]

[[routes]]
route = "POST /v1/events"
quotas = [{ rate = 100, per = "second" }, "sdk"]
body_limit = 64
"#;

fn tiers_from_config(keys: &TierKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    let text = format!("pepper = \"{PEPPER}\"\n{TIERS_TOML}\n{}", keys.toml());
    GateConfig::from_toml(&text)
        .unwrap_or_else(|error| panic!("{error}"))
        .builder()
        .unwrap()
        .clock(clock.clock())
        .build()
        .unwrap()
}

fn tiers_from_builder(keys: &TierKeys, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(clock.clock())
        .shared_quota(Quota::per_minute(4).named("sdk"))
        .defaults(
            RoutePolicy::new()
                .body_limit(1024)
                .tier("free", TierPolicy::new().body_limit(256)),
        )
        .route(
            "POST /v1/track",
            RoutePolicy::new()
                .quota(Quota::per_minute(2))
                .body_limit(1024)
                .tier(
                    "pro",
                    TierPolicy::new()
                        .quota(Quota::per_minute(5))
                        .body_limit(2048),
                ),
        )
        .route(
            "POST /v1/upload",
            RoutePolicy::new().tier("pro", TierPolicy::new().body_limit(4096)),
        )
        .route(
            "GET /v1/flags",
            RoutePolicy::new().quota(Quota::shared("sdk")),
        )
        .route(
            "POST /v1/events",
            RoutePolicy::new()
                .quotas([Quota::per_second(100), Quota::shared("sdk")])
                .body_limit(64),
        )
        .build()
        .unwrap()
}

fn call(client: &Client, method: &str, path: &str, key: &MintedKey) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", client.0))
        .header("authorization", format!("Bearer {}", key.key()))
}

async fn send_body(builder: http::request::Builder, bytes: usize) -> crate::common::Answer {
    crate::common::fetch(
        builder
            .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                b'x';
                bytes
            ])))
            .unwrap(),
    )
    .await
}

/// How many of `n` requests from `key` to `path` are admitted, all of them
/// answered 200 or 429.
async fn admitted(client: &Client, method: &str, path: &str, key: &MintedKey, n: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..n {
        let answer = client.send(call(client, method, path, key)).await;
        match answer.status.as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("{path}: {other} {:?}", answer.body),
        }
    }
    admitted
}

async fn tiers_hold(gate: &Gate<InMemoryKeyStore>, keys: &TierKeys) {
    let client = Client(start(gate).await);

    // Quotas: the route's, the tier's on that route, the key's own.
    assert_eq!(
        admitted(&client, "POST", "/v1/track", &keys.plain, 6).await,
        2
    );
    assert_eq!(
        admitted(&client, "POST", "/v1/track", &keys.free, 6).await,
        2
    );
    assert_eq!(
        admitted(&client, "POST", "/v1/track", &keys.pro, 9).await,
        5
    );
    assert_eq!(
        admitted(&client, "POST", "/v1/track", &keys.custom, 12).await,
        7
    );
    let pro = client
        .send(call(&client, "POST", "/v1/track", &keys.pro))
        .await;
    expect(&pro, 429, "rate_limited");
    assert_eq!(
        pro.headers["ratelimit-policy"],
        "\"POST /v1/track\";q=5;w=60"
    );
    assert_eq!(pro.body["error"]["details"]["limit"], 5);

    // Body caps: the key's own, its tier's on the route, the route's; a
    // tier's cap in the defaults applies where the route takes its cap from
    // the defaults.
    let upload = |key: &MintedKey| call(&client, "POST", "/v1/upload", key);
    let status = |answer: crate::common::Answer| answer.status.as_u16();
    assert_eq!(status(send_body(upload(&keys.plain), 300).await), 200);
    let free = send_body(upload(&keys.free), 300).await;
    expect(&free, 413, "payload_too_large");
    assert_eq!(free.body["error"]["details"]["limit_bytes"], 256);
    assert_eq!(status(send_body(upload(&keys.pro), 3000).await), 200);
    assert_eq!(status(send_body(upload(&keys.plain), 3000).await), 413);
    assert_eq!(status(send_body(upload(&keys.custom), 5000).await), 200);
    assert_eq!(status(send_body(upload(&keys.custom), 9000).await), 413);
}

#[tokio::test]
async fn tiers_and_per_key_limits() {
    let keys = TierKeys::new();
    tiers_hold(&tiers_from_config(&keys, &FakeClock::new()), &keys).await;
    tiers_hold(&tiers_from_builder(&keys, &FakeClock::new()), &keys).await;
}

async fn shared_budget_holds(gate: &Gate<InMemoryKeyStore>, keys: &TierKeys) {
    let client = Client(start(gate).await);
    // Four requests in all, whichever of the two routes they go to.
    let mut events = 0;
    for (index, (method, path)) in [
        ("GET", "/v1/flags"),
        ("POST", "/v1/events"),
        ("POST", "/v1/events"),
        ("GET", "/v1/flags"),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = client.send(call(&client, method, path, &keys.plain)).await;
        assert_eq!(caller(&answer), "plain", "request {index}");
        let remaining = 3 - index;
        // The budget's label is its name on both routes.
        let expected = if path == "/v1/flags" {
            format!("\"sdk\";r={remaining};t=15")
        } else {
            events += 1;
            format!(
                "\"POST /v1/events\";r={};t=1, \"sdk\";r={remaining};t=15",
                100 - events
            )
        };
        assert_eq!(answer.headers["ratelimit"], expected.as_str());
    }
    for (method, path) in [("GET", "/v1/flags"), ("POST", "/v1/events")] {
        let refused = client.send(call(&client, method, path, &keys.plain)).await;
        expect(&refused, 429, "rate_limited");
        assert_eq!(refused.body["error"]["details"]["policy"], "sdk");
        assert_eq!(refused.headers["retry-after"], "15");
    }
    // Each route keeps its own other settings: `events` its 64-byte cap.
    let big = send_body(call(&client, "POST", "/v1/events", &keys.pro), 100).await;
    expect(&big, 413, "payload_too_large");
    // Another project has a budget of its own; a key's override of the
    // shared quota applies on every route that draws from it.
    assert_eq!(
        admitted(&client, "GET", "/v1/flags", &keys.free, 6).await,
        4
    );
    assert_eq!(
        admitted(&client, "GET", "/v1/flags", &keys.custom, 3).await,
        3
    );
    assert_eq!(
        admitted(&client, "POST", "/v1/events", &keys.custom, 6).await,
        3
    );
}

#[tokio::test]
async fn one_budget_across_routes() {
    let keys = TierKeys::new();
    shared_budget_holds(&tiers_from_config(&keys, &FakeClock::new()), &keys).await;
    shared_budget_holds(&tiers_from_builder(&keys, &FakeClock::new()), &keys).await;
}

#[tokio::test]
async fn run_time_changes_take_effect_on_the_next_request() {
    let keys = TierKeys::new();
    for from in [tiers_from_config, tiers_from_builder] {
        let clock = FakeClock::new();
        let gate = from(&keys, &clock);
        let client = Client(start(&gate).await);
        let store = gate.key_store();
        let upload = || call(&client, "POST", "/v1/upload", &keys.plain);
        assert_eq!(send_body(upload(), 300).await.status, 200);
        // Into the free tier: its 256-byte cap, at once.
        assert!(store.update(&keys.plain.digest(), |r| r.with_tier("free").unwrap()));
        expect(&send_body(upload(), 300).await, 413, "payload_too_large");
        // A cap of its own wins over the tier's.
        assert!(store.update(&keys.plain.digest(), |r| r.with_body_limit(512)));
        assert_eq!(send_body(upload(), 300).await.status, 200);

        // Quotas: the route's two a minute are used up.
        assert_eq!(
            admitted(&client, "POST", "/v1/track", &keys.plain, 3).await,
            2
        );
        // Into `pro`: the same bucket, so the window it has used stays used
        // (GCRA keeps time owed, not tokens)...
        assert!(store.update(&keys.plain.digest(), |r| r.with_tier("pro").unwrap()));
        assert_eq!(
            admitted(&client, "POST", "/v1/track", &keys.plain, 2).await,
            0
        );
        // ...but it comes back at the tier's rate: a token every 12 s, not 30.
        clock.advance(Duration::from_secs(12));
        assert_eq!(
            admitted(&client, "POST", "/v1/track", &keys.plain, 2).await,
            1
        );
        // An override of its own on top: nine a minute, one every 6.7 s.
        assert!(store.update(&keys.plain.digest(), |r| {
            r.with_quota("POST /v1/track", Quota::per_minute(9))
                .unwrap()
        }));
        clock.advance(Duration::from_secs(21));
        assert_eq!(
            admitted(&client, "POST", "/v1/track", &keys.plain, 5).await,
            3
        );
    }
}

/// Eight clients on their own connections at once: exactly the tier's,
/// the key's and the shared budget's tokens are admitted, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_are_not_over_admitted() {
    let keys = Arc::new(TierKeys::new());
    for gate in [
        tiers_from_config(&keys, &FakeClock::new()),
        tiers_from_builder(&keys, &FakeClock::new()),
    ] {
        let address = start(&gate).await;
        let burst = |key: fn(&TierKeys) -> &MintedKey,
                     routes: &'static [(&'static str, &'static str)]| {
            let keys = Arc::clone(&keys);
            async move {
                let clients = (0..8).map(|client| {
                    let keys = Arc::clone(&keys);
                    tokio::spawn(async move {
                        // A client of its own: its own connection.
                        let http = crate::common::http_client();
                        let mut admitted = 0;
                        for attempt in 0..10 {
                            let (method, path) = routes[(client + attempt) % routes.len()];
                            let request = http::Request::builder()
                                .method(method)
                                .uri(format!("http://{address}{path}"))
                                .header("authorization", format!("Bearer {}", key(&keys).key()))
                                .body(http_body_util::Full::new(bytes::Bytes::new()))
                                .unwrap();
                            let status = http.request(request).await.unwrap().status();
                            assert!(status == 200 || status == 429, "{status}");
                            admitted += usize::from(status == 200);
                        }
                        admitted
                    })
                });
                let mut total = 0;
                for client in clients.collect::<Vec<_>>() {
                    total += client.await.unwrap();
                }
                total
            }
        };
        const TRACK: &[(&str, &str)] = &[("POST", "/v1/track")];
        const SDK: &[(&str, &str)] = &[("GET", "/v1/flags"), ("POST", "/v1/events")];
        assert_eq!(burst(|k| &k.pro, TRACK).await, 5, "the pro tier's quota");
        assert_eq!(burst(|k| &k.custom, TRACK).await, 7, "the key's own quota");
        assert_eq!(burst(|k| &k.plain, SDK).await, 4, "the shared budget");
        assert_eq!(
            burst(|k| &k.custom, SDK).await,
            6,
            "the key's own shared budget"
        );
    }
}

#[test]
fn limit_mistakes_are_named_at_start_up() {
    refused_at_start_up(&[
        (
            "[[routes]]\nroute = \"GET /v1/flags\"\nquotas = [\"sdk\"]",
            "GET /v1/flags",
            "no shared quota named `sdk`",
        ),
        (
            "[shared_quotas]\nsdk = { rate = 0, per = \"minute\" }",
            "shared_quotas.sdk",
            "at least 1",
        ),
        (
            "[shared_quotas]\nsdk = { rate = 1, per = \"minute\" }\n[[routes]]\nroute = \"GET /a\"\nquotas = [\"sdk\", \"sdk\"]",
            "GET /a",
            "listed twice",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\ntiers = { pro = { quotas = [{ rate = 0, per = \"second\" }] } }",
            "tiers.pro.quotas",
            "at least 1",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\ntiers = { \"p r o\" = { quotas = [] } }",
            "GET /a",
            "cannot name a tier",
        ),
        (
            "[[routes]]\nroute = \"GET /a\"\ntiers = { pro = { burst = 3 } }",
            "burst",
            "unknown field",
        ),
    ]);
    // A key's tier and overrides must name something configured.
    let keys = TierKeys::new();
    for (toml, names, says) in [
        (
            "tier = \"gold\"",
            "keys.odd.tier",
            "`gold` is not a tier: declare it in `[tiers]`",
        ),
        (
            "quotas = { nope = { rate = 1, per = \"second\" } }",
            "keys.odd.quotas.nope",
            "no quota is labelled `nope`",
        ),
        (
            "quotas = { sdk = { rate = 0, per = \"second\" } }",
            "keys.odd.quotas.sdk",
            "at least 1",
        ),
    ] {
        let odd = hasher().mint(KeyKind::Secret, None).unwrap();
        let text = format!(
            "pepper = \"{PEPPER}\"\n{TIERS_TOML}\n{}\n[[keys]]\nname = \"odd\"\nkey = \"{}\"\nproject = \"x\"\n{toml}\n",
            keys.toml(),
            odd.key()
        );
        let error = GateConfig::from_toml(&text)
            .and_then(|config| config.build())
            .expect_err(toml)
            .to_string();
        assert!(error.contains(names), "{toml}: {error}");
        assert!(error.contains(says), "{toml}: {error}");
    }
}

/// An error template's `{tier}` is the caller's tier.
#[tokio::test]
async fn the_tier_is_in_the_error_template() {
    let keys = TierKeys::new();
    let text = format!(
        "pepper = \"{PEPPER}\"\n{TIERS_TOML}\n{}\n[errors]\ntemplate = {{ error = {{ code = \"{{code}}\", tier = \"{{tier}}\" }} }}\n",
        keys.toml()
    );
    let gate = GateConfig::from_toml(&text).unwrap().build().unwrap();
    let client = Client(start(&gate).await);
    let refused = send_body(call(&client, "POST", "/v1/upload", &keys.free), 300).await;
    assert_eq!(refused.status, 413);
    assert_eq!(refused.body["error"]["tier"], "free");
    let untiered = send_body(call(&client, "POST", "/v1/upload", &keys.plain), 3000).await;
    assert_eq!(untiered.status, 413);
    assert!(
        untiered.body["error"].get("tier").is_none(),
        "{}",
        untiered.body
    );
}
