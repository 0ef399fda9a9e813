//! Operating the gate: shadow mode, what the decision hook sees, replacing
//! a running gate, the demo reloading its file on SIGHUP, and the keys
//! tool. Through real servers on 127.0.0.1 (and the demo and the keys tool
//! as processes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::demo::{Gateway, example_binary};
use crate::common::fixture::*;
use crate::common::{post, read_reply};
use tollgate::check::Shadow;
use tollgate::clock::FakeClock;
use tollgate::gate::{Gate, GateConfig, GateEvent, LiveGate, Outcome, RoutePolicy};
use tollgate::key::{InMemoryKeyStore, KeyKind};
use tollgate::rate_limit::{InMemoryRateStore, Quota};

/// What the hook saw of one request.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    route: String,
    outcome: Outcome,
    code: Option<String>,
    rule: Option<String>,
    status: u16,
    key_id: Option<String>,
    tier: Option<String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Seen, Duration)>>>);

impl Recorder {
    fn hook(&self) -> impl Fn(&GateEvent<'_>) + Send + Sync + 'static {
        let seen = Arc::clone(&self.0);
        move |event| {
            seen.lock().unwrap().push((
                Seen {
                    route: event.route().to_owned(),
                    outcome: event.outcome(),
                    code: event.code().map(|code| code.as_str().to_owned()),
                    rule: event.rule().map(|rule| rule.as_str().to_owned()),
                    status: event.status().as_u16(),
                    key_id: event.principal().map(|p| p.key_id().to_owned()),
                    tier: event.principal().and_then(|p| p.tier()).map(str::to_owned),
                },
                event.elapsed(),
            ));
        }
    }

    fn take(&self) -> Vec<Seen> {
        let taken: Vec<_> = std::mem::take(&mut *self.0.lock().unwrap());
        for (seen, elapsed) in &taken {
            assert!(*elapsed > Duration::ZERO, "{seen:?} took no time");
        }
        taken.into_iter().map(|(seen, _)| seen).collect()
    }
}

fn seen(
    route: &str,
    outcome: Outcome,
    code: Option<&str>,
    rule: Option<&str>,
    status: u16,
    key: Option<&str>,
) -> Seen {
    Seen {
        route: route.to_owned(),
        outcome,
        code: code.map(str::to_owned),
        rule: rule.map(str::to_owned),
        status,
        key_id: key.map(str::to_owned),
        tier: None,
    }
}

const SHADOW_TOML: &str = r#"
[[routes]]
route = "POST /v1/track"
quotas = [{ rate = 2, per = "minute" }]
shadow = ["rate_limit"]

[[routes]]
route = "GET /v1/admin"
scopes = ["superuser"]
shadow = true

[[routes]]
route = "POST /v1/enforced"
quotas = [{ rate = 2, per = "minute" }]
"#;

fn shadow_from_config(keys: &TestKeys, recorder: &Recorder) -> Gate<InMemoryKeyStore> {
    let text = format!("pepper = \"{PEPPER}\"\n{SHADOW_TOML}\n{}", keys.toml());
    GateConfig::from_toml(&text)
        .unwrap()
        .builder()
        .unwrap()
        .clock(FakeClock::new().clock())
        .on_decision(recorder.hook())
        .build()
        .unwrap()
}

fn shadow_from_builder(keys: &TestKeys, recorder: &Recorder) -> Gate<InMemoryKeyStore> {
    Gate::builder(keys.store())
        .hasher(hasher())
        .clock(FakeClock::new().clock())
        .on_decision(recorder.hook())
        .route(
            "POST /v1/track",
            RoutePolicy::new()
                .quota(Quota::per_minute(2))
                .shadow(Shadow::checks(["rate_limit"]).unwrap()),
        )
        .route(
            "GET /v1/admin",
            RoutePolicy::new()
                .require_all(["superuser"])
                .shadow(Shadow::ALL),
        )
        .route(
            "POST /v1/enforced",
            RoutePolicy::new().quota(Quota::per_minute(2)),
        )
        .build()
        .unwrap()
}

async fn shadow_holds(gate: &Gate<InMemoryKeyStore>, keys: &TestKeys, recorder: &Recorder) {
    let client = Client(start(gate).await);
    let with_key = |method: &str, path: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", client.0))
            .header("authorization", format!("Bearer {}", keys.secret.key()))
    };
    use Outcome::*;

