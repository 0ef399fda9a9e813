//! Limits and scopes per caller — resource-scoped keys so far: a scope that
//! names a path parameter, a parameter tied to the caller's project, hidden
//! routes that do not leak what exists. Through a real server on 127.0.0.1,
//! from TOML and from the builder.

mod common;

use common::fixture::*;
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, RoutePolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyKind, KeyRecord, MintedKey};

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
