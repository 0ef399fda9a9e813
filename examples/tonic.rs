//! tollgate in front of a tonic server: rejections reach gRPC clients as
//! statuses (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`…).
//!
//! ```text
//! cargo run --example tonic
//! ```

use tollgate::gate::{Gate, RoutePolicy};
use tollgate::key::{InMemoryKeyStore, KeyEnv, KeyHasher, KeyKind, KeyRecord};
use tollgate::rate_limit::Quota;
use tonic::transport::Server;

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
        .route(
            "POST /grpc.health.v1.Health/Check",
            RoutePolicy::new().quota(Quota::per_second(5).burst(10)),
        )
        .build()?;
    let (_reporter, health) = tonic_health::server::health_reporter();

    let address = "127.0.0.1:50051".parse()?;
    println!(
        "gRPC health service on {address}; send `authorization: Bearer {}`",
        key.key()
    );
    Server::builder()
        .layer(gate.layer())
        .add_service(health)
        .serve(address)
        .await?;
    Ok(())
}
