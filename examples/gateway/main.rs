//! The demo gateway: an ingest API on 127.0.0.1:8080 guarded by tollgate.
//!
//! ```text
//! cargo run --release --example gateway [-- --addr HOST:PORT] [--config PATH]
//! cargo run --release --features metrics --example gateway -- --metrics-addr 127.0.0.1:9100
//! cargo run --release --features postgres --example gateway -- --postgres postgres://user@127.0.0.1/db
//! ```
//!
//! It reads `examples/gateway.toml` (keys, routes, quotas), prints its
//! address and the demo keys, and logs each decision.
//!
//! On SIGHUP it reads its configuration file again and serves the new one
//! from the next request on — keys added, revoked or disabled, routes and
//! quotas changed — keeping the buckets of the routes and quotas that are
//! still there and every open connection. A file that does not load is
//! reported in the log and the running configuration stays.
//!
//! With `--features postgres`, its keys come from PostgreSQL when the
//! configuration has a `[key_store]` table (`postgres = "postgres://…"`) or
//! `--postgres URL` is given (the file's `[[keys]]` are then not used, and
//! the table is created if missing): mint keys there with
//! `cargo run --features postgres --example keys -- mint --kind secret --postgres URL`.
//! A reload on SIGHUP keeps the key store, as it keeps the buckets.
//!
//! With `--features metrics` and `--metrics-addr HOST:PORT`, it serves its
//! metrics in the Prometheus text format at `http://HOST:PORT/metrics`, on
//! a listener of their own.
//!
//! As a server to copy: it keeps accepting after accept errors (too many
//! open files: logged, a short pause, on), closes connections whose request
//! headers do not arrive within `--header-timeout` seconds (default 10), and
//! on SIGINT or SIGTERM stops accepting, lets requests in flight finish
//! within `--shutdown-timeout` seconds (default 10) and exits 0.

// Shared with `examples/loadtest.rs` and `tests/it/gateway.rs`, which use more of it.
#[allow(dead_code)]
mod app;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tollgate::gate::{GateBuilder, GateConfig, LiveGate};
use tollgate::key::InMemoryKeyStore;
use tollgate::key::store::KeyStore;
use tollgate::rate_limit::InMemoryRateStore;
use tollgate::rate_limit::store::RateStore;
use tower::ServiceExt;

struct Args {
    addr: SocketAddr,
    config: PathBuf,
    header_timeout: Duration,
    shutdown_timeout: Duration,
    metrics_addr: Option<SocketAddr>,
    postgres: Option<String>,
}

