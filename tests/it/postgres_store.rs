//! The Postgres key store against a real PostgreSQL server that each test
//! starts (initdb in a temporary directory, a free loopback port) and stops:
//! keys minted into it and admitted over a socket, changes pushed by
//! notification to two gates, the database stopped, frozen and back, the
//! listener reconnecting, concurrent misses coalesced, a flood of unknown
//! keys shed, last-used times written in batches, and the demo gateway and
//! keys tool against it.
//!
//! Needs PostgreSQL's server binaries (`.ci/run` installs `postgresql`; they
//! are found in `/usr/lib/postgresql/*/bin`, on the PATH, or in
//! `TOLLGATE_PG_BIN`) and the `postgres` feature:
//! `cargo test --features postgres --test it postgres_store`. As root, the
//! server runs as the `postgres` user (it refuses to run as root).

use std::convert::Infallible;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::demo::{Gateway, example_binary};
use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tollgate::body_limit::LimitedBody;
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, RoutePolicy, TierPolicy};
use tollgate::key::postgres::{PostgresKeyStore, PostgresOptions};
use tollgate::key::{KeyConfig, KeyEnv, KeyHasher, KeyKind, MintedKey};

#[path = "../../benches/support/postgres_server.rs"]
mod postgres_server;

use postgres_server::PostgresServer;

fn options(server: &PostgresServer) -> PostgresOptions {
    PostgresOptions::new(server.url())
        .migrate(true)
        .query_timeout(Duration::from_millis(500))
        .reconnect_max(Duration::from_millis(200))
}

async fn connect(options: PostgresOptions) -> PostgresKeyStore {
    PostgresKeyStore::connect(options)
        .await
        .unwrap_or_else(|error| panic!("connect: {error}"))
}

/// Mints a key and stores it as `key_id` (tier `tier`, if any).
async fn mint(store: &PostgresKeyStore, key_id: &str, tier: Option<&str>) -> MintedKey {
    let hasher = KeyHasher::with_pepper(PEPPER);
    let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
    let mut entry = KeyConfig::default();
    entry.name = key_id.into();
    entry.project = "acme".into();
    entry.kind = Some(KeyKind::Secret);
    entry.env = Some(KeyEnv::Test);
    entry.tier = tier.map(str::to_owned);
    store.insert(minted.digest(), &entry).await.unwrap();
    minted
}

/// The gate every test here uses: `POST /v1/track`, bodies capped at 10
/// bytes for tier `free` and 1 000 for `pro`.
fn gate(store: PostgresKeyStore, clock: Option<&FakeClock>) -> Gate<PostgresKeyStore> {
    gate_waiting(store, clock, Duration::from_millis(800))
}

/// The gate, its key check waiting at most `lookup_timeout` for the store.
fn gate_waiting(
    store: PostgresKeyStore,
    clock: Option<&FakeClock>,
    lookup_timeout: Duration,
) -> Gate<PostgresKeyStore> {
    let mut builder = Gate::builder(store)
        .hasher(KeyHasher::with_pepper(PEPPER))
        .lookup_timeout(Some(lookup_timeout))
        .route(
            "POST /v1/track",
            RoutePolicy::new()
                .body_limit(1_000)
                .tier("free", TierPolicy::new().body_limit(10))
                .tier("pro", TierPolicy::new().body_limit(1_000)),
        );
    if let Some(clock) = clock {
        builder = builder.clock(clock.clock());
    }
    builder.build().unwrap()
}

async fn serve_gate(gate: &Gate<PostgresKeyStore>) -> std::net::SocketAddr {
    let service = tower::ServiceBuilder::new().layer(gate.layer()).service_fn(
        |_: Request<LimitedBody<hyper::body::Incoming>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    );
    serve(service).await
}

fn track(address: std::net::SocketAddr, key: &str, body: usize) -> TestRequest {
    Request::post(format!("http://{address}/v1/track"))
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::from(vec![b'x'; body])))
        .unwrap()
}

