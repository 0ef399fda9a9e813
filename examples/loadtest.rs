//! End-to-end throughput: the demo API bare and behind the gate, on loopback.
//!
//! ```text
//! cargo run --release --example loadtest -- --seconds 10 --connections 32
//! cargo run --release --example loadtest -- --mode quota --seconds 5
//! ```
//!
//! `throughput` (default): serves the demo API twice on 127.0.0.1, each in a
//! process of its own — the demo service without the gate (same handlers,
//! CORS and panic handling, and a fixed caller in each request so the
//! handlers answer the same bodies), and with the gate built from
//! `examples/gateway.toml`, every quota raised so none refuses (and the
//! public `GET /health` given one, so it is rate limited by client address
//! as the peer's is), and `--keys`
//! (default 10 000) secret keys over `--projects` (default 1 000) projects
//! added to its store — and drives each from this process with HTTP/1.1
//! keep-alive clients (hyper), each walking the shuffled keys, in
//! alternating rounds (`--rounds`, default 5). With `taskset` on the machine
//! (and unless `--no-pin`), the servers run on core 0 and the clients on
//! core 1, so client and server never share a core. Prints each round's
//! requests/s, p50 and p99 latency, each round's ratio gated/bare, and the
//! median ratio.
//!
//! `--serve bare|gated|peer [--addr ADDR] [--keys-file PATH]` serves one
//! of the apps for an external client (`examples/wrk/run.sh`); `peer` is
//! what a user would assemble from tower-http and tower_governor instead of
//! the gate (on `GET /health`, public in both, it keys tower_governor by
//! the client's address); `--serve gated --guesses N --guesses-file PATH` also writes N
//! well-formed keys the store does not hold (a guessing flood,
//! `examples/wrk/flood.sh`); `--serve bare --busy-ns N` makes the bare
//! server spin N ns on each request before its handlers (to see what a
//! server that is slower by N ns pays beyond those N ns under the same
//! client: `examples/wrk/run.sh`'s fourth argument).
//!
//! `quota`: drives `GET /v1/stats` (10/s, burst 20, per project) as fast as
//! it can and checks that the admitted count is what the quota allows, within
//! one refill interval; exits 1 if not.

#[path = "gateway/app.rs"]
#[allow(dead_code)]
mod app;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tollgate::gate::GateConfig;
use tower::ServiceExt;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway.toml");
const SERVER_KEY: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";

struct Args {
    seconds: f64,
    connections: usize,
    rounds: usize,
    keys: usize,
    projects: usize,
    quota_mode: bool,
    pin: bool,
    /// Serve `bare`, `gated` or `peer` only (for an external client such
    /// as wrk): print the address (and, unless `--keys-file`, the keys),
    /// then serve.
    serve: Option<String>,
    /// Where `--serve` binds (default: a free loopback port).
    addr: SocketAddr,
    /// Where `--serve gated|peer` writes its keys, one a line (for wrk's script).
    keys_file: Option<std::path::PathBuf>,
    /// `--serve gated --guesses N --guesses-file PATH`: also write N
    /// well-formed keys the store does not hold (a guessing flood, for wrk).
    guesses: usize,
    guesses_file: Option<std::path::PathBuf>,
    /// `--serve bare --busy-ns N`: spin N ns on each request first.
    busy_ns: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 10.0,
        connections: 32,
        rounds: 5,
        keys: 10_000,
        projects: 1_000,
        quota_mode: false,
        pin: true,
        serve: None,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        keys_file: None,
        guesses: 0,
        guesses_file: None,
        busy_ns: 0,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = || given.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--connections" => {
                args.connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--rounds" => args.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--keys" => args.keys = value()?.parse().map_err(|e| format!("--keys: {e}"))?,
            "--projects" => {
                args.projects = value()?.parse().map_err(|e| format!("--projects: {e}"))?
            }
            "--no-pin" => args.pin = false,
            "--serve" => args.serve = Some(value()?),
            "--addr" => args.addr = value()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--keys-file" => args.keys_file = Some(value()?.into()),
            "--guesses" => {
                args.guesses = value()?.parse().map_err(|e| format!("--guesses: {e}"))?
            }
            "--guesses-file" => args.guesses_file = Some(value()?.into()),
            "--busy-ns" => {
                args.busy_ns = value()?.parse().map_err(|e| format!("--busy-ns: {e}"))?
            }
            "--mode" => match value()?.as_str() {
                "throughput" => args.quota_mode = false,
                "quota" => args.quota_mode = true,
                other => return Err(format!("--mode {other}: expected throughput or quota")),
            },
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.seconds <= 0.0
        || args.connections == 0
        || args.rounds == 0
        || args.keys == 0
        || args.projects == 0
    {
        return Err(
            "--seconds, --connections, --rounds, --keys and --projects must be positive".into(),
        );
    }
    Ok(args)
}

