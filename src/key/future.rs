//! [`ResponseFuture`]: the key store lookup, then the inner call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use super::layer::KeyOptions;
use super::parse::KeyKind;
use super::store::LookupResult;
use crate::body::ResponseBody;

pin_project! {
    /// The response future of [`KeyService`](super::KeyService).
    pub struct ResponseFuture<F, L, S, B> {
        #[pin]
        state: State<F, L, S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, L, S, B> {
        // Only for stores that must wait: boxed, so the common path's future
        // stays small.
        Lookup { waiting: Pin<Box<Waiting<L, S, B>>> },
        Inner { #[pin] future: F },
        Rejected { response: Option<Box<Response<Bytes>>> },
    }
}

pin_project! {
    struct Waiting<L, S, B> {
        #[pin]
        lookup: L,
        deadline: Option<Pin<Box<Sleep>>>,
        pending: Option<(S, Request<B>)>,
        options: Arc<KeyOptions>,
        kind: KeyKind,
    }
}

impl<F, L, S, B> ResponseFuture<F, L, S, B> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(Box::new(response)),
            },
        }
    }

    pub(crate) fn lookup(
        lookup: L,
        service: S,
        request: Request<B>,
        options: Arc<KeyOptions>,
        kind: KeyKind,
    ) -> Self {
        Self {
            state: State::Lookup {
                waiting: Box::pin(Waiting {
                    lookup,
                    deadline: None,
                    pending: Some((service, request)),
                    options,
                    kind,
                }),
            },
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "tollgate::key::ResponseFuture polled after completion";

impl<F, L, S, B, ResBody, E> Future for ResponseFuture<F, L, S, B>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    L: Future<Output = LookupResult>,
    S: Service<Request<B>, Response = Response<ResBody>, Error = E, Future = F>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok((*response).map(ResponseBody::rejection)));
                }
                StateProj::Lookup { waiting } => {
                    let waiting = waiting.as_mut().project();
                    let (lookup, deadline, pending, options, kind) = (
                        waiting.lookup,
                        waiting.deadline,
                        waiting.pending,
                        waiting.options,
                        waiting.kind,
                    );
                    let verdict = match lookup.poll(cx) {
                        Poll::Ready(result) => options.admit(result, *kind),
                        Poll::Pending => {
                            let Some(timeout) = options.lookup_timeout else {
                                return Poll::Pending;
                            };
                            let sleep = deadline
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                            ready!(sleep.as_mut().poll(cx));
                            Err(options.timed_out())
                        }
                    };
                    let (mut service, mut request) = pending.take().expect(POLLED_AFTER_COMPLETION);
                    match verdict {
                        Ok(record) => {
                            options.admitted(&mut request, record);
                            State::Inner {
                                future: service.call(request),
                            }
                        }
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

impl<F, L, S, B> fmt::Debug for ResponseFuture<F, L, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Lookup { .. } => "ResponseFuture::Lookup",
            State::Inner { .. } => "ResponseFuture::Inner",
            State::Rejected { .. } => "ResponseFuture::Rejected",
        })
    }
}
