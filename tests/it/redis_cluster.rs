//! The Redis rate store on a Redis Cluster that each test makes: three
//! masters (and three replicas for the fail-over test) started as
//! `redis-server --cluster-enabled yes` on free loopback ports and joined by
//! `redis-cli --cluster create`. Two gates on two sockets, eight clients at
//! once, exact admission across routes and shared budgets spread over the
//! slots of every master; a master killed, its replica promoted, decisions
//! resuming.
//!
//! Needs `redis-server` and `redis-cli` (`.ci/run` installs redis-server,
//! which brings both) and the `redis` feature.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tollgate::body_limit::LimitedBody;
use tollgate::gate::{Gate, RoutePolicy};
use tollgate::key::{InMemoryKeyStore, KeyKind, KeyRecord, MintedKey};
use tollgate::rate_limit::Quota;
use tollgate::rate_limit::redis::{FailureMode, RedisOptions, RedisRateStore};

#[path = "../../benches/support/redis_cluster.rs"]
mod redis_cluster_support;

use redis_cluster_support::Cluster;

async fn cluster_store(cluster: &Cluster, on_failure: FailureMode) -> RedisRateStore {
    RedisRateStore::connect(
        RedisOptions::cluster(cluster.urls())
            .timeout(Duration::from_millis(500))
            .on_failure(on_failure),
    )
    .await
    .unwrap_or_else(|error| panic!("connect to the cluster: {error}"))
}

/// A gate whose `POST /v1/track` allows 10 a day per project and whose
/// `GET /v1/flags` 20, both also drawing from the shared `sdk` budget of 15
/// a day: no refill within a test. `GET /v1/ping` never refuses, but needs
/// Redis to decide.
fn gate(keys: &Keys, store: RedisRateStore) -> Gate<InMemoryKeyStore, RedisRateStore> {
    Gate::builder(keys.store.clone())
        .hasher(keys.hasher.clone())
        .rate_store(store)
        .shared_quota(Quota::per_day(15).burst(15).named("sdk"))
        .route(
            "POST /v1/track",
            RoutePolicy::new().quotas([Quota::per_day(10).burst(10), Quota::shared("sdk")]),
        )
        .route(
            "GET /v1/flags",
            RoutePolicy::new().quotas([Quota::per_day(20).burst(20), Quota::shared("sdk")]),
        )
        .route(
            "GET /v1/ping",
            RoutePolicy::new().quota(Quota::per_second(1_000_000).burst(1_000_000)),
        )
        .build()
        .unwrap()
}

async fn serve_gate(gate: &Gate<InMemoryKeyStore, RedisRateStore>) -> std::net::SocketAddr {
    let service = tower::ServiceBuilder::new().layer(gate.layer()).service_fn(
        |_: Request<LimitedBody<hyper::body::Incoming>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    );
    serve(service).await
}

fn request(address: std::net::SocketAddr, route: usize, key: &str) -> TestRequest {
    let builder = match route {
        0 => Request::post(format!("http://{address}/v1/track")),
        1 => Request::get(format!("http://{address}/v1/flags")),
        _ => Request::get(format!("http://{address}/v1/ping")),
    };
    empty(builder.header("authorization", format!("Bearer {key}")))
}