/// The demo configuration with every quota raised out of reach, and the
/// public `GET /health` given one too (a public request is then rate
/// limited by its client's address, as in the benches and as the peer's
/// is), and three routes added that refuse every request.
fn unlimited_config() -> Result<GateConfig, Box<dyn std::error::Error>> {
    let mut value: toml::Value = toml::from_str(&std::fs::read_to_string(CONFIG)?)?;
    if let Some(routes) = value.get_mut("routes").and_then(toml::Value::as_array_mut) {
        for route in routes.iter_mut() {
            if let Some(table) = route.as_table_mut()
                && (table.contains_key("quotas") || table.get("public") == Some(&true.into()))
            {
                let quota: toml::Value = toml::from_str(
                    "q = { rate = 1000000000, per = \"second\", burst = 1000000000 }",
                )?;
                table.insert(
                    "quotas".into(),
                    toml::Value::Array(vec![quota["q"].clone()]),
                );
            }
        }
        // Routes that refuse every request of a secret key, for
        // examples/wrk/refusals.sh: two that each project spends at its
        // first request (429 after: a bucket of one token a day, a calendar
        // day's window of one request), one asking a scope no key holds
        // (403). The demo app has no handler for them: nothing reaches it.
        for route in [
            "route = \"POST /v1/tight\"\nquotas = [{ rate = 1, per = \"day\" }]",
            "route = \"POST /v1/spent\"\nquotas = [{ limit = 1, window = \"day\" }]",
            "route = \"POST /v1/sudo\"\nscopes = [\"superuser\"]",
        ] {
            routes.push(toml::from_str(route)?);
        }
    }
    // wrk sends every guess of the flood from one address: without this,
    // the failed-key budget would answer all but 20 a minute with 429, and
    // the flood would measure that instead of a lookup that finds nothing.
    if let Some(table) = value.as_table_mut() {
        table.insert("failed_keys".into(), toml::from_str("limit = 0")?);
    }
    Ok(GateConfig::from_toml(&toml::to_string(&value)?)?)
}

async fn serve<S, B>(service: S, address: SocketAddr) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = service
                .clone()
                .map_request(move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(peer);
                    request
                });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    address
}

struct Run {
    requests: usize,
    statuses: [usize; 6],
    latencies: Vec<u32>,
    elapsed: Duration,
}

/// `connections` keep-alive HTTP/1.1 clients sending `method path` for `seconds`.
async fn drive(
    address: SocketAddr,
    connections: usize,
    seconds: f64,
    (method, path): (&'static str, &'static str),
    keys: std::sync::Arc<[String]>,
) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..connections {
        let keys = std::sync::Arc::clone(&keys);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            let mut statuses = [0usize; 6];
            // Each connection walks the keys from its own starting point.
            let mut next = client * keys.len() / connections.max(1);
            while Instant::now() < deadline {
                next = (next + 1) % keys.len();
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", "127.0.0.1")
                    .header("authorization", format!("Bearer {}", keys[next]))
                    .body(Full::new(Bytes::from_static(b"{}")))
                    .expect("request");
                let sent = Instant::now();
                let Ok(response) = sender.send_request(request).await else {
                    break;
                };
                statuses[usize::from(response.status().as_u16() / 100).min(5)] += 1;
                let _ = response.into_body().collect().await;
                latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            (latencies, statuses)
        }));
    }
    let mut run = Run {
        requests: 0,
        statuses: [0; 6],
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, statuses) = task.await.expect("client task");
        run.requests += latencies.len();
        run.latencies.extend(latencies);
        for (total, count) in run.statuses.iter_mut().zip(statuses) {
            *total += count;
        }
    }
    run.elapsed = start.elapsed();
    run.latencies.sort_unstable();
    run
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, run: &Run) -> f64 {
    let rate = run.requests as f64 / run.elapsed.as_secs_f64();
    println!(
        "{name:<8} {rate:>10.0} req/s   p50 {:>6} µs   p99 {:>6} µs   2xx {}  4xx {}  5xx {}",
        percentile(&run.latencies, 0.50),
        percentile(&run.latencies, 0.99),
        run.statuses[2],
        run.statuses[4],
        run.statuses[5],
    );
    rate
}

