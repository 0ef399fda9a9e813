//! No raw key, digest or pepper appears in any response, `Debug` output or
//! log line, across every rejection of the key layer and a success.

use std::time::{Duration, SystemTime};

use crate::common::*;
use tollgate::key::{CachedKeyStore, KeyKind, KeyLayer, KeyRecord, KeyStatus};
use tower::ServiceBuilder;

#[tokio::test]
async fn secrets_never_leak() {
    let (logs, _guard) = Logs::capture();

    let keys = Keys::new();
    let revoked = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_revoked", "demo", KeyKind::Secret).with_status(KeyStatus::Revoked),
    );
    let expired = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_expired", "demo", KeyKind::Secret)
            .with_expiry(SystemTime::UNIX_EPOCH + Duration::from_secs(1)),
    );
    let mismatched = keys.add(
        KeyKind::Secret,
        KeyRecord::new("key_mismatch", "demo", KeyKind::Restricted),
    );
    let unknown = keys.hasher.mint(KeyKind::Secret, None).unwrap();
    let mut typo = keys.secret.key().to_owned();
    typo.replace_range(12..13, if &typo[12..13] == "Z" { "Y" } else { "Z" });

    let every_key: Vec<String> = [
        &keys.publishable,
        &keys.secret,
        &keys.restricted,
        &revoked,
        &expired,
        &mismatched,
        &unknown,
    ]
    .iter()
    .map(|minted| minted.key().to_owned())
    .chain([typo.clone()])
    .collect();
    let every_digest: Vec<String> = every_key
        .iter()
        .map(|key| keys.hasher.digest(key).to_hex())
        .collect();

    let cached = CachedKeyStore::new(keys.store.clone());
    let layer = KeyLayer::new(cached.clone())
        .hasher(keys.hasher.clone())
        .query_parameter("api_key");
    let handler = Handler::default();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(handler.service());
    let failing = ServiceBuilder::new()
        .layer(KeyLayer::new(FailingStore).hasher(keys.hasher.clone()))
        .service(handler.service());

    let mut seen = String::new();
    let mut codes = Vec::new();
    let requests = vec![
        empty(get("/")),
        empty(get("/").header("authorization", format!("Basic {}", keys.secret.key()))),
        empty(
            get("/")
                .header("authorization", format!("Bearer {}", keys.secret.key()))
                .header("x-api-key", keys.restricted.key()),
        ),
        empty(get(&format!("/?api_key={}", keys.secret.key()))),
        empty(get("/").header("x-api-key", typo.as_str())),
        empty(get("/").header("x-api-key", unknown.key())),
        empty(get("/").header("x-api-key", revoked.key())),
        empty(get("/").header("x-api-key", expired.key())),
        empty(get("/").header("x-api-key", mismatched.key())),
        empty(get("/").header("x-api-key", keys.publishable.key())),
    ];
    for request in requests {
        let answer = send(service.clone(), request).await;
        codes.push(answer.code().to_owned());
        seen.push_str(&String::from_utf8_lossy(&answer.raw));
        seen.push_str(&format!("{:?} {:?}", answer.headers, answer.error));
    }
    let answer = send(
        failing,
        empty(get("/").header("x-api-key", keys.secret.key())),
    )
    .await;
    codes.push(answer.code().to_owned());
    seen.push_str(&String::from_utf8_lossy(&answer.raw));
    assert_eq!(
        codes,
        [
            "missing_api_key",
            "malformed_api_key",
            "malformed_api_key",
            "malformed_api_key",
            "malformed_api_key",
            "invalid_api_key",
            "invalid_api_key",
            "expired_api_key",
            "key_kind_mismatch",
            "",
            "upstream_failed",
        ]
    );

    seen.push_str(&format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        keys.hasher,
        keys.secret,
        keys.secret.digest(),
        keys.store,
        cached,
        layer,
        keys.store.get(&keys.secret.digest()),
        tollgate::key::Principal::new(keys.store.get(&keys.secret.digest()).unwrap()),
    ));
    let logs = logs.text();
    assert!(
        logs.contains("request rejected"),
        "rejections are logged: {logs}"
    );
    assert!(
        logs.contains("key_expired"),
        "key ids are logged when known: {logs}"
    );
    assert!(logs.contains("key store lookup failed"));
    seen.push_str(&logs);

    let pepper = std::str::from_utf8(PEPPER).unwrap();
    assert!(!seen.contains(pepper), "pepper leaked");
    for (key, digest) in every_key.iter().zip(&every_digest) {
        let secret_part = &key[8..];
        assert!(!seen.contains(secret_part), "key leaked: {key}");
        assert!(!seen.contains(digest.as_str()), "digest leaked");
        assert!(!seen.contains(&digest[..16]), "digest prefix leaked");
    }
}
