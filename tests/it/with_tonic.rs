//! A real tonic server (the standard health service) behind the gate, and a
//! real tonic client: rejections arrive as the right `tonic::Code`.

use crate::common::*;
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::rate_limit::Quota;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn server(keys: &Keys) -> std::net::SocketAddr {
    let gate = Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .route(
            "POST /grpc.health.v1.Health/Check",
            RoutePolicy::new().quota(Quota::per_minute(2).burst(2)),
        )
        .build()
        .unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(gate.layer())
            .add_service(health)
            .serve_with_incoming(tokio_stream_from(listener))
            .await
            .unwrap();
    });
    address
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}

async fn check(
    address: std::net::SocketAddr,
    metadata: &[(&'static str, &str)],
) -> Result<(), tonic::Status> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    client.check(request).await.map(|_| ())
}

#[tokio::test]
async fn grpc_clients_see_the_right_codes() {
    let keys = Keys::new();
    let address = server(&keys).await;

    let missing = check(address, &[]).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    assert!(
        missing.message().starts_with("missing_api_key"),
        "{}",
        missing.message()
    );

    let browser_key_without_origin = check(address, &[("x-api-key", keys.publishable.key())])
        .await
        .unwrap_err();
    assert_eq!(
        browser_key_without_origin.code(),
        tonic::Code::PermissionDenied
    );
    assert!(
        browser_key_without_origin
            .message()
            .starts_with("origin_not_allowed")
    );

    let bearer = format!("Bearer {}", keys.secret.key());
    check(address, &[("authorization", &bearer)]).await.unwrap();
    check(address, &[("authorization", &bearer)]).await.unwrap();
    let limited = check(address, &[("authorization", &bearer)])
        .await
        .unwrap_err();
    assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
    assert!(limited.message().starts_with("rate_limited"));
}
