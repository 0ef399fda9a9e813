//! [`ResponseFuture`]: a pending decision (shared stores only), then the
//! inner call, then the rate-limit headers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::headers::RateHeaders;
use super::layer::Options;
use super::store::{Decision, RouteLimits};
use crate::body::ResponseBody;
use crate::store::StoreError;

pin_project! {
    /// The response future of [`RateLimitService`](super::RateLimitService).
    pub struct ResponseFuture<F, D, S, B> {
        #[pin]
        state: State<F, D, S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, D, S, B> {
        // Only for stores that must wait: boxed, so the common path's future
        // stays small.
        Deciding { waiting: Pin<Box<Waiting<D, S, B>>> },
        Inner { #[pin] future: F, headers: Option<RateHeaders> },
        Rejected { response: Option<Box<Response<Bytes>>> },
    }
}

pin_project! {
    struct Waiting<D, S, B> {
        #[pin]
        decision: D,
        pending: Option<(S, Request<B>)>,
        options: Arc<Options>,
        limits: Arc<RouteLimits>,
    }
}

impl<F, D, S, B> ResponseFuture<F, D, S, B> {
    pub(crate) fn inner(future: F, headers: Option<RateHeaders>) -> Self {
        Self {
            state: State::Inner { future, headers },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(Box::new(response)),
            },
        }
    }

    pub(crate) fn deciding(
        decision: D,
        service: S,
        request: Request<B>,
        options: Arc<Options>,
        limits: Arc<RouteLimits>,
    ) -> Self {
        Self {
            state: State::Deciding {
                waiting: Box::pin(Waiting {
                    decision,
                    pending: Some((service, request)),
                    options,
                    limits,
                }),
            },
        }
    }
}

const POLLED_AFTER_COMPLETION: &str =
    "tollgate::rate_limit::ResponseFuture polled after completion";

impl<F, D, S, B, ResBody, E> Future for ResponseFuture<F, D, S, B>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    D: Future<Output = Result<Decision, StoreError>>,
    S: Service<Request<B>, Response = Response<ResBody>, Error = E, Future = F>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.state.as_mut().project() {
                StateProj::Inner { future, headers } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(headers) = headers.take() {
                        headers.apply(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok((*response).map(ResponseBody::rejection)));
                }
                StateProj::Deciding { waiting } => {
                    let waiting = waiting.as_mut().project();
                    let (decision, pending, options, limits) = (
                        waiting.decision,
                        waiting.pending,
                        waiting.options,
                        waiting.limits,
                    );
                    let result = ready!(decision.poll(cx));
                    let (mut service, request) = pending.take().expect(POLLED_AFTER_COMPLETION);
                    let concluded = match options.bucket_of(&request) {
                        Ok(bucket) => options.conclude(result, limits, &bucket),
                        Err(error) => Err(error),
                    };
                    match concluded {
                        Ok(headers) => State::Inner {
                            future: service.call(request),
                            headers: Some(headers),
                        },
                        Err(error) => State::Rejected {
                            response: Some(Box::new(options.renderer.respond(error, &request))),
                        },
                    }
                }
            };
            this.state.set(next);
        }
    }
}

impl<F, D, S, B> fmt::Debug for ResponseFuture<F, D, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Deciding { .. } => "ResponseFuture::Deciding",
            State::Inner { .. } => "ResponseFuture::Inner",
            State::Rejected { .. } => "ResponseFuture::Rejected",
        })
    }
}