    // A shadowed rate limit: everything passes, no rate-limit header is
    // sent, and the refusals it would have made are recorded.
    for _ in 0..5 {
        let answer = client.send(with_key("POST", "/v1/track")).await;
        assert_eq!(caller(&answer), "sk");
        for name in ["ratelimit", "ratelimit-policy", "retry-after"] {
            assert!(answer.headers.get(name).is_none(), "{name}");
        }
    }
    let track = |outcome, code, rule| seen("POST /v1/track", outcome, code, rule, 200, Some("sk"));
    assert_eq!(
        recorder.take(),
        [
            track(Allowed, None, None),
            track(Allowed, None, None),
            track(Shadow, Some("rate_limited"), Some("rate_limit")),
            track(Shadow, Some("rate_limited"), Some("rate_limit")),
            track(Shadow, Some("rate_limited"), Some("rate_limit")),
        ]
    );

    // A whole route shadowed: a key without the scope, and no key at all
    // (the request then goes on without a principal).
    assert_eq!(
        caller(&client.send(with_key("GET", "/v1/admin")).await),
        "sk"
    );
    let anonymous = client.send(client.get("/v1/admin")).await;
    assert_eq!(caller(&anonymous), serde_json::Value::Null);
    assert_eq!(
        recorder.take(),
        [
            seen(
                "GET /v1/admin",
                Shadow,
                Some("insufficient_scope"),
                Some("scope"),
                200,
                Some("sk")
            ),
            seen(
                "GET /v1/admin",
                Shadow,
                Some("missing_api_key"),
                Some("key"),
                200,
                None
            ),
        ]
    );

    // The same limit enforced refuses.
    for _ in 0..3 {
        client.send(with_key("POST", "/v1/enforced")).await;
    }
    let enforced = |outcome, code, status| {
        seen(
            "POST /v1/enforced",
            outcome,
            code,
            code.map(|_| "rate_limit"),
            status,
            Some("sk"),
        )
    };
    assert_eq!(
        recorder.take(),
        [
            enforced(Allowed, None, 200),
            enforced(Allowed, None, 200),
            enforced(Rejected, Some("rate_limited"), 429),
        ]
    );
}

#[tokio::test]
async fn shadow_mode_admits_what_enforcement_refuses_and_records_it() {
    let keys = TestKeys::new();
    let recorder = Recorder::default();
    shadow_holds(&shadow_from_config(&keys, &recorder), &keys, &recorder).await;
    shadow_holds(&shadow_from_builder(&keys, &recorder), &keys, &recorder).await;
}

/// A shadowed refusal takes nothing from the bucket: enforcing the same
/// limit afterwards, over the same buckets, finds only the admitted
/// requests' tokens gone.
#[tokio::test]
async fn a_shadowed_refusal_consumes_nothing() {
    let keys = TestKeys::new();
    let clock = FakeClock::new();
    let store = InMemoryRateStore::with_clock(clock.clock());
    let gate = |shadow: Shadow| {
        Gate::builder(keys.store())
            .hasher(hasher())
            .clock(clock.clock())
            .rate_store(store.clone())
            .route(
                "POST /v1/track",
                RoutePolicy::new()
                    .quota(Quota::per_minute(2))
                    .shadow(shadow),
            )
            .build()
            .unwrap()
    };
    let shadowed = Client(start(&gate(Shadow::checks(["rate_limit"]).unwrap())).await);
    let enforced = Client(start(&gate(Shadow::NONE)).await);
    let track = |client: &Client| {
        http::Request::post(format!("http://{}/v1/track", client.0))
            .header("authorization", format!("Bearer {}", keys.secret.key()))
    };
    for _ in 0..6 {
        assert_eq!(shadowed.send(track(&shadowed)).await.status, 200);
    }
    // Two tokens taken at t=0: the next comes back in 30 s. Had the four
    // shadowed refusals taken theirs, it would be 150 s.
    let refused = enforced.send(track(&enforced)).await;
    expect(&refused, 429, "rate_limited");
    assert_eq!(refused.headers["retry-after"], "30");
    clock.advance(Duration::from_secs(30));
    assert_eq!(enforced.send(track(&enforced)).await.status, 200);
}

