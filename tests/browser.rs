//! The demo gateway as browser code meets it, in a real headless Chromium:
//! a page served from `http://localhost:PORT` calls the gateway on
//! `http://127.0.0.1:PORT2` (another origin) with `fetch`, sending the
//! headers browser tracing SDKs add, and reports what it could read.
//!
//! Ignored by plain `cargo test` (it needs Chromium); `.ci/run` installs
//! Debian's `chromium` and runs it with
//! `cargo test --test browser -- --ignored`. `CHROMIUM=/path` picks another
//! binary.

#[path = "it/common/mod.rs"]
mod common;

#[path = "../examples/gateway/app.rs"]
#[allow(dead_code, unreachable_pub)]
mod app;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::serve;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tollgate::clock::FakeClock;
use tollgate::gate::GateConfig;
use tollgate::key::{KeyHasher, KeyKind};

const BROWSER: &str = "pk_test_5KKxTly3pxMVTmq2EZMT7IEnH759jAgC1269cG";
const SERVER: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";
const READER: &str = "rk_test_ezbaRNtzoDWDwnCYuIR9Qk215rLXeDxz490h8M";
const REVOKED: &str = "sk_test_1CvGWbhqctkcFqLZwhmhoI8Wgi4okFtm4P9VIq";

/// The page: each call's status, error body and the rate-limit headers as
/// JS sees them (`null` for a header CORS hides), or the error `fetch`
/// threw; all posted back to `/result`.
const PAGE: &str = r#"<!doctype html>
<title>tollgate from a browser</title>
<script>
const gateway = "GATEWAY";
const tracing = {
  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "tracestate": "vendor=opaque",
  "baggage": "session=anonymous",
  "sentry-trace": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
  "x-request-id": "req-from-the-browser",
};
const readable = ["retry-after", "ratelimit", "ratelimit-policy",
  "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"];
async function call(name, method, path, key, body) {
  const headers = Object.assign({ "content-type": "application/json" }, tracing);
  if (key) headers["authorization"] = "Bearer " + key;
  try {
    const response = await fetch(gateway + path, { method, headers, body });
    const text = await response.text();
    let json = null;
    try { json = JSON.parse(text); } catch (e) {}
    const seen = {};
    for (const name of readable) seen[name] = response.headers.get(name);
    return { name, status: response.status, body: json, headers: seen };
  } catch (error) {
    return { name, error: String(error) };
  }
}
(async () => {
  const out = [];
  out.push(await call("unknown key", "POST", "/v1/track", "UNKNOWN", "{}"));
  out.push(await call("revoked key", "POST", "/v1/track", "REVOKED", "{}"));
  out.push(await call("no key", "POST", "/v1/track", null, "{}"));
  out.push(await call("browser key", "POST", "/v1/track", "BROWSER", "{}"));
  out.push(await call("read-only key", "POST", "/v1/track", "READER", "{}"));
  out.push(await call("hidden route", "GET", "/v1/admin", "READER", undefined));
  out.push(await call("no such route", "GET", "/v1/nowhere", "SERVER", undefined));
  out.push(await call("over the cap", "POST", "/v1/track", "SERVER", "x".repeat(10000)));
  for (let i = 1; i <= 21; i++) {
    out.push(await call("batch " + i, "POST", "/v1/batch", "SERVER", "[]"));
  }
  await fetch("/result", { method: "POST", body: JSON.stringify(out) });
})();
</script>
"#;

/// Serves `page` on `GET /`, and hands what is posted to `/result` to the
/// returned receiver.
async fn page_server(page: String) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Bytes>) {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
        let page = page.clone();
        let sender = sender.clone();
        async move {
            let response = match (request.method(), request.uri().path()) {
                (&Method::GET, "/") => Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .body(Full::from(page))
                    .unwrap(),
                (&Method::POST, "/result") => {
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let _ = sender.send(body).await;
                    Response::new(Full::default())
                }
                _ => Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Full::default())
                    .unwrap(),
            };
            Ok::<_, Infallible>(response)
        }
    });
    (serve(service).await, receiver)
}

/// Headless Chromium on `url`, with the flags this machine's closed network
/// needs and a fresh profile. Killed when dropped.
fn chromium(url: &str, profile: &std::path::Path) -> tokio::process::Child {
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    tokio::process::Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("{binary}: {error} (set CHROMIUM to the binary)"))
}