fn seconds(name: &str, text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{name} {text}: expected a positive number of seconds"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        config: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/gateway.toml"
        )),
        header_timeout: Duration::from_secs(10),
        shutdown_timeout: Duration::from_secs(10),
        metrics_addr: None,
        postgres: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = |name: &str| given.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => {
                let text = value("--addr")?;
                args.addr = text
                    .parse()
                    .map_err(|error| format!("--addr {text}: {error}"))?;
            }
            "--config" => args.config = PathBuf::from(value("--config")?),
            "--postgres" => args.postgres = Some(value("--postgres")?),
            "--metrics-addr" => {
                let text = value("--metrics-addr")?;
                args.metrics_addr = Some(
                    text.parse()
                        .map_err(|error| format!("--metrics-addr {text}: {error}"))?,
                );
            }
            "--header-timeout" => {
                args.header_timeout = seconds("--header-timeout", &value("--header-timeout")?)?
            }
            "--shutdown-timeout" => {
                args.shutdown_timeout =
                    seconds("--shutdown-timeout", &value("--shutdown-timeout")?)?
            }
            "-h" | "--help" => {
                println!(
                    "usage: gateway [--addr HOST:PORT] [--config PATH] [--header-timeout SECONDS] [--shutdown-timeout SECONDS] [--metrics-addr HOST:PORT] [--postgres URL]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    if let Err(error) = run().await {
        eprintln!("gateway: {error}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr).await?;
    }
    let mut config = GateConfig::from_path(&args.config)?;
    let keys = key_store(&args, &config).await?;
    if args.postgres.is_some() {
        // The file's keys are not the gate's: neither loaded nor shown.
        config.keys.clear();
    }
    // With `--features redis` and a `[redis]` table, buckets are shared in Redis.
    #[cfg(feature = "redis")]
    if let Some(store) = config.redis_store().await? {
        println!("rate limits shared in Redis ({store:?})");
        return match keys {
            Keys::Memory => {
                let live = LiveGate::new(with_hook(config.builder()?).rate_store(store).build()?);
                serve(&args, &config, live).await
            }
            #[cfg(feature = "postgres")]
            Keys::Postgres(keys) => {
                let live = LiveGate::new(
                    with_hook(config.builder()?)
                        .key_store(keys)
                        .rate_store(store)
                        .build()?,
                );
                serve(&args, &config, live).await
            }
        };
    }
    match keys {
        Keys::Memory => {
            let live = LiveGate::new(with_hook(config.builder()?).build()?);
            serve(&args, &config, live).await
        }
        #[cfg(feature = "postgres")]
        Keys::Postgres(keys) => {
            let live = LiveGate::new(with_hook(config.builder()?).key_store(keys).build()?);
            serve(&args, &config, live).await
        }
    }
}

/// Where the keys are: the configuration file's, or PostgreSQL's.
enum Keys {
    Memory,
    #[cfg(feature = "postgres")]
    Postgres(tollgate::key::postgres::PostgresKeyStore),
}

/// The key store that `--postgres` or `[key_store]` asks for.
#[cfg(feature = "postgres")]
async fn key_store(args: &Args, config: &GateConfig) -> Result<Keys, Box<dyn std::error::Error>> {
    use tollgate::key::postgres::{PostgresKeyStore, PostgresOptions};
    let store = match &args.postgres {
        Some(url) => {
            if !config.keys.is_empty() {
                println!(
                    "keys from PostgreSQL: the {} keys of {} are not used",
                    config.keys.len(),
                    args.config.display()
                );
            }
            PostgresKeyStore::connect(PostgresOptions::new(url).migrate(true)).await?
        }
        None => match config.postgres_key_store().await? {
            Some(store) => store,
            None => return Ok(Keys::Memory),
        },
    };
    println!("keys in PostgreSQL ({store:?})");
    Ok(Keys::Postgres(store))
}

#[cfg(not(feature = "postgres"))]
async fn key_store(args: &Args, _: &GateConfig) -> Result<Keys, Box<dyn std::error::Error>> {
    if args.postgres.is_some() {
        return Err("--postgres needs the postgres feature: cargo run --release --features postgres --example gateway -- --postgres URL".into());
    }
    Ok(Keys::Memory)
}

/// The demo's decision hook: one log line per request.
fn with_hook(
    builder: GateBuilder<InMemoryKeyStore, InMemoryRateStore>,
) -> GateBuilder<InMemoryKeyStore, InMemoryRateStore> {
    builder.on_decision(|event| match event.code() {
        None => tracing::info!(
            route = event.route(),
            status = event.status().as_u16(),
            "allowed"
        ),
        Some(code) => tracing::info!(
            route = event.route(),
            status = event.status().as_u16(),
            code = code.as_str(),
            rule = event.rule().map(|rule| rule.as_str()),
            key_id = event.principal().map(|p| p.key_id()),
            outcome = event.outcome().as_str(),
            "{}",
            event.outcome().as_str()
        ),
    })
}

/// Reads the configuration file again and serves it from the next request
/// on, over the running gate's rate store (so buckets carry over), and over
/// its key store when that is not the file's.
fn reload<St: ReloadKeys, Rs: RateStore + Clone>(
    path: &std::path::Path,
    live: &LiveGate<St, Rs>,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = GateConfig::from_path(path)?;
    let gate = St::keys(with_hook(config.builder()?), live)
        .rate_store(live.current().rate_store().clone())
        .build()?;
    live.replace(gate);
    Ok(())
}

/// The key store a reloaded gate uses.
trait ReloadKeys: KeyStore + Sized {
    fn keys<Rs: RateStore>(
        builder: GateBuilder<InMemoryKeyStore, InMemoryRateStore>,
        live: &LiveGate<Self, Rs>,
    ) -> GateBuilder<Self, InMemoryRateStore>;
}

/// The file's keys: read again.
impl ReloadKeys for InMemoryKeyStore {
    fn keys<Rs: RateStore>(
        builder: GateBuilder<InMemoryKeyStore, InMemoryRateStore>,
        _: &LiveGate<Self, Rs>,
    ) -> GateBuilder<Self, InMemoryRateStore> {
        builder
    }
}

/// The database's keys: the same store, its cache and listener kept.
#[cfg(feature = "postgres")]
impl ReloadKeys for tollgate::key::postgres::PostgresKeyStore {
    fn keys<Rs: RateStore>(
        builder: GateBuilder<InMemoryKeyStore, InMemoryRateStore>,
        live: &LiveGate<Self, Rs>,
    ) -> GateBuilder<Self, InMemoryRateStore> {
        builder.key_store(live.current().key_store().clone())
    }
}

/// Reloads on every SIGHUP.
fn reload_on_sighup<St: ReloadKeys, Rs: RateStore + Clone>(path: PathBuf, live: LiveGate<St, Rs>) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("a SIGHUP handler");
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match reload(&path, &live) {
                Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
                Err(error) => tracing::error!(
                    config = %path.display(),
                    %error,
                    "configuration reload failed; the running configuration stays"
                ),
            }
        }
    });
}