#[test]
fn shadow_mistakes_are_named_at_start_up() {
    refused_at_start_up(&[
        (
            "[[routes]]\nroute = \"POST /a\"\nshadow = [\"body_limit\"]",
            "shadow",
            "always enforced",
        ),
        (
            "[[routes]]\nroute = \"POST /a\"\nshadow = [\"rate_limits\"]",
            "shadow",
            "`rate_limits` is not a check",
        ),
    ]);
}

/// A running gate replaced: a revoked key is refused on the next request
/// over the same keep-alive connection, a new route is served, and the
/// bucket of a route and quota that did not change keeps its state.
#[tokio::test]
async fn a_live_gate_is_replaced_between_two_requests_on_one_connection() {
    let keys = TestKeys::new();
    let recorder = Recorder::default();
    let clock = FakeClock::new();
    let config = |revoke_sk: bool, extra: &str| {
        let sk = format!(
            "name = \"sk\"\nkey = \"{}\"\nproject = \"acme\"\n",
            keys.secret.key()
        );
        let mut entries = keys.toml();
        if revoke_sk {
            entries = entries.replacen(&sk, &format!("{sk}status = \"revoked\"\n"), 1);
        }
        let text = format!(
            "pepper = \"{PEPPER}\"\n[[routes]]\nroute = \"POST /v1/track\"\nquotas = [{{ rate = 3, per = \"minute\" }}]\n{extra}\n{entries}"
        );
        GateConfig::from_toml(&text).unwrap()
    };
    let first = config(false, "").builder().unwrap().clock(clock.clock());
    let live = LiveGate::new(first.on_decision(recorder.hook()).build().unwrap());
    let address = crate::common::serve(
        tower::ServiceBuilder::new()
            .layer(live.layer())
            .map_request(|request: http::Request<_>| request.map(|_| Default::default()))
            .service(crate::common::handler_service(Default::default())),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut send = async |path: &str, key: &str| {
        // No body: the echoing handler does not read one.
        post(&mut stream, path, Some(key), b"", Duration::ZERO).await;
        read_reply(&mut stream)
            .await
            .expect("the connection stays open")
    };
    // `rk` and `sk` share project `acme`'s bucket: three a minute.
    assert_eq!(send("/v1/track", keys.restricted.key()).await.status, 200);
    assert_eq!(send("/v1/track", keys.secret.key()).await.status, 200);

    // Replaced: `sk` revoked, a route added, over the same rate store.
    let next = config(
        true,
        "[[routes]]\nroute = \"POST /v1/batch\"\nquotas = []\n",
    )
    .builder()
    .unwrap()
    .clock(clock.clock())
    .rate_store(live.current().rate_store().clone())
    .on_decision(recorder.hook())
    .build()
    .unwrap();
    live.replace(next);

    let revoked = send("/v1/track", keys.secret.key()).await;
    assert_eq!(revoked.status, 401, "{}", revoked.body);
    assert!(revoked.body.contains("invalid_api_key"), "{}", revoked.body);
    // One token left of three: the bucket carried over.
    let last = send("/v1/track", keys.restricted.key()).await;
    assert_eq!(last.status, 200);
    assert!(
        last.head.to_ascii_lowercase().contains("r=0"),
        "{}",
        last.head
    );
    assert_eq!(send("/v1/track", keys.restricted.key()).await.status, 429);
    assert_eq!(send("/v1/batch", keys.restricted.key()).await.status, 200);
    assert_eq!(live.current().routes().len(), 3);
}

// ---------------------------------------------------------------------------
// The demo and the keys tool as processes.

/// A scratch directory of its own, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tollgate-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(file);
        // Written whole, then renamed: a reload never reads half a file.
        let partial = self.0.join(format!("{file}.partial"));
        std::fs::write(&partial, text).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keys_tool(args: &[&str], pepper: Option<&str>) -> (i32, String, String) {
    let mut command = std::process::Command::new(example_binary("keys"));
    command.args(args).env_remove("TOLLGATE_PEPPER");
    if let Some(pepper) = pepper {
        command.env("TOLLGATE_PEPPER", pepper);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

const DEMO_ROUTES: &str = r#"
[[routes]]
route = "GET /health"
public = true

[[routes]]
route = "POST /v1/track"
quotas = [{ rate = 100, per = "second" }]
"#;

/// A minted key, added to a configuration through its TOML entry,
/// authenticates against the demo gateway; `check` and `digest` agree;
/// exit codes are 0, 1 and 2.
#[tokio::test]
async fn a_minted_key_authenticates_against_the_gateway() {
    let scratch = Scratch::new("keys");
    let (code, out, err) = keys_tool(
        &[
            "mint",
            "--kind",
            "secret",
            "--env",
            "live",
            "--project",
            "acme",
            "--name",
            "ci",
        ],
        Some("tool pepper"),
    );
    assert_eq!(code, 0, "{err}");
    let key = out.lines().next().unwrap().to_owned();
    assert!(key.starts_with("sk_live_"), "{out}");
    let entry = out
        .split_once("[[keys]]")
        .map(|(_, rest)| format!("[[keys]]{rest}"))
        .unwrap();
    assert!(
        !entry.contains(&key),
        "the key itself is never in the entry"
    );

    let config = scratch.write(
        "gateway.toml",
        &format!("pepper = \"tool pepper\"\n{DEMO_ROUTES}\n{entry}"),
    );
    let gateway = Gateway::start("", &format!("--config {}", config.display()));
    let mut stream = tokio::net::TcpStream::connect(gateway.address)
        .await
        .unwrap();
    post(&mut stream, "/v1/track", Some(&key), b"{}", Duration::ZERO).await;
    let reply = read_reply(&mut stream).await.unwrap();
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert!(
        reply.body.contains("\"project\":\"acme\""),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("\"key_id\":\"ci\""), "{}", reply.body);

    // The pepper of a config file, instead of the environment.
    let (code, out, _) = keys_tool(
        &[
            "mint",
            "--kind",
            "publishable",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0);
    let second = out.lines().next().unwrap().to_owned();
    let (code, digest, _) = keys_tool(
        &["digest", &second, "--config", config.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("digest = \"{}\"", digest.trim())),
        "{out}"
    );
    let (_, same, _) = keys_tool(&["digest", &second], Some("tool pepper"));
    assert_eq!(same, digest);

    let (code, out, _) = keys_tool(&["check", &key], None);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "well-formed: yes\nchecksum: valid\nkind: secret\nenv: live\n"
    );
    // One character changed: the checksum says so.
    let mut typo = key.clone().into_bytes();
    let at = typo.len() - 10;
    typo[at] = if typo[at] == b'a' { b'b' } else { b'a' };
    let (code, out, _) = keys_tool(&["check", std::str::from_utf8(&typo).unwrap()], None);
    assert_eq!(code, 1);
    assert!(out.contains("checksum: invalid"), "{out}");
    let (code, out, _) = keys_tool(&["check", "hello"], None);
    assert_eq!(code, 1);
    assert!(out.starts_with("well-formed: no"), "{out}");

    for usage in [
        &["mint", "--kind", "secret"][..], // no pepper anywhere
        &["mint", "--kind", "admin"],
        &["mint", "--kind", "secret", "--colour", "x"],
        &["check"],
        &["frobnicate"],
        &[],
    ] {
        let (code, _, err) = keys_tool(usage, None);
        assert_eq!(code, 2, "{usage:?}: {err}");
        assert!(err.contains("usage:"), "{usage:?}: {err}");
    }
}

/// `keys mint --credits N` writes the entry's credits: the demo gateway
/// reading it admits the key N times, then answers `credits_exhausted`;
/// `N/PERIOD` writes a refill; mistakes are usage errors.
#[tokio::test]
async fn a_key_minted_with_credits_spends_them_on_the_gateway() {
    let scratch = Scratch::new("keys-credits");
    let (code, out, err) = keys_tool(
        &[
            "mint",
            "--kind",
            "secret",
            "--project",
            "acme",
            "--credits",
            "2",
        ],
        Some("tool pepper"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("credits = { remaining = 2 }"), "{out}");
    let key = out.lines().next().unwrap().to_owned();
    let entry = out
        .split_once("[[keys]]")
        .map(|(_, rest)| format!("[[keys]]{rest}"))
        .unwrap();
    let config = scratch.write(
        "gateway.toml",
        &format!("pepper = \"tool pepper\"\n{DEMO_ROUTES}\n{entry}"),
    );
    let gateway = Gateway::start("", &format!("--config {}", config.display()));
    let mut stream = tokio::net::TcpStream::connect(gateway.address)
        .await
        .unwrap();
    for expected in [202, 202, 429] {
        post(&mut stream, "/v1/track", Some(&key), b"{}", Duration::ZERO).await;
        let reply = read_reply(&mut stream).await.unwrap();
        assert_eq!(reply.status, expected, "{}", reply.body);
        if expected == 429 {
            assert!(reply.body.contains("credits_exhausted"), "{}", reply.body);
        }
    }

    let (code, out, err) = keys_tool(
        &["mint", "--kind", "secret", "--credits", "10000/month"],
        Some("tool pepper"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("credits = { refill = { amount = 10000, interval = \"month\" } }"),
        "{out}"
    );
    for bad in ["many", "5/week", "0/day", "99999999999"] {
        let (code, _, err) = keys_tool(
            &["mint", "--kind", "secret", "--credits", bad],
            Some("tool pepper"),
        );
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("--credits"), "{bad}: {err}");
    }
}

/// The demo reloads its file on SIGHUP: a key revoked in the file is
/// refused on the next request over the same connection; a file that does
/// not load is reported and the running configuration stays.
#[tokio::test]
async fn sighup_reloads_the_demo_configuration() {
    let scratch = Scratch::new("sighup");
    let hasher = hasher();
    let server = hasher.mint(KeyKind::Secret, None).unwrap();
    let other = hasher.mint(KeyKind::Secret, None).unwrap();
    let file = |server_status: &str| {
        format!(
            "pepper = \"{PEPPER}\"\n{DEMO_ROUTES}\n[[keys]]\nname = \"server\"\nkey = \"{}\"\nproject = \"demo\"\nstatus = \"{server_status}\"\n\n[[keys]]\nname = \"other\"\nkey = \"{}\"\nproject = \"other\"\n",
            server.key(),
            other.key()
        )
    };
    let config = scratch.write("gateway.toml", &file("active"));
    let gateway = Gateway::start("", &format!("--config {}", config.display()));
    let mut stream = tokio::net::TcpStream::connect(gateway.address)
        .await
        .unwrap();
    let mut send = async |key: &str| {
        post(&mut stream, "/v1/track", Some(key), b"{}", Duration::ZERO).await;
        read_reply(&mut stream)
            .await
            .expect("the connection stays open")
            .status
    };
    assert_eq!(send(server.key()).await, 202);

    scratch.write("gateway.toml", &file("revoked"));
    gateway.signal("-HUP");
    gateway.wait_for("configuration reloaded");
    assert_eq!(send(server.key()).await, 401);
    assert_eq!(send(other.key()).await, 202);

    // A broken file: reported, and the running configuration (with `server`
    // revoked) stays.
    scratch.write(
        "gateway.toml",
        "[[routes]]\nroute = \"POST /v1/track\"\nquotas = [{ rate = 0",
    );
    gateway.signal("-HUP");
    gateway.wait_for("configuration reload failed");
    assert_eq!(send(other.key()).await, 202);
    assert_eq!(send(server.key()).await, 401);

    // Re-activated in the file: accepted again.
    scratch.write("gateway.toml", &file("active"));
    gateway.signal("-HUP");
    gateway.wait_for("configuration reloaded");
    assert_eq!(send(server.key()).await, 202);
}

/// A closed span: its name and fields.
type Closed = (String, std::collections::BTreeMap<String, String>);

/// Collects the fields of every closed span.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Closed>>>);

#[derive(Default)]
struct Fields(std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        context.span(id).unwrap().extensions_mut().insert(fields);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = context.span(id).unwrap();
        let mut extensions = span.extensions_mut();
        values.record(extensions.get_mut::<Fields>().unwrap());
    }

    fn on_close(&self, id: tracing::span::Id, context: tracing_subscriber::layer::Context<'_, S>) {
        let span = context.span(&id).unwrap();
        let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_owned(), fields.0));
    }
}

/// One `tollgate` span per request, with its route and outcome.
#[tokio::test]
async fn each_request_has_a_span_with_its_route_and_outcome() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _guard = crate::common::subscribe(subscriber);

    let keys = TestKeys::new();
    let gate = shadow_from_builder(&keys, &Recorder::default());
    let handler = crate::common::Handler::default();
    let service = tower::ServiceBuilder::new()
        .layer(gate.layer())
        .service(handler.gated());
    let request = |method: &str, path: &str, key: bool| {
        let mut builder = http::Request::builder().method(method).uri(path);
        if key {
            builder = builder.header("authorization", format!("Bearer {}", keys.secret.key()));
        }
        crate::common::empty(builder)
    };
    assert_eq!(
        crate::common::send(service.clone(), request("POST", "/v1/enforced", true))
            .await
            .status,
        200
    );
    assert_eq!(
        crate::common::send(service.clone(), request("POST", "/v1/enforced", false))
            .await
            .status,
        401
    );
    assert_eq!(
        crate::common::send(service.clone(), request("GET", "/v1/admin", true))
            .await
            .status,
        200
    );

    let closed: Vec<_> = spans
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(name, _)| name == "tollgate")
        .map(|(_, fields)| (fields["route"].clone(), fields["outcome"].clone()))
        .collect();
    let expected = [
        ("POST /v1/enforced", "allowed"),
        ("POST /v1/enforced", "rejected"),
        ("GET /v1/admin", "shadow"),
    ]
    .map(|(route, outcome)| (route.to_owned(), outcome.to_owned()));
    assert_eq!(closed, expected);
}

/// A shadowed refusal is logged at `debug`, with its route, code and rule,
/// and never with the key.
#[tokio::test]
async fn a_shadowed_refusal_is_logged() {
    let (logs, _guard) = crate::common::Logs::capture();
    let keys = TestKeys::new();
    let gate = shadow_from_builder(&keys, &Recorder::default());
    let service = tower::ServiceBuilder::new()
        .layer(gate.layer())
        .service(crate::common::Handler::default().gated());
    let request = crate::common::empty(
        http::Request::get("/v1/admin")
            .header("authorization", format!("Bearer {}", keys.secret.key())),
    );
    assert_eq!(crate::common::send(service, request).await.status, 200);
    let text = logs.text();
    let line = text
        .lines()
        .find(|line| line.contains("shadow: the request would have been refused"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("DEBUG"), "{line}");
    assert!(line.contains("code=\"insufficient_scope\""), "{line}");
    assert!(line.contains("rule=\"scope\""), "{line}");
    assert!(!text.contains(keys.secret.key()), "{text}");
}