#[tokio::test]
#[ignore = "needs Chromium: cargo test --test browser -- --ignored"]
async fn every_refusal_is_readable_from_browser_code() {
    // A stopped clock: the 21st batch on the burst-20 route is refused.
    let clock = FakeClock::new();
    let gate = GateConfig::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gateway.toml"
    ))
    .unwrap()
    .builder()
    .unwrap()
    .clock(clock.clock())
    .build()
    .unwrap();
    // Preflights seen, by path.
    let preflights: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = preflights.clone();
    let gateway = tower::ServiceBuilder::new()
        .map_request(move |request: Request<hyper::body::Incoming>| {
            if request.method() == Method::OPTIONS {
                *counted
                    .lock()
                    .unwrap()
                    .entry(request.uri().path().to_string())
                    .or_default() += 1;
            }
            request
        })
        .service(app::app(&gate, app::handlers(gate.renderer().clone())));
    let gateway = serve(gateway).await;

    let unknown = KeyHasher::new().mint(KeyKind::Secret, None).unwrap();
    let page = PAGE
        .replace("GATEWAY", &format!("http://{gateway}"))
        .replace("UNKNOWN", unknown.key())
        .replace("REVOKED", REVOKED)
        .replace("BROWSER", BROWSER)
        .replace("READER", READER)
        .replace("SERVER", SERVER);
    let (site, mut results) = page_server(page).await;

    let profile = std::env::temp_dir().join(format!("tollgate-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    // `localhost`, not 127.0.0.1: another origin than the gateway's, and
    // one the demo's browser key allows (`http://localhost:*`).
    let mut browser = chromium(&format!("http://localhost:{}/", site.port()), &profile);
    let result = tokio::time::timeout(Duration::from_secs(60), results.recv()).await;
    let _ = browser.kill().await;
    let _ = std::fs::remove_dir_all(&profile);
    let result = result
        .expect("the page reported nothing within 60 s")
        .expect("the page server stopped");
    let calls: Vec<Value> = serde_json::from_slice(&result).unwrap();
    let by_name = |name: &str| -> &Value {
        calls
            .iter()
            .find(|call| call["name"] == name)
            .unwrap_or_else(|| panic!("no call {name} in {calls:?}"))
    };

    // Every call got an answer `fetch` could read: had a preflight refused a
    // header, `fetch` would have thrown instead.
    for call in &calls {
        assert!(call.get("error").is_none(), "{call}");
    }
    let expected = [
        ("unknown key", 401, "invalid_api_key"),
        ("revoked key", 401, "invalid_api_key"),
        ("no key", 401, "missing_api_key"),
        ("read-only key", 403, "insufficient_scope"),
        ("hidden route", 404, "not_found"),
        ("no such route", 404, "not_found"),
        ("over the cap", 413, "payload_too_large"),
        ("batch 21", 429, "rate_limited"),
    ];
    for (name, status, code) in expected {
        let call = by_name(name);
        assert_eq!(call["status"], status, "{call}");
        assert_eq!(call["body"]["error"]["code"], code, "{call}");
        assert_eq!(
            call["body"]["error"]["request_id"], "req-from-the-browser",
            "{call}"
        );
    }
    assert_eq!(by_name("browser key")["status"], 202);
    assert_eq!(by_name("batch 20")["status"], 202);

    // The rate-limit headers the config sends are readable: admitted and
    // refused.
    let admitted = &by_name("batch 1")["headers"];
    assert!(
        admitted["ratelimit"].as_str().unwrap().contains(";r=19"),
        "{admitted}"
    );
    assert!(
        admitted["ratelimit-policy"]
            .as_str()
            .unwrap()
            .contains(";q=20"),
        "{admitted}"
    );
    let refused = &by_name("batch 21")["headers"];
    assert_eq!(refused["retry-after"], "1", "{refused}");
    assert!(
        refused["ratelimit"].as_str().unwrap().contains(";r=0"),
        "{refused}"
    );
    // The config sends draft headers only.
    assert!(refused["x-ratelimit-limit"].is_null(), "{refused}");

    // One preflight per URL, however many calls followed it.
    let preflights = preflights.lock().unwrap().clone();
    assert_eq!(preflights.get("/v1/batch"), Some(&1), "{preflights:?}");
    assert_eq!(preflights.get("/v1/track"), Some(&1), "{preflights:?}");
}
