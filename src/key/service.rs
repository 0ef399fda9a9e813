//! [`KeyService`]: the service made by [`KeyLayer`](super::KeyLayer).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{KeyLayer, KeyOptions};
use super::store::KeyStore;
use crate::body::ResponseBody;
use crate::route::Route;
use crate::store::Answer;

/// Authenticates each request, then calls the inner service with the
/// [`Principal`](super::Principal) in its extensions, or answers the rejection
/// without calling it.
pub struct KeyService<S, St> {
    inner: S,
    /// One `Arc`, so that cloning the service (servers do, per request)
    /// touches one shared count.
    shared: Arc<Shared<St>>,
}

struct Shared<St> {
    store: Arc<St>,
    options: Arc<KeyOptions>,
}

impl<S, St> KeyService<S, St> {
    pub(crate) fn from_parts(inner: S, store: Arc<St>, options: Arc<KeyOptions>) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared { store, options }),
        }
    }

    /// A layer that makes this service.
    pub fn layer(store: St) -> KeyLayer<St>
    where
        St: KeyStore,
    {
        KeyLayer::new(store)
    }

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
}

impl<S: Clone, St> Clone for KeyService<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for KeyService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyService")
            .field("inner", &self.inner)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// A CORS preflight carries no key: it passes untouched.
fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for KeyService<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: KeyStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, St::Lookup, S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let public = request
            .extensions()
            .get::<Route>()
            .is_some_and(Route::is_public);
        if public || is_preflight(&request) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let Shared { store, options } = &*self.shared;
        let presented = match options.present(&request) {
            Ok(presented) => presented,
            Err(error) => {
                return ResponseFuture::rejected(options.renderer.respond(error, &request));
            }
        };
        match store.lookup(&presented.digest) {
            Answer::Ready(result) => match options.admit(result, presented.kind) {
                Ok(record) => {
                    let mut request = request;
                    options.admitted(&mut request, record);
                    ResponseFuture::inner(self.inner.call(request))
                }
                Err(error) => ResponseFuture::rejected(options.renderer.respond(error, &request)),
            },
            Answer::Pending(lookup) => {
                // The inner service was made ready by `poll_ready`: take that
                // one along and leave a fresh clone in its place.
                let fresh = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, fresh);
                ResponseFuture::lookup(lookup, ready, request, Arc::clone(options), presented.kind)
            }
        }
    }
}
