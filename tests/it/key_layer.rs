//! `KeyLayer` through a real `tower::Service`: every code of the key contract
//! and every kind of bad input.

use std::time::Duration;

use crate::common::*;
use http::{HeaderValue, Method, StatusCode};
use tollgate::clock::FakeClock;
use tollgate::key::format::{KeyParser, checksum};
use tollgate::key::{CachedKeyStore, KeyEnv, KeyKind, KeyLayer, KeyRecord, KeyStatus};
use tollgate::route::{RouteLayer, Routes};
use tower::ServiceBuilder;

fn layer(keys: &Keys) -> KeyLayer<tollgate::key::InMemoryKeyStore> {
    KeyLayer::new(keys.store.clone()).hasher(keys.hasher.clone())
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Sends `request` through `KeyLayer` over a counting handler; returns the
/// answer and whether the handler was called.
async fn through(keys: &Keys, request: TestRequest) -> (Answer, usize) {
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(layer(keys))
        .service(handler.service());
    let answer = send(service, request).await;
    (answer, handler.calls())
}

async fn expect_rejection(keys: &Keys, request: TestRequest, code: &str) -> Answer {
    let (answer, calls) = through(keys, request).await;
    assert_eq!(answer.code(), code, "body: {}", answer.body);
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(calls, 0, "a rejection must not call the inner service");
    assert_eq!(answer.error.as_ref().unwrap().code().as_str(), code);
    answer
}

#[tokio::test]
async fn accepts_a_valid_key_and_inserts_the_principal() {
    let keys = Keys::new();
    let (answer, calls) = through(
        &keys,
        empty(get("/").header("authorization", bearer(keys.secret.key()))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(calls, 1);
    let principal = &answer.body["principal"];
    assert_eq!(principal["key_id"], "key_sk");
    assert_eq!(principal["project"], "demo");
    assert_eq!(principal["kind"], "secret");
    assert_eq!(
        principal["scopes"],
        serde_json::json!(["ingest", "read", "admin"])
    );
}

#[tokio::test]
async fn default_scopes_follow_the_kind() {
    let keys = Keys::new();
    for (key, scopes) in [
        (keys.publishable.key(), serde_json::json!(["ingest"])),
        (keys.restricted.key(), serde_json::json!(["read"])),
    ] {
        let (answer, _) = through(&keys, empty(get("/").header("x-api-key", key))).await;
        assert_eq!(answer.body["principal"]["scopes"], scopes);
    }
}

#[tokio::test]
async fn no_credential_is_missing_api_key() {
    let keys = Keys::new();
    let answer = expect_rejection(&keys, empty(get("/")), "missing_api_key").await;
    assert_eq!(answer.body["error"]["category"], "auth");
    assert_eq!(answer.body["error"]["status"], 401);
}

#[tokio::test]
async fn basic_scheme_is_malformed() {
    let keys = Keys::new();
    expect_rejection(
        &keys,
        empty(get("/").header("authorization", "Basic dXNlcjpwYXNz")),
        "malformed_api_key",
    )
    .await;
}

#[tokio::test]
async fn bearer_with_nothing_after_it_is_malformed() {
    let keys = Keys::new();
    for value in ["Bearer", "Bearer ", "Bearer \t "] {
        expect_rejection(
            &keys,
            empty(get("/").header("authorization", value)),
            "malformed_api_key",
        )
        .await;
    }
}

#[tokio::test]
async fn scheme_is_case_insensitive_and_spacing_tolerated() {
    let keys = Keys::new();
    let key = keys.secret.key();
    for value in [
        format!("bearer {key}"),
        format!("BEARER {key}"),
        format!("Bearer    {key}"),
        format!("Bearer\t{key}"),
        format!("  Bearer {key}  "),
    ] {
        let (answer, calls) = through(
            &keys,
            empty(get("/").header("authorization", value.as_str())),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{value:?}: {}", answer.body);
        assert_eq!(calls, 1);
    }
}

#[tokio::test]
async fn a_10_kb_key_is_malformed_without_a_lookup() {
    let keys = Keys::new();
    let store = CountingStore::new(keys.store.clone());
    let huge = format!("sk_live_{}", "a".repeat(10 * 1024));
    let service = ServiceBuilder::new()
        .layer(KeyLayer::new(store.clone()).hasher(keys.hasher.clone()))
        .service(Handler::default().service());
    let answer = send(service, empty(get("/").header("x-api-key", huge.as_str()))).await;
    assert_eq!(answer.code(), "malformed_api_key");
    assert_eq!(store.lookups(), 0);
    assert!(answer.raw.len() < 1024, "the key is not echoed back");
}

#[tokio::test]
async fn non_utf8_header_bytes_are_malformed() {
    let keys = Keys::new();
    for name in ["authorization", "x-api-key"] {
        let value = HeaderValue::from_bytes(b"Bearer sk_live_\xff\xfe\xfd").unwrap();
        expect_rejection(
            &keys,
            empty(get("/").header(name, value)),
            "malformed_api_key",
        )
        .await;
    }
}

#[tokio::test]
async fn two_authorization_headers_are_malformed() {
    let keys = Keys::new();
    let key = bearer(keys.secret.key());
    let request = empty(
        get("/")
            .header("authorization", key.as_str())
            .header("authorization", key.as_str()),
    );
    expect_rejection(&keys, request, "malformed_api_key").await;
}

#[tokio::test]
async fn different_bearer_and_x_api_key_are_malformed() {
    let keys = Keys::new();
    let request = empty(
        get("/")
            .header("authorization", bearer(keys.secret.key()))
            .header("x-api-key", keys.restricted.key()),
    );
    expect_rejection(&keys, request, "malformed_api_key").await;
    // The same key in both places is one credential.
    let request = empty(
        get("/")
            .header("authorization", bearer(keys.secret.key()))
            .header("x-api-key", keys.secret.key()),
    );
    let (answer, _) = through(&keys, request).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_prefix_is_malformed() {
    let keys = Keys::new();
    let body = "xk_live_abcdefghijklmnopqrstuvwxyz012345";
    let key = format!("{body}{}", checksum(body));
    expect_rejection(
        &keys,
        empty(get("/").header("x-api-key", key)),
        "malformed_api_key",
    )
    .await;
}

#[tokio::test]
async fn bad_checksum_is_malformed_without_a_lookup() {
    let keys = Keys::new();
    let store = CountingStore::new(keys.store.clone());
    let mut typo = keys.secret.key().to_owned().into_bytes();
    let at = typo.len() - 10;
    typo[at] = if typo[at] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let service = ServiceBuilder::new()
        .layer(KeyLayer::new(store.clone()).hasher(keys.hasher.clone()))
        .service(Handler::default().service());
    let answer = send(service, empty(get("/").header("x-api-key", typo))).await;
    assert_eq!(answer.code(), "malformed_api_key");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checksum")
    );
    assert_eq!(store.lookups(), 0);
}

#[tokio::test]
async fn unknown_and_revoked_keys_are_invalid_and_indistinguishable() {
    let keys = Keys::new();
    let unknown = keys
        .hasher
        .mint(KeyKind::Secret, Some(KeyEnv::Test))
        .unwrap();
    let unknown_answer = expect_rejection(
        &keys,
        empty(get("/").header("x-api-key", unknown.key())),
        "invalid_api_key",
    )
    .await;

    let revoked = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_revoked", "demo", KeyKind::Secret).with_status(KeyStatus::Revoked),
    );
    let revoked_answer = expect_rejection(
        &keys,
        empty(get("/").header("x-api-key", revoked.key())),
        "invalid_api_key",
    )
    .await;
    assert_eq!(unknown_answer.raw, revoked_answer.raw);
}

#[tokio::test]
async fn keys_added_and_revoked_at_run_time() {
    let keys = Keys::new();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(layer(&keys))
        .service(handler.service());
    let fresh = keys.hasher.mint(KeyKind::Secret, None).unwrap();
    let request = || empty(get("/").header("x-api-key", fresh.key()));

    assert_eq!(
        send(service.clone(), request()).await.code(),
        "invalid_api_key"
    );
    keys.store.insert(
        fresh.digest(),
        KeyRecord::new("key_new", "demo", KeyKind::Secret),
    );
    assert_eq!(
        send(service.clone(), request()).await.status,
        StatusCode::OK
    );
    assert!(keys.store.revoke(&fresh.digest()));
    assert_eq!(
        send(service.clone(), request()).await.code(),
        "invalid_api_key"
    );
    assert_eq!(handler.calls(), 1);
}

#[tokio::test]
async fn expired_keys_are_refused_from_their_expiry_on() {
    let keys = Keys::new();
    let fake = FakeClock::new();
    let expiry = fake.clock().unix_now() + Duration::from_secs(60);
    let expiring = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_expiring", "demo", KeyKind::Secret).with_expiry(expiry),
    );
    let service = ServiceBuilder::new()
        .layer(layer(&keys).clock(fake.clock()))
        .service(Handler::default().service());
    let request = || empty(get("/").header("x-api-key", expiring.key()));

    assert_eq!(
        send(service.clone(), request()).await.status,
        StatusCode::OK
    );
    fake.advance(Duration::from_secs(59));
    assert_eq!(
        send(service.clone(), request()).await.status,
        StatusCode::OK
    );
    fake.advance(Duration::from_secs(1));
    let answer = send(service.clone(), request()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "expired_api_key");
}

#[tokio::test]
async fn stored_kind_must_match_the_prefix() {
    let keys = Keys::new();
    // A key minted with the secret prefix but stored as publishable.
    let mismatched = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_mismatch", "demo", KeyKind::Publishable),
    );
    expect_rejection(
        &keys,
        empty(get("/").header("x-api-key", mismatched.key())),
        "key_kind_mismatch",
    )
    .await;
}

#[tokio::test]
async fn store_error_is_upstream_failed_and_hides_the_error_text() {
    let keys = Keys::new();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(KeyLayer::new(FailingStore).hasher(keys.hasher.clone()))
        .service(handler.service());
    let answer = send(
        service,
        empty(get("/").header("x-api-key", keys.secret.key())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.code(), "upstream_failed");
    assert_eq!(answer.body["error"]["category"], "upstream");
    assert!(!String::from_utf8_lossy(&answer.raw).contains("db-7"));
    assert_eq!(handler.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn store_timeout_is_upstream_failed_at_the_timeout() {
    let keys = Keys::new();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(
            KeyLayer::new(HangingStore)
                .hasher(keys.hasher.clone())
                .lookup_timeout(Some(Duration::from_millis(250))),
        )
        .service(handler.service());
    let started = tokio::time::Instant::now();
    let answer = send(
        service,
        empty(get("/").header("x-api-key", keys.secret.key())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.code(), "upstream_failed");
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(handler.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_store_within_the_timeout_is_waited_for() {
    let keys = Keys::new();
    let slow = SlowStore {
        inner: keys.store.clone(),
        delay: Duration::from_millis(100),
    };
    let service = ServiceBuilder::new()
        .layer(
            KeyLayer::new(slow)
                .hasher(keys.hasher.clone())
                .lookup_timeout(Some(Duration::from_millis(250))),
        )
        .service(Handler::default().service());
    let answer = send(
        service,
        empty(get("/").header("x-api-key", keys.secret.key())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn cached_store_answers_repeat_lookups_itself() {
    let keys = Keys::new();
    let counting = CountingStore::new(keys.store.clone());
    let cached = CachedKeyStore::new(counting.clone());
    let service = ServiceBuilder::new()
        .layer(KeyLayer::new(cached).hasher(keys.hasher.clone()))
        .service(Handler::default().service());
    let unknown = keys.hasher.mint(KeyKind::Secret, None).unwrap();
    for _ in 0..3 {
        assert_eq!(
            send(
                service.clone(),
                empty(get("/").header("x-api-key", keys.secret.key()))
            )
            .await
            .status,
            StatusCode::OK
        );
        assert_eq!(
            send(
                service.clone(),
                empty(get("/").header("x-api-key", unknown.key()))
            )
            .await
            .code(),
            "invalid_api_key"
        );
    }
    assert_eq!(counting.lookups(), 2);
}

#[tokio::test]
async fn public_routes_need_no_key_and_others_do() {
    let keys = Keys::new();
    let routes = Routes::builder()
        .public("GET /health")
        .route("POST /v1/track")
        .build()
        .unwrap();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(RouteLayer::new(routes))
        .layer(layer(&keys))
        .service(handler.service());

    let answer = send(service.clone(), empty(get("/health"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body["principal"].is_null());
    // Even a garbage key on a public route is not judged.
    assert_eq!(
        send(
            service.clone(),
            empty(get("/health").header("x-api-key", "garbage"))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(service.clone(), empty(http::Request::post("/v1/track")))
            .await
            .code(),
        "missing_api_key"
    );
    // Unmatched requests fall to the default route, which needs a key.
    assert_eq!(
        send(service.clone(), empty(get("/elsewhere"))).await.code(),
        "missing_api_key"
    );
    assert_eq!(handler.calls(), 2);
}

#[tokio::test]
async fn cors_preflight_passes_untouched() {
    let keys = Keys::new();
    let request = empty(
        get("/v1/track")
            .method(Method::OPTIONS)
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST"),
    );
    let (answer, calls) = through(&keys, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(calls, 1);
    // A plain OPTIONS (no preflight header) still needs a key.
    expect_rejection(
        &keys,
        empty(get("/").method(Method::OPTIONS)),
        "missing_api_key",
    )
    .await;
}

#[tokio::test]
async fn query_parameter_accepts_publishable_keys_only() {
    let keys = Keys::new();
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(layer(&keys).query_parameter("api_key"))
        .service(handler.service());

    let uri = format!("/v1/track?api_key={}&v=1", keys.publishable.key());
    let answer = send(service.clone(), empty(get(&uri))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["principal"]["kind"], "publishable");

    let uri = format!("/v1/track?api_key={}", keys.secret.key());
    let answer = send(service.clone(), empty(get(&uri))).await;
    assert_eq!(answer.code(), "malformed_api_key");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("query")
    );
    assert_eq!(handler.calls(), 1);

    // Without the option, the query string is not a source.
    let uri = format!("/v1/track?api_key={}", keys.publishable.key());
    expect_rejection(&keys, empty(get(&uri)), "missing_api_key").await;
}

#[tokio::test]
async fn credential_can_be_stripped_before_the_inner_service() {
    let keys = Keys::new();
    let service = ServiceBuilder::new()
        .layer(
            layer(&keys)
                .query_parameter("api_key")
                .strip_credential(true),
        )
        .service(Handler::default().service());
    let answer = send(
        service.clone(),
        empty(
            get("/t")
                .header("authorization", bearer(keys.secret.key()))
                .header("x-api-key", keys.secret.key()),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["authorization"], false);
    assert_eq!(answer.body["x_api_key"], false);
    let uri = format!("/t?a=1&api_key={}", keys.publishable.key());
    let answer = send(service, empty(get(&uri))).await;
    assert_eq!(answer.body["uri"], "/t?a=1");

    // Kept by default.
    let (answer, _) = through(
        &keys,
        empty(get("/t").header("authorization", bearer(keys.secret.key()))),
    )
    .await;
    assert_eq!(answer.body["authorization"], true);
}

#[tokio::test]
async fn keys_without_checksum_when_configured() {
    let keys = Keys::new();
    let legacy = "sk_live_legacyKeyWithoutAnyChecksum";
    keys.store.insert(
        keys.hasher.digest(legacy),
        KeyRecord::new("key_legacy", "demo", KeyKind::Secret),
    );
    expect_rejection(
        &keys,
        empty(get("/").header("x-api-key", legacy)),
        "malformed_api_key",
    )
    .await;
    let service = ServiceBuilder::new()
        .layer(layer(&keys).parser(KeyParser::new().require_checksum(false)))
        .service(Handler::default().service());
    let answer = send(service, empty(get("/").header("x-api-key", legacy))).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn grpc_requests_get_a_grpc_status() {
    let keys = Keys::new();
    let request = empty(
        get("/grpc.health.v1.Health/Check")
            .method(Method::POST)
            .header("content-type", "application/grpc+proto"),
    );
    let (answer, calls) = through(&keys, request).await;
    assert_eq!(calls, 0);
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/grpc");
    assert_eq!(answer.headers["grpc-status"], "16");
    assert!(
        answer.headers["grpc-message"]
            .to_str()
            .unwrap()
            .starts_with("missing_api_key")
    );
    assert!(answer.raw.is_empty());
}

/// A key layer over a store that counts its lookups and says when it
/// changes (as the in-memory store does).
fn remembering(
    keys: &Keys,
) -> (
    CountingStore<tollgate::key::InMemoryKeyStore>,
    KeyLayer<CountingStore<tollgate::key::InMemoryKeyStore>>,
) {
    let counting = CountingStore::new(keys.store.clone()).with_generation();
    let layer = KeyLayer::new(counting.clone()).hasher(keys.hasher.clone());
    (counting, layer)
}

#[tokio::test]
async fn a_verified_key_is_not_looked_up_again_while_the_store_is_unchanged() {
    let keys = Keys::new();
    let (counting, layer) = remembering(&keys);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(Handler::default().service());
    for _ in 0..3 {
        let answer = send(
            service.clone(),
            empty(get("/").header("authorization", bearer(keys.secret.key()))),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["principal"]["key_id"], "key_sk");
    }
    assert_eq!(counting.lookups(), 1);
    // Unknown keys are never remembered: each costs a lookup.
    let unknown = keys.hasher.mint(KeyKind::Secret, None).unwrap();
    for _ in 0..2 {
        let answer = send(
            service.clone(),
            empty(get("/").header("x-api-key", unknown.key())),
        )
        .await;
        assert_eq!(answer.code(), "invalid_api_key");
    }
    assert_eq!(counting.lookups(), 3);
    // Without a generation, every request looks the key up.
    let plain = CountingStore::new(keys.store.clone());
    let service = ServiceBuilder::new()
        .layer(KeyLayer::new(plain.clone()).hasher(keys.hasher.clone()))
        .service(Handler::default().service());
    for _ in 0..2 {
        let request = empty(get("/").header("x-api-key", keys.secret.key()));
        assert_eq!(send(service.clone(), request).await.status, StatusCode::OK);
    }
    assert_eq!(plain.lookups(), 2);
}

#[tokio::test]
async fn a_verified_key_revoked_changed_or_removed_is_judged_anew() {
    let keys = Keys::new();
    let (counting, layer) = remembering(&keys);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(Handler::default().service());
    let request = || empty(get("/").header("x-api-key", keys.secret.key()));
    assert_eq!(
        send(service.clone(), request()).await.status,
        StatusCode::OK
    );

    assert!(keys.store.revoke(&keys.secret.digest()));
    assert_eq!(
        send(service.clone(), request()).await.code(),
        "invalid_api_key"
    );
    assert!(
        keys.store
            .set_status(&keys.secret.digest(), KeyStatus::Active)
    );
    assert_eq!(
        send(service.clone(), request()).await.status,
        StatusCode::OK
    );

    // A change to another key's record also makes this one looked up again
    // (the store says only that something changed), and its own change is
    // seen at once.
    assert!(keys.store.update(&keys.secret.digest(), |record| {
        record.with_scopes(["read"])
    }));
    let answer = send(service.clone(), request()).await;
    assert_eq!(
        answer.body["principal"]["scopes"],
        serde_json::json!(["read"])
    );
    let before = counting.lookups();
    keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_other", "demo", KeyKind::Secret),
    );
    assert_eq!(
        send(service.clone(), request()).await.status,
        StatusCode::OK
    );
    assert_eq!(counting.lookups(), before + 1);

    assert!(keys.store.remove(&keys.secret.digest()).is_some());
    assert_eq!(
        send(service.clone(), request()).await.code(),
        "invalid_api_key"
    );
}

#[tokio::test]
async fn a_verified_key_is_still_judged_by_where_it_came_and_when() {
    let keys = Keys::new();
    let clock = FakeClock::new();
    let expiring = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_exp", "demo", KeyKind::Secret)
            .with_expiry(clock.clock().unix_now() + Duration::from_secs(60)),
    );
    let counting = CountingStore::new(keys.store.clone()).with_generation();
    let service = ServiceBuilder::new()
        .layer(
            KeyLayer::new(counting.clone())
                .hasher(keys.hasher.clone())
                .query_parameter("api_key")
                .clock(clock.clock()),
        )
        .service(Handler::default().service());
    let header = || empty(get("/").header("x-api-key", expiring.key()));
    assert_eq!(send(service.clone(), header()).await.status, StatusCode::OK);
    // Remembered, but a secret key in the query string is still refused.
    let in_query = empty(get(&format!("/?api_key={}", expiring.key())));
    let answer = send(service.clone(), in_query).await;
    assert_eq!(answer.code(), "malformed_api_key");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only publishable keys")
    );
    // And its expiry is read from the clock on every request.
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        send(service.clone(), header()).await.code(),
        "expired_api_key"
    );
    assert_eq!(counting.lookups(), 1);
}

#[tokio::test]
async fn what_was_verified_under_other_settings_is_verified_again() {
    let keys = Keys::new();
    let counting = CountingStore::new(keys.store.clone()).with_generation();
    let first = KeyLayer::new(counting.clone()).hasher(keys.hasher.clone());
    let request = || empty(get("/").header("x-api-key", keys.secret.key()));
    let service = ServiceBuilder::new()
        .layer(first.clone())
        .service(Handler::default().service());
    assert_eq!(send(service, request()).await.status, StatusCode::OK);
    // Another pepper: the key's digest is not the stored one.
    let repeppered = first
        .clone()
        .hasher(tollgate::key::KeyHasher::with_pepper(b"other"));
    let service = ServiceBuilder::new()
        .layer(repeppered)
        .service(Handler::default().service());
    assert_eq!(send(service, request()).await.code(), "invalid_api_key");
    // Remembering nothing: every request is looked up.
    let forgetful = first.verified_keys(0);
    let service = ServiceBuilder::new()
        .layer(forgetful)
        .service(Handler::default().service());
    let before = counting.lookups();
    for _ in 0..2 {
        assert_eq!(
            send(service.clone(), request()).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(counting.lookups(), before + 2);
}
