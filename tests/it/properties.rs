//! Property tests (bounded, so CI stays fast): parsers never panic, origin
//! matching is exact, and the rate limiter never over-admits.

use std::time::Duration;

use crate::common::*;
use http::{HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;
use tollgate::clock::FakeClock;
use tollgate::gate::GateConfig;
use tollgate::key::KeyLayer;
use tollgate::key::format::{KeyParser, checksum};
use tollgate::origin::OriginPattern;
use tollgate::rate_limit::store::{Bucket, PartitionKey, RouteLimits};
use tollgate::rate_limit::{InMemoryRateStore, Quota, RateLimit};
use tollgate::route::Routes;
use tower::ServiceBuilder;

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_key_parser_never_panics(text in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let parser = KeyParser::new();
        let _ = parser.parse(&text);
        let _ = parser.parse(&String::from_utf8_lossy(&bytes));
        let _ = KeyParser::new().require_checksum(false).parse(&text);
    }

    #[test]
    fn any_body_with_its_checksum_parses_and_any_typo_is_caught(secret in "[A-Za-z0-9]{16,60}", at in 0usize..60, replacement in "[A-Za-z0-9]") {
        let body = format!("sk_live_{secret}");
        let key = format!("{body}{}", checksum(&body));
        prop_assert!(KeyParser::new().parse(&key).is_ok());
        let at = "sk_live_".len() + at % secret.len();
        let mut typo = key.clone().into_bytes();
        if typo[at] != replacement.as_bytes()[0] {
            typo[at] = replacement.as_bytes()[0];
            let typo = String::from_utf8(typo).unwrap();
            // CRC-32 catches every single-character change.
            prop_assert!(KeyParser::new().parse(&typo).is_err());
        }
    }

    #[test]
    fn credential_extraction_never_panics_or_fails_open(
        headers in proptest::collection::vec(
            (prop_oneof![Just("authorization"), Just("x-api-key"), Just("x-other")], proptest::collection::vec(any::<u8>(), 0..80)),
            0..4,
        ),
        query in "[a-z_=&%0-9]{0,40}",
    ) {
        let keys = Keys::new();
        let mut request = http::Request::get(format!("/v1/track?{query}"));
        for (name, value) in &headers {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                request = request.header(HeaderName::from_static(name), value);
            }
        }
        let Ok(request) = request.body(http_body_util::Full::<bytes::Bytes>::default()) else { return Ok(()) };
        let service = ServiceBuilder::new()
            .layer(KeyLayer::new(keys.store.clone()).hasher(keys.hasher.clone()).query_parameter("api_key"))
            .service(Handler::default().service());
        let answer = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(send(service, request));
        // Random bytes are never a stored key: always a 401 with a standard code.
        prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        prop_assert!(["missing_api_key", "malformed_api_key", "invalid_api_key"].contains(&answer.code()), "{}", answer.code());
    }

    #[test]
    fn origin_parsing_never_panics(text in ".{0,80}") {
        if let Ok(pattern) = OriginPattern::parse(&text) {
            let _ = pattern.matches(&text);
        }
        let pattern = OriginPattern::parse("https://*.d.example").unwrap();
        let _ = pattern.matches(&text);
    }

    #[test]
    fn a_wildcard_matches_exactly_its_subdomains(
        labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 0..4),
        scheme in prop_oneof![Just("https"), Just("http"), Just("HTTPS")],
        port in prop_oneof![Just(String::new()), Just(":443".to_owned()), Just(":444".to_owned())],
        suffix in prop_oneof![Just(".d.example"), Just("d.example"), Just(".d.example.evil"), Just("-d.example"), Just(".D.EXAMPLE"), Just(".e.example")],
    ) {
        let host = labels.join(".");
        let origin = format!("{scheme}://{host}{suffix}{port}");
        let expected = scheme.eq_ignore_ascii_case("https")
            && !labels.is_empty()
            && suffix.eq_ignore_ascii_case(".d.example")
            && (port.is_empty() || port == ":443");
        let pattern = OriginPattern::parse("https://*.d.example").unwrap();
        prop_assert_eq!(pattern.matches(&origin), expected, "{}", origin);
    }

    #[test]
    fn route_patterns_never_panic(
        patterns in proptest::collection::vec(prop_oneof![".{0,40}", "(GET|POST|\\*|FETCH) /[a-z{}*/:]{0,20}"], 0..4),
        method in prop_oneof![Just("GET"), Just("POST"), Just("HEAD"), Just("BREW")],
        path in "/[a-z0-9{}*/%.]{0,40}",
    ) {
        let mut builder = Routes::builder();
        for pattern in &patterns {
            builder = builder.route(pattern.as_str());
        }
        if let Ok(routes) = builder.build() {
            let method = http::Method::from_bytes(method.as_bytes()).unwrap();
            let route = routes.find(&method, &path);
            prop_assert!(routes.get(route.name()).is_some() || route.is_default());
        }
        // The same patterns through the config loader.
        let text: String = patterns
            .iter()
            .map(|pattern| format!("[[routes]]\nroute = {}\n", toml_string(pattern)))
            .collect();
        if let Ok(config) = GateConfig::from_toml(&text) {
            let _ = config.build();
        }
    }

    #[test]
    fn the_config_loader_never_panics(text in ".{0,200}") {
        if let Ok(config) = GateConfig::from_toml(&text) {
            let _ = config.build();
        }
        let _ = GateConfig::from_json(&text);
    }

    #[test]
    fn no_window_admits_more_than_burst_plus_rate(
        gaps in proptest::collection::vec(0u64..300, 1..300),
        rate in 1u64..20,
        burst in 1u64..10,
    ) {
        let fake = FakeClock::new();
        let store = InMemoryRateStore::with_clock(fake.clock());
        let limits = RouteLimits::new(&RateLimit::new(Quota::per_second(rate).burst(burst))).unwrap();
        let mut admitted_at = Vec::new();
        let mut now_ms = 0u64;
        for gap in gaps {
            fake.advance(Duration::from_millis(gap));
            now_ms += gap;
            if store.decide_now(&Bucket::new(PartitionKey::global(), "r"), &limits).is_allowed() {
                admitted_at.push(now_ms);
            }
        }
        // Over any window [start, start + w], admissions ≤ burst + rate × w.
        for (i, &start) in admitted_at.iter().enumerate() {
            for (j, &end) in admitted_at.iter().enumerate().skip(i) {
                let window_ms = end - start;
                let allowed = burst as f64 + rate as f64 * window_ms as f64 / 1000.0;
                prop_assert!(((j - i + 1) as f64) <= allowed + 1e-9, "{} admitted in {} ms", j - i + 1, window_ms);
            }
        }
    }
}
