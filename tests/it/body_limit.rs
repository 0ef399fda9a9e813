//! `BodyLimitLayer`: declared lengths, streamed overflows whatever the
//! handler does, exact caps, per-route caps, gRPC, and real sockets
//! (chunked HTTP/1.1, `Expect: 100-continue`, HTTP/2 without a length).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tollgate::body_limit::{BodyLimitLayer, BodyTooLarge, LimitedBody};
use tollgate::route::{PerRoute, RouteLayer, Routes};
use tower::ServiceBuilder;

/// What a handler does with the body.
#[derive(Clone, Copy)]
enum Reads {
    /// Reads it all; answers 400 with its own message on a body error.
    AndMapsErrors,
    /// Reads it all; ignores a body error and answers 200.
    AndSwallowsErrors,
    /// Never reads it.
    Nothing,
}

fn handler<B>(
    reads: Reads,
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<LimitedBody<B>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tower::service_fn(move |request: Request<LimitedBody<B>>| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let answer = match reads {
                Reads::Nothing => Response::new(Full::new(Bytes::from_static(b"unread"))),
                Reads::AndMapsErrors | Reads::AndSwallowsErrors => {
                    match request.into_body().collect().await {
                        Ok(body) => Response::new(Full::new(Bytes::from(format!(
                            "read {}",
                            body.to_bytes().len()
                        )))),
                        Err(error) => {
                            assert!(error.downcast_ref::<BodyTooLarge>().is_some());
                            let mut response = Response::new(Full::new(Bytes::from_static(
                                b"handler's own error",
                            )));
                            if let Reads::AndMapsErrors = reads {
                                *response.status_mut() = StatusCode::BAD_REQUEST;
                            }
                            response
                        }
                    }
                }
            };
            Ok::<_, Infallible>(answer)
        }
    })
}

fn limited<B>(
    cap: u64,
    reads: Reads,
) -> (
    impl tower::Service<
        Request<B>,
        Response = Response<impl Body<Data = Bytes, Error = Infallible>>,
        Error = Infallible,
    > + Clone,
    Arc<AtomicUsize>,
)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(BodyLimitLayer::new(cap))
        .service(handler(reads, Arc::clone(&calls)));
    (service, calls)
}

async fn run<S, B, R>(service: S, request: Request<B>) -> (StatusCode, serde_json::Value, Bytes)
where
    S: tower::Service<Request<B>, Response = Response<R>, Error = Infallible>,
    R: Body<Data = Bytes>,
    R::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let raw = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
        raw,
    )
}

fn with_length(len: usize) -> Request<Full<Bytes>> {
    Request::post("/v1/track")
        .header("content-length", len.to_string())
        .body(Full::new(Bytes::from(vec![b'x'; len])))
        .unwrap()
}

fn chunked(frames: usize, frame_size: usize) -> (Request<Chunks>, Arc<AtomicUsize>) {
    let body = Chunks::new(frames, frame_size);
    let pulled = Arc::clone(&body.pulled);
    (Request::post("/v1/track").body(body).unwrap(), pulled)
}

