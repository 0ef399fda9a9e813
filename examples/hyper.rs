//! tollgate in front of a plain hyper 1 service (through hyper-util).
//!
//! ```text
//! cargo run --example hyper
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tollgate::body_limit::LimitedBody;
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord, Principal};
use tollgate::rate_limit::Quota;
use tower::ServiceBuilder;

async fn handle(
    request: Request<LimitedBody<Incoming>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let who = request
        .extensions()
        .get::<Principal>()
        .map_or_else(|| "anonymous".to_owned(), |p| p.project().to_owned());
    Ok(Response::new(Full::new(Bytes::from(format!(
        "hello, {who}\n"
    )))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hasher = KeyHasher::with_pepper(b"example pepper");
    let store = InMemoryKeyStore::new();
    let key = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test))?;
    store.insert(
        key.digest(),
        KeyRecord::new("key_1", "acme", KeyKind::Secret),
    );

    let gate = Gate::builder(store)
        .hasher(hasher)
        .route("GET /health", RoutePolicy::public())
        .route(
            "GET /hello",
            RoutePolicy::new().quota(Quota::per_second(5).burst(10)),
        )
        .build()?;
    let service = ServiceBuilder::new().layer(gate.layer()).service_fn(handle);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!(
        "try: curl -H 'x-api-key: {}' http://127.0.0.1:3000/hello",
        key.key()
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        // Rate limits on public routes partition by the peer's address.
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
            })
            .service(service.clone());
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
        });
    }
}
