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
    serve_health(gate).await
}

/// The health service behind `gate`, on a free loopback port.
async fn serve_health<St, Rs>(gate: Gate<St, Rs>) -> std::net::SocketAddr
where
    St: tollgate::key::store::KeyStore,
    Rs: tollgate::rate_limit::store::RateStore,
{
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

/// A gate that names its gRPC domain and makes request ids, in front of
/// the health service.
async fn rich_server(keys: &Keys) -> std::net::SocketAddr {
    let config = tollgate::gate::GateConfig::from_toml(
        r#"
        grpc_domain = "api.acme.test"
        request_id = { generate = true }

        [[routes]]
        route = "POST /grpc.health.v1.Health/Check"
        quotas = [{ rate = 1, per = "minute", name = "health_checks" }]
        "#,
    )
    .unwrap();
    let gate = config
        .builder()
        .unwrap()
        .key_store(keys.store.clone())
        .hasher(keys.hasher.clone())
        .build()
        .unwrap();
    serve_health(gate).await
}

#[tokio::test]
async fn grpc_refusals_carry_the_rich_error_model() {
    use tonic_types::StatusExt;
    let keys = Keys::new();
    let address = rich_server(&keys).await;

    // Unauthenticated: ErrorInfo with the code and the route; the request
    // id the gate made, in RequestInfo; no retry or quota detail.
    let missing = check(address, &[]).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    let details = missing.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "missing_api_key");
    assert_eq!(info.domain, "api.acme.test");
    assert_eq!(info.metadata["route"], "POST /grpc.health.v1.Health/Check");
    assert_eq!(info.metadata["rule"], "key");
    let request = details.request_info().expect("RequestInfo");
    assert_eq!(
        uuid::Uuid::parse_str(&request.request_id)
            .unwrap()
            .get_version_num(),
        7
    );
    assert!(details.retry_info().is_none());
    assert!(details.quota_failure().is_none());

    // Rate limited: RetryInfo with the delay, QuotaFailure naming the
    // policy, and the request id the client sent.
    let key = keys.secret.key();
    check(address, &[("x-api-key", key)]).await.unwrap();
    let limited = check(address, &[("x-api-key", key), ("x-request-id", "req-9")])
        .await
        .unwrap_err();
    assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
    let details = limited.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "rate_limited");
    assert_eq!(info.metadata["policy"], "health_checks");
    let retry = details.retry_info().expect("RetryInfo");
    let delay = retry.retry_delay.expect("a delay");
    assert!(
        (50..=60).contains(&delay.as_secs()),
        "one a minute: {delay:?}"
    );
    let quota = details.quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations.len(), 1);
    assert_eq!(quota.violations[0].subject, "health_checks");
    assert_eq!(details.request_info().unwrap().request_id, "req-9");
}
