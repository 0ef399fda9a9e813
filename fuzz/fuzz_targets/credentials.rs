//! Credential extraction from arbitrary header maps (non-UTF-8 bytes,
//! repeated headers) and query strings, through a real `KeyService`: never a
//! panic, and never anything but a 401 from an empty key store.
#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tollgate::key::{InMemoryKeyStore, KeyLayer};
use tower::{Layer, Service};

const NAMES: [&str; 4] = ["authorization", "x-api-key", "x-other", "cookie"];

fuzz_target!(|data: &[u8]| {
    // Layout: the query string up to the first 0xFF, then headers, each a
    // name byte and a value up to the next 0xFF.
    let mut parts = data.split(|&b| b == 0xFF);
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let mut request = Request::get("/v1/track");
    if let Ok(uri) = format!("/v1/track?{query}").parse::<http::Uri>() {
        request = request.uri(uri);
    }
    for part in parts {
        let Some((&name, value)) = part.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(name) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(Full::<Bytes>::default()) else {
        return;
    };
    let mut service = KeyLayer::new(InMemoryKeyStore::new())
        .query_parameter("api_key")
        .layer(tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let mut context = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut context).is_ready());
    let future = pin!(service.call(request));
    // An in-memory store decides at once.
    let Poll::Ready(Ok(response)) = future.poll(&mut context) else {
        panic!("an in-memory lookup did not finish at once");
    };
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
});
