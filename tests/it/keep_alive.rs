//! Refused requests keep their HTTP/1.1 connection usable: a small body is
//! drained after the decision (bounded in bytes and time); a body that
//! cannot be drained gets `Connection: close`. Real sockets on 127.0.0.1,
//! with clients that write the headers and the body in separate writes.

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tollgate::body_limit::{DrainLimits, LimitedBody};
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::rate_limit::Quota;

/// A handler that reads the whole (capped) body, then answers 200.
fn reading_handler() -> impl tower::Service<
    Request<LimitedBody<hyper::body::Incoming>>,
    Response = Response<Full<Bytes>>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(
        |request: Request<LimitedBody<hyper::body::Incoming>>| async move {
            let read = request
                .into_body()
                .collect()
                .await
                .map_or(0, |b| b.to_bytes().len());
            Ok(Response::new(Full::new(Bytes::from(format!(
                "read {read}"
            )))))
        },
    )
}

async fn start(drain: DrainLimits) -> (std::net::SocketAddr, Keys) {
    let keys = Keys::new();
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .drain(drain)
        .route(
            "POST /v1/track",
            RoutePolicy::new().require_all(["ingest"]).body_limit(8192),
        )
        .route(
            "POST /v1/tight",
            RoutePolicy::new().quota(Quota::per_day(1).burst(1)),
        )
        .route(
            "POST /v1/batch",
            RoutePolicy::new().quota(Quota::per_minute(1).burst(20)),
        )
        .build()
        .unwrap();
    let address = serve(
        tower::ServiceBuilder::new()
            .layer(gate.layer())
            .service(reading_handler()),
    )
    .await;
    (address, keys)
}

#[tokio::test]
async fn refusals_keep_a_keep_alive_connection_when_the_body_comes_late() {
    let (address, keys) = start(DrainLimits::default()).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let pause = Duration::from_millis(30);
    let body = br#"{"event":"signup"}"#;

    // Each request on the same connection, the refusals included.
    let cases = [
        ("/v1/track", None, 401),
        ("/v1/track", Some(keys.restricted.key()), 403),
        ("/v1/tight", Some(keys.secret.key()), 200),
        ("/v1/tight", Some(keys.secret.key()), 429),
        ("/v1/track", Some(keys.secret.key()), 200),
    ];
    let mut reply = None;
    for (index, (path, key, status)) in cases.into_iter().enumerate() {
        post(&mut stream, path, key, body, pause).await;
        let answer = read_reply(&mut stream)
            .await
            .unwrap_or_else(|| panic!("request {index} ({path}): the connection was closed"));
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert!(!answer.closes(), "{path}: {}", answer.head);
        reply = Some(answer);
    }
    let reply = reply.unwrap();
    assert_eq!(reply.body, format!("read {}", body.len()));
}

/// Eight clients × 40 small POSTs on keep-alive connections against a
/// burst-20 route: every request is answered 200 or 429. (A client whose
/// connection dies counts a failure and reconnects, as real clients do.)
#[tokio::test]
async fn eight_connections_over_a_burst_get_only_answers() {
    let (address, keys) = start(DrainLimits::default()).await;
    let key = keys.secret.key().to_owned();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let key = key.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            let (mut statuses, mut failures) = (Vec::new(), 0);
            for _ in 0..40 {
                post(
                    &mut stream,
                    "/v1/batch",
                    Some(&key),
                    b"{}",
                    Duration::from_millis(2),
                )
                .await;
                match read_reply(&mut stream).await {
                    Some(reply) => statuses.push(reply.status),
                    None => {
                        failures += 1;
                        stream = TcpStream::connect(address).await.unwrap();
                    }
                }
            }
            (statuses, failures)
        }));
    }
    let (mut admitted, mut limited, mut failed) = (0, 0, 0);
    for client in clients {
        let (statuses, failures) = client.await.unwrap();
        failed += failures;
        for status in statuses {
            match status {
                200 => admitted += 1,
                429 => limited += 1,
                other => panic!("status {other}"),
            }
        }
    }
    assert_eq!(
        failed, 0,
        "{failed} of 320 requests failed on a dead connection"
    );
    assert_eq!(admitted + limited, 320);
    assert_eq!(admitted, 20, "the burst, shared by the project");
}

#[tokio::test]
async fn a_body_slower_than_the_deadline_closes_the_connection() {
    let (address, _) = start(DrainLimits {
        bytes: 64 * 1024,
        timeout: Duration::from_millis(300),
    })
    .await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let body = [b'x'; 40];
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // One byte every 100 ms: the drain gives up long before the end.
    let trickle = tokio::spawn(async move {
        for byte in body {
            if stream.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stream
    });
    let mut stream = trickle.await.unwrap();
    let reply = read_reply(&mut stream)
        .await
        .expect("a 401 before the close");
    assert_eq!(reply.status, 401);
    assert!(reply.closes(), "{}", reply.head);
    assert!(is_closed(&mut stream).await);
}

#[tokio::test]
async fn a_declared_body_over_the_cap_is_refused_unread_and_closes() {
    let (address, keys) = start(DrainLimits::default()).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
        keys.secret.key(),
        1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Only the headers are sent: the answer cannot depend on the body.
    let reply = read_reply(&mut stream).await.expect("a 413");
    assert_eq!(reply.status, 413);
    assert!(reply.closes(), "{}", reply.head);
    assert!(is_closed(&mut stream).await);
}

#[tokio::test]
async fn a_body_over_the_drain_limit_is_not_drained_and_closes() {
    let (address, _) = start(DrainLimits {
        bytes: 16,
        timeout: Duration::from_secs(1),
    })
    .await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    post(&mut stream, "/v1/track", None, &[b'x'; 100], Duration::ZERO).await;
    let reply = read_reply(&mut stream).await.expect("a 401");
    assert_eq!(reply.status, 401);
    assert!(reply.closes(), "{}", reply.head);
    assert!(is_closed(&mut stream).await);
}

/// HTTP/2: refused streams, bodies and all, leave the connection and its
/// other streams alone (nothing is drained or closed there).
#[tokio::test]
async fn refused_http2_streams_leave_the_connection_alone() {
    let (address, keys) = start(DrainLimits::default()).await;
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut streams = Vec::new();
    for i in 0..20 {
        let mut sender = sender.clone();
        let key = (i % 2 == 0).then(|| keys.secret.key().to_owned());
        streams.push(tokio::spawn(async move {
            let mut request = Request::post("http://127.0.0.1/v1/track");
            if let Some(key) = key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            let request = request.body(Full::new(Bytes::from_static(b"{}"))).unwrap();
            let response = sender.send_request(request).await.expect("the stream");
            let closes = response.headers().contains_key("connection");
            (response.status().as_u16(), closes)
        }));
    }
    let mut statuses = Vec::new();
    for stream in streams {
        let (status, closes) = stream.await.unwrap();
        assert!(!closes);
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [[200; 10], [401; 10]].concat());
    // The connection still carries new streams.
    let mut sender = sender;
    let request = Request::post("http://127.0.0.1/v1/track")
        .header("authorization", format!("Bearer {}", keys.secret.key()))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
}
