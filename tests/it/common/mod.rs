//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tollgate::Answer as StoreAnswer;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tollgate::error::StoreError;
use tollgate::key::store::{KeyStore, LookupResult};
use tollgate::key::{
    InMemoryKeyStore, KeyDigest, KeyEnv, KeyHasher, KeyKind, KeyRecord, MintedKey, Principal,
};
use tower::ServiceExt;

pub mod demo;
pub mod fixture;

pub type TestRequest = Request<Full<Bytes>>;

/// A handler that counts its calls and answers 200 with what it saw: the
/// principal, and whether any credential reached it.
#[derive(Clone, Default)]
pub struct Handler {
    pub calls: Arc<AtomicUsize>,
}

impl Handler {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn service(
        &self,
    ) -> impl tower::Service<
        TestRequest,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        handler_service(Arc::clone(&self.calls))
    }
}

impl Handler {
    /// The same handler behind a gate (whose body cap hands on a
    /// `LimitedBody`): it never reads the body.
    pub fn gated<B: Send + 'static>(
        &self,
    ) -> impl tower::Service<
        Request<B>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        let service = handler_service(Arc::clone(&self.calls));
        tower::ServiceBuilder::new()
            .map_request(|request: Request<B>| request.map(|_| Full::new(Bytes::new())))
            .service(service)
    }
}

/// The service of a [`Handler`] counting into `calls`.
pub fn handler_service(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    TestRequest,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: TestRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        let principal = request.extensions().get::<Principal>().map(|p| {
            json!({
                "key_id": p.key_id(),
                "project": p.project(),
                "kind": p.kind().as_str(),
                "scopes": p.scopes(),
            })
        });
        let seen = json!({
            "principal": principal,
            "authorization": request.headers().contains_key("authorization"),
            "x_api_key": request.headers().contains_key("x-api-key"),
            "uri": request.uri().to_string(),
        });
        ready(Ok(Response::new(Full::new(Bytes::from(seen.to_string())))))
    })
}

/// A status, headers and JSON body (or `null` when the body is empty).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
    pub error: Option<tollgate::error::ApiError>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The header `name` as text, or "" when it is absent.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// The tokens left its `RateLimit` header gives (its first policy).
    pub fn remaining(&self) -> u64 {
        let header = self.headers["ratelimit"].to_str().unwrap();
        header
            .split(";r=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no remaining in {header}"))
    }
}

/// `gate` in front of an app answering every request `200` with an empty
/// body, on a socket of its own.
pub async fn serve_behind<R>(
    gate: &tollgate::gate::Gate<InMemoryKeyStore, R>,
) -> std::net::SocketAddr
where
    R: tollgate::rate_limit::store::RateStore + Clone,
{
    let service = tower::ServiceBuilder::new().layer(gate.layer()).service_fn(
        |_: Request<tollgate::body_limit::LimitedBody<hyper::body::Incoming>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        },
    );
    serve(service).await
}

pub async fn send<S, B>(service: S, request: TestRequest) -> Answer
where
    S: tower::Service<TestRequest, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service.oneshot(request).await.expect("service error");
    let (parts, body) = response.into_parts();
    let raw = body.collect().await.expect("body error").to_bytes();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into()))
    };
    Answer {
        status: parts.status,
        error: parts.extensions.get::<tollgate::error::ApiError>().cloned(),
        headers: parts.headers,
        body,
        raw,
    }
}

pub fn get(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

pub fn empty(builder: http::request::Builder) -> TestRequest {
    builder.body(Full::new(Bytes::new())).unwrap()
}

/// Minted keys of every kind in one in-memory store, with a pepper.
pub struct Keys {
    pub hasher: KeyHasher,
    pub store: InMemoryKeyStore,
    pub publishable: MintedKey,
    pub secret: MintedKey,
    pub restricted: MintedKey,
}

pub const PEPPER: &[u8] = b"test-pepper-9f8e7d";

impl Keys {
    pub fn new() -> Self {
        let hasher = KeyHasher::with_pepper(PEPPER);
        let store = InMemoryKeyStore::new();
        let mint = |kind, id: &str| {
            let minted = hasher.mint(kind, Some(KeyEnv::Test)).unwrap();
            store.insert(
                minted.digest(),
                KeyRecord::new(id, "demo", kind).with_env(KeyEnv::Test),
            );
            minted
        };
        let publishable = mint(KeyKind::Publishable, "key_pk");
        let secret = mint(KeyKind::Secret, "key_sk");
        let restricted = mint(KeyKind::Restricted, "key_rk");
        Self {
            hasher,
            store,
            publishable,
            secret,
            restricted,
        }
    }

    /// Mints a key and stores `record` for it.
    pub fn add(&self, kind: KeyKind, record: KeyRecord) -> MintedKey {
        let minted = self.hasher.mint(kind, Some(KeyEnv::Test)).unwrap();
        self.store.insert(minted.digest(), record);
        minted
    }
}

/// Wraps a store: counts lookups. Says when the store changes only if
/// made [`with_generation`](Self::with_generation).
#[derive(Clone)]
pub struct CountingStore<S> {
    pub inner: S,
    pub lookups: Arc<AtomicUsize>,
    pub generation: bool,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            lookups: Arc::default(),
            generation: false,
        }
    }

    /// Passes the inner store's generation on (so the key check may
    /// remember verified keys).
    pub fn with_generation(mut self) -> Self {
        self.generation = true;
        self
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl<S: KeyStore> KeyStore for CountingStore<S> {
    type Lookup = S::Lookup;
    fn lookup(&self, digest: &KeyDigest) -> StoreAnswer<LookupResult, Self::Lookup> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup(digest)
    }

    fn generation(&self) -> Option<u64> {
        self.generation.then(|| self.inner.generation()).flatten()
    }
}

