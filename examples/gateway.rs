//! The demo gateway: an ingest API on 127.0.0.1:8080 guarded by tollgate.
//!
//! ```text
//! cargo run --release --example gateway [-- --addr 127.0.0.1:8080]
//! ```
//!
//! It mints demo keys at start-up, prints them with `curl` lines to try, and
//! logs each rejection.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyLayer, KeyRecord, Principal};
use tollgate::route::{RouteLayer, Routes};
use tower::ServiceBuilder;

fn parse_args() -> Result<SocketAddr, String> {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                let value = args.next().ok_or("--addr needs HOST:PORT")?;
                addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (expected --addr HOST:PORT)"
                ));
            }
        }
    }
    Ok(addr)
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.extensions().get::<Principal>() {
        Some(principal) => serde_json::json!({
            "ok": true,
            "project": principal.project(),
            "key_id": principal.key_id(),
            "kind": principal.kind().as_str(),
        }),
        None => serde_json::json!({ "ok": true }),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = if request.uri().path() == "/v1/track" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let addr = parse_args()?;

    let hasher = KeyHasher::with_pepper(b"demo pepper: load yours from a secret manager");
    let store = InMemoryKeyStore::new();
    let secret = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test))?;
    store.insert(
        secret.digest(),
        KeyRecord::new("key_server", "demo", KeyKind::Secret).with_env(KeyEnv::Test),
    );

    let routes = Routes::builder()
        .public("GET /health")
        .route("POST /v1/track")
        .build()?;
    let service = ServiceBuilder::new()
        .layer(RouteLayer::new(routes))
        .layer(KeyLayer::new(store).with_hasher(hasher))
        .service(tower::service_fn(handle));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("tollgate demo gateway listening on http://{addr}");
    println!("demo secret key: {}", secret.key());
    println!();
    println!("  curl -i http://{addr}/health");
    println!(
        "  curl -i -X POST http://{addr}/v1/track -H 'Authorization: Bearer {}'",
        secret.key()
    );
    println!("  curl -i -X POST http://{addr}/v1/track        # 401 missing_api_key");

    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}
