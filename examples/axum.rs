//! tollgate with axum 0.8: the gate on a router, `Principal` as an extractor.
//!
//! ```text
//! cargo run --example axum
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord, Principal};
use tollgate::rate_limit::Quota;

async fn track(principal: Principal) -> String {
    format!("accepted for project {}\n", principal.project())
}

async fn health() -> &'static str {
    "ok\n"
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
            "POST /v1/track",
            RoutePolicy::new()
                .require_all(["ingest"])
                .quota(Quota::per_second(50).burst(200))
                .body_limit(8 * 1024),
        )
        .build()?;

    let app = Router::new()
        .route("/health", get(health))
        .route("/v1/track", post(track))
        .layer(gate.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!(
        "try: curl -X POST -H 'authorization: Bearer {}' http://127.0.0.1:3001/v1/track",
        key.key()
    );
    // `ConnectInfo` gives the rate limiter each client's address on public routes.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