/// `count` secret keys over `projects` projects, added to `store`, in a
/// shuffled order.
fn add_keys(
    config: &GateConfig,
    store: &tollgate::key::InMemoryKeyStore,
    count: usize,
    projects: usize,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    use tollgate::key::{KeyEnv, KeyKind, KeyRecord};
    let hasher = config.hasher()?;
    let mut keys = Vec::with_capacity(count);
    for i in 0..count {
        let minted = hasher.mint(KeyKind::Secret, Some(KeyEnv::Test))?;
        let record = KeyRecord::new(
            format!("load_{i}"),
            format!("project_{}", i % projects.max(1)),
            KeyKind::Secret,
        );
        store.insert(minted.digest(), record);
        keys.push(minted.into_key());
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..keys.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        keys.swap(i, (state % (i as u64 + 1)) as usize);
    }
    Ok(keys)
}

/// `app`, spinning `busy` on each request before it: a server slower by
/// exactly that much CPU per request.
fn busy_app(app: app::App, busy: std::time::Duration) -> app::App {
    let service = tower::ServiceBuilder::new()
        .map_request(move |request| {
            let start = std::time::Instant::now();
            while start.elapsed() < busy {
                std::hint::spin_loop();
            }
            request
        })
        .service(app);
    tower::util::BoxCloneService::new(service)
}

/// Serves the bare, the gated or the peer app (in a process of its own),
/// prints `listening ADDRESS`, then for the gated and peer apps their keys,
/// one a line (or into `--keys-file`), then `ready`; serves until killed.
async fn serve_one(which: &str, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let config = unlimited_config()?;
    let gate = config.build()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (address, keys) = match which {
        "gated" => {
            let keys = add_keys(&config, gate.key_store(), args.keys, args.projects)?;
            if let Some(path) = &args.guesses_file {
                // Well-formed (prefix, checksum) but never stored.
                let hasher = config.hasher()?;
                let mut guesses = String::with_capacity(args.guesses * 56);
                for _ in 0..args.guesses {
                    let minted = hasher.mint(
                        tollgate::key::KeyKind::Secret,
                        Some(tollgate::key::KeyEnv::Test),
                    )?;
                    guesses.push_str(minted.key());
                    guesses.push('\n');
                }
                std::fs::write(path, guesses)?;
            }
            let app = app::app(&gate, app::handlers(gate.renderer().clone()));
            (serve(app, args.addr).await, keys)
        }
        "peer" => {
            let keys = add_keys(&config, gate.key_store(), args.keys, args.projects)?;
            let app = peer::app(
                app::cors(&gate),
                gate.renderer().clone(),
                peer::digests(&keys, args.projects),
            );
            (serve(app, args.addr).await, keys)
        }
        "bare" => {
            // The bare app's handlers see a caller like the gated ones do.
            let caller =
                tollgate::key::Principal::new(std::sync::Arc::new(tollgate::key::KeyRecord::new(
                    "load_0",
                    "project_0",
                    tollgate::key::KeyKind::Secret,
                )));
            let renderer = gate.renderer().clone();
            let app = app::bare_app(
                app::cors(&gate),
                renderer.clone(),
                app::handlers(renderer),
                caller,
            );
            let app = match args.busy_ns {
                0 => app,
                busy => busy_app(app, std::time::Duration::from_nanos(busy)),
            };
            (serve(app, args.addr).await, Vec::new())
        }
        other => return Err(format!("--serve {other}: expected bare, gated or peer").into()),
    };
    writeln!(out, "listening {address}")?;
    match &args.keys_file {
        Some(path) => std::fs::write(path, keys.join("\n") + "\n")?,
        None => {
            for key in keys {
                writeln!(out, "{key}")?;
            }
        }
    }
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}

/// What a user who checks keys would assemble from tower-http and
/// tower_governor instead of the gate, in front of the same handlers (as
/// `peer_stack_keyed_headers` in `benches/stack.rs`): the bearer token's
/// SHA-256 looked up in a `HashMap` (the caller into the extensions),
/// `tower_governor` keyed by the token with its rate-limit headers, and
/// tower-http's body limit; CORS and panic handling as in the other apps.
/// `GET /health` is public, as in the gated app: no token is asked for,
/// and `tower_governor` keys it by the client's address instead.
mod peer {
    use std::collections::HashMap;
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use sha2::{Digest, Sha256};
    use tollgate::key::{KeyKind, KeyRecord, Principal};
    use tollgate::render::ErrorRenderer;
    use tower::ServiceBuilder;
    use tower::util::BoxCloneService;
    use tower_http::body::Limited;
    use tower_http::cors::CorsLayer;

