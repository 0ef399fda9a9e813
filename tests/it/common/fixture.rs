//! Fixtures of the tests that build one gate from TOML and once with the
//! builder (`tests/contract.rs`, `tests/per_caller.rs`): keys minted under
//! one pepper, a server in front of the echoing handler, a client.

use http::{HeaderName, Request, StatusCode};
use serde_json::Value;
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig};
use tollgate::key::{
    InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord, KeyStatus, MintedKey,
};

use super::{Answer, empty, fetch, handler_service, serve};

pub const PEPPER: &str = "contract pepper";

/// Keys minted under [`PEPPER`]: the same strings in the TOML form and in
/// the builder form.
pub struct TestKeys {
    pub publishable: MintedKey,
    pub secret: MintedKey,
    pub restricted: MintedKey,
    pub disabled: MintedKey,
    pub revoked: MintedKey,
}

impl TestKeys {
    pub fn new() -> Self {
        let hasher = hasher();
        let mint = |kind| hasher.mint(kind, Some(KeyEnv::Test)).unwrap();
        Self {
            publishable: mint(KeyKind::Publishable),
            secret: mint(KeyKind::Secret),
            restricted: mint(KeyKind::Restricted),
            disabled: mint(KeyKind::Secret),
            revoked: mint(KeyKind::Secret),
        }
    }

    /// `[[keys]]` entries for the TOML form.
    pub fn toml(&self) -> String {
        let entry = |name: &str, key: &MintedKey, extra: &str| {
            format!(
                "[[keys]]\nname = \"{name}\"\nkey = \"{}\"\nproject = \"acme\"\n{extra}\n",
                key.key()
            )
        };
        [
            entry(
                "pk",
                &self.publishable,
                "origins = [\"https://app.acme.test\"]",
            ),
            entry("sk", &self.secret, ""),
            entry("rk", &self.restricted, ""),
            entry("disabled", &self.disabled, "status = \"disabled\""),
            entry("revoked", &self.revoked, "status = \"revoked\""),
        ]
        .concat()
    }

    /// The same keys in a store, for the builder form.
    pub fn store(&self) -> InMemoryKeyStore {
        let store = InMemoryKeyStore::new();
        let record = |id: &str, kind| KeyRecord::new(id, "acme", kind).with_env(KeyEnv::Test);
        store.insert(
            self.publishable.digest(),
            record("pk", KeyKind::Publishable)
                .with_origins(["https://app.acme.test"])
                .unwrap(),
        );
        store.insert(self.secret.digest(), record("sk", KeyKind::Secret));
        store.insert(self.restricted.digest(), record("rk", KeyKind::Restricted));
        store.insert(
            self.disabled.digest(),
            record("disabled", KeyKind::Secret).with_status(KeyStatus::Disabled),
        );
        store.insert(
            self.revoked.digest(),
            record("revoked", KeyKind::Secret).with_status(KeyStatus::Revoked),
        );
        store
    }
}

pub fn hasher() -> KeyHasher {
    KeyHasher::with_pepper(PEPPER.as_bytes())
}

/// Why the gate of `toml` (keys and pepper prepended) cannot be built.
pub fn start_up_error(toml: &str) -> String {
    let text = format!("pepper = \"{PEPPER}\"\n{toml}\n{}", TestKeys::new().toml());
    GateConfig::from_toml(&text)
        .and_then(|config| config.build())
        .expect_err(toml)
        .to_string()
}

/// Each `(toml, names, says)`: the gate of `toml` is refused at start-up
/// with an error that names `names` and says `says`.
pub fn refused_at_start_up(cases: &[(&str, &str, &str)]) {
    for (toml, names, says) in cases {
        let error = start_up_error(toml);
        assert!(error.contains(names), "{toml}: {error}");
        assert!(error.contains(says), "{toml}: {error}");
    }
}

/// The gate of `toml` (with the keys and pepper prepended).
pub fn from_toml(keys: &TestKeys, toml: &str, clock: &FakeClock) -> Gate<InMemoryKeyStore> {
    let text = format!("pepper = \"{PEPPER}\"\n{toml}\n{}", keys.toml());
    GateConfig::from_toml(&text)
        .unwrap_or_else(|error| panic!("{error}\n{text}"))
        .builder()
        .unwrap()
        .clock(clock.clock())
        .build()
        .unwrap()
}

/// Serves `gate` in front of a handler that answers what it saw.
pub async fn start(gate: &Gate<InMemoryKeyStore>) -> std::net::SocketAddr {
    serve(
        tower::ServiceBuilder::new()
            .layer(gate.layer())
            .map_request(|request: Request<_>| request.map(|_| Default::default()))
            .service(handler_service(Default::default())),
    )
    .await
}

/// A client of one server.
pub struct Client(pub std::net::SocketAddr);

impl Client {
    pub fn get(&self, path: &str) -> http::request::Builder {
        Request::get(format!("http://{}{path}", self.0))
    }

    pub async fn send(&self, builder: http::request::Builder) -> Answer {
        fetch(empty(builder)).await
    }
}

pub fn bearer(key: &MintedKey) -> (HeaderName, String) {
    (http::header::AUTHORIZATION, format!("Bearer {}", key.key()))
}

pub fn expect(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{:?}", answer.body);
    let found = answer.body["error"]["code"].as_str().unwrap_or("");
    assert_eq!(found, code, "{:?}", answer.body);
}

pub fn caller(answer: &Answer) -> Value {
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body["principal"]["key_id"].clone()
}