#[tokio::test]
async fn declared_length_over_the_cap_is_refused_unread() {
    let (service, calls) = limited(1024, Reads::AndMapsErrors);
    let (request, pulled) = chunked(4, 1024);
    let (mut parts, body) = request.into_parts();
    parts
        .headers
        .insert("content-length", "4096".parse().unwrap());
    let (status, body, _) = run(service, Request::from_parts(parts, body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(body["error"]["category"], "validation");
    assert_eq!(body["error"]["details"]["limit_bytes"], 1024);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "inner service not called");
    assert_eq!(pulled.load(Ordering::SeqCst), 0, "body not read");
}

#[tokio::test]
async fn declared_length_at_the_cap_passes() {
    let (service, calls) = limited(1024, Reads::AndMapsErrors);
    let (status, _, raw) = run(service, with_length(1024)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(raw, "read 1024");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn streamed_overflow_replaces_the_handlers_own_error() {
    let (service, calls) = limited(2500, Reads::AndMapsErrors);
    let (request, pulled) = chunked(10, 1000);
    let (status, body, _) = run(service, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["details"]["limit_bytes"], 2500);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Two frames fit; the third crossed the cap; nothing after it was pulled.
    assert_eq!(pulled.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn streamed_overflow_replaces_a_handler_that_swallows_the_error() {
    let (service, _) = limited(2500, Reads::AndSwallowsErrors);
    let (request, _) = chunked(10, 1000);
    let (status, body, _) = run(service, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn streamed_body_exactly_at_the_cap_passes() {
    let (service, _) = limited(3000, Reads::AndMapsErrors);
    let (request, _) = chunked(3, 1000);
    let (status, _, raw) = run(service, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(raw, "read 3000");
}

#[tokio::test]
async fn an_unread_body_is_never_pulled() {
    let (service, _) = limited(10, Reads::Nothing);
    let (request, pulled) = chunked(10, 1000);
    let (status, _, raw) = run(service, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(raw, "unread");
    assert_eq!(pulled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn per_route_caps_and_a_default() {
    let routes = Routes::builder()
        .route("POST /v1/track")
        .route("POST /v1/batch")
        .build()
        .unwrap();
    let caps = PerRoute::new(&routes, 100_u64)
        .route("POST /v1/batch", 10_000)
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(RouteLayer::new(routes))
        .layer(BodyLimitLayer::new(caps))
        .service(handler(Reads::AndMapsErrors, calls));
    let to = |path: &str, len: usize| {
        Request::post(path)
            .header("content-length", len.to_string())
            .body(Full::new(Bytes::from(vec![b'x'; len])))
            .unwrap()
    };
    assert_eq!(
        run(service.clone(), to("/v1/batch", 5_000)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        run(service.clone(), to("/v1/track", 5_000)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        run(service.clone(), to("/v1/track", 100)).await.0,
        StatusCode::OK
    );
    // Unlisted (unmatched) requests get the default cap.
    let (status, body, _) = run(service, to("/elsewhere", 101)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["details"]["limit_bytes"], 100);
}

#[tokio::test]
async fn grpc_overflow_is_resource_exhausted() {
    let (service, _) = limited(10, Reads::AndMapsErrors);
    let request = Request::post("/pkg.Svc/Upload")
        .header("content-type", "application/grpc")
        .header("content-length", "100")
        .body(Full::new(Bytes::from(vec![0; 100])))
        .unwrap();
    use tower::ServiceExt;
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "8");
    // Streamed, too.
    let (service, _) = limited(10, Reads::AndMapsErrors);
    let (request, _) = chunked(3, 10);
    let (mut parts, body) = request.into_parts();
    parts
        .headers
        .insert("content-type", "application/grpc".parse().unwrap());
    let response = service
        .oneshot(Request::from_parts(parts, body))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "8");
}

mod socket {
    use super::*;
    use hyper::body::Incoming;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn server(cap: u64, reads: Reads) -> std::net::SocketAddr {
        let calls = Arc::new(AtomicUsize::new(0));
        serve(
            ServiceBuilder::new()
                .layer(BodyLimitLayer::new(cap))
                .service(handler::<Incoming>(reads, calls)),
        )
        .await
    }

    async fn post_chunks(
        client: &hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Chunks,
        >,
        address: std::net::SocketAddr,
        frames: usize,
    ) -> (StatusCode, serde_json::Value) {
        let request = Request::post(format!("http://{address}/v1/track"))
            .body(Chunks::new(frames, 1000))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let raw = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&raw).unwrap_or_default())
    }

    #[tokio::test]
    async fn chunked_overflow_over_http1() {
        let address = server(2500, Reads::AndMapsErrors).await;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Chunks>();
        let (status, body) = post_chunks(&client, address, 10).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["details"]["limit_bytes"], 2500);
        let (status, _) = post_chunks(&client, address, 2).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn unframed_overflow_over_http2() {
        let address = server(2500, Reads::AndSwallowsErrors).await;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<Chunks>();
        let (status, body) = post_chunks(&client, address, 10).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "payload_too_large");
        let (status, _) = post_chunks(&client, address, 2).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn expect_100_continue_gets_the_413_before_sending_the_body() {
        let address = server(1024, Reads::AndMapsErrors).await;
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"POST /v1/track HTTP/1.1\r\nhost: test\r\ncontent-length: 1000000\r\nexpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&received).contains("payload_too_large") {
            let read = stream.read(&mut buffer).await.unwrap();
            if read == 0 {
                break;
            }
            received.extend_from_slice(&buffer[..read]);
        }
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(!text.contains("100 Continue"), "{text}");
    }
}