/// The request through `gate` in process (no socket), for the floods.
async fn through(gate: &Gate<PostgresKeyStore>, key: &str) -> Answer {
    let service = tower::ServiceBuilder::new().layer(gate.layer()).service_fn(
        |_: Request<LimitedBody<Full<Bytes>>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    );
    send(
        service,
        Request::post("/v1/track")
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

/// Waits until each of `stores` has heard `count` notifications: a lookup
/// in flight when its key's notification arrives is answered but not
/// cached, so the tests that count queries or rely on a key being cached
/// let the notifications of their inserts arrive first.
async fn heard(stores: &[&PostgresKeyStore], count: u64) {
    until("the inserts notified", || {
        stores
            .iter()
            .all(|store| store.stats().notifications >= count)
    })
    .await;
}

/// The answer is the refusal `status` with `code`.
fn refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(
        (answer.status.as_u16(), answer.code()),
        (status, code),
        "{:?}",
        answer.body
    );
}

/// Waits (at most 10 s, checking every millisecond) until `done` holds:
/// readiness of another process, never a duration the test relies on.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_in_sql_reach_two_gates_by_notification() {
    let server = PostgresServer::start();
    let first = connect(options(&server)).await;
    let second = connect(options(&server)).await;
    let revoked = mint(&first, "key_revoked", None).await;
    let disabled = mint(&first, "key_disabled", None).await;
    let upgraded = mint(&first, "key_upgraded", Some("free")).await;
    heard(&[&first, &second], 3).await;
    let gates = [
        serve_gate(&gate(first.clone(), None)).await,
        serve_gate(&gate(second.clone(), None)).await,
    ];
    for address in gates {
        for key in [&revoked, &disabled] {
            let answer = fetch(track(address, key.key(), 0)).await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        }
        refused(
            &fetch(track(address, upgraded.key(), 100)).await,
            413,
            "payload_too_large",
        );
    }
    // Cached now: the next requests need no query.
    let queries = [first.stats().queries, second.stats().queries];
    for address in gates {
        assert_eq!(
            fetch(track(address, revoked.key(), 0)).await.status,
            StatusCode::OK
        );
    }
    assert_eq!([first.stats().queries, second.stats().queries], queries);

    let sql = server.sql().await;
    let notified = |stores: &[&PostgresKeyStore], before: &[u64]| {
        stores
            .iter()
            .zip(before)
            .all(|(store, before)| store.stats().notifications > *before)
    };
    for (statement, key, status, code) in [
        (
            "UPDATE tollgate_keys SET status = 'revoked' WHERE key_id = 'key_revoked'",
            &revoked,
            401,
            "invalid_api_key",
        ),
        (
            "UPDATE tollgate_keys SET status = 'disabled' WHERE key_id = 'key_disabled'",
            &disabled,
            403,
            "key_disabled",
        ),
    ] {
        let before = [first.stats().notifications, second.stats().notifications];
        sql.batch_execute(statement).await.unwrap();
        until("both stores notified", || {
            notified(&[&first, &second], &before)
        })
        .await;
        for address in gates {
            refused(&fetch(track(address, key.key(), 0)).await, status, code);
        }
    }
    let before = [first.stats().notifications, second.stats().notifications];
    sql.batch_execute("UPDATE tollgate_keys SET tier = 'pro' WHERE key_id = 'key_upgraded'")
        .await
        .unwrap();
    until("both stores notified", || {
        notified(&[&first, &second], &before)
    })
    .await;
    for address in gates {
        let answer = fetch(track(address, upgraded.key(), 100)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "the pro tier's cap: {:?}",
            answer.body
        );
    }
    // A key inserted after it was looked up (and remembered as unknown)
    // works on the next request too.
    let hasher = KeyHasher::with_pepper(PEPPER);
    let late = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
    for address in gates {
        refused(
            &fetch(track(address, late.key(), 0)).await,
            401,
            "invalid_api_key",
        );
    }
    let before = [first.stats().notifications, second.stats().notifications];
    let mut entry = KeyConfig::default();
    entry.name = "key_late".into();
    entry.project = "acme".into();
    entry.kind = Some(KeyKind::Secret);
    first.insert(late.digest(), &entry).await.unwrap();
    until("both stores notified", || {
        notified(&[&first, &second], &before)
    })
    .await;
    for address in gates {
        assert_eq!(
            fetch(track(address, late.key(), 0)).await.status,
            StatusCode::OK
        );
    }
    // The last-used times written back do not notify anyone.
    let before = [first.stats().notifications, second.stats().notifications];
    assert!(first.write_last_used().await.unwrap() > 0);
    sql.batch_execute("SELECT pg_notify('tollgate_keys', '*')")
        .await
        .unwrap();
    until("both stores notified", || {
        notified(&[&first, &second], &before)
    })
    .await;
    assert_eq!(
        [first.stats().notifications, second.stats().notifications],
        [before[0] + 1, before[1] + 1],
        "only the explicit notification, none for last_used_at"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_frozen_and_back() {
    let server = PostgresServer::start();
    let fake = FakeClock::new();
    let graced = PostgresKeyStore::connect_with_clock(
        options(&server).grace(Duration::from_secs(30)),
        fake.clock(),
    )
    .await
    .unwrap();
    let strict = PostgresKeyStore::connect_with_clock(options(&server), fake.clock())
        .await
        .unwrap();
    let cached = mint(&graced, "key_cached", None).await;
    let uncached = mint(&graced, "key_uncached", None).await;
    heard(&[&graced, &strict], 2).await;
    let graced_gate = serve_gate(&gate(graced.clone(), Some(&fake))).await;
    let strict_gate = serve_gate(&gate(strict.clone(), Some(&fake))).await;
    for address in [graced_gate, strict_gate] {
        assert_eq!(
            fetch(track(address, cached.key(), 0)).await.status,
            StatusCode::OK
        );
    }

    server.stop();
    until("the listeners saw the database go", || {
        !graced.stats().listening && !strict.stats().listening
    })
    .await;
    for address in [graced_gate, strict_gate] {
        // Cached: answered without the database.
        assert_eq!(
            fetch(track(address, cached.key(), 0)).await.status,
            StatusCode::OK
        );
        // Not cached: the lookup fails, at once.
        refused(
            &fetch(track(address, uncached.key(), 0)).await,
            502,
            "upstream_failed",
        );
    }
    // Past the time to live: within the grace on one store, not the other.
    fake.advance(Duration::from_secs(61));
    assert_eq!(
        fetch(track(graced_gate, cached.key(), 0)).await.status,
        StatusCode::OK
    );
    refused(
        &fetch(track(strict_gate, cached.key(), 0)).await,
        502,
        "upstream_failed",
    );
    fake.advance(Duration::from_secs(30));
    refused(
        &fetch(track(graced_gate, cached.key(), 0)).await,
        502,
        "upstream_failed",
    );

    // Back: lookups resume without a restart; the listeners reconnect and
    // drop their caches (changes may have been missed).
    server.resume();
    until("the listeners reconnected", || {
        graced.stats().reconnects == 1 && strict.stats().reconnects == 1
    })
    .await;
    assert_eq!((graced.cached(), strict.cached()), (0, 0));
    let queries = graced.stats().queries;
    for address in [graced_gate, strict_gate] {
        for key in [&cached, &uncached] {
            assert_eq!(
                fetch(track(address, key.key(), 0)).await.status,
                StatusCode::OK
            );
        }
    }
    assert_eq!(graced.stats().queries, queries + 2);

    // Frozen: connections stay open and nothing answers. An uncached key is
    // refused when the query's timeout passes; a cached one is served.
    let heard_before = graced.stats().notifications;
    let frozen = mint(&graced, "key_frozen", None).await;
    heard(&[&graced], heard_before + 1).await;
    server.signal("-STOP");
    refused(
        &fetch(track(graced_gate, frozen.key(), 0)).await,
        502,
        "upstream_failed",
    );
    assert_eq!(
        fetch(track(graced_gate, cached.key(), 0)).await.status,
        StatusCode::OK
    );
    server.signal("-CONT");
    assert_eq!(
        fetch(track(graced_gate, frozen.key(), 0)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_misses_make_one_query() {
    let server = PostgresServer::start();
    let store = connect(options(&server)).await;
    let key = mint(&store, "key_popular", None).await;
    heard(&[&store], 1).await;
    let gate = Arc::new(gate(store.clone(), None));
    let key = Arc::new(key.key().to_owned());
    let requests: Vec<_> = (0..10_000)
        .map(|_| {
            let gate = Arc::clone(&gate);
            let key = Arc::clone(&key);
            tokio::spawn(async move { through(&gate, &key).await.status })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(store.stats().queries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_keys_is_shed_and_known_keys_pass() {
    const CAP: usize = 4;
    let server = PostgresServer::start();
    // Timeouts long enough that a loaded test machine does not turn
    // lookups into failures: what is measured is the shedding.
    let store = connect(
        options(&server)
            .max_concurrent_lookups(CAP)
            .query_timeout(Duration::from_secs(10)),
    )
    .await;
    let known = mint(&store, "key_known", None).await;
    heard(&[&store], 1).await;
    let gate = Arc::new(gate_waiting(store.clone(), None, Duration::from_secs(20)));
    assert_eq!(through(&gate, known.key()).await.status, StatusCode::OK);

    // 100 000 distinct, well-formed keys nobody stored (checksums are
    // public: anyone can mint them), 256 at a time, and the known key's
    // requests among them.
    let hasher = KeyHasher::new();
    let guesses: Arc<Vec<String>> = Arc::new(
        (0..100_000)
            .map(|_| {
                hasher
                    .mint(KeyKind::Secret, Some(KeyEnv::Live))
                    .unwrap()
                    .key()
                    .to_owned()
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // Each request yields before it is sent, as one read from a socket
    // would: without it, answers given at once never let the queries run.
    let workers: Vec<_> = (0..256)
        .map(|_| {
            let (gate, guesses, next) =
                (Arc::clone(&gate), Arc::clone(&guesses), Arc::clone(&next));
            tokio::spawn(async move {
                let mut refused = [0usize; 2];
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(guess) = guesses.get(index) else {
                        break;
                    };
                    tokio::task::yield_now().await;
                    let answer = through(&gate, guess).await;
                    match (answer.status.as_u16(), answer.code()) {
                        (401, "invalid_api_key") => refused[0] += 1,
                        (503, "upstream_failed") => {
                            assert_eq!(answer.headers["retry-after"], "1");
                            refused[1] += 1;
                        }
                        other => panic!("a guessed key answered {other:?}: {:?}", answer.error),
                    }
                }
                refused
            })
        })
        .collect();
    // The known key, all along.
    let caller = {
        let (gate, next, known) = (Arc::clone(&gate), Arc::clone(&next), known.key().to_owned());
        tokio::spawn(async move {
            let mut admitted = 0;
            while next.load(Ordering::Relaxed) < 100_000 {
                tokio::task::yield_now().await;
                let answer = through(&gate, &known).await;
                assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
                admitted += 1;
            }
            admitted
        })
    };
    let (mut unknown, mut shed) = (0, 0);
    for worker in workers {
        let [u, s] = worker.await.unwrap();
        (unknown, shed) = (unknown + u, shed + s);
    }
    let known_admitted = caller.await.unwrap();
    let elapsed = started.elapsed();
    let stats = store.stats();
    assert_eq!(unknown + shed, 100_000);
    assert!(known_admitted > 0);
    assert!(stats.peak_in_flight as usize <= CAP, "{stats:?}");
    assert_eq!(stats.busy as usize, shed, "{stats:?}");
    assert!(store.cached_unknown() > 0);
    println!(
        "flood: 100 000 unknown keys in {elapsed:?}: {} queries ({:.0}/s), {shed} shed, {unknown} \
         refused as unknown, {known_admitted} known-key requests admitted meanwhile",
        stats.queries,
        stats.queries as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_is_written_in_batches() {
    let server = PostgresServer::start();
    // Written by hand here (the interval is an hour); the second store
    // writes by itself every 50 ms.
    let store = connect(options(&server).last_used_interval(Duration::from_secs(3600))).await;
    let keys = [
        mint(&store, "key_a", None).await,
        mint(&store, "key_b", None).await,
        mint(&store, "key_idle", None).await,
    ];
    let gate = gate(store.clone(), None);
    for _ in 0..50 {
        for key in &keys[..2] {
            assert_eq!(through(&gate, key.key()).await.status, StatusCode::OK);
        }
    }
    let sql = server.sql().await;
    let last_used = async |key_id: &str| -> Option<std::time::SystemTime> {
        sql.query_one(
            "SELECT last_used_at FROM tollgate_keys WHERE key_id = $1",
            &[&key_id],
        )
        .await
        .unwrap()
        .get(0)
    };
    assert_eq!(
        last_used("key_a").await,
        None,
        "nothing written on the request's path"
    );
    assert_eq!(
        store.write_last_used().await.unwrap(),
        2,
        "one write per key used"
    );
    assert_eq!(store.stats().last_used_writes, 1, "in one statement");
    assert!(last_used("key_a").await.is_some() && last_used("key_b").await.is_some());
    assert_eq!(last_used("key_idle").await, None);
    assert_eq!(
        store.write_last_used().await.unwrap(),
        0,
        "nothing used since"
    );

    let ticking = connect(options(&server).last_used_interval(Duration::from_millis(50))).await;
    let gate = self::gate(ticking.clone(), None);
    assert_eq!(through(&gate, keys[2].key()).await.status, StatusCode::OK);
    until("written at the interval", || {
        ticking.stats().last_used_keys == 1
    })
    .await;
    assert!(last_used("key_idle").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_are_clear() {
    let server = PostgresServer::start();
    // No table: the error says how to make it.
    let error = PostgresKeyStore::connect(options(&server).migrate(false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("tollgate_keys") && error.contains("migrat"),
        "{error}"
    );
    // The migration applies twice, from two instances at once.
    let (a, b) = tokio::join!(
        PostgresKeyStore::connect(options(&server)),
        PostgresKeyStore::connect(options(&server))
    );
    a.unwrap();
    b.unwrap();
    // Nobody listening there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let error = PostgresKeyStore::connect(PostgresOptions::new(format!(
        "postgres://postgres:secret-pw@127.0.0.1:{port}/postgres"
    )))
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("cannot reach"), "{error}");
    assert!(!error.contains("secret-pw"), "{error}");

    // From a config file: `[key_store]` is used, with `[[keys]]` refused.
    let config = GateConfig::from_toml(&format!(
        "[key_store]\npostgres = \"{}\"\nmigrate = true\n",
        server.url()
    ))
    .unwrap();
    assert_eq!(config.build().unwrap_err().field(), "key_store");
    let store = config.postgres_key_store().await.unwrap().unwrap();
    config.builder().unwrap().key_store(store).build().unwrap();
    let both = GateConfig::from_toml(&format!(
        "[key_store]\npostgres = \"{}\"\n\n[[keys]]\nname = \"k\"\nproject = \"p\"\nkind = \"secret\"\ndigest = \"{}\"\n",
        server.url(),
        "ab".repeat(32)
    ))
    .unwrap();
    let error = both.postgres_key_store().await.unwrap_err().to_string();
    assert!(error.contains("[[keys]]"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_tool_and_the_demo_gateway_against_postgres() {
    let server = PostgresServer::start();
    let url = server.url();
    let keys = |args: &[&str]| {
        let output = Command::new(example_binary("keys"))
            .args(args)
            .env("TOLLGATE_PEPPER", "demo pepper")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "keys {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let minted = keys(&[
        "mint",
        "--kind",
        "secret",
        "--env",
        "test",
        "--project",
        "acme",
        "--name",
        "key_demo",
        "--postgres",
        &url,
        "--migrate",
    ]);
    let key = minted.lines().next().unwrap().trim().to_owned();
    assert!(key.starts_with("sk_test_"), "{minted}");
    let listed = keys(&["list", "--postgres", &url]);
    assert!(
        listed.contains("key_demo") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "the list never shows a key");
    // A key minted with credits lists them as `mint` took them (what is
    // left of them is the rate store's).
    for (name, credits) in [("key_monthly", "10000/month"), ("key_once", "25")] {
        keys(&[
            "mint",
            "--kind",
            "secret",
            "--project",
            "acme",
            "--name",
            name,
            "--credits",
            credits,
            "--postgres",
            &url,
        ]);
    }
    let listed = keys(&["list", "--postgres", &url]);
    let row = |name: &str| {
        listed
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("{name} listed: {listed}"))
            .split_whitespace()
            .nth(6)
            .map(str::to_owned)
    };
    assert!(
        listed.lines().next().unwrap().contains("credits"),
        "{listed}"
    );
    assert_eq!(row("key_monthly").as_deref(), Some("10000/month"));
    assert_eq!(row("key_once").as_deref(), Some("25"));
    assert_eq!(row("key_demo").as_deref(), Some("-"));

    let config = std::env::temp_dir().join(format!("tollgate-pg-demo-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "pepper_env = \"TOLLGATE_PEPPER\"\n\n[[routes]]\nroute = \"POST /v1/track\"\n",
    )
    .unwrap();
    let gateway = Gateway::start(
        "TOLLGATE_PEPPER='demo pepper'",
        &format!("--config {} --postgres {url}", config.display()),
    );
    let answer = fetch(track(gateway.address, &key, 0)).await;
    assert!(answer.status.is_success(), "{:?}", answer.body);

    keys(&["revoke", "key_demo", "--postgres", &url]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = fetch(track(gateway.address, &key, 0)).await;
        if answer.status == StatusCode::UNAUTHORIZED {
            refused(&answer, 401, "invalid_api_key");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation never reached the demo"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listed = keys(&["list", "--postgres", &url]);
    assert!(listed.contains("revoked"), "{listed}");
    let _ = std::fs::remove_file(config);
}

/// Credits set and read in Postgres: a key inserted with 2 credits is
/// refused `credits_exhausted` after 2; raised to 5 in SQL (every gateway
/// hears of it), it has 3 more; the row reads back as written; a row whose
/// credits cannot be read is `502 upstream_failed`, not a key without
/// credits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_set_and_read_in_postgres() {
    use tollgate::key::KeyRecord;
    use tollgate::key::store::KeyStore;
    use tollgate::rate_limit::Credits;
    let server = PostgresServer::start();
    let store = connect(options(&server)).await;
    let hasher = KeyHasher::with_pepper(PEPPER);
    let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test)).unwrap();
    let mut entry = KeyConfig::default();
    entry.name = "key_credits".into();
    entry.project = "acme".into();
    entry.kind = Some(KeyKind::Secret);
    entry.credits = Some(Credits::new(2));
    store.insert(minted.digest(), &entry).await.unwrap();
    heard(&[&store], 1).await;
    let gate = gate(store.clone(), None);
    let address = serve_gate(&gate).await;
    for _ in 0..2 {
        let answer = fetch(track(address, minted.key(), 0)).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    refused(
        &fetch(track(address, minted.key(), 0)).await,
        429,
        "credits_exhausted",
    );
    let read = match store.lookup(&minted.digest()) {
        tollgate::Answer::Ready(found) => found,
        tollgate::Answer::Pending(lookup) => lookup.await,
    };
    let record: std::sync::Arc<KeyRecord> = read.unwrap().unwrap();
    assert_eq!(record.credits(), Some(&Credits::new(2)));
    assert_eq!(gate.credits_left(&record).await.unwrap(), Some(0));

    let sql = server.sql().await;
    let before = store.stats().notifications;
    sql.batch_execute(
        "UPDATE tollgate_keys SET credits = '{\"remaining\": 5}' WHERE key_id = 'key_credits'",
    )
    .await
    .unwrap();
    until("the store notified", || {
        store.stats().notifications > before
    })
    .await;
    let mut admitted = 0;
    while fetch(track(address, minted.key(), 0)).await.status == StatusCode::OK {
        admitted += 1;
    }
    assert_eq!(admitted, 3, "5 given, 2 spent");

    let before = store.stats().notifications;
    sql.batch_execute(
        "UPDATE tollgate_keys SET credits = '{\"remaining\": -1}' WHERE key_id = 'key_credits'",
    )
    .await
    .unwrap();
    until("the store notified", || {
        store.stats().notifications > before
    })
    .await;
    refused(
        &fetch(track(address, minted.key(), 0)).await,
        502,
        "upstream_failed",
    );
}