    use super::app;

    type Digests = Arc<HashMap<[u8; 32], Principal>>;

    /// SHA-256 of each key → its caller (the same ids and projects as the
    /// gated app's records).
    pub fn digests(keys: &[String], projects: usize) -> Digests {
        let _ = projects;
        Arc::new(
            keys.iter()
                .enumerate()
                .map(|(i, key)| {
                    let record = KeyRecord::new(
                        format!("load_{i}"),
                        format!("project_{}", i % projects.max(1)),
                        KeyKind::Secret,
                    );
                    (
                        Sha256::digest(key.as_bytes()).into(),
                        Principal::new(Arc::new(record)),
                    )
                })
                .collect(),
        )
    }

    /// The public route: no token, a bucket per client address.
    fn public<T>(request: &Request<T>) -> bool {
        request.uri().path() == "/health"
    }

    /// The bearer token, or on the public route the client's address.
    #[derive(Clone)]
    struct TokenOrAddress;

    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    enum Caller {
        Token(String),
        Address(std::net::IpAddr),
    }

    impl tower_governor::key_extractor::KeyExtractor for TokenOrAddress {
        type Key = Caller;

        fn extract<T>(
            &self,
            request: &Request<T>,
        ) -> Result<Self::Key, tower_governor::GovernorError> {
            let caller = if public(request) {
                request
                    .extensions()
                    .get::<std::net::SocketAddr>()
                    .map(|address| Caller::Address(address.ip()))
            } else {
                token(request).map(|token| Caller::Token(token.to_owned()))
            };
            caller.ok_or(tower_governor::GovernorError::UnableToExtractKey)
        }
    }

    fn token<T>(request: &Request<T>) -> Option<&str> {
        request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
    }

    pub fn app(cors: CorsLayer, renderer: ErrorRenderer, digests: Digests) -> app::App {
        let config = tower_governor::governor::GovernorConfigBuilder::default()
            .per_nanosecond(1)
            .burst_size(1_000_000_000)
            .key_extractor(TokenOrAddress)
            .use_headers()
            .finish()
            .expect("a governor configuration");
        let service = ServiceBuilder::new()
            .layer(cors)
            .map_response(|response: Response<_>| {
                response.map(|body: tower_http::limit::ResponseBody<_>| {
                    body.map_err(Into::into).boxed_unsync()
                })
            })
            .layer(tower_http::limit::RequestBodyLimitLayer::new(8192))
            .layer(app::catch_panics(&renderer))
            .layer(
                tower_http::validate_request::ValidateRequestHeaderLayer::custom(
                    #[allow(clippy::result_large_err)]
                    move |request: &mut Request<Limited<Incoming>>| {
                        if public(request) {
                            return Ok(());
                        }
                        let caller = token(request).and_then(|token| {
                            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                            digests.get(&digest).cloned()
                        });
                        match caller {
                            Some(caller) => {
                                request.extensions_mut().insert(caller);
                                Ok(())
                            }
                            None => {
                                let mut response = Response::new(axum::body::Body::empty());
                                *response.status_mut() = StatusCode::UNAUTHORIZED;
                                Err(response)
                            }
                        }
                    },
                ),
            )
            .layer(tower_governor::GovernorLayer::<_, _, axum::body::Body>::new(config))
            // tower_governor answers its refusals in axum's body.
            .map_response(|response: Response<Full<Bytes>>| response.map(axum::body::Body::new))
            .service(app::handlers::<Limited<Incoming>>(renderer));
        BoxCloneService::new(service)
    }
}

/// A server process: its address, the keys it prints, and the child to kill.
struct Server {
    address: SocketAddr,
    keys: Vec<String>,
    child: std::process::Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `--serve which` as a child process, on core 0 when pinning.
fn spawn_server(which: &str, args: &Args, pin: bool) -> Result<Server, Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?;
    let mut command = if pin {
        let mut command = std::process::Command::new("taskset");
        command.args(["-c", "0"]).arg(exe);
        command
    } else {
        std::process::Command::new(exe)
    };
    command
        .args(["--serve", which])
        .args(["--keys", &args.keys.to_string()])
        .args(["--projects", &args.projects.to_string()])
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut server = Server {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        keys: Vec::new(),
        child,
    };
    for line in &mut lines {
        let line = line?;
        if let Some(address) = line.strip_prefix("listening ") {
            server.address = address.parse()?;
        } else if line == "ready" {
            return Ok(server);
        } else {
            server.keys.push(line);
        }
    }
    Err(format!("the {which} server ended before it was ready").into())
}

