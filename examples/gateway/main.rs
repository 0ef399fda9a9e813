//! The demo gateway: an ingest API on 127.0.0.1:8080 guarded by tollgate.
//!
//! ```text
//! cargo run --release --example gateway [-- --addr HOST:PORT] [--config PATH]
//! ```
//!
//! It reads `examples/gateway.toml` (keys, routes, quotas), prints its
//! address and the demo keys, and logs each decision.
//!
//! As a server to copy: it keeps accepting after accept errors (too many
//! open files: logged, a short pause, on), closes connections whose request
//! headers do not arrive within `--header-timeout` seconds (default 10), and
//! on SIGINT or SIGTERM stops accepting, lets requests in flight finish
//! within `--shutdown-timeout` seconds (default 10) and exits 0.

// Shared with `examples/loadtest.rs` and `tests/gateway.rs`, which use more of it.
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
use tollgate::gate::GateConfig;
use tower::ServiceExt;

struct Args {
    addr: SocketAddr,
    config: PathBuf,
    header_timeout: Duration,
    shutdown_timeout: Duration,
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
            "--header-timeout" => {
                args.header_timeout = seconds("--header-timeout", &value("--header-timeout")?)?
            }
            "--shutdown-timeout" => {
                args.shutdown_timeout =
                    seconds("--shutdown-timeout", &value("--shutdown-timeout")?)?
            }
            "-h" | "--help" => {
                println!(
                    "usage: gateway [--addr HOST:PORT] [--config PATH] [--header-timeout SECONDS] [--shutdown-timeout SECONDS]"
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
    let config = GateConfig::from_path(&args.config)?;
    let builder = config.builder()?.on_decision(|event| match event.code() {
        None => tracing::info!(
            route = event.route(),
            status = event.status().as_u16(),
            "allowed"
        ),
        Some(code) => tracing::info!(
            route = event.route(),
            status = event.status().as_u16(),
            code = code.as_str(),
            "rejected"
        ),
    });
    // With `--features redis` and a `[redis]` table, buckets are shared in Redis.
    #[cfg(feature = "redis")]
    if let Some(store) = config.redis_store().await? {
        println!("rate limits shared in Redis ({store:?})");
        let gate = builder.rate_store(store).build()?;
        return serve(
            &args,
            &config,
            app::app(&gate, app::handlers(gate.renderer().clone())),
        )
        .await;
    }
    let gate = builder.build()?;
    serve(
        &args,
        &config,
        app::app(&gate, app::handlers(gate.renderer().clone())),
    )
    .await
}

async fn serve(
    args: &Args,
    config: &GateConfig,
    service: app::App,
) -> Result<(), Box<dyn std::error::Error>> {
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
        "  for i in $(seq 25); do curl -s -o /dev/null -w '%{{http_code}} ' http://{addr}/v1/stats -H 'X-API-Key: {server}'; done; echo"
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
