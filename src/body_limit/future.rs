//! [`ResponseFuture`]: the inner response, replaced by the standard 413 when
//! the body passed its cap while the inner service read it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;

use super::layer::Shared;
use crate::body::ResponseBody;

pin_project! {
    /// The response future of [`BodyLimitService`](super::BodyLimitService).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F, watch: Option<Box<Watch>> },
        Rejected { response: Option<Box<Response<Bytes>>> },
    }
}

/// What is needed to answer 413 after the request was handed on.
pub(crate) struct Watch {
    pub(crate) tripped: Arc<AtomicBool>,
    pub(crate) request: Request<()>,
    pub(crate) limit: u64,
    pub(crate) shared: Arc<Shared>,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F, watch: Option<Box<Watch>>) -> Self {
        Self {
            state: State::Inner { future, watch },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(Box::new(response)),
            },
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, watch } => {
                let response = ready!(future.poll(cx))?;
                match watch.take() {
                    // Whatever the handler made of the body error, the client
                    // gets the standard answer.
                    Some(watch) if watch.tripped.load(Ordering::Acquire) => {
                        drop(response);
                        let rejection = watch.shared.too_large(watch.limit, &watch.request);
                        Poll::Ready(Ok(rejection.map(ResponseBody::rejection)))
                    }
                    _ => Poll::Ready(Ok(response.map(ResponseBody::inner))),
                }
            }
            StateProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("tollgate::body_limit::ResponseFuture polled after completion");
                Poll::Ready(Ok((*response).map(ResponseBody::rejection)))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Inner { .. } => "ResponseFuture::Inner",
            State::Rejected { .. } => "ResponseFuture::Rejected",
        })
    }
}
