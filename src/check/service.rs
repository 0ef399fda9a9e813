//! [`CheckLayer`] and [`CheckService`]: the one service that runs checks.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::body::ResponseBody;
use super::body_limit::{BodyLimit, Unlimited};
use super::future::ResponseFuture;
use super::observe::{Observer, Report};
#[cfg(feature = "tracing")]
use super::trace;
use super::{Check, ResponseHeaders};
use crate::Answer;
use crate::render::{ErrorRenderer, request_id};

/// Runs the check `C` (one check, or several chained with
/// [`Check::then`]) on each request, then caps its body with `L` and calls
/// the inner service; see the [module docs](super).
///
/// Cheap to clone: everything sits behind one `Arc`.
pub struct CheckLayer<C, L = Unlimited> {
    pub(crate) shared: Arc<Shared<C, L>>,
    /// Where a live gate's current settings are read, request by request
    /// (see [`LiveGate`](crate::gate::LiveGate)); `shared` is then the
    /// settings as they were when the layer was made.
    pub(crate) live: Option<Live<C, L>>,
}

/// A live gate's settings, swapped whole.
pub(crate) type Live<C, L> = Arc<arc_swap::ArcSwap<Shared<C, L>>>;

/// What every clone of a [`CheckService`] shares.
#[derive(Clone)]
pub(crate) struct Shared<C, L> {
    pub(crate) checks: C,
    pub(crate) limit: L,
    pub(crate) renderer: ErrorRenderer,
    pub(crate) observer: Option<Arc<dyn Observer>>,
}

impl<C: Check> CheckLayer<C, Unlimited> {
    /// A layer running `checks`, rendering rejections with the default
    /// renderer. (The crate's own layers have their own `new`:
    /// `KeyLayer::new(store)`, `ScopeLayer::new(rules)`…)
    pub fn from_check(checks: C) -> Self {
        Self::from_parts(checks, Unlimited, ErrorRenderer::default(), None)
    }
}

impl<C, L> CheckLayer<C, L> {
    pub(crate) fn from_parts(
        checks: C,
        limit: L,
        renderer: ErrorRenderer,
        observer: Option<Arc<dyn Observer>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                checks,
                limit,
                renderer,
                observer,
            }),
            live: None,
        }
    }

    /// The checks.
    pub fn checks(&self) -> &C {
        &self.shared.checks
    }
}

impl<C: Clone, L: Clone> CheckLayer<C, L> {
    /// Changes the shared settings (copying them if a clone of this layer
    /// still holds them).
    pub(crate) fn change(mut self, change: impl FnOnce(&mut Shared<C, L>)) -> Self {
        change(Arc::make_mut(&mut self.shared));
        // Changed settings are this layer's own: no longer a live gate's.
        self.live = None;
        self
    }

    /// Renders rejections with `renderer`.
    #[must_use]
    pub fn renderer(self, renderer: ErrorRenderer) -> Self {
        self.change(|shared| shared.renderer = renderer)
    }
}

impl<C, L> Clone for CheckLayer<C, L> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            live: self.live.clone(),
        }
    }
}

impl<C: fmt::Debug, L: fmt::Debug> fmt::Debug for CheckLayer<C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckLayer")
            .field("checks", &self.shared.checks)
            .field("limit", &self.shared.limit)
            .finish_non_exhaustive()
    }
}

impl<S, C, L> Layer<S> for CheckLayer<C, L> {
    type Service = CheckService<S, C, L>;

    fn layer(&self, inner: S) -> Self::Service {
        CheckService {
            inner,
            shared: Arc::clone(&self.shared),
            live: self.live.clone(),
        }
    }
}

/// The service made by a [`CheckLayer`]: the checks, then the inner service
/// or the rejection.
pub struct CheckService<S, C, L = Unlimited> {
    inner: S,
    shared: Arc<Shared<C, L>>,
    live: Option<Live<C, L>>,
}

impl<S, C, L> CheckService<S, C, L> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The checks.
    pub fn checks(&self) -> &C {
        &self.shared.checks
    }
}

impl<S: Clone, C, L> Clone for CheckService<S, C, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            live: self.live.clone(),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug, L: fmt::Debug> fmt::Debug for CheckService<S, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckService")
            .field("inner", &self.inner)
            .field("checks", &self.shared.checks)
            .field("limit", &self.shared.limit)
            .finish()
    }
}

impl<S, C, L, ReqBody, ResBody> Service<Request<ReqBody>> for CheckService<S, C, L>
where
    S: Service<Request<L::Body>, Response = Response<ResBody>> + Clone,
    C: Check,
    L: BodyLimit<ReqBody>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, C, L, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // A live gate's settings as they are now, for this whole request.
        let current;
        let shared = match &self.live {
            None => &self.shared,
            Some(live) => {
                current = live.load();
                &*current
            }
        };
        let started = shared
            .observer
            .as_ref()
            .filter(|observer| observer.needs_time())
            .map(|_| Instant::now());
        #[cfg(feature = "tracing")]
        let mut trace = trace::start();
        #[cfg(not(feature = "tracing"))]
        let trace = None;
        #[cfg(feature = "tracing")]
        let span = trace::span_of(&trace);
        #[cfg(feature = "tracing")]
        let _entered = span.as_ref().map(tracing::Span::enter);
        let mut headers = ResponseHeaders::new();
        if shared.renderer.generates_request_ids() {
            ensure_request_id(
                &mut request,
                shared.renderer.request_id_header(),
                &mut headers,
            );
        }
        match shared.checks.check(&mut request, &mut headers) {
            Answer::Ready(verdict) => {
                let report = Report::of(&shared.observer, &request, started);
                #[cfg(feature = "tracing")]
                trace::decided(&mut trace, &request);
                ResponseFuture::decided(
                    verdict,
                    request,
                    headers,
                    &mut self.inner,
                    shared,
                    report,
                    trace,
                )
            }
            Answer::Pending(pending) => {
                // The inner service was made ready by `poll_ready`: take that
                // one along and leave a fresh clone in its place.
                let fresh = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, fresh);
                let shared = Arc::clone(shared);
                ResponseFuture::waiting(pending, request, headers, ready, shared, started, trace)
            }
        }
    }
}

/// Makes sure `request` has an id in `header` — the one it brought, the one
/// tower-http's layer put in its extensions, or a new one — and sends it
/// back in the response's `header`.
fn ensure_request_id<B>(
    request: &mut Request<B>,
    header: &http::HeaderName,
    out: &mut ResponseHeaders,
) {
    let value = match request_id::read(request.headers(), header) {
        Some(_) => request.headers()[header].clone(),
        None => {
            let value = request_id::missing(request);
            request.headers_mut().insert(header.clone(), value.clone());
            value
        }
    };
    out.insert(header.clone(), value);
}