/// Whether `taskset` can pin this process to core 1 (and then did).
fn pin_client() -> bool {
    let pid = std::process::id().to_string();
    std::process::Command::new("taskset")
        .args(["-a", "-cp", "1", &pid])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

async fn throughput(
    args: &Args,
    pinned: bool,
    bare: &Server,
    gated: &Server,
) -> Result<(), Box<dyn std::error::Error>> {
    let keys: std::sync::Arc<[String]> = gated.keys.clone().into();
    println!(
        "POST /v1/track, {} connections, {} s per run, {} rounds, alternating; servers and client in separate processes{}; {} keys over {} projects, shuffled",
        args.connections,
        args.seconds,
        args.rounds,
        if pinned {
            ", servers on core 0 and clients on core 1 (taskset)"
        } else {
            ", not pinned"
        },
        keys.len(),
        args.projects
    );
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        let bare_rate = report(
            &format!("bare  {round}"),
            &drive(
                bare.address,
                args.connections,
                args.seconds,
                ("POST", "/v1/track"),
                keys.clone(),
            )
            .await,
        );
        let gated_rate = report(
            &format!("gated {round}"),
            &drive(
                gated.address,
                args.connections,
                args.seconds,
                ("POST", "/v1/track"),
                keys.clone(),
            )
            .await,
        );
        let ratio = gated_rate / bare_rate;
        println!("round {round}: ratio gated/bare {ratio:.3}");
        ratios.push(ratio);
    }
    println!(
        "median ratio gated/bare over {} rounds: {:.3} (target ≥ 0.95)",
        ratios.len(),
        median(&mut ratios)
    );
    Ok(())
}

async fn quota(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let gate = GateConfig::from_path(CONFIG)?.build()?;
    let address = serve(
        app::app(&gate, app::handlers(gate.renderer().clone())),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await;
    let key: std::sync::Arc<[String]> = vec![SERVER_KEY.to_owned()].into();
    let run = drive(
        address,
        args.connections,
        args.seconds,
        ("GET", "/v1/stats"),
        key,
    )
    .await;
    let (rate, burst) = (10.0, 20.0);
    let elapsed = run.elapsed.as_secs_f64();
    let admitted = run.statuses[2] as f64;
    // Everything the bucket held, plus what refilled while the run lasted;
    // the last request may land up to one refill interval (1/rate) either way.
    let expected = burst + rate * elapsed;
    let (low, high) = (expected - 1.0 - rate * 0.1, expected + 1.0);
    println!(
        "GET /v1/stats (10/s, burst 20): {} requests in {elapsed:.2} s, {} admitted, {} refused; quota allows {expected:.1} (accepting {low:.1}..={high:.1})",
        run.requests, run.statuses[2], run.statuses[4]
    );
    let ok = (low..=high).contains(&admitted);
    println!(
        "{}",
        if ok {
            "quota check: ok"
        } else {
            "quota check: FAILED"
        }
    );
    Ok(ok)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("loadtest: {error}");
            std::process::exit(2);
        }
    };
    let runtime = |threads: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("a Tokio runtime")
    };
    if let Some(which) = &args.serve {
        // On its own core when pinned: one worker thread.
        let outcome = runtime(1).block_on(serve_one(which, &args));
        if let Err(error) = outcome {
            eprintln!("loadtest --serve {which}: {error}");
            std::process::exit(2);
        }
        return;
    }
    let outcome = if args.quota_mode {
        runtime(2)
            .block_on(quota(&args))
            .map(|ok| if ok { 0 } else { 1 })
    } else {
        // Pin before the runtime starts its threads: they inherit it.
        let pinned = args.pin && pin_client();
        let servers = spawn_server("bare", &args, pinned)
            .and_then(|bare| Ok((bare, spawn_server("gated", &args, pinned)?)));
        match servers {
            Ok((bare, gated)) => runtime(if pinned { 1 } else { 2 })
                .block_on(throughput(&args, pinned, &bare, &gated))
                .map(|()| 0),
            Err(error) => Err(error),
        }
    };
    match outcome {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("loadtest: {error}");
            std::process::exit(2);
        }
    }
}