/// A store that always fails, with an error text that must never reach a client.
#[derive(Clone)]
pub struct FailingStore;

pub const STORE_ERROR_TEXT: &str = "connection refused by db-7.internal:5432";

impl KeyStore for FailingStore {
    type Lookup = Ready<LookupResult>;
    fn lookup(&self, _: &KeyDigest) -> StoreAnswer<LookupResult, Self::Lookup> {
        StoreAnswer::Ready(Err(StoreError::new(STORE_ERROR_TEXT)))
    }
}

/// A store that never answers.
#[derive(Clone)]
pub struct HangingStore;

impl KeyStore for HangingStore {
    type Lookup = Pin<Box<dyn Future<Output = LookupResult> + Send>>;
    fn lookup(&self, _: &KeyDigest) -> StoreAnswer<LookupResult, Self::Lookup> {
        StoreAnswer::Pending(Box::pin(std::future::pending()))
    }
}

/// A store that answers after a (Tokio) delay.
#[derive(Clone)]
pub struct SlowStore<S> {
    pub inner: S,
    pub delay: std::time::Duration,
}

impl<S: KeyStore + Clone> KeyStore for SlowStore<S> {
    type Lookup = Pin<Box<dyn Future<Output = LookupResult> + Send>>;
    fn lookup(&self, digest: &KeyDigest) -> StoreAnswer<LookupResult, Self::Lookup> {
        let lookup = self.inner.lookup(digest);
        let delay = self.delay;
        StoreAnswer::Pending(Box::pin(async move {
            tokio::time::sleep(delay).await;
            match lookup {
                StoreAnswer::Ready(result) => result,
                StoreAnswer::Pending(future) => future.await,
            }
        }))
    }
}

/// A real HTTP/1.1 client.
pub fn http_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Sends `request` over the socket; returns status, headers and JSON body.
pub async fn fetch(request: TestRequest) -> Answer {
    let response = http_client()
        .request(request)
        .await
        .expect("request failed");
    let (parts, body) = response.into_parts();
    let raw = body.collect().await.expect("body error").to_bytes();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        status: parts.status,
        error: None,
        headers: parts.headers,
        body,
        raw,
    }
}

/// A body of frames with no declared size (sent chunked over HTTP/1.1),
/// counting how many frames were pulled from it.
pub struct Chunks {
    frames: std::collections::VecDeque<Bytes>,
    pub pulled: Arc<AtomicUsize>,
}

impl Chunks {
    pub fn new(frames: usize, frame_size: usize) -> Self {
        Self {
            frames: (0..frames)
                .map(|_| Bytes::from(vec![b'x'; frame_size]))
                .collect(),
            pulled: Arc::default(),
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let frame = self.frames.pop_front();
        if frame.is_some() {
            self.pulled.fetch_add(1, Ordering::SeqCst);
        }
        std::task::Poll::Ready(frame.map(|data| Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Serves `service` over HTTP/1.1 and HTTP/2 on 127.0.0.1 on a free port,
/// until the test's runtime ends, inserting each connection's peer address
/// into its requests' extensions (as a real server would for client-IP rate
/// limits). Returns the address.
pub async fn serve<S, B>(service: S) -> std::net::SocketAddr
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let service = tower::ServiceBuilder::new()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(peer);
                    request
                })
                .service(service.clone());
            let service = hyper_util::service::TowerToHyperService::new(service);
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

/// A `tracing` subscriber set for this thread while it lives.
///
/// `tracing` caches, per call site, whether any subscriber wants it. While
/// only one subscriber is registered it asks *the current thread's*
/// subscriber when a call site is first reached: a call site first reached
/// by another test's thread would then be cached as unwanted, and this
/// thread's subscriber would never see it. A second subscriber that wants
/// nothing, registered once for the whole binary, keeps `tracing` asking
/// every registered subscriber.
pub fn subscribe(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> tracing::subscriber::DefaultGuard {
    static BESIDE: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    BESIDE.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    tracing::subscriber::set_default(subscriber)
}

/// Everything `tracing` writes on this thread (at every level) while the
/// returned guard lives.
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        (logs, subscribe(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// One HTTP/1.1 response read off a socket.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn closes(&self) -> bool {
        self.head
            .lines()
            .any(|line| line.eq_ignore_ascii_case("connection: close"))
    }
}

/// Reads one response (headers, then `content-length` bytes); `None` when
/// the server closed the connection first.
pub async fn read_reply(stream: &mut tokio::net::TcpStream) -> Option<Reply> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = tokio::io::AsyncReadExt::read(stream, &mut chunk)
            .await
            .ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = tokio::io::AsyncReadExt::read(stream, &mut chunk)
            .await
            .ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    Some(Reply { status, head, body })
}

/// Writes `POST path` with `key` (if any): the headers, then after `pause`
/// the body, in two writes, as many HTTP clients do.
pub async fn post(
    stream: &mut tokio::net::TcpStream,
    path: &str,
    key: Option<&str>,
    body: &[u8],
    pause: std::time::Duration,
) {
    // Writes into a connection the server closed may fail: the reply then
    // says so.
    let auth = key.map_or(String::new(), |key| {
        format!("authorization: Bearer {key}\r\n")
    });
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::io::AsyncWriteExt::write_all(stream, head.as_bytes()).await;
    tokio::time::sleep(pause).await;
    let _ = tokio::io::AsyncWriteExt::write_all(stream, body).await;
}

/// Whether the server has closed `stream` (reads end of file).
pub async fn is_closed(stream: &mut tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(stream, &mut byte)
        )
        .await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}