/// Serves the metrics in the Prometheus text format at `/metrics` on `addr`.
#[cfg(feature = "metrics")]
async fn serve_metrics(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let handle = handle.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (status, body) = if request.uri().path() == "/metrics" {
                    (http::StatusCode::OK, handle.render())
                } else {
                    (http::StatusCode::NOT_FOUND, String::from("not found\n"))
                };
                let mut response =
                    http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                std::future::ready(Ok::<_, std::convert::Infallible>(response))
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

#[cfg(not(feature = "metrics"))]
async fn serve_metrics(_: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    Err("--metrics-addr needs the metrics feature: cargo run --release --features metrics --example gateway -- --metrics-addr 127.0.0.1:9100".into())
}

async fn serve<St: ReloadKeys, Rs: RateStore + Clone>(
    args: &Args,
    config: &GateConfig,
    live: LiveGate<St, Rs>,
) -> Result<(), Box<dyn std::error::Error>> {
    let service = app::live_app(&live, app::handlers(live.current().renderer().clone()));
    reload_on_sighup(args.config.clone(), live);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "tollgate demo gateway on http://{addr} (config {})",
        args.config.display()
    );
    println!("demo keys:");
    for key in &config.keys {
        if let Some(text) = &key.key {
            println!("  {:<8} {text}  (project {})", key.name, key.project);
        }
    }
    let server = config
        .keys
        .iter()
        .find(|key| key.name == "server")
        .and_then(|key| key.key.clone())
        .unwrap_or_default();
    println!();
    println!(
        "  curl -i -X POST http://{addr}/v1/track -H 'Authorization: Bearer {server}' -d '{{}}'"
    );
    println!("  curl -i -X POST http://{addr}/v1/track");
    println!(
        "  curl -s -w '%{{http_code}} ' -H 'X-API-Key: {server}' $(printf -- '-o /dev/null http://{addr}/v1/stats %.0s' $(seq 25)); echo"
    );

    let mut connections = auto::Builder::new(TokioExecutor::new());
    connections
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(args.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Too many open files, a connection reset before it was
                    // accepted…: none of them is a reason to stop serving.
                    tracing::warn!(%error, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            signal = &mut stop => {
                tracing::info!(signal, "stopping: no new connections");
                break;
            }
        };
        // The peer address partitions rate limits on public routes.
        let service = service
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
            });
        let connection = connections
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    match tokio::time::timeout(args.shutdown_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!("every request in flight finished"),
        Err(_) => tracing::warn!(
            timeout = ?args.shutdown_timeout,
            "requests still in flight at the shutdown deadline; exiting"
        ),
    }
    Ok(())
}

/// The first SIGINT or SIGTERM (its name).
async fn stop_signal() -> &'static str {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