/// Keys of 12 projects: their partitions spread over every master's slots.
fn project_keys(keys: &Keys) -> Vec<MintedKey> {
    (0..12)
        .map(|i| {
            keys.add(
                KeyKind::Secret,
                KeyRecord::new(format!("key_{i}"), format!("project-{i}"), KeyKind::Secret),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gates_on_a_cluster_admit_exactly_across_routes_and_shared_budgets() {
    let cluster = Cluster::start(3, 0);
    let keys = Keys::new();
    let projects = project_keys(&keys);
    let gates = [
        serve_gate(&gate(
            &keys,
            cluster_store(&cluster, FailureMode::Closed).await,
        ))
        .await,
        serve_gate(&gate(
            &keys,
            cluster_store(&cluster, FailureMode::Closed).await,
        ))
        .await,
    ];
    // Eight clients at once, each sending 10 requests per project, routes
    // and gates alternating: 80 requests per project, 40 on each route.
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let keys: Vec<String> = projects.iter().map(|k| k.key().to_owned()).collect();
            tokio::spawn(async move {
                let mut admitted = vec![[0usize; 2]; keys.len()];
                for round in 0..10 {
                    for (project, key) in keys.iter().enumerate() {
                        let route = (client + round + project) % 2;
                        let address = gates[(client + round) % 2];
                        let answer = fetch(request(address, route, key)).await;
                        match answer.status {
                            StatusCode::OK => admitted[project][route] += 1,
                            StatusCode::TOO_MANY_REQUESTS => {
                                assert_eq!(answer.code(), "rate_limited");
                            }
                            other => panic!("{other}: {:?}", answer.body),
                        }
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = vec![[0usize; 2]; projects.len()];
    for client in clients {
        for (total, own) in admitted.iter_mut().zip(client.await.unwrap()) {
            total[0] += own[0];
            total[1] += own[1];
        }
    }
    for (project, [track, flags]) in admitted.iter().enumerate() {
        // The shared budget of 15 is spent exactly; the track route never
        // passes its own 10.
        assert_eq!(track + flags, 15, "project {project}: {admitted:?}");
        assert!(*track <= 10, "project {project}: {admitted:?}");
    }
    // The partitions did land on every master.
    let mut used = std::collections::HashSet::new();
    for i in 0..projects.len() {
        let slot = cluster
            .cli(
                cluster.ports[0],
                &["CLUSTER", "KEYSLOT", &format!("{{project:project-{i}}}")],
            )
            .unwrap();
        used.insert(slot.trim().parse::<u32>().unwrap() * 3 / 16_384);
    }
    assert_eq!(used.len(), 3, "the 12 partitions span the three masters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_and_decisions_resume() {
    let mut cluster = Cluster::start(3, 1);
    let keys = Keys::new();
    let projects = project_keys(&keys);
    let store = cluster_store(&cluster, FailureMode::Closed).await;
    let address = serve_gate(&gate(&keys, store.clone())).await;
    for key in &projects {
        assert_eq!(
            fetch(request(address, 0, key.key())).await.status,
            StatusCode::OK
        );
    }
    let victim = cluster.masters()[0];
    cluster.kill(victim);
    // Until a replica takes over, decisions on the dead master's slots fail
    // closed (502) within the timeout; none hangs. Then they resume.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failed = 0;
    loop {
        let mut all_decided = true;
        for key in &projects {
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                fetch(request(address, 2, key.key())),
            )
            .await
            .expect("a request hung past every timeout");
            match answer.status {
                StatusCode::OK => {}
                StatusCode::BAD_GATEWAY => {
                    assert_eq!(answer.code(), "upstream_failed");
                    failed += 1;
                    all_decided = false;
                }
                other => panic!("{other}: {:?}", answer.body),
            }
        }
        if all_decided {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(Instant::now() < deadline, "decisions never resumed");
    }
    assert!(
        failed > 0,
        "the dead master's slots failed before the fail-over"
    );
    assert!(!cluster.masters().contains(&victim));
    assert!(store.stats().failures > 0);
    // The budgets still hold: each project's track route refuses once its
    // 10 are spent, counting the request made before the fail-over (which
    // the promoted replica holds, unless its asynchronous replication lost
    // it: then 11).
    for (project, key) in projects.iter().enumerate() {
        let mut admitted = 1;
        loop {
            match fetch(request(address, 0, key.key())).await.status {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => break,
                other => panic!("project {project}: {other}"),
            }
            assert!(
                admitted <= 11,
                "project {project}: the budget no longer holds"
            );
        }
        assert!(admitted >= 10, "project {project}: {admitted}");
    }
}

/// Keys' credits on a cluster, in slots apart from their projects'
/// buckets: two gates, eight clients, each key spending exactly its 6
/// credits on a route stacked with the project's bucket (and the shared
/// budget); every credits refusal gives the route's tokens back, so once
/// all are answered the buckets hold exactly the admitted requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_on_a_cluster_are_exact_and_give_back_the_routes_tokens() {
    use tollgate::rate_limit::Credits;
    let cluster = Cluster::start(3, 0);
    let keys = Keys::new();
    let with_credits: Vec<(KeyRecord, String)> = (0..6)
        .map(|i| {
            let record = KeyRecord::new(
                format!("key_c{i}"),
                format!("project-c{i}"),
                KeyKind::Secret,
            )
            .with_credits(Credits::new(6))
            .unwrap();
            let key = keys.add(KeyKind::Secret, record.clone()).key().to_owned();
            (record, key)
        })
        .collect();
    let built = [
        gate(&keys, cluster_store(&cluster, FailureMode::Closed).await),
        gate(&keys, cluster_store(&cluster, FailureMode::Closed).await),
    ];
    let gates = [serve_gate(&built[0]).await, serve_gate(&built[1]).await];
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let keys: Vec<String> = with_credits.iter().map(|(_, key)| key.clone()).collect();
            tokio::spawn(async move {
                let mut admitted = vec![0usize; keys.len()];
                for round in 0..2 {
                    for (index, key) in keys.iter().enumerate() {
                        let answer = fetch(request(gates[(client + round) % 2], 0, key)).await;
                        match answer.status {
                            StatusCode::OK => admitted[index] += 1,
                            // Mostly the credits; while a refused
                            // request's tokens are on their way back, a
                            // concurrent one may meet the bucket short.
                            StatusCode::TOO_MANY_REQUESTS => {
                                assert!(
                                    matches!(answer.code(), "credits_exhausted" | "rate_limited"),
                                    "{:?}",
                                    answer.body
                                );
                            }
                            other => panic!("{other}: {:?}", answer.body),
                        }
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = vec![0usize; with_credits.len()];
    for client in clients {
        for (total, own) in admitted.iter_mut().zip(client.await.unwrap()) {
            *total += own;
        }
    }
    assert_eq!(admitted, vec![6; 6], "each key spends exactly its credits");
    for (record, key) in &with_credits {
        assert_eq!(built[0].credits_left(record).await.unwrap(), Some(0));
        // The project's buckets (10 and the shared 15 a day) hold the 6
        // admitted, not the 10 refused: after a 7th, 3 and 8 are left.
        assert_eq!(built[1].top_up_credits(record, 1).await.unwrap(), 1);
        let answer = fetch(request(gates[0], 0, key)).await;
        assert_eq!(answer.status, StatusCode::OK);
        let header = answer.headers["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            header.starts_with("\"POST /v1/track\";r=3;") && header.contains("\"sdk\";r=8;"),
            "{}: {header}",
            record.key_id()
        );
        assert!(header.ends_with("\"credits\";r=0;t=0"), "{header}");
    }
}
